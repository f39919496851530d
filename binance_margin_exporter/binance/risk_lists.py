"""Binance's risk lists: what it will delist from margin, and what it restricts. The same for
every account (Binance-wide).

- ``GET /sapi/v1/margin/delist-schedule`` (USER_DATA: signed, weight 100 (IP)):
  ``[{"delistTime": 1686161202000, "crossMarginAssets": ["BTC", "USDT"],
  "isolatedMarginSymbols": ["ADAUSDT", "BNBUSDT"]}, ...]``. After ``delistTime`` Binance repays
  or liquidates the positions in those assets and pairs.
- ``GET /sapi/v1/margin/restricted-asset`` (MARKET_DATA, weight 1 (IP), no parameters):
  ``{"openLongRestrictedAsset": ["ADA", "CHZ"], "maxCollateralExceededAsset": ["ACH", "BNB"]}``.

MARKET_DATA needs only the ``X-MBX-APIKEY`` header, but the client has no public way to send
its key without a signature (the key never leaves :mod:`.transport`): the restricted list is
asked for with a signed GET, which Binance accepts on MARKET_DATA endpoints as well.

Names are label values, so anything Binance spells (non-ASCII too) is kept as sent; a missing
list is empty; a name listed twice is kept once, and an asset or pair on two delistings keeps
the earliest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.errors import invalid
from binance_margin_exporter.binance.transport import BinanceClient

DELIST_SCHEDULE = Endpoint("/sapi/v1/margin/delist-schedule", 100)
RESTRICTED_ASSET = Endpoint("/sapi/v1/margin/restricted-asset", 1)
DELIST_SCHEDULE_PATH = DELIST_SCHEDULE.path
RESTRICTED_ASSET_PATH = RESTRICTED_ASSET.path
# the restricted lists: (Binance's field, the label value)
RESTRICTIONS: tuple[tuple[str, str], ...] = (
    ("openLongRestrictedAsset", "open_long"),
    ("maxCollateralExceededAsset", "max_collateral_exceeded"),
)


@dataclass(frozen=True, slots=True)
class DelistSchedule:
    """When each cross margin asset and each isolated pair is delisted (unix seconds)."""

    assets: Mapping[str, float]
    symbols: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class RestrictedAssets:
    """The restricted assets by restriction label (``open_long``, ...), in Binance's order."""

    by_restriction: Mapping[str, tuple[str, ...]]


def _names(raw: Mapping[str, Any], key: str, where: str) -> list[str]:
    """A list of names; missing or null is empty."""
    value = raw.get(key)
    if value is None:
        return []
    names = fields.array(value, f"{where}{key}")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise invalid(f"{where}{key}[{i}]: expected a string, got {type(name).__name__}")
    return [fields.text(name) for name in names if name]


def parse_delist_schedule(raw: Any) -> DelistSchedule:
    """The JSON of ``GET /sapi/v1/margin/delist-schedule`` as a :class:`DelistSchedule`."""
    assets: dict[str, float] = {}
    symbols: dict[str, float] = {}
    for i, entry in enumerate(fields.array(raw, "delist schedule")):
        where = f"[{i}]."
        entry = fields.obj(entry, f"[{i}]")
        seconds = fields.number(entry, "delistTime", where) / 1000  # ms; correctly rounded
        for names, into in ((_names(entry, "crossMarginAssets", where), assets),
                            (_names(entry, "isolatedMarginSymbols", where), symbols)):
            for name in names:
                into[name] = min(seconds, into.get(name, seconds))
    return DelistSchedule(assets, symbols)


def parse_restricted_assets(raw: Any) -> RestrictedAssets:
    """The JSON of ``GET /sapi/v1/margin/restricted-asset`` as :class:`RestrictedAssets`."""
    raw = fields.obj(raw, "restricted assets")
    return RestrictedAssets({label: tuple(dict.fromkeys(_names(raw, key, "")))
                             for key, label in RESTRICTIONS})


def fetch_delist_schedule(client: BinanceClient, deadline: float | None = None) -> DelistSchedule:
    return parse_delist_schedule(client.signed_get(DELIST_SCHEDULE_PATH, deadline=deadline))


def fetch_restricted_assets(client: BinanceClient,
                            deadline: float | None = None) -> RestrictedAssets:
    return parse_restricted_assets(client.signed_get(RESTRICTED_ASSET_PATH, deadline=deadline))
