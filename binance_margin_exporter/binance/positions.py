"""Leveraged positions of both futures markets (``um`` USDⓈ-M, ``cm`` COIN-M), signed;
optional ``symbol``, never sent: every position at once.

- Portfolio Margin, on the papi host: ``GET /papi/v1/um/positionRisk`` (weight 5) and
  ``GET /papi/v1/cm/positionRisk`` (weight 1).
- Futures accounts (and Portfolio Margin Pro's futures), ``GET /fapi/v3/positionRisk`` (weight
  5) on the fapi host and ``GET /dapi/v1/positionRisk`` (weight 1) on the dapi host.

An entry: ``symbol``, ``positionSide`` (``BOTH``, ``LONG``, ``SHORT``) and ``positionAmt``
(signed; contracts for cm) are required; the prices, ``unRealizedProfit``, ``notional`` (cm:
``notionalValue``), ``leverage`` (not in fapi v3) and ``maintMargin`` (fapi v3 only) are
optional and read leniently. Entries with a zero amount (symbols with open orders only, or the
idle side of a hedge) are left out. ``liquidationPrice`` is ``"0"`` where there is none: kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.transport import BinanceClient

# by market
PAPI_POSITIONS = {"um": Endpoint("/papi/v1/um/positionRisk", 5, host_setting="papi_base_url"),
                  "cm": Endpoint("/papi/v1/cm/positionRisk", 1, host_setting="papi_base_url")}
FUTURES_POSITIONS = {"um": Endpoint("/fapi/v3/positionRisk", 5, host_setting="fapi_base_url"),
                     "cm": Endpoint("/dapi/v1/positionRisk", 1, host_setting="dapi_base_url")}
PAPI_POSITION_PATHS = {market: e.path for market, e in PAPI_POSITIONS.items()}
FUTURES_POSITION_PATHS = {market: e.path for market, e in FUTURES_POSITIONS.items()}
SIDES = ("BOTH", "LONG", "SHORT")

# model field -> JSON field(s), the first present is read (all optional)
POSITION_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry_price", ("entryPrice",)),
    ("mark_price", ("markPrice",)),
    ("liquidation_price", ("liquidationPrice",)),
    ("unrealized_pnl", ("unRealizedProfit",)),
    ("notional", ("notional", "notionalValue")),
    ("leverage", ("leverage",)),
    ("maint_margin", ("maintMargin",)),
)
@dataclass(frozen=True, slots=True)
class Position:
    market: str
    symbol: str
    side: str
    amount: float
    entry_price: float | None = None
    mark_price: float | None = None
    liquidation_price: float | None = None
    unrealized_pnl: float | None = None
    notional: float | None = None
    leverage: float | None = None
    maint_margin: float | None = None


@dataclass(frozen=True, slots=True)
class Positions:
    market: str
    positions: tuple[Position, ...]
    invalid: tuple[str, ...] = ()  # optional fields that did not parse


def _first(optional: fields.Lenient, raw: Any, keys: tuple[str, ...], at: str) -> float | None:
    for key in keys:
        if key in raw:
            return optional.number(raw, key, at)
    return None


def parse_positions(raw: Any, market: str,
                    optional: fields.Lenient | None = None) -> Positions:
    """A positionRisk answer: the positions with a non-zero amount, each (symbol, side) once."""
    optional = optional or fields.Lenient()
    found: dict[tuple[str, str], Position] = {}
    for i, entry in enumerate(fields.array(raw, f"{market} positionRisk")):
        at = f"{market} position[{i}]."
        entry = fields.obj(entry, f"{market} position[{i}]")
        amount = fields.number(entry, "positionAmt", at)
        if amount == 0:
            continue
        symbol = fields.string(entry, "symbol", at)
        side = fields.string(entry, "positionSide", at)
        values = {attr: _first(optional, entry, keys, at) for attr, keys in POSITION_FIELDS}
        found.setdefault((symbol, side), Position(market, symbol, side, amount, **values))
    return Positions(market, tuple(found.values()), optional.noted())


def fetch_positions(client: BinanceClient, path: str, market: str,
                    deadline: float | None = None) -> Positions:
    return parse_positions(client.signed_get(path, deadline=deadline), market)


