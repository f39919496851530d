"""Cached: the TTL, the singleflight, deadlines, and how failures are counted and logged."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.collectors.cache import ERROR_REASONS, Cached, start_all
from tests.support.clocks import Clock
from tests.support.pool import EXECUTOR
from tests.support.waiting import wait_for


class Source:
    """A fetch that answers ``values`` in turn (an exception is raised), counting calls and
    recording the deadline each was given."""

    def __init__(self, *values: object, delay: float = 0.0,
                 release: threading.Event | None = None) -> None:
        self.values = list(values)
        self.delay = delay
        self.release = release
        self.calls = 0
        self.deadlines: list[tuple[float, float]] = []  # (deadline, monotonic at the call)

    def __call__(self, deadline: float) -> object:
        self.deadlines.append((deadline, time.monotonic()))
        self.calls += 1
        if self.release is not None:
            self.release.wait(30)
        if self.delay:
            time.sleep(self.delay)
        value = self.values[min(self.calls, len(self.values)) - 1]
        if isinstance(value, Exception):
            raise value
        return value


def cached(source: Source, clock: Clock | None = None, **kw) -> Cached:
    clock = clock or Clock(1000.0)
    return Cached("account a", source, EXECUTOR, monotonic=clock, wall=lambda: 1.7e9, **kw)


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def test_a_value_is_served_within_its_ttl_and_fetched_again_after():
    clock = Clock(1000.0)
    source = Source("v1", "v2")
    cache = cached(source, clock, ttl=10)
    assert cache.get(soon()).value == "v1"
    clock.now += 9.99
    assert cache.get(soon()).value == "v1" and source.calls == 1
    clock.now += 0.01
    assert cache.get(soon()).value == "v2" and source.calls == 2


def test_a_failure_is_kept_for_the_error_ttl():
    clock = Clock(1000.0)
    source = Source(UpstreamError("http", "HTTP 500"), "ok")
    cache = cached(source, clock, ttl=100, error_ttl=5)
    assert cache.get(soon()).error.reason == "http"
    clock.now += 4.9
    assert cache.get(soon()).error.reason == "http" and source.calls == 1
    clock.now += 0.1
    assert cache.get(soon()).value == "ok"
    assert cache.error_ttl == 5 and cached(Source(), ttl=7).error_ttl == 7


def test_a_value_s_own_ttl_wins():
    clock = Clock(1000.0)
    source = Source(3.0, 50.0, 1.0)
    cache = cached(source, clock, ttl=1000, ttl_of=lambda value: value)
    assert cache.get(soon()).value == 3.0
    clock.now += 2.9
    assert cache.get(soon()).value == 3.0
    clock.now += 0.1
    assert cache.get(soon()).value == 50.0


def test_invalidate_makes_the_next_caller_fetch():
    source = Source("v1", "v2")
    cache = cached(source, ttl=1000)
    cache.get(soon())
    cache.invalidate()
    assert cache.get(soon()).value == "v2"


def test_the_age_counts_from_the_start_of_the_fetch():
    clock = Clock(1000.0)

    def slow(deadline: float) -> str:
        clock.now += 4
        return "v"

    cache = Cached("x", slow, EXECUTOR, ttl=10, monotonic=clock)
    result = cache.get(soon())
    assert result.started == 1000.0 and result.duration == 4.0
    clock.now += 6
    assert cache.get(soon()).started == 1010.0  # 10 s after the start: fetched again


def test_concurrent_callers_share_one_fetch():
    release = threading.Event()
    source = Source("v", release=release)
    cache = cached(source, ttl=10)
    flights = [cache.start(soon()) for _ in range(5)]
    assert all(f is flights[0] for f in flights)
    release.set()
    assert [cache.wait(f, soon()).value for f in flights] == ["v"] * 5
    assert source.calls == 1


def test_the_fetch_runs_to_the_request_timeout_not_to_the_first_caller_s_deadline():
    source = Source("v")
    cache = cached(source, ttl=10)
    began = time.monotonic()
    cache.get(soon(0.05))
    assert source.deadlines[0][0] >= began + cache.timeout
    patient = Source("v")
    late = cached(patient, ttl=10)
    deadline = soon(late.timeout + 30)  # a caller with a longer deadline keeps its own
    late.get(deadline)
    assert patient.deadlines[0][0] == deadline


def test_one_short_deadline_never_poisons_the_cache_for_the_others():
    """A scrape with X-Prometheus-Scrape-Timeout-Seconds: 0.001 answers timeout for itself; the
    fetch goes on to its own deadline, and its answer serves the next scrape (it was a failure
    cached for ttl, for every scraper)."""
    release = threading.Event()
    deadlines = []

    def fetch(deadline: float) -> str:  # as the transport does: nothing past the deadline
        deadlines.append(deadline)
        release.wait(5)
        if time.monotonic() > deadline:
            raise UpstreamError("timeout", "no complete answer in time")
        return "fresh"

    cache = Cached("account a", fetch, EXECUTOR, ttl=10)
    hasty = cache.get(time.monotonic() + 0.001)
    assert hasty.error.reason == "timeout"
    release.set()
    patient = cache.get(soon(5.0))
    assert patient.value == "fresh" and patient.error is None
    assert len(deadlines) == 1  # one fetch for both


def test_every_timeout_is_counted_each_flight_once(caplog):
    release = threading.Event()
    source = Source("late", release=release)
    cache = cached(source, ttl=0)
    for expected in (1, 2):
        flight = cache.start(soon())
        for _ in range(2):  # two waiters of the same flight: one timeout
            result = cache.wait(flight, time.monotonic() - 1)
            assert result.error.reason == "timeout" and result.value is None
        assert cache.errors["timeout"] == expected
        release.set()
        wait_for(lambda f=flight: f.future.done())
        release.clear()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "account a: no answer within the scrape's deadline"] * 2


def test_a_flight_timed_out_and_then_failing_is_counted_once():
    release = threading.Event()
    source = Source(UpstreamError("http", "HTTP 502"), release=release)
    cache = cached(source, ttl=0)
    flight = cache.start(soon())
    assert cache.wait(flight, time.monotonic() - 1).error.reason == "timeout"
    release.set()
    wait_for(flight.future.done)
    assert cache.errors["timeout"] == 1 and cache.errors["http"] == 0


def test_a_waiter_waits_for_the_fetch_until_its_deadline():
    source = Source("v", delay=0.3)
    cache = cached(source, ttl=10)
    assert cache.get(soon(5)).value == "v"


def test_latest_starts_a_background_fetch_with_a_live_deadline():
    source = Source("bars")
    cache = cached(source, ttl=300, timeout=4.0)
    assert cache.latest() is None  # nothing yet: the fetch runs in the background
    wait_for(lambda: cache.good is not None)
    deadline, called_at = source.deadlines[0]
    assert called_at < deadline <= called_at + 4.0
    assert cache.latest() == "bars" and source.calls == 1


def test_latest_keeps_the_last_good_value_through_failures():
    clock = Clock(1000.0)
    source = Source("bars", UpstreamError("http", "HTTP 500"))
    cache = cached(source, clock, ttl=10)
    cache.get(soon())
    clock.now += 11
    assert cache.latest() == "bars"
    wait_for(lambda: source.calls == 2 and cache._flight is None)
    assert cache.latest() == "bars" and cache.last_ok is False


def test_success_is_recorded():
    cache = cached(Source("v"), ttl=10)
    assert cache.last_success is None and cache.last_ok is False
    cache.get(soon())
    assert cache.last_success == 1.7e9 and cache.last_ok is True and cache.good == "v"


def test_every_reason_has_a_counter_from_the_start():
    cache = cached(Source("v"), ttl=10)
    assert cache.errors == dict.fromkeys(ERROR_REASONS, 0)
    assert "internal" in cache.errors and "timeout" in cache.errors


def test_an_unexpected_exception_is_an_internal_error(caplog):
    clock = Clock(1000.0)
    source = Source(KeyError("x"), KeyError("x"))
    cache = cached(source, clock, ttl=0)
    result = cache.get(soon())
    assert result.error.reason == "internal"
    assert str(result.error) == "unexpected KeyError while fetching"
    cache.get(soon())
    assert cache.errors["internal"] == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "account a: unexpected KeyError while fetching (please report this)"] * 2
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert debug and debug[0].getMessage() == "account a: the unexpected error"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_a_failure_warns_once_then_at_debug_and_recovery_is_logged(caplog):
    clock = Clock(1000.0)
    error = UpstreamError("api_error", "Binance code -3003", code=-3003)
    other = UpstreamError("http", "HTTP 500", status=500)
    source = Source(error, error, other, "ok")
    cache = cached(source, clock, ttl=0)
    for _ in range(4):
        cache.get(soon())
    assert cache.errors["api_error"] == 2 and cache.errors["http"] == 1
    lines = [(r.levelno, r.getMessage()) for r in caplog.records
             if r.name == "binance_margin_exporter.collectors.cache"]
    assert lines == [
        (logging.WARNING, "account a: fetch failed (api_error): Binance code -3003"),
        (logging.DEBUG, "account a: fetch failed (api_error): Binance code -3003"),
        (logging.WARNING, "account a: fetch failed (http): HTTP 500"),
        (logging.INFO, "account a: fetched again after failures (http)"),
    ]


def test_a_back_off_says_not_fetched():
    source = Source(UpstreamError("rate_limited", "backing off", sent=False))
    cache = cached(source, ttl=0)
    cache.get(soon())
    assert cache.errors["rate_limited"] == 1


def test_a_back_off_logs_not_fetched(caplog):
    source = Source(UpstreamError("rate_limited", "backing off", sent=False))
    cached(source, ttl=0).get(soon())
    assert "account a: not fetched (rate_limited): backing off" in caplog.text


@pytest.mark.parametrize("reason", ["unknown_reason"])
def test_a_reason_without_a_counter_gets_one(reason):
    cache = cached(Source(UpstreamError(reason, "odd")), ttl=0)
    cache.get(soon())
    assert cache.errors[reason] == 1


def test_a_fetch_ending_within_the_grace_is_its_own_result():
    """A waiter gives the fetch a moment past the deadline: the fetch's requests end at the
    same deadline, and its own outcome is the one to count."""
    source = Source("v", delay=0.01)
    cache = cached(source, ttl=10)
    result = cache.get(time.monotonic())
    assert result.value == "v" and cache.errors["timeout"] == 0


def test_a_waiter_past_its_deadline_does_not_wait():
    release = threading.Event()
    source = Source("v", release=release)
    clock = Clock(1000.0)
    cache = cached(source, clock, ttl=10)
    flight = cache.start(soon())
    threading.Timer(0.5, release.set).start()
    result = cache.wait(flight, time.monotonic() - 1)
    assert result.error.reason == "timeout"
    assert (result.started, result.duration) == (1000.0, 0.0)
    wait_for(flight.future.done)


def test_start_all_starts_every_fetch_before_waiting_for_any():
    """Side by side: all three fetches are under way before any is waited for."""
    release = threading.Event()
    sources = [Source(i, release=release) for i in range(3)]
    caches = [cached(source, ttl=0) for source in sources]
    results = start_all(caches, soon())
    wait_for(lambda: all(s.calls == 1 for s in sources))  # all three under way at once
    release.set()
    assert [r.value for r in results()] == [0, 1, 2]
