"""Crypto loans' families (the products are :mod:`.loans`'s): an account's part of one loan
kind, the families both kinds share, the flexible loans' live LTV and the crossings of their
bars that fetch the orders anew, the VIP loans' own families.

Every loan family has the labels ``account``, ``loan`` (``flexible`` | ``vip``),
``loan_asset``, ``collateral_asset`` and ``order_id`` (a VIP loan's; empty, which PromQL reads
as absent, for a flexible loan: Binance gives those no id).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.loans import THRESHOLDS, Bars, FlexibleLoans, VipLoans
from binance_margin_exporter.collectors.account_fetch import Families, Fetched
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.fetch_families import Fetches
from binance_margin_exporter.collectors.invalid_fields import InvalidFields
from binance_margin_exporter.collectors.product import ClientState
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.tables import Memo

T = TypeVar("T")
LABELS = ["account", "loan", "loan_asset", "collateral_asset", "order_id"]
HYSTERESIS = 0.005  # how far past a bar the live LTV must be to count as over it (0.5 %)


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


def rising(live: float, shown: float, bars: Bars) -> bool:
    """True when the live LTV is over a bar (by ``HYSTERESIS``) that Binance's last answer
    (``shown``, its currentLTV) was under: a higher zone than the one Binance showed. A live
    LTV hovering at a bar, or falling, asks for nothing."""
    return zone(live - HYSTERESIS, bars) > zone(shown, bars)


class Crossings:
    """Whether a flexible loan's live LTV rose into a higher zone than Binance's last answer
    showed asks for a fetch now: at most once every ``spacing`` seconds (half of
    ``loans_interval_seconds``), so crossings at most triple the orders' weight."""

    def __init__(self, spacing: float = 150.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.spacing = spacing
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._asked_at: float | None = None

    def crossed(self, rose: bool) -> bool:
        """True when a loan rose (:func:`rising`) and a fetch may start."""
        with self._lock:
            now = self._monotonic()
            if not rose or (self._asked_at is not None and
                            now - self._asked_at < self.spacing):
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
        rose = False
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
                if bars is not None and loan.ltv is not None:
                    rose = rose or rising(live, loan.ltv, bars)
        if part.crossings.crossed(rose):
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
