"""Isolated margin pairs: :class:`~binance_margin_exporter.binance.isolated.IsolatedAccount` in,
metric families out. Never touches HTTP.

Example output for one pair::

    binance_margin_isolated_up{account="main"} 1.0
    binance_margin_isolated_level{account="main",symbol="BTCUSDT"} 2.1
    binance_margin_isolated_status{account="main",status="MARGIN_CALL",symbol="BTCUSDT"} 0.0
    binance_margin_isolated_asset_borrowed{account="main",asset="USDT",symbol="BTCUSDT"} 500.0

Its fetch is counted and shown apart from the cross account's: one failing never makes the
other ``up 0``. An account with no isolated pairs is asked again only every 5 minutes (10
weight a call). Interest rates of the borrowed sides (``isIsolated=TRUE``) are fetched hourly in
the background, only for accounts that borrow in a pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance import isolated
from binance_margin_exporter.binance.fields import plus, times
from binance_margin_exporter.binance.isolated import STATUSES, IsolatedAccount
from binance_margin_exporter.collectors.cache import Cached, Result, start_all
from binance_margin_exporter.collectors.families import (
    Fetches,
    InvalidFields,
    Table,
    invalid_fields,
    non_empty,
    states,
)
from binance_margin_exporter.collectors.interest import (
    INTEREST_RATES,
    NEXT_HOURLY_RATE,
    RATES_REFRESH_SECONDS,
    HourlyRates,
)
from binance_margin_exporter.collectors.product import Build, ClientState, Product
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import AccountConfig, Setting, Settings
from binance_margin_exporter.config.schema import flag

if TYPE_CHECKING:
    from binance_margin_exporter.binance.transport import BinanceClient

NO_PAIRS_RECHECK_SECONDS = 300.0

PAIR_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("margin_level", "binance_margin_isolated_level", "Margin level of the pair (marginLevel)."),
    ("margin_ratio", "binance_margin_isolated_leverage",
     "Leverage of the pair (Binance's marginRatio: \"10\" is 10x; every recorded answer shows "
     "10, 5, 4.2)."),
    ("margin_ratio", "binance_margin_isolated_margin_ratio",
     "DEPRECATED, removed in the next release: use binance_margin_isolated_leverage (the same "
     "marginRatio, which is the pair's leverage, not a ratio of margin)."),
    ("index_price", "binance_margin_isolated_index_price", "Index price (indexPrice)."),
    ("liquidate_price", "binance_margin_isolated_liquidation_price",
     "Liquidation price (liquidatePrice); 0 without debt."),
    ("liquidate_rate", "binance_margin_isolated_liquidation_rate",
     "Percent move of the index price to the liquidation price (liquidateRate): -14.27 is a "
     "14.27 % fall; 0 without debt."),
)
PAIR_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("enabled", "binance_margin_isolated_enabled", "1 if the pair is enabled (enabled)."),
    ("trade_enabled", "binance_margin_isolated_trade_enabled",
     "1 if trading is enabled (tradeEnabled)."),
)
SIDE_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("free", "binance_margin_isolated_asset_free", "Free amount of one side of the pair (free)."),
    ("locked", "binance_margin_isolated_asset_locked", "Locked amount (locked)."),
    ("borrowed", "binance_margin_isolated_asset_borrowed", "Borrowed amount (borrowed)."),
    ("interest", "binance_margin_isolated_asset_interest", "Interest owed (interest)."),
    ("net_asset", "binance_margin_isolated_asset_net", "Net amount (netAsset)."),
    ("total_asset", "binance_margin_isolated_asset_gross",
     "Total amount of the side, before its debt (totalAsset)."),
    ("net_asset_btc", "binance_margin_isolated_asset_net_btc",
     "Net amount in BTC (netAssetOfBtc)."),
)
# binance_margin_isolated_asset_gross's old name, kept for one release. Untyped: a gauge ending
# in _total fails `promtool check metrics` (the suffix is a counter's), and it is no counter.
DEPRECATED_TOTAL = (
    "binance_margin_isolated_asset_total",
    "DEPRECATED, removed in the next release: use binance_margin_isolated_asset_gross (the same "
    "totalAsset; a gauge must not end in _total).")
TOTALS: tuple[tuple[str, str, str], ...] = (
    ("total_asset_btc", "binance_margin_isolated_total_asset_btc",
     "Total assets of all isolated pairs in BTC (totalAssetOfBtc)."),
    ("total_liability_btc", "binance_margin_isolated_total_liability_btc",
     "Total liabilities of all isolated pairs in BTC (totalLiabilityOfBtc)."),
    ("total_net_asset_btc", "binance_margin_isolated_total_net_asset_btc",
     "Total net assets of all isolated pairs in BTC (totalNetAssetOfBtc)."),
)


def _recheck(ttl: float) -> Callable[[IsolatedAccount], float]:
    """An answer with no pairs is kept 5 minutes: such an account must not pay the isolated
    account's weight a scrape for nothing."""
    return lambda account: ttl if account.pairs else max(ttl, NO_PAIRS_RECHECK_SECONDS)


