"""Sub-accounts behind a master key.

- ``GET /sapi/v1/sub-account/list`` (signed, weight 1): the master's sub-accounts, paged
  (``page`` from 1, ``limit`` at most 200): asked with ``limit=200`` until a short page.
- ``GET /sapi/v1/sub-account/margin/account?email=`` (signed, weight 10): one sub-account's
  margin account, in the cross account's shape (``marginUserAssetVoList``) with its own bars
  (``marginTradeCoeffVo``). A sub-account without margin answers an error for its email only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.cross import (
    MarginAccount,
    parse_trade_coeff,
    parse_user_assets,
)
from binance_margin_exporter.binance.transport import BinanceClient

SUB_ACCOUNT_LIST_PATH = "/sapi/v1/sub-account/list"
SUB_MARGIN_ACCOUNT_PATH = "/sapi/v1/sub-account/margin/account"
PAGE_LIMIT = 200
MAX_PAGES = 100  # 20,000 sub-accounts: Binance's own cap is far lower


def parse_sub_account_page(raw: Any) -> list[str]:
    """The e-mail addresses of one page of ``/sapi/v1/sub-account/list``."""
    raw = fields.obj(raw, "sub-account list")
    emails = []
    for i, entry in enumerate(fields.array(raw.get("subAccounts", []), "subAccounts")):
        entry = fields.obj(entry, f"subAccounts[{i}]")
        emails.append(fields.string(entry, "email", f"subAccounts[{i}]."))
    return emails


def fetch_sub_account_emails(client: BinanceClient,
                             deadline: float | None = None) -> tuple[str, ...]:
    """Every sub-account of the master key, in Binance's order, each once."""
    emails: dict[str, None] = {}
    for page in range(1, MAX_PAGES + 1):
        chunk = parse_sub_account_page(client.signed_get(
            SUB_ACCOUNT_LIST_PATH, {"page": page, "limit": PAGE_LIMIT}, deadline=deadline))
        emails.update(dict.fromkeys(chunk))
        if len(chunk) < PAGE_LIMIT:
            break
    return tuple(emails)


def parse_sub_margin_account(raw: Any) -> MarginAccount:
    """One sub-account's margin account as a :class:`MarginAccount`, its bars included."""
    raw = fields.obj(raw, "sub-account margin account")
    coeff = raw.get("marginTradeCoeffVo")
    account = MarginAccount(
        margin_level=fields.number(raw, "marginLevel"),
        total_asset_btc=fields.number(raw, "totalAssetOfBtc"),
        total_liability_btc=fields.number(raw, "totalLiabilityOfBtc"),
        total_net_asset_btc=fields.number(raw, "totalNetAssetOfBtc"),
        assets=parse_user_assets(raw.get("marginUserAssetVoList", []),
                                 "marginUserAssetVoList"),
    )
    if coeff is None:
        return account
    return replace(account, bars=parse_trade_coeff(coeff))


def fetch_sub_margin_account(client: BinanceClient, email: str,
                             deadline: float | None = None) -> MarginAccount:
    return parse_sub_margin_account(client.signed_get(
        SUB_MARGIN_ACCOUNT_PATH, {"email": email}, deadline=deadline))  # encoded by the client
