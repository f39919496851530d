"""One master's sub-accounts, polled each scrape: :class:`SubAccounts`.

Which of the roster's sub-accounts can answer (not frozen, margin on, not refused), the
master's summary each fetch (every level and total), the details the rotation names, and each
polled sub-account's result: a detail fetched with this summary as Binance sent it, else the
summary's totals and level over its last detail. A
sub-account whose margin fetch answers "margin account does not exist" is refused for 10
minutes. The roster is :mod:`.roster`'s, the rotation :mod:`.rotation`'.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import replace

from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.cross import MarginAccount
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.fields import Unchanged
from binance_margin_exporter.binance.sub_accounts import (
    NO_MARGIN_CODES,
    SubAccount,
    SubTotals,
    fetch_sub_margin_account,
    fetch_sub_margin_summary,
    parse_sub_margin_account,
    parse_sub_margin_summary,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached, Result
from binance_margin_exporter.collectors.cross import CrossAccount
from binance_margin_exporter.collectors.sub_accounts.roster import (
    DISCOVERY_SECONDS,
    MAX_SUB_ACCOUNTS,
    Roster,
    SubAccountRoster,
)
from binance_margin_exporter.collectors.sub_accounts.rotation import DetailRotation

log = logging.getLogger(__name__)


class SubAccounts:
    """One master key's sub-accounts: its roster, its summary, their details."""

    def __init__(self, master: str, client: BinanceClient, executor: Executor, *, ttl: float,
                 emails: Sequence[str] | None = None,
                 list_subs: Callable[[float], Sequence[SubAccount]] | None = None,
                 status: Callable[[float], dict[str, bool | None]] | None = None,
                 fetch: Callable[[BinanceClient, str, float], MarginAccount] | None = None,
                 summary: Callable[[float], dict[str, SubTotals]] | None = None,
                 reserved: frozenset[str] = frozenset(),
                 detail_max_age: float = 300.0, fall_fraction: float = 0.1,
                 budget: Callable[[float], float] | None = None,
                 serves: Callable[[str], bool] | None = None,
                 max_subs: int = MAX_SUB_ACCOUNTS,
                 **clocks: Callable[[], float]) -> None:
        """``emails``: exactly these; None: all of the master's, discovered. ``reserved``: the
        configured accounts' names, which no sub-account may take (they would share a label).
        ``budget``: the master's weight a minute at a scrape interval (None: no limit but the
        IP's); ``detail_max_age`` 0: every detail on every fetch. ``serves``: is a
        sub-account this shard's (None: all are)?"""
        self.master = master
        self._client = client
        self._executor = executor
        self._ttl = ttl
        self._fetch = fetch
        self._clocks = clocks
        self._monotonic = clocks.get("monotonic", time.monotonic)
        self._lock = threading.Lock()
        self._accounts: dict[str, CrossAccount] = {}
        # e-mail -> (totals, detail, the value made of them), while both are unchanged
        self._made: dict[str, tuple[SubTotals, MarginAccount | None, MarginAccount]] = {}
        self._refused: dict[str, float] = {}  # e-mail -> (monotonic) until no margin is assumed
        self.rotation = DetailRotation(master, detail_max_age=detail_max_age,
                                       fall_fraction=fall_fraction, budget=budget, **clocks)
        unchanged = Unchanged(parse_sub_margin_summary)  # the same answer: the same totals
        totals = summary or (lambda deadline: fetch_sub_margin_summary(client, deadline,
                                                                       unchanged))
        self.summary: Cached[dict[str, SubTotals]] = Cached(
            f"sub-account summary of {master}", totals, executor, ttl=ttl,
            timeout=client.timeout, **clocks)
        self.lists = SubAccountRoster(master, client, executor, emails=emails,
                                      list_subs=list_subs, status=status, reserved=reserved,
                                      serves=serves, max_subs=max_subs, **clocks)
        self.discovery: Cached[Roster] = self.lists.discovery

    def roster(self, deadline: float) -> Roster | None:
        return self.lists.roster(deadline)

    def _account(self, email: str) -> CrossAccount:
        client, fetch = self._client, self._fetch
        if fetch is None:  # an unchanged answer is not parsed again: the same model
            reuse = Unchanged(parse_sub_margin_account)

            def fetch(client: BinanceClient, email: str, deadline: float) -> MarginAccount:
                return fetch_sub_margin_account(client, email, deadline, reuse)
        # no ttl of its own: the plan of each summary fetch says which detail is fetched anew
        return CrossAccount(
            email, client,
            Cached(f"sub-account {email} of {self.master}",
                   lambda deadline: fetch(client, email, deadline), self._executor,
                   ttl=math.inf, timeout=client.timeout, **self._clocks),
            thresholds=None, master=self.master)

    def _polled(self, deadline: float) -> list[CrossAccount]:
        """The sub-accounts that can answer (not frozen, margin on, not refused)."""
        roster = self.roster(deadline)
        subs = roster.subs if roster is not None else ()
        now = self._monotonic()
        with self._lock:
            self._refused = {e: t for e, t in self._refused.items() if t > now}
            polled = [s.email for s in subs if roster is not None and roster.polled(s)]
            # keep the caches (and error counters) of the sub-accounts still listed
            self._accounts = {e: self._accounts.get(e) or self._account(e) for e in polled}
            self._made = {e: v for e, v in self._made.items() if e in self._accounts}
            return [a for e, a in self._accounts.items() if e not in self._refused]

    def start(self, deadline: float) -> Callable[[], tuple[list[CrossAccount],
                                                           list[Result[MarginAccount]]]]:
        """Start this scrape's summary; return what waits for it, fetches the details the
        plan names, and gives each polled sub-account's result (a detail fetched now as sent;
        else the summary's totals and level, and its last detail's assets and bars)."""
        accounts = self._polled(deadline)
        flight = self.summary.start(deadline)

        def finish() -> tuple[list[CrossAccount], list[Result[MarginAccount]]]:
            summary = self.summary.wait(flight, deadline)
            chosen = self.rotation.plan(summary, accounts) if summary.value is not None else []
            flights = []
            for account in chosen:
                account.account.invalidate()
                flights.append(account.account.start(deadline))
            fresh = {a.name: a.account.wait(f, deadline)
                     for a, f in zip(chosen, flights, strict=True)}
            shown, results = [], []
            for account in accounts:
                result = fresh.get(account.name)
                if result is not None and self.refuse(account.name, result):
                    continue
                shown.append(account)
                results.append(self._result(account, summary, result))
            return shown, results

        return finish

    def _result(self, account: CrossAccount, summary: Result[dict[str, SubTotals]],
                fresh: Result[MarginAccount] | None) -> Result[MarginAccount]:
        """One value a sub-account: its detail as Binance sent it when this fetch fetched
        it (Binance's own ``marginLevel``); else the summary's totals and level over its last
        detail."""
        if summary.value is None:
            return Result(None, summary.error, summary.started, summary.duration)
        totals = summary.value.get(account.name)
        detail = account.account.good
        if fresh is not None and (fresh.value is not None or totals is None):
            return fresh  # fetched by this plan (not in the summary: whatever it says)
        if totals is None:  # not in the summary, and no detail fetched for it by this plan
            return Result(None, UpstreamError("invalid_response", "not in the summary"),
                          summary.started, summary.duration)
        with self._lock:  # another scrape may be in _polled, rebuilding _made
            made = self._made.get(account.name)
        if made is not None and made[0] is totals and made[1] is detail:
            value = made[2]  # neither changed: the same model (its samples are kept)
        else:
            value = MarginAccount(totals.margin_level, totals.total_asset_btc,
                                  totals.total_liability_btc, totals.total_net_asset_btc, ())
            if detail is not None:
                value = replace(detail, margin_level=totals.margin_level,
                                total_asset_btc=totals.total_asset_btc,
                                total_liability_btc=totals.total_liability_btc,
                                total_net_asset_btc=totals.total_net_asset_btc)
            with self._lock:
                self._made[account.name] = (totals, detail, value)
        return Result(value, None, summary.started, summary.duration)

    def reconfigure(self, reserved: frozenset[str],
                    budget: Callable[[float], float] | None) -> None:
        """A reload that kept the master: the configured accounts' names and the budget are
        the new configuration's (a kept part would go on with those it was built with: a
        sub-account named like a newly configured account read twice, under one label);
        the budget is said again at the next plan if it does not fit."""
        self.lists.reserve(reserved)
        self.rotation.rebudget(budget)

    def refuse(self, email: str, result: Result[MarginAccount]) -> bool:
        """Does the result say the sub-account has no margin account? Then it is not asked
        again for 10 minutes."""
        error = result.error
        if error is None or error.code not in NO_MARGIN_CODES:
            return False
        with self._lock:
            if email not in self._refused:
                log.info("sub-account %s of %s has no margin account (Binance code %s): "
                         "asked again in %.0f s", email, self.master, error.code,
                         DISCOVERY_SECONDS)
            self._refused[email] = self._monotonic() + DISCOVERY_SECONDS
        return True

    def detail_families(self, accounts: Sequence[CrossAccount]) -> Iterator[Metric]:
        return self.rotation.detail_families(accounts)

    def families(self) -> Iterator[Metric]:
        def refused() -> set[str]:
            with self._lock:
                return set(self._refused)

        return self.lists.families(refused)
