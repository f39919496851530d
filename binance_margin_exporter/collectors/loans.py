"""Crypto loans (``loans: [flexible, vip]`` on an account): two products, ``loans`` (flexible
rate) and ``vip_loans``, their orders in, every loan's LTV against its bars out.

Example output::

    binance_margin_loans_up{account="main",loan="flexible"} 1.0
    binance_margin_loan_debt{account="main",loan="flexible",loan_asset="BUSD",...} 10000.0
    binance_margin_loan_ltv{account="main",loan="flexible",loan_asset="BUSD",...} 0.57
    binance_margin_loan_ltv_threshold{...,threshold="margin_call"} 0.75
    binance_margin_loan_ltv_live{...} 0.5712

Every loan family has the labels ``account``, ``loan`` (``flexible`` | ``vip``),
``loan_asset``, ``collateral_asset`` and ``order_id`` (a VIP loan's; empty, which PromQL reads
as absent, for a flexible loan: Binance gives those no id). Values are Binance's, exactly;
``binance_margin_loan_ltv_live`` is this exporter's: debt x price(loan asset) / (collateral x
price(collateral asset)) at this scrape's prices, absent where a price route is missing.

The orders weigh 300 (flexible) and 400 (VIP) a page: they are fetched at most every
``loans_interval_seconds``, and at once (at most once a minute) when a flexible loan's live LTV
crosses one of its bars between two scrapes. ``binance_margin_loans_up{account, loan}`` and
``binance_margin_loans_scrape_errors`` are each fetch's.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.loans import (
    FLEXIBLE_COLLATERAL,
    FLEXIBLE_ORDERS,
    THRESHOLDS,
    VIP_ORDERS,
    Bars,
    FlexibleLoans,
    FlexibleReader,
    VipLoans,
    fetch_vip_loans,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.account_fetch import Families, Fetched, FetchProduct, noting
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.families import Fetches, InvalidFields, Memo
from binance_margin_exporter.collectors.product import Build, ClientState
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import (
    AccountConfig,
    ChecksAccount,
    ConfigError,
    Configured,
    Setting,
    Settings,
)
from binance_margin_exporter.config.schema import check_keys, names, number

T = TypeVar("T")
KINDS = ("flexible", "vip")
LOAN_TYPES = ("cross", "portfolio_margin_pro")  # accounts whose key reads the api host
LABELS = ["account", "loan", "loan_asset", "collateral_asset", "order_id"]
CROSSING_SPACING_SECONDS = 60.0  # the shortest time between two fetches a crossing starts
# a failed fetch is tried again after a minute, not every scrape: 300 or 400 weight a page
RETRY_SECONDS = 60.0
BAR_NAMES = tuple(name for name, _ in THRESHOLDS)


def loan_kinds(value: Any, key: str) -> tuple[str, ...]:
    kinds = names("a loan kind", "loan kinds (flexible, vip)")(value, key)
    for i, kind in enumerate(kinds):
        if kind not in KINDS:
            raise ConfigError(f"{key}[{i}]: expected flexible or vip")
    return tuple(kinds)


def ltv_bars(value: Any, key: str) -> tuple[tuple[str, float], ...]:
    """``{initial, margin_call, liquidation}`` (decimals, any of them), in rising order."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{key}: expected a mapping of initial, margin_call, liquidation")
    check_keys(value, BAR_NAMES, key)
    bars = tuple((name, number(0.0, 10.0)(value[name], f"{key}.{name}"))
                 for name in BAR_NAMES if name in value)
    for (low, a), (high, b) in itertools.pairwise(bars):
        if a > b:
            raise ConfigError(f"{key}.{high}: must not be below {low} ({b:g} < {a:g})")
    return bars


LOANS_SETTING = Setting(
    "loans", loan_kinds, (),
    "The crypto loans to read for this account (type cross or portfolio_margin_pro): "
    f"flexible (GET {FLEXIBLE_ORDERS.path}, {FLEXIBLE_ORDERS.weight} weight a page of 100, "
    f"and its collateral data, {FLEXIBLE_COLLATERAL.weight}, hourly), vip (GET "
    f"{VIP_ORDERS.path}, {VIP_ORDERS.weight} a page). Default: none.")
