"""A master key's sub-accounts, each shown exactly like a cross account (``account`` is the
sub-account's e-mail, the families are the cross product's).

The master's roster is asked at start and again every 10 minutes, in the background: with
``sub_accounts: all``, ``GET /sapi/v1/sub-account/list`` (weight 1 a page of 200: which exist,
which are frozen) and ``GET /sapi/v1/sub-account/status`` (weight 10 for all of them: which
have margin); with a list of e-mails, exactly those, and their status. New sub-accounts appear,
removed ones disappear with all their series.

Only sub-accounts that can answer are polled (10 weight each a fetch): a frozen one, or one
whose margin is off, is shown by ``binance_margin_sub_account_frozen`` and
``binance_margin_sub_account_margin_enabled`` and has no ``binance_margin_up`` (nothing is wrong
with it; nothing fires). One whose margin fetch still answers "margin account does not exist"
(``-3003``) is treated so too, and asked again only every 10 minutes. Each polled sub-account
has its own cache, errors and ``up``, and never disturbs the others. They are fetched side by
side on the shared executor, through the master's client: one rate gate and one soft limit for
all of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.cross import MarginAccount
from binance_margin_exporter.binance.sub_accounts import (
    NO_MARGIN_CODES,
    SubAccount,
    fetch_sub_account_status,
    fetch_sub_accounts,
    fetch_sub_margin_account,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached, Result
from binance_margin_exporter.collectors.cross import AssetFilter, CrossAccount, cross_families
from binance_margin_exporter.collectors.product import Build, Product
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.config import AccountConfig, ConfigError, Setting, Settings
from binance_margin_exporter.config.schema import names

log = logging.getLogger(__name__)

DISCOVERY_SECONDS = 600.0
DISCOVERY_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Roster:
    """What the master's lists say of its sub-accounts."""

    subs: tuple[SubAccount, ...]
    margin: dict[str, bool | None]  # e-mail -> isMarginEnabled (None: Binance did not say)
    listed: bool = True  # from the list (which knows who is frozen), not from the config

    def polled(self, sub: SubAccount) -> bool:
        return not sub.frozen and self.margin.get(sub.email) is not False


class SubAccounts:
    def __init__(self, master: str, client: BinanceClient, executor: Executor, *, ttl: float,
                 emails: Sequence[str] | None = None,
                 list_subs: Callable[[float], Sequence[SubAccount]] | None = None,
                 status: Callable[[float], dict[str, bool | None]] | None = None,
                 fetch: Callable[[BinanceClient, str, float], MarginAccount] | None = None,
                 reserved: frozenset[str] = frozenset(),
                 **clocks: Callable[[], float]) -> None:
        """``emails``: exactly these; None: all of the master's, discovered. ``reserved``: the
        configured accounts' names, which no sub-account may take (they would share a label)."""
        self.master = master
        self._client = client
        self._executor = executor
        self._ttl = ttl
        self._fetch = fetch or fetch_sub_margin_account
        self._clocks = clocks
        self._monotonic = clocks.get("monotonic", time.monotonic)
        self._lock = threading.Lock()
        self._accounts: dict[str, CrossAccount] = {}
        self._refused: dict[str, float] = {}  # e-mail -> (monotonic) until no margin is assumed
        self._reserved = reserved
        self._clashes: set[str] = set()  # discovered e-mails already said to clash
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

    def roster(self, deadline: float) -> Roster | None:
        if self.discovery.good is None:  # nothing known yet: worth waiting for, this once
            self.discovery.get(deadline)
        else:
            self.discovery.latest()
        roster = self.discovery.good or self._fallback
        if roster is None:
            return None
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

    def _account(self, email: str) -> CrossAccount:
        client, fetch = self._client, self._fetch
        return CrossAccount(
            email, client,
            Cached(f"sub-account {email} of {self.master}",
                   lambda deadline: fetch(client, email, deadline), self._executor,
                   ttl=self._ttl, timeout=client.timeout, **self._clocks),
            thresholds=None, master=self.master)

    def accounts(self, deadline: float) -> Sequence[CrossAccount]:
        """The sub-accounts to poll this scrape."""
        roster = self.roster(deadline)
        subs = roster.subs if roster is not None else ()
        now = self._monotonic()
        with self._lock:
            self._refused = {e: t for e, t in self._refused.items() if t > now}
            polled = [s.email for s in subs if roster is not None and roster.polled(s)]
            # keep the caches (and error counters) of the sub-accounts still listed
            self._accounts = {e: self._accounts.get(e) or self._account(e) for e in polled}
            return [a for e, a in self._accounts.items() if e not in self._refused]

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

    def families(self) -> Iterator[Metric]:
        discovery = GaugeMetricFamily(
            "binance_margin_sub_account_discovery_up",
            "1 if the last fetch of the master's sub-account list and status succeeded, else 0.",
            labels=["master"])
        discovery.add_metric([self.master], 1.0 if self.discovery.last_ok else 0.0)
        yield discovery
        roster = self.discovery.good
        if roster is None:
            return
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
        with self._lock:
            refused = set(self._refused)
        for sub in subs:
            off = roster.margin.get(sub.email) is False or sub.email in refused
            enabled.add_metric([sub.email, self.master], 0.0 if off else 1.0)
            if roster.listed:
                frozen.add_metric([sub.email, self.master], 1.0 if sub.frozen else 0.0)
        for family in (enabled, frozen):
            if family.samples:
                yield family


