"""Cross margin accounts: :class:`~binance_margin_exporter.binance.cross.MarginAccount` in,
metric families out. Never touches HTTP.

Example output for one account (``include_zero_assets: false``)::

    # HELP binance_margin_up 1 if the last fetch of GET /sapi/v1/margin/account succeeded, else 0.
    # TYPE binance_margin_up gauge
    binance_margin_up{account="main"} 1.0
    # HELP binance_margin_level Margin level (marginLevel); 999 means no liability.
    # TYPE binance_margin_level gauge
    binance_margin_level{account="main"} 11.64405625
    ...
    binance_margin_asset_borrowed{account="main",asset="BTC"} 0.1

Each scrape's families come from that scrape's answer (a sold asset disappears); an
answer byte for byte the last one keeps the samples it made (:mod:`.tables`). A failed
fetch yields ``up 0``, a counted error and no account values at all, never old ones. The margin
bars (``tradeCoeff``) are refreshed in the background every 5 minutes and the interest rates
hourly (:mod:`.interest`): neither delays a scrape. Values in USDT use the scrape's one price
snapshot (:mod:`.prices`) and are left out when it has no price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance import cross
from binance_margin_exporter.binance.cross import MarginAccount, TradeCoeff, UserAsset
from binance_margin_exporter.binance.fields import Unchanged, times
from binance_margin_exporter.collectors.account_fetch import (
    AccountCollector,
    Families,
    Fetched,
    FetchProduct,
    account_families,
    account_part,
)
from binance_margin_exporter.collectors.cache import Cached, Result
from binance_margin_exporter.collectors.cross_tables import (
    ACCOUNT_ATTRS,
    ACCOUNT_FLAGS,
    ACCOUNT_GAUGES,
    ASSET_GAUGES,
    MODES,
    account_lines,
    asset_part,
    threshold_lines,
)
from binance_margin_exporter.collectors.fetch_families import account_fetches
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
    WarmsUp,
)
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.tables import Memo, Table
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import (
    AccountConfig,
    ChecksAccount,
    ConfigError,
    Configured,
    Setting,
    Settings,
)
from binance_margin_exporter.config.schema import flag, names

if TYPE_CHECKING:
    from binance_margin_exporter.binance.transport import BinanceClient

THRESHOLDS_REFRESH_SECONDS = 300.0
THRESHOLDS_RETRY_SECONDS = 60.0
# the tables of metric names and HELP texts: collectors/cross_tables.py


@dataclass(frozen=True)
class CrossAccount:
    """One cross margin account: its client, its cached account and its cached margin bars
    (``None`` for a sub-account, whose bars come with its account)."""

    name: str
    client: ClientState
    account: Cached[MarginAccount]
    thresholds: Cached[TradeCoeff] | None
    rates: HourlyRates | None = None  # None: interest rates turned off
    master: str | None = None  # a sub-account: the name of the master account it is read by
    invalid: InvalidFields = field(default_factory=lambda: InvalidFields("an account"))
    # its samples made from inputs that did not change since the last scrape
    memo: Memo = field(default_factory=Memo, compare=False)

    @property
    def fetched(self) -> tuple[Fetched[MarginAccount]]:
        return (Fetched((self.name,), self.client, self.account),)

    def refresh(self) -> None:
        """Binance pushed a change (a risk stream's event): fetch the account anew now."""
        self.account.refresh()

    @classmethod
    def create(cls, name: str, client: BinanceClient, executor: Executor, *, ttl: float,
               interest_rates: bool = True,
               wall: Callable[[], float] | None = None) -> CrossAccount:
        clocks = {} if wall is None else {"wall": wall}
        reuse = Unchanged(cross.parse_account)  # an unchanged answer: the same model
        fetch = account_part(f"account {name}", name, client,
                             lambda deadline: cross.fetch_account(client, deadline, reuse),
                             executor, ttl=ttl, **clocks)
        return cls(
            name, client, fetch.cached,
            Cached(f"margin bars (tradeCoeff) of account {name}",
                   lambda deadline: cross.fetch_trade_coeff(client, deadline), executor,
                   ttl=THRESHOLDS_REFRESH_SECONDS, error_ttl=THRESHOLDS_RETRY_SECONDS,
                   timeout=client.timeout, **clocks),
            HourlyRates(f"interest rates of account {name}", client, executor, isolated=False,
                        **clocks) if interest_rates else None,
            invalid=fetch.invalid,
        )


class AssetFilter:
    """The assets to show: non-zero ones by default, or all, or the allow-list's."""

    def __init__(self, include_zero_assets: bool = False,
                 assets: Sequence[str] | None = None) -> None:
        self.include_zero_assets = include_zero_assets
        self.assets = frozenset(assets) if assets else None

    @classmethod
    def of(cls, settings: Settings) -> AssetFilter:
        return cls(settings.option("include_zero_assets"), settings.option("assets"))

    def __eq__(self, other: object) -> bool:
        """The same filter (a scrape's new one is equal to the last: the samples an account
        made of its assets are kept, see :class:`.tables.Memo`)."""
        return isinstance(other, AssetFilter) and \
            (self.include_zero_assets, self.assets) == (other.include_zero_assets, other.assets)

    def __hash__(self) -> int:
        return hash((self.include_zero_assets, self.assets))

    def __call__(self, account: MarginAccount) -> list[UserAsset]:
        if self.assets is not None:
            return [a for a in account.assets if a.asset in self.assets]
        if self.include_zero_assets:
            return list(account.assets)
        return [a for a in account.assets if not a.is_zero]


class CrossFamilies(Families[CrossAccount, MarginAccount]):
    """What the cross accounts' values make in one scrape (a master's sub-accounts' too)."""

    def __init__(self, scrape: Scrape, shown: AssetFilter) -> None:
        self.scrape = scrape
        self.shown = shown
        acc, asset_l = ["account"], ["account", "asset"]
        self.gauges = Table(ACCOUNT_GAUGES, acc)
        self.flags = Table(ACCOUNT_FLAGS, acc)
        self.info = GaugeMetricFamily(
            "binance_margin_account_info",
            "Account type (accountType: MARGIN_1 classic, MARGIN_2 pro, which Binance sunset in "
            "April 2026 but older answers still send); always 1.",
            labels=["account", "account_type", "mode"])
        self.thresholds = GaugeMetricFamily(
            "binance_margin_level_threshold",
            "This account's margin level bars (GET /sapi/v1/margin/tradeCoeff: normalBar, "
            "marginCallBar, forceLiquidationBar).", labels=["account", "threshold"])
        self.asset_families = Table(ASSET_GAUGES, asset_l)
        self.sub_info = GaugeMetricFamily(
            "binance_margin_sub_account_info",
            "A sub-account read through its master's key; always 1.",
            labels=["account", "master"])
        self.net_usdt = GaugeMetricFamily(
            "binance_margin_asset_net_usdt",
            "Net amount of the asset in USDT (netAsset x binance_margin_asset_price_usdt).",
            labels=asset_l)
        self.liability_usdt = GaugeMetricFamily(
            "binance_margin_asset_liability_usdt",
            "Debt in the asset, in USDT ((borrowed + interest) x binance_margin_asset_price_usdt).",
            labels=asset_l)
        self.total_net_usdt = GaugeMetricFamily(
            "binance_margin_total_net_asset_usdt",
            "Total net assets in USDT (totalNetAssetOfBtc x BTCUSDT).", labels=acc)
        self.total_liability_usdt = GaugeMetricFamily(
            "binance_margin_total_liability_usdt",
            "Total liabilities in USDT (totalLiabilityOfBtc x BTCUSDT).", labels=acc)
        self.rate = GaugeMetricFamily(
            "binance_margin_asset_interest_rate_hourly",
            "Next hourly interest rate of a borrowed asset (GET "
            "/sapi/v1/margin/next-hourly-interest-rate, fetched hourly).", labels=asset_l)

    def seen(self, part: CrossAccount) -> None:
        if part.master is not None:
            part.memo.add(self.sub_info, ("account", "master"), (part.name, part.master), 1.0)

    def add(self, part: CrossAccount, key: tuple[str, ...], value: MarginAccount) -> None:
        name, memo, account, scrape = part.name, part.memo, value, self.scrape
        # a sub-account's values are a new model each scrape (the summary's): kept by value
        values = tuple([getattr(account, attr) for attr in ACCOUNT_ATTRS])
        for table, made in zip((self.gauges, self.flags),
                               memo.get("account", (name, values), account_lines, self.gauges,
                                        self.flags, name, account), strict=True):
            table.extend(made)
        if account.account_type is not None:
            # older answers spell it Margin_1
            mode = MODES.get(account.account_type.upper(), "unknown")
            self.info.add_metric([name, account.account_type, mode], 1.0)
        # The assets' samples are made once per answer (and its prices): an unchanged answer
        # gives the same assets (see fields.Unchanged), a sub-account's detail is minutes old.
        prices = scrape.prices()
        made, in_usdt, priced = memo.get("assets", (account.assets, self.shown, prices),
                                         asset_part, self.asset_families, name, account,
                                         self.shown, prices)
        self.asset_families.extend(made)
        self.net_usdt.samples.extend(in_usdt[0])
        self.liability_usdt.samples.extend(in_usdt[1])
        scrape.priced.update(priced)
        btc = scrape.usdt("BTC")
        if btc is not None:
            self.total_net_usdt.add_metric([name], times(account.total_net_asset_btc, btc))
            self.total_liability_usdt.add_metric([name],
                                                 times(account.total_liability_btc, btc))
        if part.rates is not None:
            borrowed = [a.asset for a in account.assets if a.borrowed > 0]
            for asset_name, rate in part.rates.latest(borrowed).items():
                self.rate.add_metric([name, asset_name], rate)
        # The bars are refreshed (in the background) while the account answers, and shown
        # only with the account's values, never beside an up 0. A sub-account's come with its
        # account.
        coeff = account.bars or (part.thresholds.latest()
                                 if part.thresholds is not None else None)
        if coeff is not None:
            self.thresholds.samples.extend(memo.get("thresholds", (name, coeff),
                                                    threshold_lines, self.thresholds.name,
                                                    name, coeff))

    def families(self) -> list[Metric]:
        return [self.sub_info, *self.gauges.families, *self.flags.families, self.info,
                self.thresholds, *self.asset_families.families, self.net_usdt,
                self.liability_usdt, self.total_net_usdt, self.total_liability_usdt, self.rate]


class CrossCollector(AccountCollector[CrossAccount, MarginAccount]):
    """The families of every cross margin account (a master's sub-accounts: see
    :mod:`.sub_accounts`, which builds the same families)."""

    def __init__(self, accounts: Sequence[CrossAccount], *, include_zero_assets: bool = False,
                 assets: Sequence[str] | None = None) -> None:
        shown = AssetFilter(include_zero_assets, assets)
        super().__init__(accounts, lambda scrape: CrossFamilies(scrape, shown))
        self.accounts = self.parts
        self.shown = shown


def cross_families(accounts: Sequence[CrossAccount], results: Sequence[Result[MarginAccount]],
                   scrape: Scrape, shown: AssetFilter) -> Iterator[Metric]:
    """The families of accounts whose results are in already (a master's sub-accounts)."""
    return account_families(account_fetches(), CrossFamilies(scrape, shown), [
        (account, [(account.fetched[0], result)])
        for account, result in zip(accounts, results, strict=True)])


class CrossProduct(FetchProduct[CrossAccount, MarginAccount], Configured, ChecksAccount,
                   WarmsUp):
    """The account's own cross margin account (``master: false`` leaves it out)."""

    name = "cross"
    types = ("cross",)
    settings = (
        Setting("include_zero_assets", flag, False,
                "Show every asset Binance lists, not only those with a non-zero amount."),
        Setting("assets", names("an asset", "asset symbols"), None,
                "Show only these assets (an allow-list of symbols)."),
        INTEREST_RATES,
    )
    account_settings = (
        Setting("master", flag, True,
                "Read the account's own margin account (false: only its sub-accounts)."),
    )

    def check(self, account: AccountConfig) -> None:
        if not account.option("master") and account.option("sub_accounts") is None:
            raise ConfigError(f"{account.source}.master: false leaves nothing to read without "
                              f"sub_accounts")

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        return account.type in self.types and account.option("master")

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> CrossAccount:
        return CrossAccount.create(account.name, client, build.executor,
                                   ttl=build.settings.cache_ttl_seconds,
                                   interest_rates=build.settings.option("interest_rates"))

    def families(self, scrape: Scrape, build: Build) -> CrossFamilies:
        return CrossFamilies(scrape, AssetFilter.of(build.settings))

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The account a fetch; its bars (tradeCoeff) every 5 minutes; with
        ``interest_rates``, one call of the rates hourly (an account that borrows up to 20
        assets and keeps borrowing them: :mod:`.interest`)."""
        if not self.reads(account, settings):
            return {}
        costs = Costs(settings, interval).each_fetch(cross.ACCOUNT)
        costs.every(THRESHOLDS_REFRESH_SECONDS, cross.TRADE_COEFF)
        if settings.option("interest_rates"):
            costs.every(RATES_REFRESH_SECONDS, NEXT_HOURLY_RATE)
        return costs.by_host

    def warm_up(self, part: CrossAccount) -> None:
        if part.thresholds is not None:
            part.thresholds.latest()


PRODUCT = CrossProduct()
