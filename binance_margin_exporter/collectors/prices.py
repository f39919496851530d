"""Market prices: one fetch of every symbol's price per cache interval, shared by all accounts
(public data), and ``binance_margin_asset_price_usdt`` for every asset some account shows.

Example output::

    binance_margin_prices_up 1.0
    binance_margin_asset_price_usdt{asset="BNB"} 612.3

A failed price fetch drops only the USDT series (``binance_margin_prices_up 0``); the accounts'
own values stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.prices import TICKER_PRICE, Prices, fetch_prices
from binance_margin_exporter.collectors.cache import Cached, Result
from binance_margin_exporter.collectors.fetch_families import Fetches
from binance_margin_exporter.collectors.product import Build, Product
from binance_margin_exporter.collectors.scrape import PricesSnapshot, Scrape
from binance_margin_exporter.collectors.weights import Costs, first_read
from binance_margin_exporter.config import AccountConfig, Configured, Setting, Settings
from binance_margin_exporter.config.schema import flag

if TYPE_CHECKING:
    from binance_margin_exporter.binance.transport import BinanceClient


class PricesCollector:
    """The price families; also the scrape's prices (:class:`.scrape.PricesSource`)."""

    def __init__(self, prices: Cached[Prices]) -> None:
        self.cached = prices

    def snapshot(self, deadline: float) -> PricesSnapshot:
        return PricesSnapshot(self.cached, deadline)

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        # the exporter started this scrape's snapshot from this collector, before the products
        snapshot = scrape.snapshot or self.snapshot(scrape.deadline)
        return lambda: self._families(scrape, snapshot.result())

    def _families(self, scrape: Scrape, result: Result[Prices]) -> Iterator[Metric]:
        fetches = Fetches("binance_margin_prices",
                          "1 if the last fetch of GET /api/v3/ticker/price succeeded, else 0.",
                          "Failed fetches of the prices, by reason.", labels=())
        price = GaugeMetricFamily(
            "binance_margin_asset_price_usdt",
            "Price of the asset in USDT (GET /api/v3/ticker/price: ASSETUSDT, 1/USDTASSET, or "
            "ASSETBTC x BTCUSDT), for every asset the accounts show.", labels=["asset"])
        for asset in sorted(scrape.priced):
            price.add_metric([asset], scrape.priced[asset])
        fetches.add([], self.cached, result)
        yield fetches.up
        if price.samples:
            yield price
        yield fetches.errors


class PricesProduct(Product["BinanceClient"], Configured):
    """Market prices (public data): one fetch per cache interval for every account on the api
    host, so that values can be shown in USDT."""

    name = "prices"
    types = ("cross",)
    settings = (
        Setting("usdt_values", flag, True,
                "Show values in USDT too (GET /api/v3/ticker/price once per cache interval)."),
    )

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        return account.type in self.types and settings.option("usdt_values")

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """Every symbol's price a fetch, once for all the accounts: counted on the first
        account it reads (whose key asks, from whose egress)."""
        if account is not first_read(self, settings):
            return {}
        return Costs(settings, interval).each_fetch(TICKER_PRICE).by_host

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> BinanceClient:
        return client  # unsigned: any account's client will do

    def collector(self, parts: Sequence[BinanceClient], build: Build) -> PricesCollector | None:
        if not parts:
            return None
        # unsigned: any account's client will do; the same cache while that client stays
        client = parts[0]
        kept = build.kept.get("prices")
        if kept is None or kept[0] is not client:
            kept = (client, Cached("prices",
                                   lambda deadline: fetch_prices(client, deadline),
                                   build.executor, ttl=build.settings.cache_ttl_seconds,
                                   timeout=build.settings.request_timeout_seconds))
            build.kept["prices"] = kept
        return PricesCollector(kept[1])


PRODUCT = PricesProduct()
