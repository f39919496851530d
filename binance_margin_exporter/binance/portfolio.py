"""Portfolio Margin, on its own host (``https://papi.binance.com``):

- ``GET /papi/v1/account`` (signed, weight 20): ``uniMMR``, equity, margins, ``accountStatus``.
- ``GET /papi/v1/balance`` (signed, weight 20): per asset, the cross margin, UM and CM values.

Binance sends empty strings for some optional fields (``"totalAvailableBalance": ""``): an
empty string drops that value, it is not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.transport import BinanceClient

PAPI_ACCOUNT = Endpoint("/papi/v1/account", 20, host_setting="papi_base_url")
PAPI_BALANCE = Endpoint("/papi/v1/balance", 20, host_setting="papi_base_url")
PAPI_ACCOUNT_PATH = PAPI_ACCOUNT.path
PAPI_BALANCE_PATH = PAPI_BALANCE.path
STATUSES = ("NORMAL", "MARGIN_CALL", "SUPPLY_MARGIN", "REDUCE_ONLY", "ACTIVE_LIQUIDATION",
            "FORCE_LIQUIDATION", "BANKRUPTED")
# model field -> JSON field, for the account's numbers (all optional: an empty string is none)
ACCOUNT_FIELDS = (
    ("uni_mmr", "uniMMR"),
    ("account_equity", "accountEquity"),
    ("actual_equity", "actualEquity"),
    ("initial_margin", "accountInitialMargin"),
    ("maint_margin", "accountMaintMargin"),
    ("virtual_max_withdraw", "virtualMaxWithdrawAmount"),
    ("total_available_balance", "totalAvailableBalance"),
    ("total_margin_open_loss", "totalMarginOpenLoss"),
)
BALANCE_FIELDS = (
    ("wallet_balance", "totalWalletBalance"),
    ("cross_margin_asset", "crossMarginAsset"),
    ("cross_margin_borrowed", "crossMarginBorrowed"),
    ("cross_margin_free", "crossMarginFree"),
    ("cross_margin_interest", "crossMarginInterest"),
    ("cross_margin_locked", "crossMarginLocked"),
    ("um_wallet_balance", "umWalletBalance"),
    ("um_unrealized_pnl", "umUnrealizedPNL"),
    ("cm_wallet_balance", "cmWalletBalance"),
    ("cm_unrealized_pnl", "cmUnrealizedPNL"),
    ("negative_balance", "negativeBalance"),
)


@dataclass(frozen=True, slots=True)
class PortfolioAccount:
    status: str | None
    uni_mmr: float | None = None
    account_equity: float | None = None
    actual_equity: float | None = None
    initial_margin: float | None = None
    maint_margin: float | None = None
    virtual_max_withdraw: float | None = None
    total_available_balance: float | None = None
    total_margin_open_loss: float | None = None
    invalid: tuple[str, ...] = ()  # fields Binance sent that did not parse


@dataclass(frozen=True, slots=True)
class PortfolioBalance:
    asset: str
    values: tuple[float | None, ...]  # in the order of BALANCE_FIELDS


@dataclass(frozen=True, slots=True)
class Portfolio:
    account: PortfolioAccount
    balances: tuple[PortfolioBalance, ...]
    invalid: tuple[str, ...] = ()  # fields of either answer that did not parse


def parse_portfolio_account(raw: Any) -> PortfolioAccount:
    """Every field is optional: one that does not parse (Binance's own PM Pro example sends
    ``"122,559.90199491"``) drops only its metric and is noted in ``invalid``."""
    raw = fields.obj(raw, "portfolio margin account")
    optional = fields.Lenient()
    values = {attr: optional.number(raw, key) for attr, key in ACCOUNT_FIELDS}
    status = optional.string(raw, "accountStatus")
    return PortfolioAccount(status=status, **values, invalid=optional.noted())


def parse_portfolio_balances(
        raw: Any, optional: fields.Lenient | None = None) -> tuple[PortfolioBalance, ...]:
    optional = optional or fields.Lenient()
    balances: dict[str, PortfolioBalance] = {}
    for i, entry in enumerate(fields.array(raw, "balance")):
        at = f"balance[{i}]."
        entry = fields.obj(entry, f"balance[{i}]")
        asset = fields.string(entry, "asset", at)
        values = tuple(optional.number(entry, key, at) for _, key in BALANCE_FIELDS)
        balances.setdefault(asset, PortfolioBalance(asset, values))
    return tuple(balances.values())


def fetch_portfolio(client: BinanceClient, deadline: float | None = None) -> Portfolio:
    """Both calls, within one deadline."""
    account = parse_portfolio_account(client.signed_get(PAPI_ACCOUNT_PATH, deadline=deadline))
    optional = fields.Lenient()
    balances = parse_portfolio_balances(client.signed_get(PAPI_BALANCE_PATH, deadline=deadline),
                                        optional)
    return Portfolio(account, balances, tuple(dict.fromkeys((*account.invalid,
                                                             *optional.noted()))))
