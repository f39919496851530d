"""Simulated sub-accounts of a master key: ``GET /sapi/v1/sub-account/list`` (weight 1, paged by
``page`` and ``limit`` <= 200, with ``isFreeze``), ``GET /sapi/v1/sub-account/status`` (weight
10, every sub-account's ``isMarginEnabled``) and ``GET /sapi/v1/sub-account/margin/account``
(weight 10) and ``GET /sapi/v1/sub-account/margin/accountSummary`` (weight 10, every
sub-account's totals, the same as their details).

Each sub-account is a :class:`~.cross.SimulatedAccount` of its own (another seed), in the
sub-account answer's shape: ``marginUserAssetVoList`` and ``marginTradeCoeffVo``. Sub-accounts
listed in ``no_margin`` answer an error for their e-mail (``-3003``), as Binance does when
margin is not enabled there, and their status says so, unless they are also in
``stale_status`` (a status that has not caught up). ``frozen`` ones are listed as frozen. A key
in :attr:`SimulatedSubAccounts.non_master_keys` is refused, as a sub-account's key is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from binance_margin_exporter.binance import sub_accounts
from binance_margin_exporter.demo import cross
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.routes import API_KEY, Demo, Host, RequestError, Route, route_of

SUB_ACCOUNT_LIST_PATH = sub_accounts.SUB_ACCOUNT_LIST.path
SUB_MARGIN_ACCOUNT_PATH = sub_accounts.SUB_MARGIN_ACCOUNT.path
SUB_ACCOUNT_STATUS_PATH = sub_accounts.SUB_ACCOUNT_STATUS.path
SUB_MARGIN_SUMMARY_PATH = sub_accounts.SUB_MARGIN_SUMMARY.path
NO_MARGIN_CODE = -3003


class SimulatedSubAccounts:
    def __init__(self, emails: Sequence[str], *, no_margin: Sequence[str] = (),
                 frozen: Sequence[str] = (), stale_status: Sequence[str] = (),
                 n_assets: int = 40, n_active: int = 10, drift: bool = True) -> None:
        self.emails = list(emails)
        self.no_margin = set(no_margin)
        self.frozen = set(frozen)
        self.stale_status = set(stale_status)
        self.asked: Counter[str] = Counter()  # margin account requests, by e-mail
        self.summaries = 0  # summary requests
        self.accounts = {
            email: SimulatedAccount(n_assets, n_active, seed=100 + i, drift=drift)
            for i, email in enumerate(self.emails)
        }
        self._bodies: dict[str, tuple[Any, bytes]] = {}
        self.non_master_keys: set[str] = set()  # API keys refused here: a sub-account's own

    def listing(self, params: dict[str, str]) -> bytes:
        try:
            page = int(params.get("page", "1"))
            limit = int(params.get("limit", "1"))
        except ValueError:
            raise RequestError(-1100, "Illegal characters found in a parameter.") from None
        if page < 1 or not 1 <= limit <= 200:
            raise RequestError(-1100, "Illegal characters found in a parameter.")
        chunk = self.emails[(page - 1) * limit: page * limit]
        return json.dumps({"subAccounts": [
            {"email": e, "isFreeze": e in self.frozen, "createTime": 1544433328000,
             "isManagedSubAccount": False, "isAssetManagementSubAccount": False}
            for e in chunk]}).encode()

    def status(self, params: dict[str, str]) -> bytes:
        emails = [params["email"]] if params.get("email") else self.emails
        return json.dumps([
            {"email": e, "isSubUserEnabled": e not in self.frozen, "isUserActive": True,
             "insertTime": 1570791523523,
             "isMarginEnabled": e not in self.no_margin or e in self.stale_status,
             "isFutureEnabled": False, "mobile": 1570791523523}
            for e in emails if e in self.accounts]).encode()

    def margin_account(self, params: dict[str, str]) -> bytes:
        email = params.get("email", "")
        if email not in self.accounts:
            raise RequestError(-1102, "Mandatory parameter 'email' was not sent, was empty/null, "
                                      "or malformed.")
        self.asked[email] += 1
        if email in self.no_margin:
            raise RequestError(NO_MARGIN_CODE, "Margin account does not exist.")
        account = self.accounts[email]
        raw = json.loads(account.body())
        coeff = {k: f"{float(v):.8f}" for k, v in account.coeff.items()}
        return json.dumps({
            "email": email,
            "marginLevel": raw["marginLevel"],
            "totalAssetOfBtc": raw["totalAssetOfBtc"],
            "totalLiabilityOfBtc": raw["totalLiabilityOfBtc"],
            "totalNetAssetOfBtc": raw["totalNetAssetOfBtc"],
            "marginTradeCoeffVo": {"forceLiquidationBar": coeff["forceLiquidationBar"],
                                   "marginCallBar": coeff["marginCallBar"],
                                   "normalBar": coeff["normalBar"]},
            "marginUserAssetVoList": raw["userAssets"],
        }, separators=(",", ":")).encode()


    def summary(self, params: dict[str, str]) -> bytes:
        """Every sub-account with margin: its totals, the very ones its detail answers."""
        self.summaries += 1
        lines = []
        total = [Decimal(0)] * 3
        for email in self.emails:
            if email in self.no_margin:
                continue
            raw = json.loads(self.accounts[email].body())
            values = [raw[k] for k in TOTALS]
            total = [t + Decimal(v) for t, v in zip(total, values, strict=True)]
            lines.append({"email": email, **dict(zip(TOTALS, values, strict=True))})
        return json.dumps({**{k: f"{t:.8f}" for k, t in zip(TOTALS, total, strict=True)},
                           "subAccountList": lines}, separators=(",", ":")).encode()


TOTALS = ("totalAssetOfBtc", "totalLiabilityOfBtc", "totalNetAssetOfBtc")


def state(host: Host) -> SimulatedSubAccounts:
    """The master's sub-accounts: four, one without margin, one frozen (they drift when the
    cross margin account does)."""
    return host.state("subs", lambda: SimulatedSubAccounts(
        ["alice@fund.example", "bob@fund.example", "carol@fund.example", "dave@fund.example"],
        no_margin=["carol@fund.example"], frozen=["dave@fund.example"], n_assets=60,
        n_active=6, drift=cross.state(host).drift))


def routes(host: Host) -> dict[str, Route]:
    subs = state(host)

    def master_only(answer: Callable[[dict[str, str]], bytes]) -> Callable[[dict[str, str]],
                                                                            bytes]:
        """A sub-account's own key is refused, as Binance refuses it."""
        def checked(params: dict[str, str]) -> bytes:
            if params.get(API_KEY) in subs.non_master_keys:
                raise RequestError(-1002, "You are not authorized to execute this request.")
            return answer(params)
        return checked

    return dict((route_of(sub_accounts.SUB_ACCOUNT_LIST, master_only(subs.listing)),
                 route_of(sub_accounts.SUB_ACCOUNT_STATUS, master_only(subs.status)),
                 route_of(sub_accounts.SUB_MARGIN_ACCOUNT, master_only(subs.margin_account)),
                 route_of(sub_accounts.SUB_MARGIN_SUMMARY, master_only(subs.summary))))


def demo(host: Host) -> Demo:
    """``--demo``'s master account reads its sub-accounts."""
    return Demo(accounts={"demo": {"sub_accounts": "all"}})
