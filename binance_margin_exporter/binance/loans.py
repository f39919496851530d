"""Crypto loans, on the api host (``/sapi``), all signed (USER_DATA) and IP-weighted:

- ``GET /sapi/v2/loan/flexible/ongoing/orders`` (weight 300): flexible-rate loans, paged
  (``current`` from 1, at most 1000; ``limit`` at most 100); ``rows`` of ``loanCoin``,
  ``totalDebt``, ``collateralCoin``, ``collateralAmount``, ``currentLTV``; ``total``.
- ``GET /sapi/v2/loan/flexible/collateral/data`` (weight 400): each collateral coin's LTV bars
  (``initialLTV``, ``marginCallLTV``, ``liquidationLTV``; ``maxLimit`` in USD, not read). They
  change rarely: read hourly, and when an order names a coin the last answer did not list (at
  most every 10 minutes).
- ``GET /sapi/v1/loan/vip/ongoing/orders`` (weight 400): VIP loans, paged alike; ``rows`` of
  ``orderId``, ``loanCoin``, ``totalDebt``, ``residualInterest``, ``collateralAccountId`` and
  ``collateralCoin`` (comma-separated lists: ``"BNB,BTC,ETH"``),
  ``totalCollateralValueAfterHaircut``, ``lockedCollateralValue``, ``currentLTV``,
  ``expirationTime`` (ms; 0 for an open-term loan), ``loanDate``, ``loanTerm``, ``loanRate``.

VIP loans carry no LTV bars, and Binance publishes none to read: ``GET
/sapi/v1/loan/vip/collateral/data`` (weight 400) gives each collateral coin's tiered haircut
(``_1stCollateralRatio`` ``"100%"`` over ``_1stCollateralRange`` ...), not a margin call or a
liquidation LTV, so it is not called; the operator may set the bars (``vip_loan_ltv_bars``).

Pages are read until ``total`` rows came (or a page came empty), at most 4,000 weight a fetch
(13 pages of flexible orders, 10 of VIP: 1,300 and 1,000 orders; both kinds' fetches and the
other products stay under the /sapi minute's 80 % pause point); the orders beyond are left
out, counted and warned of. Labels (coins, the order id)
are required; every number is read leniently: a number that is missing, empty or odd drops only
its own series, and its field is noted (``flexible.currentLTV``) for the invalid-field counter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.errors import UpstreamError, invalid
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.logs import Throttled

FLEXIBLE_ORDERS = Endpoint("/sapi/v2/loan/flexible/ongoing/orders", 300)  # a page
FLEXIBLE_COLLATERAL = Endpoint("/sapi/v2/loan/flexible/collateral/data", 400)
VIP_ORDERS = Endpoint("/sapi/v1/loan/vip/ongoing/orders", 400)  # a page
PAGE_LIMIT = 100  # Binance's largest page
MAX_PAGES = 1000  # Binance's largest ``current``
# the most weight one fetch of orders spends: a third of an IP's /sapi minute (12,000), so that
# both kinds' fetches of an account (and the other products) stay under its 80 % pause point
FETCH_WEIGHT_CAP = 4000
_capped = Throttled(logging.getLogger(__name__), 3600.0)  # orders beyond the cap
_collateral = Throttled(logging.getLogger(__name__), 600.0)  # a failed collateral data read
COLLATERAL_FAILED = "collateral.data"  # the field noted when the collateral data read failed
COLLATERAL_REFRESH_SECONDS = 3600.0
NEW_COIN_SECONDS = 600.0  # the shortest time between two reads for a coin not listed
THRESHOLDS = (("initial", "initialLTV"), ("margin_call", "marginCallLTV"),
              ("liquidation", "liquidationLTV"))


@dataclass(frozen=True, slots=True)
class Bars:
    """A collateral coin's LTV bars (decimals: 0.75 is 75 %); None where not sent."""

    initial: float | None = None
    margin_call: float | None = None
    liquidation: float | None = None


@dataclass(frozen=True, slots=True)
class FlexibleLoan:
    loan_asset: str
    collateral_asset: str
    debt: float | None
    collateral: float | None
    ltv: float | None


