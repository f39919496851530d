"""Sub-accounts behind a master key.

- ``GET /sapi/v1/sub-account/list`` (signed, weight 1): the master's sub-accounts, paged
  (``page`` from 1, ``limit`` at most 200): asked with ``limit=200`` until a short page. Each
  says whether it is frozen (``isFreeze``).
- ``GET /sapi/v1/sub-account/status`` (signed, weight 10): every sub-account in one call, with
  ``isMarginEnabled``.
- ``GET /sapi/v1/sub-account/margin/accountSummary`` (signed, weight 10): every sub-account's
  totals in BTC in one call; no margin level, no bars (the level is derived from the totals).
- ``GET /sapi/v1/sub-account/margin/account?email=`` (signed, weight 10): one sub-account's
  margin account, in the cross account's shape (``marginUserAssetVoList``) with its own bars
  (``marginTradeCoeffVo``). A sub-account without margin answers an error for its email only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.cross import (
    MarginAccount,
    parse_trade_coeff,
    parse_user_assets,
)
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.logs import Throttled

SUB_ACCOUNT_LIST = Endpoint("/sapi/v1/sub-account/list", 1)  # a page
SUB_ACCOUNT_STATUS = Endpoint("/sapi/v1/sub-account/status", 10)
SUB_MARGIN_ACCOUNT = Endpoint("/sapi/v1/sub-account/margin/account", 10)  # one sub-account
SUB_MARGIN_SUMMARY = Endpoint("/sapi/v1/sub-account/margin/accountSummary", 10)  # all
SUB_ACCOUNT_LIST_PATH = SUB_ACCOUNT_LIST.path
SUB_MARGIN_ACCOUNT_PATH = SUB_MARGIN_ACCOUNT.path
SUB_ACCOUNT_STATUS_PATH = SUB_ACCOUNT_STATUS.path
SUB_MARGIN_SUMMARY_PATH = SUB_MARGIN_SUMMARY.path
# what a sub-account's margin fetch answers when it has no margin account: "Margin account does
# not exist" (the one code the docs name for it)
NO_MARGIN_CODES = frozenset({-3003})
PAGE_LIMIT = 200
_truncated = Throttled(logging.getLogger(__name__), 3600.0)  # a list that does not end
MAX_PAGES = 100  # 20,000 sub-accounts: Binance's own cap is far lower


@dataclass(frozen=True, slots=True)
class SubAccount:
    email: str
    frozen: bool = False  # isFreeze


def parse_sub_account_page(raw: Any) -> list[SubAccount]:
    """The sub-accounts of one page of ``/sapi/v1/sub-account/list``."""
    raw = fields.obj(raw, "sub-account list")
    found = []
    for i, entry in enumerate(fields.array(raw.get("subAccounts", []), "subAccounts")):
        at = f"subAccounts[{i}]."
        entry = fields.obj(entry, f"subAccounts[{i}]")
        found.append(SubAccount(fields.string(entry, "email", at),
                                bool(fields.optional_flag(entry, "isFreeze", at))))
    return found


def fetch_sub_accounts(client: BinanceClient,
                       deadline: float | None = None) -> tuple[SubAccount, ...]:
    """Every sub-account of the master key, in Binance's order, each once (the first
    ``MAX_PAGES`` pages of a list that does not end: warned of once an hour)."""
    found: dict[str, SubAccount] = {}
    for page in range(1, MAX_PAGES + 1):
        chunk = parse_sub_account_page(client.signed_get(
            SUB_ACCOUNT_LIST_PATH, {"page": page, "limit": PAGE_LIMIT}, deadline=deadline))
        for sub in chunk:
            found.setdefault(sub.email, sub)
        if len(chunk) < PAGE_LIMIT:
            break
    else:
        _truncated.warning("the sub-account list on %s did not end after %d pages: the "
                           "sub-accounts after the first %d are left out",
                           client.upstream.host, MAX_PAGES, MAX_PAGES * PAGE_LIMIT,
                           kind=client.upstream.host)
    return tuple(found.values())


def fetch_sub_account_emails(client: BinanceClient,
                             deadline: float | None = None) -> tuple[str, ...]:
    """Every sub-account's e-mail, in Binance's order, each once."""
    return tuple(sub.email for sub in fetch_sub_accounts(client, deadline))


def parse_sub_account_status(raw: Any) -> dict[str, bool | None]:
    """e-mail -> ``isMarginEnabled`` (None where Binance does not say)."""
    enabled: dict[str, bool | None] = {}
    for i, entry in enumerate(fields.array(raw, "sub-account status")):
        at = f"status[{i}]."
        entry = fields.obj(entry, f"status[{i}]")
        enabled.setdefault(fields.string(entry, "email", at),
                           fields.optional_flag(entry, "isMarginEnabled", at))
    return enabled


def fetch_sub_account_status(client: BinanceClient,
                             deadline: float | None = None) -> dict[str, bool | None]:
    """Whether margin is enabled, for every sub-account of the master key (one call)."""
    return parse_sub_account_status(client.signed_get(SUB_ACCOUNT_STATUS_PATH,
                                                      deadline=deadline))


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
                             deadline: float | None = None,
                             reuse: fields.Unchanged[MarginAccount] | None = None,
                             ) -> MarginAccount:
    """``reuse``: an unchanged answer gives the last model again (made with
    ``fields.Unchanged(parse_sub_margin_account)``)."""
    if reuse is not None:
        return client.signed_get(  # type: ignore[no-any-return]
            SUB_MARGIN_ACCOUNT_PATH, {"email": email}, deadline=deadline, reuse=reuse)
    return parse_sub_margin_account(client.signed_get(
        SUB_MARGIN_ACCOUNT_PATH, {"email": email}, deadline=deadline))  # encoded by the client


NO_LIABILITY_LEVEL = 999.0  # what Binance's own marginLevel says of an account without debt


@dataclass(frozen=True, slots=True)
class SubTotals:
    """One sub-account's line of the summary (``subAccountList[]``), in BTC; ``margin_level``
    is derived: totalAssetOfBtc / totalLiabilityOfBtc (Binance's definition; the liability
    carries the interest), 999 without liability, as Binance's own ``marginLevel``."""

    email: str
    total_asset_btc: float
    total_liability_btc: float
    total_net_asset_btc: float
    margin_level: float


