"""The product list: every kind of thing the exporter reads from Binance, in exposition order.

A product is a module in ``binance/`` (requests and parsing), one in ``collectors/`` (what to
fetch for an account, how often, its families, its settings: its ``PRODUCT``) and one in
``demo/`` (its simulated state and routes); and one line here. The wiring (:mod:`.wiring`)
reads this list, and whoever starts a simulator (``--demo``, the tests) hands it
``SIMULATED``: the simulator imports nothing of this list, which imports it. Nothing else
names a product.
"""

from __future__ import annotations

from typing import NamedTuple

from binance_margin_exporter.collectors import (
    cross,
    futures,
    isolated,
    ledger,
    loans,
    portfolio,
    portfolio_pro,
    positions,
    prices,
    risk_lists,
    streams,
    sub_accounts,
)
from binance_margin_exporter.collectors.product import Product
from binance_margin_exporter.demo import cross as demo_cross
from binance_margin_exporter.demo import futures as demo_futures
from binance_margin_exporter.demo import isolated as demo_isolated
from binance_margin_exporter.demo import ledger as demo_ledger
from binance_margin_exporter.demo import loans as demo_loans
from binance_margin_exporter.demo import portfolio as demo_portfolio
from binance_margin_exporter.demo import portfolio_pro as demo_portfolio_pro
from binance_margin_exporter.demo import positions as demo_positions
from binance_margin_exporter.demo import prices as demo_prices
from binance_margin_exporter.demo import risk_lists as demo_risk_lists
from binance_margin_exporter.demo import streams as demo_streams
from binance_margin_exporter.demo import sub_accounts as demo_sub_accounts
from binance_margin_exporter.demo.routes import Simulated


class Entry(NamedTuple):
    product: Product  # collectors/<name>.py's PRODUCT
    simulated: Simulated  # demo/<name>.py: its state and ``routes(host)``


# Prices come last: their families list every asset the products before them valued.
ENTRIES: tuple[Entry, ...] = (
    Entry(cross.PRODUCT, demo_cross),
    Entry(isolated.PRODUCT, demo_isolated),
    Entry(sub_accounts.PRODUCT, demo_sub_accounts),
    Entry(portfolio.PRODUCT, demo_portfolio),
    Entry(portfolio_pro.PRODUCT, demo_portfolio_pro),
    Entry(futures.PRODUCT, demo_futures),
    Entry(positions.PRODUCT, demo_positions),
    Entry(risk_lists.PRODUCT, demo_risk_lists),
    Entry(loans.PRODUCT, demo_loans), Entry(loans.VIP_PRODUCT, demo_loans),
    Entry(ledger.MARGIN_PRODUCT, demo_ledger),
    Entry(ledger.FUTURES_PRODUCT, demo_ledger),
    Entry(ledger.PORTFOLIO_PRODUCT, demo_ledger),
    Entry(streams.MARGIN_RISK_PRODUCT, demo_streams),
    Entry(streams.PORTFOLIO_PRODUCT, demo_streams),
    Entry(prices.PRODUCT, demo_prices),
)
PRODUCTS: tuple[Product, ...] = tuple(entry.product for entry in ENTRIES)
# what a simulator serves: each product's demo module once (the two streams share one)
SIMULATED: tuple[Simulated, ...] = tuple(dict.fromkeys(entry.simulated for entry in ENTRIES))
