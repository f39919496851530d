"""A master's roster of sub-accounts: which exist, which are frozen, which have margin.

:class:`SubAccountRoster` asks the master's lists at start and again every 10 minutes, in the
background: with ``sub_accounts: all``, ``GET /sapi/v1/sub-account/list`` and
``GET /sapi/v1/sub-account/status``; with a list of e-mails, exactly those, and their status.
It keeps this shard's share, leaves out the e-mails that are configured accounts' names, and
shows the discovery's ``up`` and each sub-account's frozen and margin-enabled state. Of a
share over ``max_sub_accounts`` only the first (in Binance's order) are read: a page of
20,000 sub-accounts takes longer to render than Prometheus waits; the rest are counted in
``binance_margin_sub_accounts_left_out`` and warned of once an hour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.sub_accounts import (
    SubAccount,
    fetch_sub_account_status,
    fetch_sub_accounts,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.logs import Throttled

log = logging.getLogger(__name__)

DISCOVERY_SECONDS = 600.0
DISCOVERY_RETRY_SECONDS = 60.0
MAX_SUB_ACCOUNTS = 2000  # a master's sub-accounts read (setting max_sub_accounts)


@dataclass(frozen=True)
class Roster:
    """What the master's lists say of its sub-accounts."""

    subs: tuple[SubAccount, ...]
    margin: dict[str, bool | None]  # e-mail -> isMarginEnabled (None: Binance did not say)
    listed: bool = True  # from the list (which knows who is frozen), not from the config

    def polled(self, sub: SubAccount) -> bool:
        return not sub.frozen and self.margin.get(sub.email) is not False


class SubAccountRoster:
    """The master's sub-accounts as its lists (or the configured e-mails) say, this shard's
    share of them, without the configured accounts' names."""

    def __init__(self, master: str, client: BinanceClient, executor: Executor, *,
                 emails: Sequence[str] | None = None,
                 list_subs: Callable[[float], Sequence[SubAccount]] | None = None,
                 status: Callable[[float], dict[str, bool | None]] | None = None,
                 reserved: frozenset[str] = frozenset(),
                 serves: Callable[[str], bool] | None = None,
                 max_subs: int = MAX_SUB_ACCOUNTS,
                 **clocks: Callable[[], float]) -> None:
        self.master = master
        self._reserved = reserved
        self._max_subs = max_subs
        self._capped = Throttled(log, 3600.0, clocks.get("monotonic", time.monotonic))
        # the last roster discovered, this shard's share of it, and the size of the share
        # before max_subs
        self._shared: tuple[Roster, Roster, int] | None = None
        self._clashes: set[str] = set()  # discovered e-mails already said to clash
        self._serves = serves or (lambda email: True)
        fixed = tuple(dict.fromkeys(emails)) if emails is not None else None
        list_subs = list_subs or (lambda deadline: fetch_sub_accounts(client, deadline))
        status = status or (lambda deadline: fetch_sub_account_status(client, deadline))

        def roster(deadline: float) -> Roster:
            if fixed is not None:
                return Roster(tuple(SubAccount(e) for e in fixed), status(deadline), False)
            return Roster(tuple(list_subs(deadline)), status(deadline))

        self.discovery: Cached[Roster] = Cached(
            f"sub-account list of {master}", roster, executor, ttl=DISCOVERY_SECONDS,
            error_ttl=DISCOVERY_RETRY_SECONDS, timeout=client.timeout, **clocks)
        # a configured list is read even while its status cannot be
        self._fallback = None if fixed is None else Roster(
            tuple(SubAccount(e) for e in fixed), {}, False)

    def reserve(self, reserved: frozenset[str]) -> None:
        """A reload: the configured accounts' names now (a name no longer configured is read
        again; a new one is left out, said once)."""
        self._reserved = reserved
        self._clashes &= reserved

    def roster(self, deadline: float) -> Roster | None:
        if self.discovery.good is None:  # nothing known yet: worth waiting for, this once
            self.discovery.get(deadline)
        else:
            self.discovery.latest()
        roster = self.discovery.good or self._fallback
        if roster is None:
            return None
        roster, _ = self._share(roster)
        clashes = [s.email for s in roster.subs if s.email in self._reserved]
        for email in clashes:
            if email not in self._clashes:
                self._clashes.add(email)
                log.error("sub-account %s of %s has the name of a configured account: it is "
                          "not read (the two would share one account label); rename the "
                          "account", email, self.master)
        if not clashes:
            return roster
        return replace(roster, subs=tuple(s for s in roster.subs if s.email not in self._reserved))

    def _share(self, roster: Roster) -> tuple[Roster, int]:
        """This shard's sub-accounts of the roster, at most ``max_subs`` of them, and how
        many that leaves out; the share is worked out once a roster (a discovery every 10
        minutes), not at every scrape."""
        shared = self._shared
        if shared is None or shared[0] is not roster:
            subs = tuple(s for s in roster.subs if self._serves(s.email))
            shared = self._shared = (roster, replace(roster, subs=subs[:self._max_subs]),
                                     len(subs))
        _, share, count = shared
        left_out = max(0, count - self._max_subs)
        if left_out:
            self._capped.warning("%s has %d sub-accounts: only the first %d are "
                                 "read (max_sub_accounts), %d left out", self.master,
                                 count, self._max_subs, left_out)
        return share, left_out

    def families(self, refused: Callable[[], set[str]]) -> Iterator[Metric]:
        """``refused``: the e-mails whose margin fetch said they have none, now."""
        discovery = GaugeMetricFamily(
            "binance_margin_sub_account_discovery_up",
            "1 if the last fetch of the master's sub-account list and status succeeded, else 0.",
            labels=["master"])
        discovery.add_metric([self.master], 1.0 if self.discovery.last_ok else 0.0)
        yield discovery
        roster = self.discovery.good
        if roster is None:
            return
        roster, left_out_count = self._share(roster)
        if left_out_count:
            left_out = GaugeMetricFamily(
                "binance_margin_sub_accounts_left_out",
                "Sub-accounts of the master not read: over max_sub_accounts (absent: none).",
                labels=["master"])
            left_out.add_metric([self.master], float(left_out_count))
            yield left_out
        subs = [s for s in roster.subs if s.email not in self._reserved]
        labels = ["account", "master"]
        enabled = GaugeMetricFamily(
            "binance_margin_sub_account_margin_enabled",
            "1 if the sub-account has margin (GET /sapi/v1/sub-account/status isMarginEnabled, "
            "and its margin account answers), else 0: then it is not polled and has no "
            "binance_margin_up.", labels=labels)
        frozen = GaugeMetricFamily(
            "binance_margin_sub_account_frozen",
            "1 if the sub-account is frozen (GET /sapi/v1/sub-account/list isFreeze): then it "
            "is not polled.", labels=labels)
        off_now = refused()
        for sub in subs:
            off = roster.margin.get(sub.email) is False or sub.email in off_now
            enabled.add_metric([sub.email, self.master], 0.0 if off else 1.0)
            if roster.listed:
                frozen.add_metric([sub.email, self.master], 1.0 if sub.frozen else 0.0)
        for family in (enabled, frozen):
            if family.samples:
                yield family
