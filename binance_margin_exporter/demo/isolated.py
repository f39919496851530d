"""The simulated isolated margin account: ``GET /sapi/v1/margin/isolated/account``.

Three pairs, priced like the cross account: BTCUSDT borrows USDT at a steady level of 3.2;
ETHUSDT's level drifts between about 1.25 and 2.05 every 20 minutes, through ``MARGIN_CALL``
and ``PRE_LIQUIDATION`` and back; BNBUSDT borrows nothing. The numbers add up: the level is
assets / (borrowed + interest), the liquidation price the index price at which it would reach
1.1, and interest only grows.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance.isolated import ISOLATED_ACCOUNT
from binance_margin_exporter.demo import cross, interest
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.numbers import BTC_USDT, q8, s8
from binance_margin_exporter.demo.routes import Host, RequestError, Route, route_of

ISOLATED_ACCOUNT_PATH = ISOLATED_ACCOUNT.path
NO_ISOLATED_ACCOUNT_CODE = -11001
LIQUIDATION_LEVEL = Decimal("1.1")
HOURLY_RATE = Decimal("0.00000955")  # on the borrowed USDT, as the simulated rates say
# symbol -> (base asset, base held, margin level: None borrows nothing, "drift" moves)
PAIRS: tuple[tuple[str, str, str, str | None], ...] = (
    ("BTCUSDT", "BTC", "0.5", "3.2"),
    ("ETHUSDT", "ETH", "10", "drift"),
    ("BNBUSDT", "BNB", "20", None),
)


def status_of(level: Decimal) -> str:
    if level >= 2:
        return "EXCESSIVE"
    if level >= Decimal("1.5"):
        return "NORMAL"
    if level >= Decimal("1.3"):
        return "MARGIN_CALL"
    if level >= Decimal("1.15"):
        return "PRE_LIQUIDATION"
    return "FORCE_LIQUIDATION"


def _side(asset: str, free: Decimal, borrowed: Decimal, interest: Decimal,
          price_btc: Decimal) -> dict[str, Any]:
    net = free - borrowed - interest
    return {"asset": asset, "borrowEnabled": True, "borrowed": s8(borrowed), "free": s8(free),
            "interest": s8(interest), "locked": s8(Decimal(0)), "netAsset": s8(net),
            "netAssetOfBtc": s8(net * price_btc), "repayEnabled": True,
            "totalAsset": s8(free)}


class SimulatedIsolated:
    def __init__(self, account: SimulatedAccount, *, pairs: bool = True,
                 wall: Callable[[], float] = time.time) -> None:
        self.account = account
        self.pairs = PAIRS if pairs else ()
        # an account that never opened a pair: Binance may answer this error, not "no pairs"
        self.no_account = False
        self._wall = wall
        self._started = wall()
        self._lock = threading.Lock()
        self.levels: dict[str, Decimal] = {}  # symbol -> a level held by a test

    def set_level(self, symbol: str, level: float | None) -> None:
        with self._lock:
            if level is None:
                self.levels.pop(symbol, None)
            else:
                self.levels[symbol] = Decimal(str(level))

    def _level(self, symbol: str, spec: str, t: float) -> Decimal:
        with self._lock:
            held = self.levels.get(symbol)
        if held is not None:
            return held
        if spec != "drift":
            return Decimal(spec)
        if not self.account.drift:
            return Decimal("1.65")
        return Decimal(str(round(1.65 + 0.4 * math.sin(2 * math.pi * t / 1200), 6)))

    def snapshot(self) -> dict[str, Any]:
        t = self._wall() - self._started if self.account.drift else 0.0
        hours = Decimal(int(t // 60) + 60) / 60 if self.account.drift else Decimal(1)
        prices = self.account.prices_btc()
        assets, total_asset, total_liability = [], Decimal(0), Decimal(0)
        for symbol, base, held, spec in self.pairs:
            price_btc = Decimal(1) if base == "BTC" else prices.get(base, Decimal("0.01"))
            usdt_btc = 1 / BTC_USDT
            index = price_btc * BTC_USDT
            amount = Decimal(held)
            borrowed = interest = Decimal(0)
            level = Decimal(999)
            if spec is not None:
                level = self._level(symbol, spec, t)
                debt = amount * index / level  # borrowed + interest, in USDT
                interest = q8(Decimal(1000) * HOURLY_RATE * hours)  # only grows
                borrowed = q8(debt) - interest
            liability = borrowed + interest
            liquidate = LIQUIDATION_LEVEL * liability / amount if liability else Decimal(0)
            assets.append({
                "baseAsset": _side(base, amount, Decimal(0), Decimal(0), price_btc),
                "quoteAsset": _side("USDT", Decimal(0), borrowed, interest, usdt_btc),
                "symbol": symbol,
                "isolatedCreated": True,
                "enabled": True,
                "marginLevel": s8(level),
                "marginLevelStatus": status_of(level),
                "marginRatio": s8(1 / level),
                "indexPrice": s8(index),
                "liquidatePrice": s8(liquidate),
                "liquidateRate": s8((index - liquidate) / index),
                "tradeEnabled": True,
            })
            total_asset += amount * price_btc
            total_liability += liability * usdt_btc
        return {"assets": assets, "totalAssetOfBtc": s8(total_asset),
                "totalLiabilityOfBtc": s8(total_liability),
                "totalNetAssetOfBtc": s8(total_asset - total_liability)}

    def body(self) -> bytes:
        return json.dumps(self.snapshot(), separators=(",", ":")).encode()


def answer(isolated: SimulatedIsolated) -> bytes:
    if isolated.no_account:
        raise RequestError(NO_ISOLATED_ACCOUNT_CODE, "Isolated margin account does not exist.")
    return isolated.body()


def state(host: Host) -> SimulatedIsolated:
    """The isolated pairs of the simulated cross margin account."""
    return host.state("isolated", lambda: SimulatedIsolated(cross.state(host)))


def routes(host: Host) -> dict[str, Route]:
    isolated = state(host)
    return {**dict((route_of(ISOLATED_ACCOUNT, lambda params: answer(isolated)),)),
            **interest.routes()}
