"""Binance's risk lists: the delist schedule and the restricted assets, once per process (they
are the same for every account), read through the first cross account's key. Never touches
HTTP.

Example output::

    binance_margin_delist_schedule_up 1.0
    binance_margin_asset_delist_timestamp_seconds{asset="BTC"} 1686161202.0
    binance_margin_isolated_delist_timestamp_seconds{symbol="ADAUSDT"} 1686161202.0
    binance_margin_restricted_assets_up 1.0
    binance_margin_asset_restricted{asset="ADA",restriction="open_long"} 1.0

Both lists are fetched off the scrape's path (:meth:`Cached.latest`): the delist schedule
hourly, the restricted assets every 10 minutes (their weights: ``binance/risk_lists.py``); a
scrape never waits for them. While a refresh fails (``..._up 0``, a counted error), the last
good list is shown for up to three refresh periods, then left out: a delisting does not vanish
from a dashboard because one refresh failed, and a list is never shown for long after it
stopped being checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.risk_lists import (
    DELIST_SCHEDULE,
    RESTRICTED_ASSET,
    DelistSchedule,
    RestrictedAssets,
    fetch_delist_schedule,
    fetch_restricted_assets,
)
from binance_margin_exporter.collectors.cache import Cached, Result
from binance_margin_exporter.collectors.fetch_families import Fetches
from binance_margin_exporter.collectors.product import Build, Product, WarmsUp
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs, first_read
from binance_margin_exporter.config import AccountConfig, Configured, Setting, Settings
from binance_margin_exporter.config.schema import flag

if TYPE_CHECKING:
    from binance_margin_exporter.binance.transport import BinanceClient

T = TypeVar("T")

DELIST_REFRESH_SECONDS = 3600.0
DELIST_RETRY_SECONDS = 300.0
RESTRICTED_REFRESH_SECONDS = 600.0
RESTRICTED_RETRY_SECONDS = 60.0
KEPT_FOR_REFRESHES = 3  # a failing list is shown this many refresh periods after its last good


class Latest(Generic[T]):
    """One list: a :class:`Cached` refreshed in the background, and how long its last good
    value may be shown."""

    def __init__(self, cached: Cached[T], wall: Callable[[], float]) -> None:
        self.cached = cached
        self.max_age = KEPT_FOR_REFRESHES * cached.ttl
        self._wall = wall

    def value(self) -> T | None:
        """The last good value if young enough; starts a refresh when one is due."""
        good = self.cached.latest()
        last = self.cached.last_success
        if good is None or last is None or self._wall() - last > self.max_age:
            return None
        return good

    def add(self, fetches: Fetches) -> None:
        """``_up`` (1 if the last fetch succeeded; 0 until the first has) and the errors."""
        last = self.cached.good if self.cached.last_ok else None
        fetches.add([], self.cached, Result(last, None, 0.0, 0.0))


class RiskLists:
    """Both lists, shared by the process and kept across reloads (in ``Build.kept``); fetched
    through ``client``, which the latest build sets."""

    def __init__(self, executor: Executor, *, timeout: float = 5.0,
                 client: Any = None,
                 fetch_delist: Callable[[Any, float], DelistSchedule] = fetch_delist_schedule,
                 fetch_restricted: Callable[[Any, float],
                                            RestrictedAssets] = fetch_restricted_assets,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.client = client
        clocks = {"monotonic": monotonic, "wall": wall}
        self.delist = Latest(Cached(
            "delist schedule (GET /sapi/v1/margin/delist-schedule)",
            lambda deadline: fetch_delist(self.client, deadline), executor,
            ttl=DELIST_REFRESH_SECONDS, error_ttl=DELIST_RETRY_SECONDS, timeout=timeout,
            **clocks), wall)
        self.restricted = Latest(Cached(
            "restricted assets (GET /sapi/v1/margin/restricted-asset)",
            lambda deadline: fetch_restricted(self.client, deadline), executor,
            ttl=RESTRICTED_REFRESH_SECONDS, error_ttl=RESTRICTED_RETRY_SECONDS,
            timeout=timeout, **clocks), wall)


class Reader(NamedTuple):
    """An account's part: its client, which may ask for the lists, and the lists."""

    client: Any
    lists: RiskLists


