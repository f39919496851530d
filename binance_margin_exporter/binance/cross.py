"""Cross margin: ``GET /sapi/v1/margin/account`` and ``GET /sapi/v1/margin/tradeCoeff``.

Both are signed, weight 10 (IP). Every number arrives as a JSON string and is parsed here, once,
into frozen models; a missing optional field is ``None`` (its metric is left out), an unusable
answer an ``invalid_response`` naming the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.transport import BinanceClient

log = logging.getLogger(__name__)

ACCOUNT = Endpoint("/sapi/v1/margin/account", 10)
TRADE_COEFF = Endpoint("/sapi/v1/margin/tradeCoeff", 10)
ACCOUNT_PATH = ACCOUNT.path
TRADE_COEFF_PATH = TRADE_COEFF.path


@dataclass(frozen=True, slots=True)
class UserAsset:
    asset: str
    free: float
    locked: float
    borrowed: float
    interest: float
    net_asset: float

    @property
    def is_zero(self) -> bool:
        return not (self.free or self.locked or self.borrowed or self.interest
                    or self.net_asset)


@dataclass(frozen=True, slots=True)
class MarginAccount:
    margin_level: float
    total_asset_btc: float
    total_liability_btc: float
    total_net_asset_btc: float
    assets: tuple[UserAsset, ...]  # every listed asset, zero or not, in Binance's order
    collateral_margin_level: float | None = None
    total_collateral_value_usdt: float | None = None
    total_open_order_loss_usdt: float | None = None
    created: bool | None = None
    trade_enabled: bool | None = None
    borrow_enabled: bool | None = None
    transfer_in_enabled: bool | None = None
    transfer_out_enabled: bool | None = None
    transfer_enabled: bool | None = None  # older answers: one flag for both directions
    account_type: str | None = None
    bars: TradeCoeff | None = None  # a sub-account's own bars, sent with its account
    invalid: tuple[str, ...] = ()  # optional fields Binance sent that did not parse


@dataclass(frozen=True, slots=True)
class TradeCoeff:
    normal_bar: float
    margin_call_bar: float
    force_liquidation_bar: float


def parse_user_assets(raw: Any, where: str) -> tuple[UserAsset, ...]:
    """A list of ``{asset, free, locked, borrowed, interest, netAsset}``. An asset listed twice
    keeps its first entry (two series with the same labels would flip between scrapes)."""
    assets: dict[str, UserAsset] = {}
    for i, entry in enumerate(fields.array(raw, where)):
        at = f"{where}[{i}]."
        entry = fields.obj(entry, f"{where}[{i}]")
        name = fields.string(entry, "asset", at)
        asset = UserAsset(
            name,
            fields.number(entry, "free", at),
            fields.number(entry, "locked", at),
            fields.number(entry, "borrowed", at),
            fields.number(entry, "interest", at),
            fields.number(entry, "netAsset", at),
        )
        if name in assets:
            log.warning("%s lists the asset %r twice; the first entry is kept", where, name)
            continue
        assets[name] = asset
    return tuple(assets.values())


def parse_account(raw: Any) -> MarginAccount:
    """The JSON of ``GET /sapi/v1/margin/account`` as a :class:`MarginAccount`."""
    raw = fields.obj(raw, "account")
    optional = fields.Lenient()
    return MarginAccount(
        margin_level=fields.number(raw, "marginLevel"),
        total_asset_btc=fields.number(raw, "totalAssetOfBtc"),
        total_liability_btc=fields.number(raw, "totalLiabilityOfBtc"),
        total_net_asset_btc=fields.number(raw, "totalNetAssetOfBtc"),
        assets=parse_user_assets(raw.get("userAssets"), "userAssets"),
        # older answers spell it with a capital C
        collateral_margin_level=optional.number(raw, "collateralMarginLevel")
        if raw.get("collateralMarginLevel") is not None
        else optional.number(raw, "CollateralMarginLevel"),
        total_collateral_value_usdt=optional.number(raw, "TotalCollateralValueInUSDT"),
        total_open_order_loss_usdt=optional.number(raw, "totalOpenOrderLossInUSDT"),
        created=optional.flag(raw, "created"),
        trade_enabled=optional.flag(raw, "tradeEnabled"),
        borrow_enabled=optional.flag(raw, "borrowEnabled"),
        transfer_in_enabled=optional.flag(raw, "transferInEnabled"),
        transfer_out_enabled=optional.flag(raw, "transferOutEnabled"),
        transfer_enabled=optional.flag(raw, "transferEnabled"),
        account_type=optional.string(raw, "accountType"),
        invalid=optional.noted(),
    )


def parse_trade_coeff(raw: Any) -> TradeCoeff:
    """The JSON of ``GET /sapi/v1/margin/tradeCoeff`` (this account's margin level bars)."""
    raw = fields.obj(raw, "tradeCoeff")
    return TradeCoeff(
        normal_bar=fields.number(raw, "normalBar"),
        margin_call_bar=fields.number(raw, "marginCallBar"),
        force_liquidation_bar=fields.number(raw, "forceLiquidationBar"),
    )


def fetch_account(client: BinanceClient, deadline: float | None = None,
                  reuse: fields.Unchanged[MarginAccount] | None = None) -> MarginAccount:
    """``reuse``: an unchanged answer gives the last model again (made with
    ``fields.Unchanged(parse_account)``)."""
    if reuse is not None:
        return client.signed_get(ACCOUNT_PATH, deadline=deadline, reuse=reuse)  # type: ignore[no-any-return]
    return parse_account(client.signed_get(ACCOUNT_PATH, deadline=deadline))


def fetch_trade_coeff(client: BinanceClient, deadline: float | None = None) -> TradeCoeff:
    return parse_trade_coeff(client.signed_get(TRADE_COEFF_PATH, deadline=deadline))