class SubAccountsCollector:
    """The families of every master's sub-accounts: the cross accounts' families, and whether
    each master's list of them was fetched."""

    def __init__(self, groups: Sequence[SubAccounts], shown: AssetFilter | None = None) -> None:
        self.groups = tuple(groups)
        self.shown = shown or AssetFilter()

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        deadline = scrape.deadline
        accounts = [a for group in self.groups for a in group.accounts(deadline)]
        flights = [a.account.start(deadline) for a in accounts]
        by_master = {group.master: group for group in self.groups}

        def finish() -> Iterator[Metric]:
            shown, results = [], []
            for account, flight in zip(accounts, flights, strict=True):
                result = account.account.wait(flight, deadline)
                if not by_master[account.master].refuse(account.name, result):
                    shown.append(account)
                    results.append(result)
            yield from cross_families(shown, results, scrape, self.shown)
            for group in self.groups:
                yield from group.families()

        return finish


class SubAccountsProduct(Product):
    """A master key's sub-accounts (``sub_accounts: all`` or a list of e-mails)."""

    name = "sub_accounts"
    types = ("cross",)
    account_settings = (
        Setting("sub_accounts", names("an e-mail", "sub-account e-mails", all_word="all"), None,
                "Read the master key's sub-accounts: all (discovered) or these e-mails."),
    )

    def check(self, account: AccountConfig) -> None:
        if account.option("sub_accounts") is not None and account.type not in self.types:
            raise ConfigError(f"{account.source}.sub_accounts: only for type cross (a master "
                              f"key's sub-accounts are read as cross margin accounts)")

    def check_accounts(self, accounts: Sequence[AccountConfig]) -> None:
        """A sub-account's e-mail is its ``account`` label: no configured account, and no
        other master's list, may have it too (their series would merge into one)."""
        names = {a.name: a for a in accounts}
        listed: dict[str, AccountConfig] = {}
        for account in accounts:
            subs = account.option("sub_accounts")
            if subs is None or subs == "all":
                continue
            key = f"{account.source}.sub_accounts"
            for email in subs:
                if email in names:
                    raise ConfigError(f"{key}: {email!r} is also the name of "
                                      f"{names[email].source}; the two would share one "
                                      f"account label (rename the account)")
                if email in listed:
                    raise ConfigError(f"{key}: {email!r} is listed by "
                                      f"{listed[email].source}.sub_accounts too")
                listed[email] = account

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        return account.type in self.types and account.option("sub_accounts") is not None

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> SubAccounts:
        subs = account.option("sub_accounts")
        return SubAccounts(account.name, client, build.executor,
                           ttl=build.settings.cache_ttl_seconds,
                           emails=None if subs == "all" else subs,
                           reserved=frozenset(a.name for a in build.settings.accounts))

    def collector(self, parts: Sequence[SubAccounts],
                  build: Build) -> SubAccountsCollector | None:
        return SubAccountsCollector(parts, AssetFilter.of(build.settings)) if parts else None


PRODUCT = SubAccountsProduct()