INTERVAL_SETTING = Setting(
    "loans_interval_seconds", number(30.0, 86400.0), 300.0,
    "The longest time between two fetches of an account's loan orders (a flexible loan whose "
    "live LTV crosses a bar is fetched at once, at most once a minute).")
VIP_BARS_SETTING = Setting(
    "vip_loan_ltv_bars", ltv_bars, None,
    "The LTV bars of this account's VIP loans, which Binance does not publish: a mapping of "
    "initial, margin_call, liquidation (decimals: 0.8 is 80 %). Without it VIP loans show no "
    "threshold.")


def ratio(debt: float, loan_price: float, collateral: float,
          collateral_price: float) -> float | None:
    """debt x loan price / (collateral x collateral price) in decimal arithmetic; None without
    collateral."""
    below = fields.decimal(collateral) * fields.decimal(collateral_price)
    if not below:
        return None
    return float(fields.decimal(debt) * fields.decimal(loan_price) / below)


def zone(ltv: float, bars: Bars) -> int:
    """How many of the bars the LTV is at or above."""
    return sum(1 for bar in (bars.initial, bars.margin_call, bars.liquidation)
               if bar is not None and ltv >= bar)


class Crossings:
    """Each flexible loan's zone (bars at or under its live LTV) at the last scrape: a change
    asks for a fetch now, at most every ``CROSSING_SPACING_SECONDS``."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._zones: dict[tuple[str, str], int] = {}
        self._asked_at: float | None = None

    def crossed(self, zones: dict[tuple[str, str], int]) -> bool:
        """Note this scrape's zones; True when one changed and a fetch may start."""
        with self._lock:
            changed = any(self._zones.get(key, z) != z for key, z in zones.items())
            self._zones = zones
            now = self._monotonic()
            if not changed or (self._asked_at is not None and
                               now - self._asked_at < CROSSING_SPACING_SECONDS):
                return False
            self._asked_at = now
            return True


@dataclass(frozen=True)
class LoanPart(Generic[T]):
    """An account's loans of one kind: its fetch, the operator's bars (VIP), the crossings
    (flexible)."""

    name: str
    kind: str
    client: ClientState
    cached: Cached[T]
    invalid: InvalidFields
    bars: Bars | None = None
    crossings: Crossings = field(default_factory=Crossings, compare=False)
    memo: Memo | None = field(default=None, compare=False)

    @property
    def fetched(self) -> tuple[Fetched[T]]:
        return (Fetched((self.name, self.kind), None, self.cached),)


def loan_fetches() -> Fetches:
    return Fetches("binance_margin_loans",
                   "1 if the last fetch of the account's loan orders of this kind succeeded, "
                   "else 0.", "Failed fetches of loan orders, by reason.", ("account", "loan"))


class LoanFamilies:
    """The families both kinds share."""

    def __init__(self) -> None:
        def gauge(name: str, help_: str, extra: Sequence[str] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help_, labels=[*LABELS, *extra])

        self.debt = gauge("binance_margin_loan_debt",
                          "Debt of the loan in its loan asset (totalDebt).")
        self.collateral = gauge("binance_margin_loan_collateral",
                                "Collateral of a flexible loan in its collateral asset "
                                "(collateralAmount).")
        self.ltv = gauge("binance_margin_loan_ltv",
                         "Binance's loan-to-value of the loan (currentLTV; 0.75 is 75 %).")
        self.threshold = gauge(
            "binance_margin_loan_ltv_threshold",
            "The loan's LTV bars: initial, margin_call, liquidation (flexible: the collateral "
            "data's; VIP: vip_loan_ltv_bars).", ["threshold"])
        self.left_out = GaugeMetricFamily(
            "binance_margin_loans_left_out",
            "Loan orders not read because one fetch reads at most 4,000 weight of pages "
            "(1,300 flexible, 1,000 VIP orders); absent when none.", labels=["account", "loan"])

    def add_left_out(self, part: LoanPart[Any], left_out: int) -> None:
        if left_out:
            self.left_out.add_metric([part.name, part.kind], float(left_out))

    def add_bars(self, labels: list[str], bars: Bars | None) -> None:
        if bars is None:
            return
        for name, _ in THRESHOLDS:
            value = getattr(bars, name)
            if value is not None:
                self.threshold.add_metric([*labels, name], value)

    def shared(self) -> list[Metric]:
        return [self.debt, self.collateral, self.ltv, self.threshold, self.left_out]


