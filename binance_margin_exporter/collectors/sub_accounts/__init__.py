"""A master key's sub-accounts, each shown exactly like a cross account (``account`` is the
sub-account's e-mail, the families are the cross product's).

The master's roster (which exist, which are frozen, which have margin) is asked at start and
again every 10 minutes, in the background: :mod:`.roster`. New sub-accounts
appear, removed ones disappear with all their series.

Only sub-accounts that can answer are polled (a detail's weight each): a frozen one, or one
whose margin is off, is shown by ``binance_margin_sub_account_frozen`` and
``binance_margin_sub_account_margin_enabled`` and has no ``binance_margin_up`` (nothing is wrong
with it; nothing fires). One whose margin fetch still answers "margin account does not exist"
(``-3003``) is treated so too, and asked again only every 10 minutes. Each polled sub-account
has its own cache, errors and ``up``, and never disturbs the others. They are fetched side by
side on the shared executor, through the master's client: one rate gate and one soft limit for
all of them. Every level comes from the summary each fetch, the details in a rotation inside
the master's weight budget: :mod:`.rotation`.

This module holds the collector and the product; one master's group is
:mod:`.group`'s :class:`SubAccounts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.cross import MarginAccount
from binance_margin_exporter.binance.sub_accounts import (
    SUB_ACCOUNT_LIST,
    SUB_ACCOUNT_STATUS,
    SUB_MARGIN_ACCOUNT,
    SUB_MARGIN_SUMMARY,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Result
from binance_margin_exporter.collectors.cross import AssetFilter, CrossAccount, cross_families
from binance_margin_exporter.collectors.product import (
    AcrossShards,
    Build,
    Product,
    Scaled,
    ScaledWeight,
    fetches_per_minute,
)
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.sub_accounts.group import SubAccounts
from binance_margin_exporter.collectors.sub_accounts.roster import (
    DISCOVERY_SECONDS,
    MAX_SUB_ACCOUNTS,
)
from binance_margin_exporter.collectors.weights import Costs, host_of
from binance_margin_exporter.config import (
    AccountConfig,
    ChecksAccount,
    ChecksAccounts,
    ConfigError,
    Configured,
    Setting,
    Settings,
)
from binance_margin_exporter.config.schema import integer, names, number


class SubAccountsCollector:
    """The families of every master's sub-accounts: the cross accounts' families, and whether
    each master's list of them was fetched."""

    def __init__(self, groups: Sequence[SubAccounts], shown: AssetFilter | None = None) -> None:
        self.groups = tuple(groups)
        self.shown = shown or AssetFilter()

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        deadline = scrape.deadline
        pending = [group.start(deadline) for group in self.groups]

        def finish() -> Iterator[Metric]:
            shown: list[CrossAccount] = []
            results: list[Result[MarginAccount]] = []
            for wait in pending:
                accounts, values = wait()
                shown.extend(accounts)
                results.extend(values)
            yield from cross_families(shown, results, scrape, self.shown)
            for group in self.groups:
                yield from group.families()
            for group in self.groups:
                yield from group.detail_families(
                    [a for a in shown if a.master == group.master])

        return finish