@dataclass(frozen=True)
class IsolatedSource:
    """One account's isolated pairs: its client, its cached answer and its pairs' rates."""

    name: str
    client: ClientState
    account: Cached[IsolatedAccount]
    rates: HourlyRates | None = None
    invalid: InvalidFields = field(default_factory=lambda: InvalidFields("isolated pairs"))

    @classmethod
    def create(cls, name: str, client: BinanceClient, executor: Executor, *, ttl: float,
               interest_rates: bool = True,
               wall: Callable[[], float] | None = None) -> IsolatedSource:
        clocks = {} if wall is None else {"wall": wall}
        invalid = InvalidFields(f"isolated pairs of account {name}")

        def fetch(deadline: float) -> IsolatedAccount:
            account = isolated.fetch_isolated_account(client, deadline)
            invalid.note(account.invalid)
            return account

        return cls(
            name, client,
            Cached(f"isolated pairs of account {name}", fetch,
                   executor, ttl=ttl, ttl_of=_recheck(ttl), timeout=client.timeout, **clocks),
            HourlyRates(f"isolated interest rates of account {name}", client, executor,
                        isolated=True, **clocks) if interest_rates else None,
            invalid,
        )


class IsolatedCollector:
    """The families of every account's isolated pairs."""

    def __init__(self, sources: Sequence[IsolatedSource]) -> None:
        self.sources = tuple(sources)

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        results = start_all([s.account for s in self.sources], scrape.deadline)
        return lambda: self._families(results(), scrape)

    def _families(self, results: Sequence[Result[IsolatedAccount]],
                  scrape: Scrape) -> Iterator[Metric]:
        acc, pair_l = ["account"], ["account", "symbol"]
        side_l = ["account", "asset", "symbol"]
        fetches = Fetches(
            "binance_margin_isolated",
            "1 if the last fetch of GET /sapi/v1/margin/isolated/account succeeded, else 0.",
            "Failed fetches of the isolated pairs, by reason.")
        pair_gauges = Table(PAIR_GAUGES, pair_l)
        status = GaugeMetricFamily(
            "binance_margin_isolated_status",
            "Margin level status of the pair (marginLevelStatus): 1 for the current one.",
            labels=["account", "status", "symbol"])
        pair_flags = Table(PAIR_FLAGS, pair_l)
        side_gauges = Table(SIDE_GAUGES, side_l)
        old_total = UnknownMetricFamily(*DEPRECATED_TOTAL, labels=side_l)
        totals = Table(TOTALS, acc)
        net_usdt = GaugeMetricFamily(
            "binance_margin_isolated_asset_net_usdt",
            "Net amount of one side of the pair in USDT (netAsset x price).", labels=side_l)
        liability_usdt = GaugeMetricFamily(
            "binance_margin_isolated_asset_liability_usdt",
            "Debt of one side of the pair in USDT ((borrowed + interest) x price).",
            labels=side_l)
        total_net_usdt = GaugeMetricFamily(
            "binance_margin_isolated_total_net_asset_usdt",
            "Total net assets of all isolated pairs in USDT (totalNetAssetOfBtc x BTCUSDT).",
            labels=acc)
        total_liability_usdt = GaugeMetricFamily(
            "binance_margin_isolated_total_liability_usdt",
            "Total liabilities of all isolated pairs in USDT (totalLiabilityOfBtc x BTCUSDT).",
            labels=acc)
        rate = GaugeMetricFamily(
            "binance_margin_isolated_asset_interest_rate_hourly",
            "Next hourly interest rate of a borrowed side of the pair (isIsolated=TRUE).",
            labels=side_l)
        invalid = invalid_fields()

        for source, result in zip(self.sources, results, strict=True):
            name = source.name
            account = result.value
            fetches.add([name], source.account, result)
            source.invalid.add_to(invalid, name)
            if account is None:
                continue
            totals.add([name], account)
            btc = scrape.usdt("BTC") if account.pairs else None
            if btc is not None:
                if account.total_net_asset_btc is not None:
                    total_net_usdt.add_metric([name], times(account.total_net_asset_btc, btc))
                if account.total_liability_btc is not None:
                    total_liability_usdt.add_metric([name],
                                                    times(account.total_liability_btc, btc))
            borrowed = {side.asset for pair in account.pairs for side in pair.sides
                        if side.borrowed > 0}
            rates = source.rates.latest(borrowed) if source.rates is not None else {}
            for pair in account.pairs:
                key = [name, pair.symbol]
                pair_gauges.add(key, pair)
                pair_flags.add(key, pair)
                if pair.margin_level_status is not None:
                    for state, value in states(pair.margin_level_status, STATUSES):
                        status.add_metric([name, state, pair.symbol], value)
                for side in pair.sides:
                    side_key = [name, side.asset, pair.symbol]
                    side_gauges.add(side_key, side)
                    if side.total_asset is not None:
                        old_total.add_metric(side_key, side.total_asset)
                    price = scrape.usdt(side.asset)
                    if price is not None:
                        net_usdt.add_metric(side_key, times(side.net_asset, price))
                        liability_usdt.add_metric(
                            side_key, times(plus(side.borrowed, side.interest), price))
                    if side.borrowed > 0 and side.asset in rates:
                        rate.add_metric(side_key, rates[side.asset])

        return non_empty((fetches.up, *pair_gauges.families, status, *pair_flags.families,
                          *side_gauges.families, old_total, *totals.families, net_usdt,
                          liability_usdt, total_net_usdt, total_liability_usdt, rate,
                          *fetches.tail(), invalid))


