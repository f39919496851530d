"""A master key's sub-accounts, each shown exactly like a cross account (``account`` is the
sub-account's e-mail, the families are the cross product's).

With ``sub_accounts: all`` the list is discovered with ``GET /sapi/v1/sub-account/list`` (weight
1 a page of 200) at start and again every 10 minutes, in the background: new sub-accounts
appear, removed ones disappear with all their series. With a list of e-mails, exactly those are
read. Each sub-account has its own cache, errors and ``up``: one without margin (Binance answers
an error for its e-mail) is ``up 0`` with ``reason="api_error"`` and never disturbs the others.
They are fetched side by side on the shared executor, through the master's client: one rate
gate and one soft limit for all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.sub_accounts import (
    fetch_sub_account_emails,
    fetch_sub_margin_account,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.cross import AssetFilter, CrossAccount, cross_families
from binance_margin_exporter.collectors.product import Build, Product
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.config import AccountConfig, ConfigError, Setting, Settings
from binance_margin_exporter.config.schema import names

DISCOVERY_SECONDS = 600.0
DISCOVERY_RETRY_SECONDS = 60.0


class SubAccounts:
    def __init__(self, master: str, client: BinanceClient, executor: Executor, *, ttl: float,
                 emails: Sequence[str] | None = None,
                 list_emails: Callable[[float], Sequence[str]] | None = None,
                 fetch: Callable[[BinanceClient, str, float], object] | None = None,
                 **clocks: Callable[[], float]) -> None:
        """``emails``: exactly these; None: all of the master's, discovered."""
        self.master = master
        self._client = client
        self._executor = executor
        self._ttl = ttl
        self._fetch = fetch or fetch_sub_margin_account
        self._clocks = clocks
        self._lock = threading.Lock()
        self._accounts: dict[str, CrossAccount] = {}
        self._fixed = tuple(dict.fromkeys(emails)) if emails is not None else None
        self.discovery: Cached[Sequence[str]] | None = None
        if self._fixed is None:
            self.discovery = Cached(
                f"sub-account list of {master}",
                list_emails or (lambda deadline: fetch_sub_account_emails(client, deadline)),
                executor, ttl=DISCOVERY_SECONDS, error_ttl=DISCOVERY_RETRY_SECONDS,
                timeout=client.timeout, **clocks)

    def _emails(self, deadline: float) -> Sequence[str]:
        if self._fixed is not None:
            return self._fixed
        assert self.discovery is not None
        if self.discovery.good is None:  # nothing known yet: worth waiting for, this once
            self.discovery.get(deadline)
        else:
            self.discovery.latest()
        return self.discovery.good or ()

    def _account(self, email: str) -> CrossAccount:
        client, fetch = self._client, self._fetch
        return CrossAccount(
            email, client,
            Cached(f"sub-account {email} of {self.master}",
                   lambda deadline: fetch(client, email, deadline), self._executor,
                   ttl=self._ttl, timeout=client.timeout, **self._clocks),
            thresholds=None, master=self.master)

    def accounts(self, deadline: float) -> Sequence[CrossAccount]:
        emails = self._emails(deadline)
        with self._lock:
            # keep the caches (and error counters) of the sub-accounts still listed
            self._accounts = {e: self._accounts.get(e) or self._account(e) for e in emails}
            return list(self._accounts.values())

    def families(self) -> Iterator[Metric]:
        if self.discovery is None:
            return
        family = GaugeMetricFamily(
            "binance_margin_sub_account_discovery_up",
            "1 if the last fetch of the master's sub-account list succeeded, else 0.",
            labels=["master"])
        family.add_metric([self.master], 1.0 if self.discovery.last_ok else 0.0)
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

        def finish() -> Iterator[Metric]:
            results = [a.account.wait(f, deadline)
                       for a, f in zip(accounts, flights, strict=True)]
            yield from cross_families(accounts, results, scrape, self.shown)
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

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        return account.type in self.types and account.option("sub_accounts") is not None

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> SubAccounts:
        subs = account.option("sub_accounts")
        return SubAccounts(account.name, client, build.executor,
                           ttl=build.settings.cache_ttl_seconds,
                           emails=None if subs == "all" else subs)

    def collector(self, parts: Sequence[SubAccounts],
                  build: Build) -> SubAccountsCollector | None:
        return SubAccountsCollector(parts, AssetFilter.of(build.settings)) if parts else None


PRODUCT = SubAccountsProduct()