@dataclass(frozen=True, slots=True)
class FlexibleLoans:
    loans: tuple[FlexibleLoan, ...]
    bars: tuple[tuple[str, Bars], ...]  # by collateral coin, as the collateral data says
    invalid: tuple[str, ...] = ()
    left_out: int = 0  # orders beyond what one fetch reads

    def bars_of(self, coin: str) -> Bars | None:
        return dict(self.bars).get(coin)


@dataclass(frozen=True, slots=True)
class VipLoan:
    order_id: str
    loan_asset: str
    collateral_asset: str  # as Binance lists them: "BNB,BTC,ETH"
    debt: float | None
    residual_interest: float | None
    collateral_value: float | None  # totalCollateralValueAfterHaircut
    ltv: float | None
    expiry: float | None  # Unix seconds; None for an open-term loan (Binance sends 0)


@dataclass(frozen=True, slots=True)
class VipLoans:
    loans: tuple[VipLoan, ...]
    invalid: tuple[str, ...] = ()
    left_out: int = 0  # orders beyond what one fetch reads


def expected(optional: fields.Lenient, raw: Mapping[str, Any], key: str, at: str,
             noted: str) -> float | None:
    """A number Binance documents for every row: missing or ``""`` drops its series and is
    noted as ``noted`` (an odd value too)."""
    value = raw.get(key)
    if value is None or value == "":
        optional.invalid.append(noted)
        return None
    number = optional.number(raw, key, at)
    if number is None:  # noted under the bare key by Lenient: name it
        optional.invalid[-1] = noted
    return number


