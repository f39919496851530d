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

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance import isolated
from binance_margin_exporter.binance.fields import plus, times
from binance_margin_exporter.binance.isolated import STATUSES, IsolatedAccount
from binance_margin_exporter.collectors.account_fetch import (
    AccountCollector,
    Families,
    Fetched,
    FetchProduct,
    account_part,
)
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.fetch_families import Fetches
from binance_margin_exporter.collectors.interest import (
    INTEREST_RATES,
    NEXT_HOURLY_RATE,
    RATES_REFRESH_SECONDS,
    HourlyRates,
)
from binance_margin_exporter.collectors.invalid_fields import InvalidFields
from binance_margin_exporter.collectors.product import (
    Build,
    ClientState,
)
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.tables import Memo, Table, states
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import AccountConfig, Configured, Setting, Settings
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
    memo: Memo | None = field(default=None, compare=False)

    @property
    def fetched(self) -> tuple[Fetched[IsolatedAccount]]:
        return (Fetched((self.name,), self.client, self.account),)

    @classmethod
    def create(cls, name: str, client: BinanceClient, executor: Executor, *, ttl: float,
               interest_rates: bool = True,
               wall: Callable[[], float] | None = None) -> IsolatedSource:
        """Its fetch (an answer without pairs kept 5 minutes) and its rates."""
        clocks = {} if wall is None else {"wall": wall}
        fetch = account_part(f"isolated pairs of account {name}", name, client,
                             lambda deadline: isolated.fetch_isolated_account(client, deadline),
                             executor, ttl=ttl, ttl_of=_recheck(ttl), **clocks)
        return cls(name, client, fetch.cached,
                   HourlyRates(f"isolated interest rates of account {name}", client, executor,
                               isolated=True, **clocks) if interest_rates else None,
                   fetch.invalid)


class IsolatedFamilies(Families[IsolatedSource, IsolatedAccount]):
    """The families of every account's isolated pairs."""

    def __init__(self, scrape: Scrape) -> None:
        self.scrape = scrape
        acc, pair_l = ["account"], ["account", "symbol"]
        side_l = ["account", "asset", "symbol"]
        self.pair_gauges = Table(PAIR_GAUGES, pair_l)
        self.status = GaugeMetricFamily(
            "binance_margin_isolated_status",
            "Margin level status of the pair (marginLevelStatus): 1 for the current one.",
            labels=["account", "status", "symbol"])
        self.pair_flags = Table(PAIR_FLAGS, pair_l)
        self.side_gauges = Table(SIDE_GAUGES, side_l)
        self.old_total = UnknownMetricFamily(*DEPRECATED_TOTAL, labels=side_l)
        self.totals = Table(TOTALS, acc)
        self.net_usdt = GaugeMetricFamily(
            "binance_margin_isolated_asset_net_usdt",
            "Net amount of one side of the pair in USDT (netAsset x price).", labels=side_l)
        self.liability_usdt = GaugeMetricFamily(
            "binance_margin_isolated_asset_liability_usdt",
            "Debt of one side of the pair in USDT ((borrowed + interest) x price).",
            labels=side_l)
        self.total_net_usdt = GaugeMetricFamily(
            "binance_margin_isolated_total_net_asset_usdt",
            "Total net assets of all isolated pairs in USDT (totalNetAssetOfBtc x BTCUSDT).",
            labels=acc)
        self.total_liability_usdt = GaugeMetricFamily(
            "binance_margin_isolated_total_liability_usdt",
            "Total liabilities of all isolated pairs in USDT (totalLiabilityOfBtc x BTCUSDT).",
            labels=acc)
        self.rate = GaugeMetricFamily(
            "binance_margin_isolated_asset_interest_rate_hourly",
            "Next hourly interest rate of a borrowed side of the pair (isIsolated=TRUE).",
            labels=side_l)

    def add(self, part: IsolatedSource, key: tuple[str, ...], value: IsolatedAccount) -> None:
        name, account, scrape = part.name, value, self.scrape
        self.totals.add([name], account)
        btc = scrape.usdt("BTC") if account.pairs else None
        if btc is not None:
            if account.total_net_asset_btc is not None:
                self.total_net_usdt.add_metric([name], times(account.total_net_asset_btc, btc))
            if account.total_liability_btc is not None:
                self.total_liability_usdt.add_metric([name],
                                                     times(account.total_liability_btc, btc))
        borrowed = {side.asset for pair in account.pairs for side in pair.sides
                    if side.borrowed > 0}
        rates = part.rates.latest(borrowed) if part.rates is not None else {}
        for pair in account.pairs:
            pair_key = [name, pair.symbol]
            self.pair_gauges.add(pair_key, pair)
            self.pair_flags.add(pair_key, pair)
            if pair.margin_level_status is not None:
                for state, on in states(pair.margin_level_status, STATUSES):
                    self.status.add_metric([name, state, pair.symbol], on)
            for side in pair.sides:
                side_key = [name, side.asset, pair.symbol]
                self.side_gauges.add(side_key, side)
                if side.total_asset is not None:
                    self.old_total.add_metric(side_key, side.total_asset)
                price = scrape.usdt(side.asset)
                if price is not None:
                    self.net_usdt.add_metric(side_key, times(side.net_asset, price))
                    self.liability_usdt.add_metric(
                        side_key, times(plus(side.borrowed, side.interest), price))
                if side.borrowed > 0 and side.asset in rates:
                    self.rate.add_metric(side_key, rates[side.asset])

    def families(self) -> list[Metric]:
        return [*self.pair_gauges.families, self.status, *self.pair_flags.families,
                *self.side_gauges.families, self.old_total, *self.totals.families,
                self.net_usdt, self.liability_usdt, self.total_net_usdt,
                self.total_liability_usdt, self.rate]


def isolated_fetches() -> Fetches:
    """Its fetch is shown apart from the cross account's: one failing never makes the other
    ``up 0``."""
    return Fetches(
        "binance_margin_isolated",
        "1 if the last fetch of GET /sapi/v1/margin/isolated/account succeeded, else 0.",
        "Failed fetches of the isolated pairs, by reason.")


class IsolatedCollector(AccountCollector[IsolatedSource, IsolatedAccount]):
    """The families of every account's isolated pairs."""

    def __init__(self, sources: Sequence[IsolatedSource]) -> None:
        super().__init__(sources, IsolatedFamilies, isolated_fetches)


class IsolatedProduct(FetchProduct[IsolatedSource, IsolatedAccount], Configured):
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

    def kind(self) -> Fetches:
        return isolated_fetches()

    def families(self, scrape: Scrape, build: Build) -> IsolatedFamilies:
        return IsolatedFamilies(scrape)


PRODUCT = IsolatedProduct()
