"""Market prices: one fetch of every symbol's price per cache interval, shared by all accounts
(public data), and ``binance_margin_asset_price_usdt`` for every asset some account shows.

Example output::

    binance_margin_prices_up 1.0
    binance_margin_asset_price_usdt{asset="BNB"} 612.3

A failed price fetch drops only the USDT series (``binance_margin_prices_up 0``); the accounts'
own values stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.prices import Prices
from binance_margin_exporter.collectors.cache import ERROR_REASONS, Cached
from binance_margin_exporter.collectors.scrape import Scrape


class PricesCollector:
    def __init__(self, prices: Cached[Prices]) -> None:
        self.cached = prices

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        flight = self.cached.start(scrape.deadline)
        results = []

        def prices() -> Prices | None:
            if not results:
                results.append(self.cached.wait(flight, scrape.deadline))
            return results[0].value

        scrape.prices = prices
        return lambda: self._families(scrape)

    def _families(self, scrape: Scrape) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "binance_margin_prices_up",
            "1 if the last fetch of GET /api/v3/ticker/price succeeded, else 0.",
            value=0.0 if scrape.prices() is None else 1.0)
        price = GaugeMetricFamily(
            "binance_margin_asset_price_usdt",
            "Price of the asset in USDT (GET /api/v3/ticker/price: ASSETUSDT, 1/USDTASSET, or "
            "ASSETBTC x BTCUSDT), for every asset the accounts show.", labels=["asset"])
        for asset in sorted(scrape.priced):
            price.add_metric([asset], scrape.priced[asset])
        errors = CounterMetricFamily("binance_margin_prices_scrape_errors",
                                     "Failed fetches of the prices, by reason.",
                                     labels=["reason"])
        for reason in ERROR_REASONS:
            errors.add_metric([reason], float(self.cached.errors[reason]))
        yield up
        if price.samples:
            yield price
        yield errors