class FlexibleFamilies(Families[LoanPart[FlexibleLoans], FlexibleLoans]):
    def __init__(self, scrape: Scrape) -> None:
        self.scrape = scrape
        self.loans = LoanFamilies()
        self.live = GaugeMetricFamily(
            "binance_margin_loan_ltv_live",
            "Live LTV of a flexible loan: debt x price(loan asset) / (collateral x "
            "price(collateral asset)) at this scrape's last prices (Binance's currentLTV uses "
            "index prices); absent without a price route.", labels=LABELS)

    def add(self, part: LoanPart[FlexibleLoans], key: tuple[str, ...],
            value: FlexibleLoans) -> None:
        self.loans.add_left_out(part, value.left_out)
        zones: dict[tuple[str, str], int] = {}
        for loan in value.loans:
            labels = [part.name, "flexible", loan.loan_asset, loan.collateral_asset, ""]
            for family, number_ in ((self.loans.debt, loan.debt),
                                    (self.loans.collateral, loan.collateral),
                                    (self.loans.ltv, loan.ltv)):
                if number_ is not None:
                    family.add_metric(labels, number_)
            bars = value.bars_of(loan.collateral_asset)
            self.loans.add_bars(labels, bars)
            live = self._live(loan.debt, loan.loan_asset, loan.collateral,
                              loan.collateral_asset)
            if live is not None:
                self.live.add_metric(labels, live)
                if bars is not None:
                    zones[(loan.loan_asset, loan.collateral_asset)] = zone(live, bars)
        if part.crossings.crossed(zones):
            part.cached.refresh()  # shown from the next scrape

    def _live(self, debt: float | None, loan_asset: str, collateral: float | None,
              collateral_asset: str) -> float | None:
        if debt is None or collateral is None:
            return None
        loan_price = self.scrape.usdt(loan_asset)
        collateral_price = self.scrape.usdt(collateral_asset)
        if loan_price is None or collateral_price is None:
            return None
        return ratio(debt, loan_price, collateral, collateral_price)

    def families(self) -> list[Metric]:
        return [*self.loans.shared(), self.live]


class VipFamilies(Families[LoanPart[VipLoans], VipLoans]):
    def __init__(self) -> None:
        self.loans = LoanFamilies()
        self.interest = GaugeMetricFamily(
            "binance_margin_loan_residual_interest",
            "Unpaid interest of a VIP loan in its loan asset (residualInterest).",
            labels=LABELS)
        self.expiry = GaugeMetricFamily(
            "binance_margin_loan_expiry_timestamp_seconds",
            "Unix time a VIP loan expires (expirationTime; absent for an open-term loan).",
            labels=LABELS)
        self.value = GaugeMetricFamily(
            "binance_margin_loan_collateral_value",
            "Collateral value of a VIP loan after haircut, in USD "
            "(totalCollateralValueAfterHaircut).", labels=LABELS)

    def add(self, part: LoanPart[VipLoans], key: tuple[str, ...], value: VipLoans) -> None:
        self.loans.add_left_out(part, value.left_out)
        for loan in value.loans:
            labels = [part.name, "vip", loan.loan_asset, loan.collateral_asset, loan.order_id]
            for family, number_ in ((self.loans.debt, loan.debt), (self.loans.ltv, loan.ltv),
                                    (self.interest, loan.residual_interest),
                                    (self.expiry, loan.expiry),
                                    (self.value, loan.collateral_value)):
                if number_ is not None:
                    family.add_metric(labels, number_)
            self.loans.add_bars(labels, part.bars)

    def families(self) -> list[Metric]:
        return [*self.loans.shared(), self.interest, self.expiry, self.value]