class RiskListsCollector:
    def __init__(self, lists: RiskLists) -> None:
        self.lists = lists

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        # nothing to wait for: the lists are refreshed in the background
        return self._families

    def _families(self) -> Iterator[Metric]:
        delist = Fetches("binance_margin_delist_schedule",
                         "1 if the last fetch of GET /sapi/v1/margin/delist-schedule (hourly) "
                         "succeeded, else 0.",
                         "Failed fetches of the delist schedule, by reason.", labels=())
        asset_time = GaugeMetricFamily(
            "binance_margin_asset_delist_timestamp_seconds",
            "Unix time at which Binance delists the cross margin asset (delistTime of "
            "crossMarginAssets, GET /sapi/v1/margin/delist-schedule).", labels=["asset"])
        symbol_time = GaugeMetricFamily(
            "binance_margin_isolated_delist_timestamp_seconds",
            "Unix time at which Binance delists the isolated margin pair (delistTime of "
            "isolatedMarginSymbols).", labels=["symbol"])
        restricted = Fetches("binance_margin_restricted_assets",
                             "1 if the last fetch of GET /sapi/v1/margin/restricted-asset "
                             "(every 10 minutes) succeeded, else 0.",
                             "Failed fetches of the restricted assets, by reason.", labels=())
        restricted_asset = GaugeMetricFamily(
            "binance_margin_asset_restricted",
            "1 for an asset Binance restricts: open_long (openLongRestrictedAsset), "
            "max_collateral_exceeded (maxCollateralExceededAsset).",
            labels=["asset", "restriction"])

        schedule = self.lists.delist.value()
        if schedule is not None:
            for asset in sorted(schedule.assets):
                asset_time.add_metric([asset], schedule.assets[asset])
            for symbol in sorted(schedule.symbols):
                symbol_time.add_metric([symbol], schedule.symbols[symbol])
        self.lists.delist.add(delist)
        assets = self.lists.restricted.value()
        if assets is not None:
            for label, names in assets.by_restriction.items():
                for name in names:
                    restricted_asset.add_metric([name, label], 1.0)
        self.lists.restricted.add(restricted)
        yield delist.up
        if asset_time.samples:
            yield asset_time
        if symbol_time.samples:
            yield symbol_time
        yield delist.errors
        yield restricted.up
        if restricted_asset.samples:
            yield restricted_asset
        yield restricted.errors


class RiskListsProduct(Product[Reader], Configured, WarmsUp):
    """Binance's delist schedule and restricted assets: Binance-wide, fetched once per process
    through the first cross account's key."""

    name = "risk_lists"
    types = ("cross",)
    settings = (
        Setting("risk_lists", flag, True,
                f"Fetch Binance's delist schedule ({DELIST_SCHEDULE.weight} weight, hourly) "
                f"and restricted assets ({RESTRICTED_ASSET.weight} weight, every 10 minutes), "
                f"once for all accounts."),
    )

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        return account.type in self.types and settings.option("risk_lists")

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """Once per process, through its first account: the delist schedule hourly and the
        restricted assets every 10 minutes."""
        if account is not first_read(self, settings):
            return {}
        costs = Costs(settings, interval).every(DELIST_REFRESH_SECONDS, DELIST_SCHEDULE)
        return costs.every(RESTRICTED_REFRESH_SECONDS, RESTRICTED_ASSET).by_host

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> Reader:
        lists = build.kept.get("lists")
        if lists is None:
            lists = RiskLists(build.executor, timeout=build.settings.request_timeout_seconds,
                              client=client)
            build.kept["lists"] = lists
        return Reader(client, lists)

    def collector(self, parts: Sequence[Reader], build: Build) -> RiskListsCollector | None:
        if not parts:
            return None
        # The first account of this configuration asks; the lists (and their last answers)
        # stay across reloads that change which account that is.
        first = parts[0]
        first.lists.client = first.client
        return RiskListsCollector(first.lists)

    def warm_up(self, part: Reader) -> None:
        part.lists.delist.value()
        part.lists.restricted.value()


PRODUCT = RiskListsProduct()
