"""The two tiers of a master's sub-accounts: every level from the summary each fetch, the
details (per-asset values, bars) in a rotation inside the master's weight budget.

:class:`DetailRotation` plans, with each summary fetch, which details are fetched anew: the
sub-accounts at risk (at or under their normal bar, or fallen fast) first, then those with no
detail asked for yet (all at once, as far as the budget goes: a small fund is whole from its
first scrape), then the oldest details (one asked for that never came: by when it was
asked), as many as keep each under ``detail_max_age`` old and the master inside its budget.
It shows the details' age and how long one rotation takes.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.sub_accounts import (
    SUB_MARGIN_ACCOUNT,
    SUB_MARGIN_SUMMARY,
    SubTotals,
)
from binance_margin_exporter.collectors.cache import Result
from binance_margin_exporter.collectors.cross import CrossAccount

log = logging.getLogger(__name__)

SUMMARY_WEIGHT = float(SUB_MARGIN_SUMMARY.weight)  # all of them
DETAIL_WEIGHT = float(SUB_MARGIN_ACCOUNT.weight)  # one sub-account
DEFAULT_INTERVAL_SECONDS = 30.0  # the scrape interval assumed until two fetches were seen
DEFAULT_NORMAL_BAR = 1.5  # a sub-account's normal bar until its first detail says its own


class DetailRotation:
    """Which of a master's sub-accounts get their detail fetched anew with each summary."""

    def __init__(self, master: str, *, detail_max_age: float = 300.0,
                 fall_fraction: float = 0.1,
                 budget: Callable[[float], float] | None = None,
                 **clocks: Callable[[], float]) -> None:
        """``budget``: the master's weight a minute at a scrape interval (None: no limit but
        the IP's); ``detail_max_age`` 0: every detail on every fetch."""
        self.master = master
        self._monotonic = clocks.get("monotonic", time.monotonic)
        self._wall = clocks.get("wall", time.time)
        self._lock = threading.Lock()
        self._max_age = detail_max_age
        self._fall_fraction = fall_fraction
        self._budget = budget or (lambda interval: 1e12)  # no limit but the IP's
        self._planned: float | None = None  # the summary fetch last planned for
        self._fetch_times: deque[float] = deque(maxlen=7)
        self._spent: deque[tuple[float, float]] = deque()  # (monotonic, weight) of the minute
        self._levels: dict[str, float] = {}  # the last summary's levels
        self._tried: dict[str, float] = {}  # monotonic time each detail was last planned
        self._rotation: float | None = None
        self._fits = True

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

    def plan(self, summary: Result[dict[str, SubTotals]],
             accounts: Sequence[CrossAccount]) -> list[CrossAccount]:
        """The details to fetch with this summary: none if it was fetched before (another
        scrape planned it); else the sub-accounts at risk (lowest level first), then every
        one with no detail yet, then the oldest details, as many as keep every detail under
        ``detail_max_age`` old; the master inside its weight budget (a minute's, at the
        share of one fetch)."""
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
            risk, new, rest = [], [], []
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
                elif detail is None and account.name not in self._tried:
                    new.append(account)
                else:
                    rest.append(account)
            self._levels = {e: t.margin_level for e, t in summary.value.items()}
            risk.sort(key=lambda pair: pair[0])
            n_risk = max(0, min(len(risk), int(window // DETAIL_WEIGHT)))
            spare = min(window, per_fetch) - n_risk * DETAIL_WEIGHT
            capacity = max(0, int(spare // DETAIL_WEIGHT))
            wall = self._wall()

            def age(account: CrossAccount) -> float:
                """How old its detail is; one that never came: since it was last asked
                for (a detail that always fails waits its turn, starving no other)."""
                done = account.account.last_success
                if done is not None:
                    return wall - done
                return now - self._tried.get(account.name, -math.inf)

            # those with no detail yet at once, as many as the fetch's share of the budget
            # allows (the pace is for keeping details fresh, not for first fetches); then the
            # oldest first, at an even pace
            n_new = min(len(new), capacity)
            rest.sort(key=age, reverse=True)
            others = len(new) + len(rest)
            if self._max_age <= 0:
                want = pace = others
            else:
                due = sum(1 for a in rest if interval + age(a) > self._max_age)
                want = max(due, math.ceil(len(rest) * interval / self._max_age))
                pace = max(due, math.ceil(others * interval / self._max_age))
            n_rest = min(want, capacity - n_new, len(rest))
            # the rotation the budget allows (while first fetches take the budget, too)
            pace = min(pace, capacity, others)
            self._rotation = (math.inf if pace == 0 and others else
                              math.ceil(others / max(pace, 1)) * interval)
            fits = self._max_age <= 0 or self._rotation <= self._max_age or not others
            if fits != self._fits:
                self._fits = fits
                if not fits:
                    log.warning(
                        "sub-accounts of %s: a weight budget of %.0f a minute cannot give "
                        "each of %d sub-accounts a detail every %.0f s at a %.0f s scrape "
                        "interval (%d details a fetch, %d at risk): the rotation is stretched "
                        "to %.0f s", self.master, budget, others + len(risk),
                        self._max_age, interval, pace + n_risk, n_risk, self._rotation)
            chosen = [a for _, a in risk[:n_risk]] + new[:n_new] + rest[:n_rest]
            self._spent.extend((now, DETAIL_WEIGHT) for _ in chosen)
            listed = {a.name for a in accounts}
            self._tried = {e: t for e, t in self._tried.items() if e in listed}
            self._tried.update((a.name, now) for a in chosen)
            return chosen

    def rebudget(self, budget: Callable[[float], float] | None) -> None:
        """A reload: the master's weight budget of the new configuration."""
        self._budget = budget or (lambda interval: 1e12)
        self.rewarn()

    def rewarn(self) -> None:
        """A reload: say again, at the next plan, if the budget does not fit."""
        with self._lock:
            self._fits = True

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