# the families both products make for an account: their ``loan`` label keeps them apart
SHARED = ("binance_margin_loans_up", "binance_margin_loans_scrape_errors",
          *(f.name for f in LoanFamilies().shared()))


class LoanProduct(FetchProduct[LoanPart[T], T], Configured):
    kind_name = ""
    endpoint = FLEXIBLE_ORDERS
    types = LOAN_TYPES
    settings = (INTERVAL_SETTING,)

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        return account.type in self.types and self.kind_name in account.option("loans")

    def kind(self) -> Fetches:
        return loan_fetches()

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """A page of orders every ``loans_interval_seconds`` (a page holds 100 orders: each
        100 more cost as much again)."""
        if not self.reads(account, settings):
            return {}
        return Costs(settings, interval).every(settings.option("loans_interval_seconds"),
                                               self.endpoint).by_host

    def loan_part(self, account: AccountConfig, client: BinanceClient, build: Build,
                  call: Callable[[float], T], bars: Bars | None = None) -> LoanPart[T]:
        what = f"{self.kind_name} loans of {account.name}"
        interval = build.settings.option("loans_interval_seconds")
        invalid = InvalidFields(what)
        return LoanPart(account.name, self.kind_name, client, Cached(
            what, noting(call, invalid), build.executor,
            ttl=interval, error_ttl=min(RETRY_SECONDS, interval), timeout=client.timeout),
            invalid, bars)


class FlexibleLoansProduct(LoanProduct[FlexibleLoans], ChecksAccount):
    """Flexible-rate crypto loans, with their collateral coins' bars and a live LTV."""

    name = "loans"
    kind_name = "flexible"
    account_settings = (LOANS_SETTING, VIP_BARS_SETTING)

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """Its orders (:class:`LoanProduct`), and the collateral data hourly."""
        if not self.reads(account, settings):
            return {}
        costs = Costs(settings, interval)
        costs.every(settings.option("loans_interval_seconds"), FLEXIBLE_ORDERS)
        return costs.every(3600.0, FLEXIBLE_COLLATERAL).by_host

    def check(self, account: AccountConfig) -> None:
        if account.option("loans") and account.type not in LOAN_TYPES:
            raise ConfigError(f"{account.source}.loans: only for type cross or "
                              f"portfolio_margin_pro (the key that reads the api host)")
        if account.option("vip_loan_ltv_bars") is not None and \
                "vip" not in account.option("loans"):
            raise ConfigError(f"{account.source}.vip_loan_ltv_bars: only with vip in loans")

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> LoanPart[FlexibleLoans]:
        return self.loan_part(account, client, build, FlexibleReader(client))

    def families(self, scrape: Scrape, build: Build) -> FlexibleFamilies:
        return FlexibleFamilies(scrape)


class VipLoansProduct(LoanProduct[VipLoans]):
    """VIP loans; their bars only where the operator sets them (``vip_loan_ltv_bars``)."""

    name = "vip_loans"
    kind_name = "vip"
    endpoint = VIP_ORDERS
    account_settings = (LOANS_SETTING, VIP_BARS_SETTING)

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> LoanPart[VipLoans]:
        bars = account.option("vip_loan_ltv_bars")
        return self.loan_part(account, client, build,
                              lambda deadline: fetch_vip_loans(client, deadline),
                              None if bars is None else Bars(**dict(bars)))

    def families(self, scrape: Scrape, build: Build) -> VipFamilies:
        return VipFamilies()

    def describe(self, build: Build) -> tuple[str, ...]:
        """Its own families: those it shares with the flexible loans carry ``loan="vip"``."""
        return tuple(name for name in super().describe(build) if name not in SHARED)


PRODUCT = FlexibleLoansProduct()
VIP_PRODUCT = VipLoansProduct()
