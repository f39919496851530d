"""Simulated positions: the Portfolio Margin account's (``/papi/v1/um/positionRisk``,
``/papi/v1/cm/positionRisk``) and the futures account's (``/fapi/v3/positionRisk``,
``/dapi/v1/positionRisk``), with Binance's weights and shapes (fapi v3: no ``leverage``,
``maintMargin``; cm: amounts in contracts of 100 USD, and ``notionalValue`` only on the papi
host: Binance documents none in ``/dapi/v1/positionRisk``, so none is sent there).

The Portfolio Margin BTCUSDT long drifts towards its liquidation price and back over half an
hour (its distance between about 3 % and 29 %); tests hold it with
:meth:`SimulatedPositions.set_distance`. Zero-amount entries (an idle hedge side, a symbol with
open orders only) are listed, as Binance lists them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance.positions import FUTURES_POSITIONS, PAPI_POSITIONS
from binance_margin_exporter.demo import cross
from binance_margin_exporter.demo.numbers import s8
from binance_margin_exporter.demo.routes import Host, Route, route_of

CONTRACT_USD = Decimal(100)
# (symbol, side, amount, entry, mark, liquidation, leverage)
Row = tuple[str, str, str, str, str, str, str]
PM_UM: tuple[Row, ...] = (
    ("BTCUSDT", "BOTH", "0.5", "60000", "", "52000", "10"),  # mark: drifts
    ("ETHUSDT", "LONG", "0", "0", "3100", "0", "20"),
    ("ETHUSDT", "SHORT", "-4", "3000", "3100", "4200", "20"),
)
PM_CM: tuple[Row, ...] = (
    ("BTCUSD_PERP", "BOTH", "10", "61000", "60500", "40000", "5"),
    ("ETHUSD_PERP", "BOTH", "0", "0", "3100", "0", "5"),
)
FUTURES_UM: tuple[Row, ...] = (
    ("ADAUSDT", "BOTH", "30", "0.385", "0.41047590", "0", "2"),
    ("BNBUSDT", "BOTH", "-2", "580", "600", "790", "10"),
    ("XRPUSDT", "BOTH", "0", "0", "0.5", "0", "10"),
)
FUTURES_CM: tuple[Row, ...] = (
    ("BTCUSD_201225", "LONG", "1", "11707.70000003", "11788.66626667", "11667.63509587", "125"),
)


class SimulatedPositions:
    def __init__(self, *, drift: bool = True, wall: Callable[[], float] = time.time) -> None:
        self.drift = drift
        self._wall = wall
        self._started = wall()
        self.held: Decimal | None = None

    def set_distance(self, value: float | None) -> None:
        """Hold the drifting position's distance to liquidation (0.04: 4 %)."""
        self.held = None if value is None else Decimal(str(value))

    def distance(self) -> Decimal:
        if self.held is not None:
            return self.held
        if not self.drift:
            return Decimal("0.2")
        t = self._wall() - self._started
        return Decimal(str(round(0.16 + 0.13 * math.cos(2 * math.pi * t / 1800), 6)))

    def rows(self, rows: tuple[Row, ...]) -> list[Row]:
        mark = s8(Decimal("52000") * (1 + self.distance()))
        return [(symbol, side, amount, entry, held or mark, liquidation, leverage)
                for symbol, side, amount, entry, held, liquidation, leverage in rows]

    def _um(self, rows: tuple[Row, ...], v3: bool) -> bytes:
        now = int(self._wall() * 1000)
        out: list[dict[str, Any]] = []
        for symbol, side, amount, entry, mark, liquidation, leverage in self.rows(rows):
            amt, m = Decimal(amount), Decimal(mark)
            entry_d = Decimal(entry)
            body: dict[str, Any] = {
                "symbol": symbol, "positionSide": side, "positionAmt": amount,
                "entryPrice": entry, "markPrice": mark,
                "unRealizedProfit": s8(amt * (m - entry_d) if amt else Decimal(0)),
                "liquidationPrice": liquidation, "notional": s8(amt * m),
                "updateTime": now}
            if v3:
                body.update(breakEvenPrice=entry, isolatedMargin="0", marginAsset="USDT",
                            isolatedWallet="0",
                            initialMargin=s8(abs(amt * m) / Decimal(leverage)),
                            maintMargin=s8(abs(amt * m) * Decimal("0.004")))
            else:
                body.update(leverage=leverage, maxNotionalValue="20000000")
            out.append(body)
        return json.dumps(out).encode()

    def _cm(self, rows: tuple[Row, ...], papi: bool) -> bytes:
        """Each host's documented fields: papi's carry ``notionalValue`` (in the base asset:
        contracts x 100 USD / mark); dapi's carry none, and the margin type instead."""
        out: list[dict[str, Any]] = []
        for symbol, side, amount, entry, mark, liquidation, leverage in self.rows(rows):
            amt, m = Decimal(amount), Decimal(mark)
            entry_d = Decimal(entry)
            pnl = amt * CONTRACT_USD * (1 / entry_d - 1 / m) if amt else Decimal(0)
            body: dict[str, Any] = {
                "symbol": symbol, "positionSide": side, "positionAmt": amount,
                "entryPrice": entry, "markPrice": mark, "unRealizedProfit": s8(pnl),
                "liquidationPrice": liquidation, "leverage": leverage,
                "maxQty": "100", "updateTime": int(self._wall() * 1000)}
            if papi:
                body.update(notionalValue=s8(amt * CONTRACT_USD / m))
            else:
                body.update(breakEvenPrice=entry, marginType="cross", isolatedMargin="0",
                            isAutoAddMargin="false")
            out.append(body)
        return json.dumps(out).encode()

    def papi_um(self, params: dict[str, str]) -> bytes:
        return self._um(PM_UM, v3=False)

    def papi_cm(self, params: dict[str, str]) -> bytes:
        return self._cm(PM_CM, papi=True)

    def fapi(self, params: dict[str, str]) -> bytes:
        return self._um(FUTURES_UM, v3=True)

    def dapi(self, params: dict[str, str]) -> bytes:
        return self._cm(FUTURES_CM, papi=False)


def routes(host: Host) -> dict[str, Route]:
    positions = host.state("positions",
                           lambda: SimulatedPositions(drift=cross.state(host).drift))
    return dict((route_of(PAPI_POSITIONS["um"], positions.papi_um),
                 route_of(PAPI_POSITIONS["cm"], positions.papi_cm),
                 route_of(FUTURES_POSITIONS["um"], positions.fapi),
                 route_of(FUTURES_POSITIONS["cm"], positions.dapi)))
