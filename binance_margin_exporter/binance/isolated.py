"""Isolated margin: ``GET /sapi/v1/margin/isolated/account`` (signed, weight 10 (IP); without
``symbols`` it answers every isolated pair of the account, and the totals).

Each pair has two sides (base and quote asset) and its own margin level, status, index price
and liquidation price. A missing optional field is ``None`` (its metric is left out); a pair
Binance lists twice keeps its first entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.transport import BinanceClient

log = logging.getLogger(__name__)

ISOLATED_ACCOUNT = Endpoint("/sapi/v1/margin/isolated/account", 10)
ISOLATED_ACCOUNT_PATH = ISOLATED_ACCOUNT.path
# marginLevelStatus, as Binance spells it, from the safest to liquidation
# "Isolated margin account does not exist." and "Margin account does not exist.": an account
# that never opened an isolated pair (or margin at all) may answer these instead of no pairs
NO_ISOLATED_ACCOUNT_CODES = frozenset({-11001, -3003})
STATUSES = ("EXCESSIVE", "NORMAL", "MARGIN_CALL", "PRE_LIQUIDATION", "FORCE_LIQUIDATION")


@dataclass(frozen=True, slots=True)
class IsolatedAsset:
    """One side of an isolated pair."""

    asset: str
    free: float
    locked: float
    borrowed: float
    interest: float
    net_asset: float
    total_asset: float | None = None
    net_asset_btc: float | None = None
    borrow_enabled: bool | None = None
    repay_enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class IsolatedPair:
    symbol: str
    base: IsolatedAsset
    quote: IsolatedAsset
    margin_level: float | None = None
    margin_level_status: str | None = None
    margin_ratio: float | None = None
    index_price: float | None = None
    liquidate_price: float | None = None
    liquidate_rate: float | None = None
    enabled: bool | None = None
    trade_enabled: bool | None = None
    isolated_created: bool | None = None

    @property
    def sides(self) -> tuple[IsolatedAsset, IsolatedAsset]:
        return (self.base, self.quote)


@dataclass(frozen=True, slots=True)
class IsolatedAccount:
    pairs: tuple[IsolatedPair, ...]
    total_asset_btc: float | None = None
    total_liability_btc: float | None = None
    total_net_asset_btc: float | None = None
    invalid: tuple[str, ...] = ()  # optional fields Binance sent that did not parse


def parse_side(raw: Any, where: str, optional: fields.Lenient | None = None) -> IsolatedAsset:
    raw = fields.obj(raw, where)
    at = f"{where}."
    optional = optional or fields.Lenient()
    return IsolatedAsset(
        asset=fields.string(raw, "asset", at),
        free=fields.number(raw, "free", at),
        locked=fields.number(raw, "locked", at),
        borrowed=fields.number(raw, "borrowed", at),
        interest=fields.number(raw, "interest", at),
        net_asset=fields.number(raw, "netAsset", at),
        total_asset=optional.number(raw, "totalAsset", at),
        net_asset_btc=optional.number(raw, "netAssetOfBtc", at),
        borrow_enabled=optional.flag(raw, "borrowEnabled", at),
        repay_enabled=optional.flag(raw, "repayEnabled", at),
    )


def parse_pair(raw: Any, where: str, optional: fields.Lenient | None = None) -> IsolatedPair:
    raw = fields.obj(raw, where)
    at = f"{where}."
    optional = optional or fields.Lenient()
    return IsolatedPair(
        symbol=fields.string(raw, "symbol", at),
        base=parse_side(raw.get("baseAsset"), f"{at}baseAsset", optional),
        quote=parse_side(raw.get("quoteAsset"), f"{at}quoteAsset", optional),
        margin_level=optional.number(raw, "marginLevel", at),
        margin_level_status=optional.string(raw, "marginLevelStatus", at),
        margin_ratio=optional.number(raw, "marginRatio", at),
        index_price=optional.number(raw, "indexPrice", at),
        liquidate_price=optional.number(raw, "liquidatePrice", at),
        liquidate_rate=optional.number(raw, "liquidateRate", at),
        enabled=optional.flag(raw, "enabled", at),
        trade_enabled=optional.flag(raw, "tradeEnabled", at),
        isolated_created=optional.flag(raw, "isolatedCreated", at),
    )


def parse_isolated_account(raw: Any) -> IsolatedAccount:
    """The JSON of ``GET /sapi/v1/margin/isolated/account`` as an :class:`IsolatedAccount`."""
    raw = fields.obj(raw, "isolated account")
    optional = fields.Lenient()
    pairs: dict[str, IsolatedPair] = {}
    for i, entry in enumerate(fields.array(raw.get("assets", []), "assets")):
        pair = parse_pair(entry, f"assets[{i}]", optional)
        if pair.symbol in pairs:
            log.warning("the isolated account lists the pair %r twice; the first entry is kept",
                        pair.symbol)
            continue
        pairs[pair.symbol] = pair
    return IsolatedAccount(
        pairs=tuple(pairs.values()),
        total_asset_btc=optional.number(raw, "totalAssetOfBtc"),
        total_liability_btc=optional.number(raw, "totalLiabilityOfBtc"),
        total_net_asset_btc=optional.number(raw, "totalNetAssetOfBtc"),
        invalid=optional.noted(),
    )


def fetch_isolated_account(client: BinanceClient,
                           deadline: float | None = None) -> IsolatedAccount:
    """The account's isolated pairs; none when Binance answers that it has no isolated margin
    account (an error rather than an empty list: nothing is wrong with the account)."""
    try:
        raw = client.signed_get(ISOLATED_ACCOUNT_PATH, deadline=deadline)
    except UpstreamError as exc:
        if exc.reason == "api_error" and exc.code in NO_ISOLATED_ACCOUNT_CODES:
            log.debug("no isolated margin account (Binance code %s): no pairs", exc.code)
            return IsolatedAccount(pairs=())
        raise
    return parse_isolated_account(raw)
