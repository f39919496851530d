"""Simulated crypto loans: ``GET /sapi/v2/loan/flexible/ongoing/orders`` (weight 300 a page),
``GET /sapi/v2/loan/flexible/collateral/data`` (400) and ``GET /sapi/v1/loan/vip/ongoing/orders``
(400 a page), paged as Binance pages them (``current`` from 1, at most 1000; ``limit`` 10 by
default, at most 100; ``total`` every page).

The demo account has one flexible loan, USDT against 25 BNB, whose LTV drifts between 0.55 and
0.77 over half an hour (BNB's margin-call bar is 0.75: a few minutes above it): its debt
follows that curve at BNB's price when the loan was taken, and Binance's LTV is the debt over
the collateral at the ticker's price of the moment, as the exporter's live LTV is. And one VIP
loan, shaped as Binance's example. Tests hold the LTV (:meth:`SimulatedLoans.set_ltv`), add
orders (``extra``: thousands, for paging), or replace the rows (``flexible_rows``,
``vip_rows``, ``collateral_rows``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance.loans import FLEXIBLE_COLLATERAL, FLEXIBLE_ORDERS, VIP_ORDERS
from binance_margin_exporter.demo import cross
from binance_margin_exporter.demo.numbers import BTC_USDT, q8, s8
from binance_margin_exporter.demo.routes import Demo, Host, RequestError, Route, route_of

COLLATERAL = Decimal("25")  # BNB
COLLATERAL_ROWS: list[dict[str, str]] = [
    {"collateralCoin": "BNB", "initialLTV": "0.65", "marginCallLTV": "0.75",
     "liquidationLTV": "0.83", "maxLimit": "1000000"},
    {"collateralCoin": "BTC", "initialLTV": "0.7", "marginCallLTV": "0.8",
     "liquidationLTV": "0.9", "maxLimit": "5000000"},
    {"collateralCoin": "ETH", "initialLTV": "0.65", "marginCallLTV": "0.75",
     "liquidationLTV": "0.83", "maxLimit": "3000000"},
]
VIP_ROW: dict[str, Any] = {
    "orderId": 100000001, "loanCoin": "USDT", "totalDebt": "10000", "loanRate": "0.0123",
    "residualInterest": "10.27687923", "collateralAccountId": "12345678,23456789",
    "collateralCoin": "BNB,BTC", "totalCollateralValueAfterHaircut": "25000.27565492",
    "lockedCollateralValue": "25000.27565492", "currentLTV": "0.57",
    "expirationTime": 1893456000000, "loanDate": "1676851200000", "loanTerm": "30days"}


class SimulatedLoans:
    def __init__(self, account: cross.SimulatedAccount, *,
                 wall: Callable[[], float] = time.time) -> None:
        self.account = account
        self._wall = wall
        self._started = wall()
        # BNB's price when the loan was taken: the debt follows the LTV's curve from it, and
        # Binance's LTV from the price of the moment (a test that moves the price moves both
        # LTVs, as a market would)
        self._base = next((p for n, p, _f, _l in account.assets if n == "BNB"),
                          Decimal("0.0095")) * BTC_USDT
        self.held: Decimal | None = None
        self.extra = 0  # more flexible orders (for paging), USDT against BTC
        self.flexible_rows: list[dict[str, Any]] | None = None
        self.vip_rows: list[dict[str, Any]] = [dict(VIP_ROW)]
        self.collateral_rows: list[dict[str, Any]] = [dict(r) for r in COLLATERAL_ROWS]

    def set_ltv(self, value: float | None) -> None:
        """Hold the flexible loan's LTV (None: drift again)."""
        self.held = None if value is None else Decimal(str(value))

    def ltv(self) -> Decimal:
        if self.held is not None:
            return self.held
        if not self.account.drift:
            return Decimal("0.57")
        t = self._wall() - self._started
        return Decimal(str(round(0.66 + 0.11 * math.sin(2 * math.pi * t / 1800), 6)))

    def flexible(self) -> list[dict[str, Any]]:
        if self.flexible_rows is not None:
            return self.flexible_rows
        debt = q8(self.ltv() * COLLATERAL * self._base)
        bnb = self.account.prices_btc().get("BNB", self._base / BTC_USDT) * BTC_USDT
        ltv = round(debt / (COLLATERAL * bnb), 4)
        rows = [{"loanCoin": "USDT", "totalDebt": s8(debt), "collateralCoin": "BNB",
                 "collateralAmount": s8(COLLATERAL),
                 "currentLTV": f"{ltv:f}".rstrip("0").rstrip(".")}]
        return rows + [{"loanCoin": f"L{i:05d}", "totalDebt": "1", "collateralCoin": "BTC",
                        "collateralAmount": "0.001", "currentLTV": "0.01"}
                       for i in range(self.extra)]


def page(rows: list[dict[str, Any]], params: dict[str, str]) -> bytes:
    try:
        current, limit = int(params.get("current", "1")), int(params.get("limit", "10"))
    except ValueError:
        raise RequestError(-1100, "Illegal characters found in a parameter.") from None
    if not 1 <= current <= 1000 or not 1 <= limit <= 100:
        raise RequestError(-1130, "Data sent for parameter 'current' or 'limit' is not valid.")
    start = (current - 1) * limit
    return json.dumps({"rows": rows[start:start + limit], "total": len(rows)}).encode()


def routes(host: Host) -> dict[str, Route]:
    loans = host.state("loans", lambda: SimulatedLoans(cross.state(host)))
    return dict((
        route_of(FLEXIBLE_ORDERS, lambda params: page(loans.flexible(), params)),
        route_of(FLEXIBLE_COLLATERAL, lambda params: json.dumps(
            {"rows": loans.collateral_rows, "total": len(loans.collateral_rows)}).encode()),
        route_of(VIP_ORDERS, lambda params: page(loans.vip_rows, params)),
    ))


def demo(host: Host) -> Demo:
    """The demo account's loans: a flexible one drifting about its margin-call bar, a VIP
    one with the operator's bars."""
    return Demo(accounts={"demo": {
        "loans": ("flexible", "vip"),
        "vip_loan_ltv_bars": (("initial", 0.6), ("margin_call", 0.75), ("liquidation", 0.85)),
    }})
