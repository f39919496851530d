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

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.cross import MarginAccount
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.sub_accounts import (
    NO_MARGIN_CODES,
    SubAccount,
    SubTotals,
    fetch_sub_account_status,
    fetch_sub_accounts,
    fetch_sub_margin_account,
    fetch_sub_margin_summary,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached, Result
from binance_margin_exporter.collectors.cross import AssetFilter, CrossAccount, cross_families
from binance_margin_exporter.collectors.product import (
    Build,
    Product,
    Scaled,
    fetches_per_minute,
)
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.config import AccountConfig, ConfigError, Setting, Settings
from binance_margin_exporter.config.schema import names, number

log = logging.getLogger(__name__)

DISCOVERY_SECONDS = 600.0
DISCOVERY_RETRY_SECONDS = 60.0
SUMMARY_WEIGHT = 10.0  # GET /sapi/v1/sub-account/margin/accountSummary: all of them
DETAIL_WEIGHT = 10.0  # GET /sapi/v1/sub-account/margin/account: one sub-account
DEFAULT_INTERVAL_SECONDS = 30.0  # the scrape interval assumed until two fetches were seen
DEFAULT_NORMAL_BAR = 1.5  # a sub-account's normal bar until its first detail says its own


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
                 summary: Callable[[float], dict[str, SubTotals]] | None = None,
                 reserved: frozenset[str] = frozenset(),
                 detail_max_age: float = 300.0, fall_fraction: float = 0.1,
                 budget: Callable[[float], float] | None = None,
                 serves: Callable[[str], bool] | None = None,
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
        self._fetch = fetch or fetch_sub_margin_account
        self._clocks = clocks
        self._monotonic = clocks.get("monotonic", time.monotonic)
        self._lock = threading.Lock()
        self._accounts: dict[str, CrossAccount] = {}
        self._refused: dict[str, float] = {}  # e-mail -> (monotonic) until no margin is assumed
        self._reserved = reserved
        self._clashes: set[str] = set()  # discovered e-mails already said to clash
        self._wall = clocks.get("wall", time.time)
        self._serves = serves or (lambda email: True)
        self._max_age = detail_max_age
        self._fall_fraction = fall_fraction
        self._budget = budget or (lambda interval: 1e12)  # no limit but the IP's
        self._planned: float | None = None  # the summary fetch last planned for
        self._fetch_times: deque[float] = deque(maxlen=7)
        self._spent: deque[tuple[float, float]] = deque()  # (monotonic, weight) of the minute
        self._levels: dict[str, float] = {}  # the last summary's levels
        self._rotation: float | None = None
        self._fits = True
        totals = summary or (lambda deadline: fetch_sub_margin_summary(client, deadline))
        self.summary: Cached[dict[str, SubTotals]] = Cached(
            f"sub-account summary of {master}", totals, executor, ttl=ttl,
            timeout=client.timeout, **clocks)
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
        roster = self._share(roster)
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

    def _share(self, roster: Roster) -> Roster:
        """This shard's sub-accounts of the roster."""
        return replace(roster, subs=tuple(s for s in roster.subs if self._serves(s.email)))

    def _account(self, email: str) -> CrossAccount:
        client, fetch = self._client, self._fetch
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
            return [a for e, a in self._accounts.items() if e not in self._refused]

    def start(self, deadline: float) -> Callable[[], tuple[list[CrossAccount],
                                                           list[Result[MarginAccount]]]]:
        """Start this scrape's summary; return what waits for it, fetches the details the
        plan names, and gives each polled sub-account's result (the summary's totals and
        level, and its last detail's assets and bars)."""
        accounts = self._polled(deadline)
        flight = self.summary.start(deadline)

        def finish() -> tuple[list[CrossAccount], list[Result[MarginAccount]]]:
            summary = self.summary.wait(flight, deadline)
            chosen = self._plan(summary, accounts) if summary.value is not None else []
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
        """One value a sub-account: the summary's totals and level over its last detail."""
        if summary.value is None:
            return Result(None, summary.error, summary.started, summary.duration)
        totals = summary.value.get(account.name)
        detail = account.account.good
        if totals is None:  # not in the summary: its own detail, if fetched by this plan
            if fresh is None:
                return Result(None, UpstreamError("invalid_response", "not in the summary"),
                              summary.started, summary.duration)
            return fresh
        value = MarginAccount(totals.margin_level, totals.total_asset_btc,
                              totals.total_liability_btc, totals.total_net_asset_btc, ())
        if detail is not None:
            value = replace(detail, margin_level=totals.margin_level,
                            total_asset_btc=totals.total_asset_btc,
                            total_liability_btc=totals.total_liability_btc,
                            total_net_asset_btc=totals.total_net_asset_btc)
        return Result(value, None, summary.started, summary.duration)

    def _interval(self) -> float:
        """The time between fetches of the summary: the median of the last gaps (Prometheus'
        scrape interval, or the cache's ttl if shorter); 30 s until two were seen."""
        times = list(self._fetch_times)
        gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
        return gaps[len(gaps) // 2] if gaps else DEFAULT_INTERVAL_SECONDS

    def _used(self, now: float) -> float:
        """Weight this master spent in the last minute."""
        while self._spent and self._spent[0][0] <= now - 60.0:
            self._spent.popleft()
        return sum(weight for _, weight in self._spent)

    def _plan(self, summary: Result[dict[str, SubTotals]],
              accounts: Sequence[CrossAccount]) -> list[CrossAccount]:
        """The details to fetch with this summary: none if it was fetched before (another
        scrape planned it); else the sub-accounts at risk (lowest level first), then the
        oldest details, as many as keep every detail under ``detail_max_age`` old and the
        master inside its weight budget."""
        assert summary.value is not None
        with self._lock:
            if summary.started == self._planned:
                return []
            self._planned = summary.started
            now = self._monotonic()
            self._fetch_times.append(now)
            self._spent.append((now, SUMMARY_WEIGHT))
            interval = self._interval()
            budget = self._budget(interval)
            window = budget - self._used(now)
            per_fetch = budget * interval / 60.0 - SUMMARY_WEIGHT
            risk, rest = [], []
            for account in accounts:
                totals = summary.value.get(account.name)
                level = None if totals is None else totals.margin_level
                last = self._levels.get(account.name)
                detail = account.account.good
                bar = detail.bars.normal_bar if detail is not None and \
                    detail.bars is not None else DEFAULT_NORMAL_BAR
                if level is None or level <= bar or (
                        last is not None and last > 0
                        and (last - level) / last > self._fall_fraction):
                    risk.append((-math.inf if level is None else level, account))
                else:
                    rest.append(account)
            self._levels = {e: t.margin_level for e, t in summary.value.items()}
            risk.sort(key=lambda pair: pair[0])
            n_risk = max(0, min(len(risk), int(window // DETAIL_WEIGHT)))
            spare = min(window, per_fetch) - n_risk * DETAIL_WEIGHT
            capacity = max(0, int(spare // DETAIL_WEIGHT))
            wall = self._wall()

            def age(account: CrossAccount) -> float:
                done = account.account.last_success
                return math.inf if done is None or account.account.good is None else \
                    wall - done

            # the oldest first, those never fetched before them; at an even pace (the
            # never-fetched ones too: after a start, a rotation gives each its detail)
            rest.sort(key=age, reverse=True)
            if self._max_age <= 0:
                want = len(rest)
            else:
                due = sum(1 for a in rest if interval + age(a) > self._max_age > 0
                          and age(a) < math.inf)
                want = max(due, math.ceil(len(rest) * interval / self._max_age))
            n_rest = min(want, capacity, len(rest))
            self._rotation = (math.inf if n_rest == 0 and rest else
                              math.ceil(len(rest) / max(n_rest, 1)) * interval)
            fits = self._max_age <= 0 or self._rotation <= self._max_age or not rest
            if fits != self._fits:
                self._fits = fits
                if not fits:
                    log.warning(
                        "sub-accounts of %s: a weight budget of %.0f a minute cannot give "
                        "each of %d sub-accounts a detail every %.0f s at a %.0f s scrape "
                        "interval (%d details a fetch, %d at risk): the rotation is stretched "
                        "to %.0f s", self.master, budget, len(rest) + len(risk),
                        self._max_age, interval, n_rest + n_risk, n_risk, self._rotation)
            chosen = [a for _, a in risk[:n_risk]] + rest[:n_rest]
            self._spent.extend((now, DETAIL_WEIGHT) for _ in chosen)
            return chosen

    def rewarn(self) -> None:
        """A reload: say again, at the next plan, if the budget does not fit."""
        with self._lock:
            self._fits = True

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
        stamp = GaugeMetricFamily(
            "binance_margin_detail_timestamp_seconds",
            "Unix time of the sub-account's detail (GET /sapi/v1/sub-account/margin/account) "
            "its per-asset series and bars come from; level and totals are the summary's, "
            "fetched every scrape.", labels=["account"])
        for account in accounts:
            if account.account.good is not None and account.account.last_success is not None:
                stamp.add_metric([account.name], account.account.last_success)
        if stamp.samples:
            yield stamp
        rotation = GaugeMetricFamily(
            "binance_margin_detail_rotation_seconds",
            "How long one full rotation of the master's sub-account details takes now "
            "(within the weight budget); +Inf when the budget leaves none.", labels=["master"])
        with self._lock:
            value = self._rotation
        if value is not None:
            rotation.add_metric([self.master], value)
            yield rotation

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
        roster = self._share(roster)
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


class SubAccountsProduct(Product):
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
        """What a master costs whatever its number of sub-accounts: the summary (10) a
        fetch, the status (10) and the list (1 a page of 200) every 10 minutes. The details
        (10 each) take what the budget leaves: :func:`detail_cost`."""
        if not self.reads(account, settings):
            return {}
        return {settings.base_url: SUMMARY_WEIGHT * fetches_per_minute(settings, interval)
                + (SUMMARY_WEIGHT + 1.0) * 60.0 / DISCOVERY_SECONDS}

    def scaled_weight(self, account: AccountConfig, settings: Settings,
                      interval: float) -> Scaled | None:
        """Each sub-account's detail (10) once per ``detail_max_age_seconds`` (every fetch
        with 0)."""
        if not self.reads(account, settings):
            return None
        subs = account.option("sub_accounts")
        age = settings.option("detail_max_age_seconds")
        per_fetch = fetches_per_minute(settings, interval)
        per_unit = DETAIL_WEIGHT * (per_fetch if age <= 0 else min(per_fetch, 60.0 / age))
        return Scaled("sub-account", settings.base_url, per_unit,
                      None if subs == "all" else len(subs),
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
                           budget=self.budget(account, build), serves=settings.serves)

    def collector(self, parts: Sequence[SubAccounts],
                  build: Build) -> SubAccountsCollector | None:
        for part in parts:  # every start and reload builds the collector
            part.rewarn()
        return SubAccountsCollector(parts, AssetFilter.of(build.settings)) if parts else None


PRODUCT = SubAccountsProduct()
