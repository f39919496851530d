"""Futures accounts (``type: futures``): ``/fapi/v3/account`` (um, on the fapi host) and
``/dapi/v1/account`` (cm, on the dapi host) in, families out. Their positions are the
positions product's (:mod:`.positions`).

Example output::

    binance_margin_up{account="fut"} 1.0
    binance_margin_futures_asset_margin_balance{account="fut",asset="USDT",market="um"} 23.7
    binance_margin_futures_total_margin_balance{account="fut"} 23.7
    binance_margin_futures_total_maint_margin{account="fut"} 0.08

Binance's margin ratio (maintenance margin / margin balance; it liquidates at 100 %) is the
recording rule ``binance_margin:futures_margin_ratio{account, market}``. An asset with nothing
at all (the fapi account lists every asset) is left out. ``binance_margin_up``, errors,
duration, last success and back-off are the shared account families: both markets' accounts
are one fetch, so either failing makes the account down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.futures import (
    ASSET_FIELDS,
    FUTURES_ACCOUNTS,
    MARKETS,
    Futures,
    fetch_futures,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached, Result, start_all
from binance_margin_exporter.collectors.families import (
    InvalidFields,
    Table,
    account_fetches,
    invalid_fields,
    non_empty,
)
from binance_margin_exporter.collectors.product import Build, ClientState, KeyState, Product
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import AccountConfig, ConfigError, Setting, Settings
from binance_margin_exporter.config.schema import names, url

DEFAULT_FAPI_BASE_URL = "https://fapi.binance.com"
DEFAULT_DAPI_BASE_URL = "https://dapi.binance.com"
HOST_SETTINGS = {"um": "fapi_base_url", "cm": "dapi_base_url"}  # market -> its host's key


def read_markets(value: Any, key: str) -> tuple[str, ...]:
    markets = names("a market", "markets (um, cm)")(value, key)
    for i, market in enumerate(markets):
        if market not in MARKETS:
            raise ConfigError(f"{key}[{i}]: expected um or cm")
    return tuple(markets)


MARKETS_SETTING = Setting(
    "markets", read_markets, ("um",),
    "The futures markets of a futures or portfolio_margin_pro account: um (USDⓈ-M, on "
    "fapi_base_url), cm (COIN-M, on dapi_base_url).")

MARKETS_TYPES = ("futures", "portfolio_margin_pro")  # the account types that read ``markets``

ASSET_HELP = {
    "wallet_balance": "Futures wallet balance of the asset (walletBalance).",
    "margin_balance": "Futures margin balance of the asset (marginBalance).",
    "maint_margin": "Futures maintenance margin of the asset (maintMargin).",
    "unrealized_pnl": "Futures unrealized profit and loss of the asset (unrealizedProfit).",
    "available_balance": "Futures available balance of the asset (availableBalance).",
}
TOTAL_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("total_margin_balance", "binance_margin_futures_total_margin_balance",
     "USDⓈ-M futures total margin balance (totalMarginBalance; USDT in single-asset mode, "
     "USD in multi-assets mode)."),
    ("total_maint_margin", "binance_margin_futures_total_maint_margin",
     "USDⓈ-M futures total maintenance margin (totalMaintMargin)."),
)


def market_clients(account: AccountConfig, client: BinanceClient,
                   build: Build) -> dict[str, BinanceClient]:
    """The account's key on each of its markets' hosts."""
    return {market: build.client_on(client, HOST_SETTINGS[market])
            for market in account.option("markets")}


class Keys:
    """The back-off of an account's key over its hosts: the latest of them."""

    def __init__(self, clients: Sequence[KeyState]) -> None:
        self.clients = tuple(clients)
        self.timeout = max((getattr(c, "timeout", 5.0) for c in clients), default=5.0)

    def auth_backoff_until(self) -> float:
        return max((c.auth_backoff_until() for c in self.clients), default=0.0)


@dataclass(frozen=True)
class FuturesSource:
    name: str
    client: ClientState
    futures: Cached[Futures]
    invalid: InvalidFields = field(default_factory=lambda: InvalidFields("a futures account"))

    @classmethod
    def create(cls, name: str, clients: dict[str, BinanceClient], executor: Executor, *,
               ttl: float) -> FuturesSource:
        invalid = InvalidFields(f"futures account {name}")
        keys = Keys(list(clients.values()))

        def fetch(deadline: float) -> Futures:
            futures = fetch_futures(clients, deadline)
            invalid.note(futures.invalid)
            return futures

        return cls(name, keys, Cached(f"futures account {name}", fetch, executor, ttl=ttl,
                                      timeout=keys.timeout), invalid)


class FuturesCollector:
    def __init__(self, sources: Sequence[FuturesSource]) -> None:
        self.sources = tuple(sources)

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        results = start_all([s.futures for s in self.sources], scrape.deadline)
        return lambda: self._families(results())

    def _families(self, results: Sequence[Result[Futures]]) -> Iterator[Metric]:
        fetches = account_fetches()
        assets = [GaugeMetricFamily(f"binance_margin_futures_asset_{attr}", ASSET_HELP[attr],
                                    labels=["account", "market", "asset"])
                  for attr, _ in ASSET_FIELDS]
        totals = Table(TOTAL_GAUGES, ["account"])
        invalid = invalid_fields()
        for source, result in zip(self.sources, results, strict=True):
            name = source.name
            fetches.add([name], source.futures, result, source.client)
            source.invalid.add_to(invalid, name)
            if result.value is None:
                continue
            for account in result.value.accounts:
                if account.market == "um":
                    totals.add([name], account)
                for asset in account.assets:
                    if not any(asset.values):
                        continue  # an asset with nothing at all
                    for number, family in zip(asset.values, assets, strict=True):
                        if number is not None:
                            family.add_metric([name, account.market, asset.asset], number)
        return non_empty((fetches.up, *assets, *totals.families, *fetches.tail(), invalid))


class FuturesProduct(Product):
    """Futures accounts (``type: futures``): USDⓈ-M on the fapi host, COIN-M on the dapi
    host, each host its own weight budget (2,400 a minute)."""

    name = "futures"
    types = ("futures",)
    settings = (
        Setting("fapi_base_url", url, DEFAULT_FAPI_BASE_URL,
                "USDⓈ-M futures' REST host (it keeps time with base_url's)."),
        Setting("dapi_base_url", url, DEFAULT_DAPI_BASE_URL,
                "COIN-M futures' REST host (it keeps time with base_url's)."),
    )
    account_settings = (MARKETS_SETTING,)
    host_settings = tuple(HOST_SETTINGS.values())

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The account of each of its markets a fetch: um on the fapi host, cm on dapi."""
        if not self.reads(account, settings):
            return {}
        return Costs(settings, interval).each_fetch(
            *(FUTURES_ACCOUNTS[market] for market in account.option("markets"))).by_host

    def check(self, account: AccountConfig) -> None:
        if account.type not in MARKETS_TYPES and \
                account.option("markets") != MARKETS_SETTING.default:
            raise ConfigError(f"{account.source}.markets: only for type futures or "
                              f"portfolio_margin_pro (a portfolio_margin account's positions "
                              f"are read on both markets)")

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> FuturesSource:
        return FuturesSource.create(account.name, market_clients(account, client, build),
                                    build.executor, ttl=build.settings.cache_ttl_seconds)

    def collector(self, parts: Sequence[FuturesSource],
                  build: Build) -> FuturesCollector | None:
        return FuturesCollector(parts) if parts else None


PRODUCT = FuturesProduct()