class SubAccountsProduct(Product[SubAccounts], Configured, ChecksAccount, ChecksAccounts,
                         ScaledWeight, AcrossShards):
    """A master key's sub-accounts (``sub_accounts: all`` or a list of e-mails)."""

    name = "sub_accounts"
    types = ("cross",)
    shards_within = True  # every shard discovers a master's sub-accounts and keeps its share
    account_settings = (
        Setting("sub_accounts", names("an e-mail", "sub-account e-mails", all_word="all"), None,
                "Read the master key's sub-accounts: all (discovered) or these e-mails."),
    )
    settings = (
        Setting("detail_max_age_seconds", number(0, 86400), 300.0,
                "The oldest a sub-account's detail (per-asset values, bars) may be: the "
                "rotation fetches each at least this often (0: every detail every fetch)."),
        Setting("detail_fall_fraction", number(0, 1), 0.1,
                "A sub-account whose level fell by more than this fraction since the last "
                "fetch is at risk: its detail is fetched at once."),
        Setting("max_sub_accounts", integer(1, 100_000), MAX_SUB_ACCOUNTS,
                "The most sub-accounts read per master (and shard), the first in Binance's "
                "order: 20,000 make a page that takes longer to render than a scrape may "
                "(binance_margin_sub_accounts_left_out counts the rest)."),
        Setting("weight_budget_per_minute", number(0, 12000), None,
                "Request weight a minute each master's sub-accounts may use (default: what "
                "ip_weight_soft_limit leaves after the other accounts, shared by the masters)."),
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

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """What a master costs whatever its number of sub-accounts: the summary a fetch,
        the status every 10 minutes, with ``all`` the list (one page of 200 counted: the
        number is known only online), and what the rotation asks beyond the details'
        even pace (:meth:`scaled_weight`): it asks ``ceil(n x fetch interval / age)``
        details a fetch, so at least one a fetch while there are any (for ``all``, one a
        fetch: the most it can be)."""
        if not self.reads(account, settings):
            return {}
        costs = Costs(settings, interval).each_fetch(SUB_MARGIN_SUMMARY)
        costs.every(DISCOVERY_SECONDS, SUB_ACCOUNT_STATUS)
        subs = account.option("sub_accounts")
        if subs == "all":
            costs.every(DISCOVERY_SECONDS, SUB_ACCOUNT_LIST)
        age = settings.option("detail_max_age_seconds")
        if age > 0:
            every = 60.0 / costs.fetches  # seconds between fetches
            # details a fetch at an even pace: at most every listed one
            even = min(len(subs), len(subs) * every / age) if subs != "all" else 0.0
            extra = 1.0 if subs == "all" else math.ceil(even) - even  # details a fetch
            costs.calls(SUB_MARGIN_ACCOUNT, extra * costs.fetches)
        return costs.by_host

    def scaled_weight(self, account: AccountConfig, settings: Settings,
                      interval: float) -> Scaled | None:
        """Each sub-account's detail once per ``detail_max_age_seconds`` (every fetch with
        0); the rotation's rounding up to whole details a fetch is in
        :meth:`weight_per_minute`."""
        if not self.reads(account, settings):
            return None
        subs = account.option("sub_accounts")
        age = settings.option("detail_max_age_seconds")
        per_fetch = fetches_per_minute(settings, interval)
        host = host_of(settings, SUB_MARGIN_ACCOUNT)
        details = per_fetch if age <= 0 else min(per_fetch, 60.0 / age)  # a minute, each
        per_unit = Costs(settings, interval).calls(SUB_MARGIN_ACCOUNT, details).by_host[host]
        return Scaled("sub-account", host, per_unit, None if subs == "all" else len(subs),
                      max(age, 60.0 / per_fetch))

    def budget(self, account: AccountConfig, build: Build) -> Callable[[float], float]:
        """The master's weight a minute at an interval: the configured budget, or its own
        fixed cost and an equal share of what ``ip_weight_soft_limit`` leaves after every
        declared cost on its host from its egress (the masters leaving by it share it)."""
        settings = build.settings
        configured = settings.option("weight_budget_per_minute")
        masters = sum(1 for a in settings.accounts
                      if self.reads(a, settings) and a.egress == account.egress)

        def budget(interval: float) -> float:
            if configured is not None:
                return float(configured)
            host = settings.base_url
            left = settings.ip_weight_soft_limit - build.weights(interval).get(
                (account.egress, host), 0.0)
            own = self.weight_per_minute(account, settings, interval).get(host, 0.0)
            return max(0.0, own + left / max(masters, 1))

        return budget

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> SubAccounts:
        subs = account.option("sub_accounts")
        settings = build.settings
        return SubAccounts(account.name, client, build.executor,
                           ttl=settings.cache_ttl_seconds,
                           emails=None if subs == "all" else subs,
                           reserved=frozenset(a.name for a in settings.accounts),
                           detail_max_age=settings.option("detail_max_age_seconds"),
                           fall_fraction=settings.option("detail_fall_fraction"),
                           budget=self.budget(account, build), serves=settings.serves,
                           max_subs=settings.option("max_sub_accounts"))

    def collector(self, parts: Sequence[SubAccounts],
                  build: Build) -> SubAccountsCollector | None:
        settings = build.settings
        accounts = {a.name: a for a in settings.accounts}
        reserved = frozenset(accounts)
        for part in parts:  # every start and reload builds the collector
            part.reconfigure(reserved, self.budget(accounts[part.master], build))
        return SubAccountsCollector(parts, AssetFilter.of(build.settings)) if parts else None


PRODUCT = SubAccountsProduct()