def pages_within(endpoint: Endpoint) -> int:
    """The most pages one fetch reads: ``FETCH_WEIGHT_CAP`` of weight (13 pages of 300, 10 of
    400)."""
    return max(1, min(MAX_PAGES, FETCH_WEIGHT_CAP // max(endpoint.weight, 1)))


def read_pages(client: BinanceClient, endpoint: Endpoint, what: str,
               deadline: float | None = None) -> tuple[list[Any], int]:
    """The rows of a paged answer and how many Binance has beyond them: pages of
    ``PAGE_LIMIT`` until ``total`` rows came, a page came empty, or :func:`pages_within`
    pages were read (the rest left out, warned of once an hour)."""
    rows: list[Any] = []
    total = 0.0
    for current in range(1, pages_within(endpoint) + 1):
        raw = fields.obj(client.signed_get(endpoint.path,
                                           {"current": current, "limit": PAGE_LIMIT},
                                           deadline=deadline), what)
        total = fields.number(raw, "total", f"{what}.")
        page = [] if raw.get("rows") is None else fields.array(raw["rows"], f"{what}.rows")
        rows.extend(page)
        if not page or len(rows) >= total:
            return rows, 0
    left = max(0, int(total) - len(rows))
    if left:
        _capped.warning("%s: %d orders, of which the first %d are read (%d pages, %d weight "
                        "a fetch); the other %d are left out", what, int(total), len(rows),
                        pages_within(endpoint), pages_within(endpoint) * endpoint.weight,
                        left, kind=what)
    return rows, left


def parse_flexible_rows(rows: list[Any], optional: fields.Lenient) -> tuple[FlexibleLoan, ...]:
    found: dict[tuple[str, str], FlexibleLoan] = {}
    for i, row in enumerate(rows):
        at = f"flexible rows[{i}]."
        row = fields.obj(row, f"flexible rows[{i}]")
        loan, collateral = (fields.string(row, "loanCoin", at),
                            fields.string(row, "collateralCoin", at))
        found.setdefault((loan, collateral), FlexibleLoan(
            loan, collateral,
            expected(optional, row, "totalDebt", at, "flexible.totalDebt"),
            expected(optional, row, "collateralAmount", at, "flexible.collateralAmount"),
            expected(optional, row, "currentLTV", at, "flexible.currentLTV")))
    return tuple(found.values())


def parse_collateral_data(raw: Any, optional: fields.Lenient) -> dict[str, Bars]:
    raw = fields.obj(raw, "flexible collateral data")
    rows = [] if raw.get("rows") is None else fields.array(raw["rows"], "collateral data.rows")
    found: dict[str, Bars] = {}
    for i, row in enumerate(rows):
        at = f"collateral data rows[{i}]."
        row = fields.obj(row, f"collateral data rows[{i}]")
        coin = fields.string(row, "collateralCoin", at)
        found.setdefault(coin, Bars(*(expected(optional, row, key, at, f"collateral.{key}")
                                      for _, key in THRESHOLDS)))
    return found


def parse_vip_rows(rows: list[Any], optional: fields.Lenient) -> tuple[VipLoan, ...]:
    found: dict[str, VipLoan] = {}
    for i, row in enumerate(rows):
        at = f"vip rows[{i}]."
        row = fields.obj(row, f"vip rows[{i}]")
        order = row.get("orderId")
        if isinstance(order, bool) or not isinstance(order, (int, str)) or order == "":
            raise invalid(f"{at}orderId: missing or not an id")
        expiry = optional.number(row, "expirationTime", at)
        found.setdefault(str(order), VipLoan(
            fields.text(str(order)), fields.string(row, "loanCoin", at),
            fields.string(row, "collateralCoin", at),
            expected(optional, row, "totalDebt", at, "vip.totalDebt"),
            expected(optional, row, "residualInterest", at, "vip.residualInterest"),
            expected(optional, row, "totalCollateralValueAfterHaircut", at,
                     "vip.totalCollateralValueAfterHaircut"),
            expected(optional, row, "currentLTV", at, "vip.currentLTV"),
            expiry / 1000 if expiry else None))
    return tuple(found.values())


class FlexibleReader:
    """One account's flexible loans: the orders every fetch, the collateral data hourly and
    when an order names a coin it did not list (at most every ``NEW_COIN_SECONDS``: 6 reads,
    2,400 weight, an hour at most). A failed collateral data read keeps the orders: the last
    bars read (or none) stay, the failure is noted as the field ``collateral.data`` and warned
    of, and the read is tried again after ``NEW_COIN_SECONDS``."""

    def __init__(self, client: BinanceClient,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._bars: dict[str, Bars] | None = None
        self._read_at = 0.0  # monotonic time of the last collateral data read
        self._failed_at: float | None = None  # of the last failed one

    def _due(self, coins: set[str]) -> bool:
        with self._lock:
            now = self._monotonic()
            if self._failed_at is not None and now - self._failed_at < NEW_COIN_SECONDS:
                return False
            if self._bars is None:
                return True
            age = self._monotonic() - self._read_at
            return age >= COLLATERAL_REFRESH_SECONDS or \
                (not coins <= self._bars.keys() and age >= NEW_COIN_SECONDS)

    def __call__(self, deadline: float | None = None) -> FlexibleLoans:
        optional = fields.Lenient()
        rows, left_out = read_pages(self.client, FLEXIBLE_ORDERS, "flexible loan orders",
                                    deadline)
        loans = parse_flexible_rows(rows, optional)
        coins = {loan.collateral_asset for loan in loans}
        if self._due(coins):
            try:
                bars = parse_collateral_data(
                    self.client.signed_get(FLEXIBLE_COLLATERAL.path, deadline=deadline),
                    optional)
            except UpstreamError as error:
                optional.invalid.append(COLLATERAL_FAILED)
                _collateral.warning("flexible loan collateral data: %s; the last bars read "
                                    "stay, tried again in %d minutes", error,
                                    NEW_COIN_SECONDS // 60)
                with self._lock:
                    self._failed_at = self._monotonic()
            else:
                with self._lock:
                    self._bars, self._read_at = bars, self._monotonic()
                    self._failed_at = None
        with self._lock:
            known = dict(self._bars or {})
        return FlexibleLoans(loans, tuple((coin, known[coin]) for coin in sorted(coins)
                                          if coin in known), optional.noted(), left_out)


def fetch_vip_loans(client: BinanceClient, deadline: float | None = None) -> VipLoans:
    optional = fields.Lenient()
    rows, left_out = read_pages(client, VIP_ORDERS, "vip loan orders", deadline)
    return VipLoans(parse_vip_rows(rows, optional), optional.noted(), left_out)