class IsolatedProduct(Product):
    """A cross account's isolated margin pairs (``isolated: false`` leaves them out)."""

    name = "isolated"
    types = ("cross",)
    settings = (INTEREST_RATES,)
    account_settings = (
        Setting("isolated", flag, True, "Read the account's isolated margin pairs too."),
    )

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        # a master: false account is read for its sub-accounts only
        return account.type in self.types and account.option("isolated") and \
            account.option("master")

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The isolated account a fetch (an account with pairs: one without is asked every 5
        minutes; the plan counts the larger); with ``interest_rates``, one call of its pairs'
        rates hourly (an account that borrows in a pair)."""
        if not self.reads(account, settings):
            return {}
        costs = Costs(settings, interval).each_fetch(isolated.ISOLATED_ACCOUNT)
        if settings.option("interest_rates"):
            costs.every(RATES_REFRESH_SECONDS, NEXT_HOURLY_RATE)
        return costs.by_host

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> IsolatedSource:
        return IsolatedSource.create(account.name, client, build.executor,
                                     ttl=build.settings.cache_ttl_seconds,
                                     interest_rates=build.settings.option("interest_rates"))

    def collector(self, parts: Sequence[IsolatedSource],
                  build: Build) -> IsolatedCollector | None:
        return IsolatedCollector(parts) if parts else None


PRODUCT = IsolatedProduct()
