"""Futures accounts: the USDⓈ-M (``um``) and COIN-M (``cm``) markets. Their positions are
:mod:`.positions`'.

``GET /fapi/v3/account`` and ``GET /dapi/v1/account`` (weight 5 each): ``assets[]`` per asset,
and for um the totals ``totalMarginBalance`` and ``totalMaintMargin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.transport import BinanceClient

MARKETS = ("um", "cm")
# by market
FUTURES_ACCOUNTS = {"um": Endpoint("/fapi/v3/account", 5, host_setting="fapi_base_url"),
                    "cm": Endpoint("/dapi/v1/account", 5, host_setting="dapi_base_url")}
FUTURES_ACCOUNT_PATHS = {market: e.path for market, e in FUTURES_ACCOUNTS.items()}

ASSET_FIELDS = (
    ("wallet_balance", "walletBalance"),
    ("margin_balance", "marginBalance"),
    ("maint_margin", "maintMargin"),
    ("unrealized_pnl", "unrealizedProfit"),
    ("available_balance", "availableBalance"),
)


@dataclass(frozen=True, slots=True)
class FuturesAsset:
    asset: str
    values: tuple[float | None, ...]  # in the order of ASSET_FIELDS


@dataclass(frozen=True, slots=True)
class FuturesAccount:
    market: str
    assets: tuple[FuturesAsset, ...]
    total_margin_balance: float | None = None  # um only
    total_maint_margin: float | None = None  # um only


@dataclass(frozen=True, slots=True)
class Futures:
    """A futures account's markets, as configured (``markets``)."""

    accounts: tuple[FuturesAccount, ...]
    invalid: tuple[str, ...] = ()


def parse_futures_account(raw: Any, market: str,
                          optional: fields.Lenient | None = None) -> FuturesAccount:
    optional = optional or fields.Lenient()
    raw = fields.obj(raw, f"{market} futures account")
    assets: dict[str, FuturesAsset] = {}
    for i, entry in enumerate(fields.array(raw.get("assets"), f"{market} assets")):
        at = f"{market} assets[{i}]."
        entry = fields.obj(entry, f"{market} assets[{i}]")
        asset = fields.string(entry, "asset", at)
        values = tuple(optional.number(entry, key, at) for _, key in ASSET_FIELDS)
        assets.setdefault(asset, FuturesAsset(asset, values))
    if market != "um":
        return FuturesAccount(market, tuple(assets.values()))
    return FuturesAccount(market, tuple(assets.values()),
                          optional.number(raw, "totalMarginBalance"),
                          optional.number(raw, "totalMaintMargin"))


def fetch_futures(clients: dict[str, BinanceClient],
                  deadline: float | None = None) -> Futures:
    """The account of every market in ``clients`` (market -> its host's client), in one
    deadline: one failing fails the fetch."""
    optional = fields.Lenient()
    accounts = tuple(
        parse_futures_account(client.signed_get(FUTURES_ACCOUNT_PATHS[market],
                                                deadline=deadline), market, optional)
        for market, client in clients.items())
    return Futures(accounts, optional.noted())