def derived_level(asset: Decimal, liability: Decimal) -> float:
    """totalAsset / totalLiability in decimal (no binary rounding of the 8-decimal strings)."""
    if liability <= 0:
        return NO_LIABILITY_LEVEL
    return float(asset / liability)


def parse_sub_margin_summary(raw: Any) -> dict[str, SubTotals]:
    """e-mail -> totals of every sub-account in the summary (each once, the first kept)."""
    raw = fields.obj(raw, "sub-account margin summary")
    found: dict[str, SubTotals] = {}
    for i, entry in enumerate(fields.array(raw.get("subAccountList", []), "subAccountList")):
        at = f"subAccountList[{i}]."
        entry = fields.obj(entry, f"subAccountList[{i}]")
        email = fields.string(entry, "email", at)
        asset = fields.number(entry, "totalAssetOfBtc", at)
        liability = fields.number(entry, "totalLiabilityOfBtc", at)
        found.setdefault(email, SubTotals(
            email, asset, liability, fields.number(entry, "totalNetAssetOfBtc", at),
            derived_level(fields.decimal(asset), fields.decimal(liability))))
    return found


def fetch_sub_margin_summary(client: BinanceClient, deadline: float | None = None,
                             reuse: fields.Unchanged[dict[str, SubTotals]] | None = None,
                             ) -> dict[str, SubTotals]:
    """Every sub-account's totals in one call (weight 10 for all of them). ``reuse``: an
    unchanged answer gives the last totals again (``fields.Unchanged(parse_sub_margin_summary)``;
    the caller must not change them)."""
    if reuse is not None:
        return client.signed_get(  # type: ignore[no-any-return]
            SUB_MARGIN_SUMMARY_PATH, deadline=deadline, reuse=reuse)
    return parse_sub_margin_summary(client.signed_get(SUB_MARGIN_SUMMARY_PATH,
                                                      deadline=deadline))
