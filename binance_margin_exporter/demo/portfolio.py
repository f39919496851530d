"""A simulated Portfolio Margin account: ``GET /papi/v1/account`` and ``GET /papi/v1/balance``
(weight 20 each; served on the same host as the rest, as ``BINANCE_BASE_URL`` makes it).

uniMMR drifts between about 1.6 and 6.4 over half an hour; the status follows Binance's bands
(``MARGIN_CALL`` at 1.2 and below, ``ACTIVE_LIQUIDATION`` at 1.05 and below) and tests can hold
it with :meth:`SimulatedPortfolio.set_uni_mmr`. ``totalAvailableBalance`` is an empty string,
as Binance sometimes sends it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance.portfolio import PAPI_ACCOUNT, PAPI_BALANCE
from binance_margin_exporter.demo import cross
from binance_margin_exporter.demo.numbers import s8
from binance_margin_exporter.demo.routes import Demo, Host, Route, route_of

PAPI_ACCOUNT_PATH = PAPI_ACCOUNT.path
PAPI_BALANCE_PATH = PAPI_BALANCE.path
MAINT_MARGIN = Decimal("20000")


def status_of(uni_mmr: Decimal) -> str:
    if uni_mmr <= Decimal("1.05"):
        return "ACTIVE_LIQUIDATION"
    if uni_mmr <= Decimal("1.2"):
        return "MARGIN_CALL"
    return "NORMAL"


class SimulatedPortfolio:
    def __init__(self, *, drift: bool = True, wall: Callable[[], float] = time.time) -> None:
        self.drift = drift
        self._wall = wall
        self._started = wall()
        self.held: Decimal | None = None
        # a test's switch (not --demo's: a clean demo logs no warning): totalAvailableBalance
        # with a thousands comma, as Binance's own PM Pro example sends it ("122,559.90199491")
        self.thousands_comma = False

    def set_uni_mmr(self, value: float | None) -> None:
        self.held = None if value is None else Decimal(str(value))

    def uni_mmr(self) -> Decimal:
        if self.held is not None:
            return self.held
        if not self.drift:
            return Decimal("4")
        t = self._wall() - self._started
        return Decimal(str(round(4 + 2.4 * math.sin(2 * math.pi * t / 1800), 6)))

    def account(self, params: dict[str, str]) -> bytes:
        uni = self.uni_mmr()
        equity = MAINT_MARGIN * uni
        body: dict[str, Any] = {
            "uniMMR": s8(uni),
            "accountEquity": s8(equity),
            "actualEquity": s8(equity * Decimal("1.04")),
            "accountInitialMargin": s8(MAINT_MARGIN * Decimal("1.5")),
            "accountMaintMargin": s8(MAINT_MARGIN),
            "accountStatus": status_of(uni),
            "virtualMaxWithdrawAmount": s8(max(equity - MAINT_MARGIN * Decimal("1.5"),
                                               Decimal(0))),
            "totalAvailableBalance": f"{equity:,.8f}" if self.thousands_comma else "",
            "totalMarginOpenLoss": "",
            "updateTime": int(self._wall() * 1000),
        }
        return json.dumps(body).encode()

    def balance(self, params: dict[str, str]) -> bytes:
        now = int(self._wall() * 1000)
        rows = [
            ("USDT", "52000", "50000", "10000", "40000", "12.5", "0", "20000", "-350.2", "0",
             "0", "0"),
            ("BTC", "0.5", "0.5", "0", "0.5", "0", "0", "0", "0", "0.25", "0.0123", "0"),
            ("ETH", "4", "4", "1", "3", "0.0004", "0", "0", "0", "0", "0", "0"),
            ("BNB", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0"),
        ]
        keys = ("totalWalletBalance", "crossMarginAsset", "crossMarginBorrowed",
                "crossMarginFree", "crossMarginInterest", "crossMarginLocked", "umWalletBalance",
                "umUnrealizedPNL", "cmWalletBalance", "cmUnrealizedPNL", "negativeBalance")
        return json.dumps([
            {"asset": asset, **{k: s8(Decimal(v)) for k, v in zip(keys, values, strict=True)},
             "updateTime": now}
            for asset, *values in rows]).encode()


def state(host: Host) -> SimulatedPortfolio:
    """The Portfolio Margin account (it drifts when the cross margin account does)."""
    return host.state("portfolio",
                      lambda: SimulatedPortfolio(drift=cross.state(host).drift))


def routes(host: Host) -> dict[str, Route]:
    portfolio = state(host)
    return dict((route_of(PAPI_ACCOUNT, portfolio.account),
                 route_of(PAPI_BALANCE, portfolio.balance)))


def demo(host: Host) -> Demo:
    """``--demo``'s Portfolio Margin account."""
    return Demo(accounts={"demo-pm": {"type": "portfolio_margin"}})
