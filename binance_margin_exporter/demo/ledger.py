"""Simulated histories: margin interest and forced liquidations (cross, per isolated pair, and
Portfolio Margin's), and futures income (fapi, dapi, papi um and cm), served as Binance does:
the margin histories newest first in pages of ``size`` (at most 100) with ``total``, a window
of at most 30 days; the income histories oldest first, at most ``limit`` (1,000) records,
``startTime`` and ``endTime`` inclusive. Every key sees the same records.

Tests add records (:meth:`SimulatedLedger.add_interest`, ...) while an exporter runs. With
``auto`` (``--demo``) records appear over time, so that every panel has data: hourly interest
on the borrowed assets, funding every 5 minutes (Binance: every 8 hours), and one forced
liquidation an hour on ETHUSDT, the small isolated pair whose level drifts.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance.ledger import (
    FUTURES_INCOME,
    MARGIN_INTEREST,
    MARGIN_LIQUIDATIONS,
    PAPI_INCOME,
    PAPI_INTEREST,
    PAPI_LIQUIDATIONS,
)
from binance_margin_exporter.demo.numbers import s8
from binance_margin_exporter.demo.routes import Demo, Host, RequestError, Route, route_of

MAX_WINDOW_MS = 30 * 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
FUNDING_MS = 5 * 60 * 1000  # sped up for the demo
FIRST_MS = 20 * 1000  # --demo: one round of every kind this long after the start
MARGIN, PAPI = "margin", "papi"


class SimulatedLedger:
    def __init__(self, wall: Callable[[], float] = time.time, *, auto: bool = False) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._ids = itertools.count(1_000_000_000)
        self.interest: dict[str, list[dict[str, Any]]] = {MARGIN: [], PAPI: []}
        self.liquidations: dict[str, list[dict[str, Any]]] = {MARGIN: [], PAPI: []}
        self.income: dict[str, list[dict[str, Any]]] = {"um": [], "cm": [], "papi_um": [],
                                                         "papi_cm": []}
        self.auto = auto
        self._made_until = int(wall() * 1000)
        self.first_round_at: int | None = None  # --demo: a round of every kind, once

    def now_ms(self) -> int:
        return int(self._wall() * 1000)

    # --- what tests (and the demo) add ------------------------------------------------------

    def add_interest(self, asset: str, interest: str | Decimal, time_ms: int | None = None, *,
                     symbol: str | None = None, where: str = MARGIN) -> dict[str, Any]:
        row: dict[str, Any] = {
            "txId": next(self._ids), "interestAccuredTime": time_ms or self.now_ms(),
            "asset": asset, "principal": "100.00000000",
            "interest": interest if isinstance(interest, str) else s8(interest),
            "interestRate": "0.00001000", "type": "PERIODIC"}
        if symbol is not None:
            row["isolatedSymbol"] = symbol
        elif where == MARGIN:
            row["rawAsset"] = asset
        with self._lock:
            self.interest[where].append(row)
        return row

    def add_liquidation(self, symbol: str, side: str = "SELL", time_ms: int | None = None, *,
                        isolated: bool = False, where: str = MARGIN) -> dict[str, Any]:
        row: dict[str, Any] = {
            "avgPrice": "0.00388359", "executedQty": "31.39000000", "orderId": next(self._ids),
            "price": "0.00388110", "qty": "31.39000000", "side": side, "symbol": symbol,
            "timeInForce": "GTC", "updatedTime": time_ms or self.now_ms()}
        if where == MARGIN:
            row["isIsolated"] = isolated
        with self._lock:
            self.liquidations[where].append(row)
        return row

    def add_income(self, market: str, income_type: str, income: str | Decimal, asset: str,
                   time_ms: int | None = None, *, symbol: str = "BTCUSDT") -> dict[str, Any]:
        """``market``: um, cm (fapi, dapi) or papi_um, papi_cm."""
        row = {"symbol": symbol, "incomeType": income_type,
               "income": income if isinstance(income, str) else s8(income), "asset": asset,
               "info": income_type, "time": time_ms or self.now_ms(),
               "tranId": next(self._ids), "tradeId": ""}
        with self._lock:
            self.income[market].append(row)
        return row

    # --- the demo's records over time -------------------------------------------------------

    def _advance(self) -> None:
        if not self.auto:
            return
        now = self.now_ms()
        with self._lock:
            since, self._made_until = self._made_until, now
            first = self.first_round_at
            if first is not None and now >= first:
                self.first_round_at = None
            else:
                first = None
        if first is not None:  # the panels need not wait an hour
            self._hourly(first)
            self._funding(1, first)
        for hour in range(since // HOUR_MS + 1, now // HOUR_MS + 1):
            self._hourly(hour * HOUR_MS)
        for tick in range(since // FUNDING_MS + 1, now // FUNDING_MS + 1):
            self._funding(tick, tick * FUNDING_MS)

    def _hourly(self, at: int) -> None:
        self.add_interest("USDT", Decimal("0.02865"), at)
        self.add_interest("BTC", Decimal("0.00000120"), at)
        self.add_interest("USDT", Decimal("0.00955"), at, symbol="BTCUSDT")
        self.add_interest("USDT", Decimal("0.04100"), at, where=PAPI)
        self.add_liquidation("ETHUSDT", "SELL", at, isolated=True)

    def _funding(self, tick: int, at: int) -> None:
        sign = Decimal(1) if tick % 3 else Decimal(-1)  # mostly paid, sometimes received
        self.add_income("um", "FUNDING_FEE", -sign * Decimal("0.4125"), "USDT", at)
        self.add_income("cm", "FUNDING_FEE", -sign * Decimal("0.0000062"), "BTC", at,
                        symbol="BTCUSD_PERP")
        self.add_income("papi_um", "FUNDING_FEE", -sign * Decimal("0.2250"), "USDT", at)
        self.add_income("um", "COMMISSION", Decimal("-0.0312"), "USDT", at)

    # --- the answers ------------------------------------------------------------------------

    def _window(self, params: dict[str, str]) -> tuple[int, int]:
        now = self.now_ms()
        try:
            start = int(params["startTime"]) if "startTime" in params else None
            end = int(params["endTime"]) if "endTime" in params else None
        except ValueError:
            raise RequestError(-1100, "Illegal characters found in a parameter.") from None
        if start is None:
            end = now if end is None else end
            start = end - 7 * 24 * HOUR_MS  # Binance: the last 7 days
        end = now if end is None else end
        if end < start:
            raise RequestError(-1127, "startTime is after endTime.")
        return start, end

    def margin_page(self, rows: list[dict[str, Any]], params: dict[str, str], time_key: str,
                    keep: Callable[[dict[str, Any]], bool]) -> bytes:
        self._advance()
        start, end = self._window(params)
        if end - start > MAX_WINDOW_MS:
            raise RequestError(-1127, "More than 30 days between startTime and endTime.")
        size = int(params.get("size", "10"))
        current = int(params.get("current", "1"))
        if not 1 <= size <= 100 or current < 1:
            raise RequestError(-1130, "Invalid data sent for a parameter (size, current).")
        with self._lock:
            found = [r for r in rows if keep(r) and start <= r[time_key] <= end]
        found.sort(key=lambda r: (r[time_key], str(r.get("txId", r.get("orderId")))),
                   reverse=True)
        page = found[(current - 1) * size:current * size]
        return json.dumps({"rows": page, "total": len(found)}).encode()

    def interest_of(self, where: str) -> Callable[[dict[str, str]], bytes]:
        def answer(params: dict[str, str]) -> bytes:
            symbol = params.get("isolatedSymbol")
            return self.margin_page(self.interest[where], params, "interestAccuredTime",
                                    lambda r: r.get("isolatedSymbol") == symbol)
        return answer

    def liquidations_of(self, where: str) -> Callable[[dict[str, str]], bytes]:
        def answer(params: dict[str, str]) -> bytes:
            symbol = params.get("isolatedSymbol")
            return self.margin_page(
                self.liquidations[where], params, "updatedTime",
                lambda r: where == PAPI or (r["symbol"] == symbol if symbol is not None
                                            else not r["isIsolated"]))
        return answer

    def income_of(self, market: str) -> Callable[[dict[str, str]], bytes]:
        def answer(params: dict[str, str]) -> bytes:
            self._advance()
            start, end = self._window(params)
            limit = int(params.get("limit", "100"))
            if not 1 <= limit <= 1000:
                raise RequestError(-1130, "Invalid data sent for a parameter (limit).")
            with self._lock:
                found = [r for r in self.income[market] if start <= r["time"] <= end]
            found.sort(key=lambda r: (r["time"], r["tranId"]))
            return json.dumps(found[:limit]).encode()
        return answer


def routes(host: Host) -> dict[str, Route]:
    ledger = host.state("ledger", SimulatedLedger)
    return dict((
        route_of(MARGIN_INTEREST, ledger.interest_of(MARGIN)),
        route_of(MARGIN_LIQUIDATIONS, ledger.liquidations_of(MARGIN)),
        route_of(PAPI_INTEREST, ledger.interest_of(PAPI)),
        route_of(PAPI_LIQUIDATIONS, ledger.liquidations_of(PAPI)),
        route_of(FUTURES_INCOME["um"], ledger.income_of("um")),
        route_of(FUTURES_INCOME["cm"], ledger.income_of("cm")),
        route_of(PAPI_INCOME["um"], ledger.income_of("papi_um")),
        route_of(PAPI_INCOME["cm"], ledger.income_of("papi_cm")),
    ))


def demo(host: Host) -> Demo:
    """``--demo``: records appear over time (the accounts are the other products'), a first
    round of every kind 20 s after the start, read every 30 s (not 300), so that every ledger
    family is on /metrics within the first minute."""
    ledger = host.state("ledger", SimulatedLedger)
    ledger.auto = True
    ledger.first_round_at = ledger.now_ms() + FIRST_MS
    return Demo(options={"ledger_interval_seconds": 30.0})
