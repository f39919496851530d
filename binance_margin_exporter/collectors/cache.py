"""The one cache every product uses: a value fetched on demand, kept for a while, shared.

A :class:`Cached` fetches at most once per ``ttl`` (``error_ttl`` after a failure). Callers that
arrive while a fetch is under way wait for that fetch instead of starting another (singleflight),
so 64 concurrent scrapes cost one request. Every fetch runs on the shared executor with a
deadline, and a caller waits no longer than its own deadline: what is not back by then is a
``timeout`` for that caller, while the fetch finishes (bounded by the same deadline) into the
cache. :meth:`Cached.latest` serves values that need not be fresh (margin bars): it returns the
last good one at once and refreshes it in the background when due.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from binance_margin_exporter.binance.errors import REASONS, UpstreamError

log = logging.getLogger(__name__)

T = TypeVar("T")
# A waiter gives the fetch this long past their shared deadline to end by itself (its requests
# end at the deadline), so that the fetch's own error is the one counted and cached.
WAIT_GRACE_SECONDS = 0.1
ERROR_REASONS = (*REASONS, "internal")


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    value: T | None
    error: UpstreamError | None
    started: float  # monotonic time the fetch began: the cache age counts from here
    duration: float


@dataclass(slots=True)
class _Flight(Generic[T]):
    """One fetch under way; ``counted``: its failure has been counted already."""

    future: Future[Result[T]] = field(default_factory=Future)
    counted: bool = False


def bare(error: UpstreamError) -> UpstreamError:
    """The error without its traceback and the exceptions it was raised from: what a result
    keeps past its fetch is the reason and the message, not the frames of the fetch (a frame
    holds the error in a local: a cycle that a scrape's freeze would keep, and that only a
    thaw frees; each failing fetch's frames, 1.5 MiB a scrape at 200 failing accounts)."""
    error.__traceback__ = None
    error.__context__ = None
    error.__cause__ = None
    return error


class Cached(Generic[T]):
    def __init__(
        self,
        what: str,
        fetch: Callable[[float], T],
        executor: Executor,
        *,
        ttl: float,
        error_ttl: float | None = None,
        ttl_of: Callable[[T], float] | None = None,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.what = what  # for log lines: "account main", "margin bars of main"
        self._fetch = fetch
        self._executor = executor
        self.ttl = ttl
        self.error_ttl = ttl if error_ttl is None else error_ttl
        self.ttl_of = ttl_of  # a value's own ttl, where it depends on the value
        self.timeout = timeout
        self._monotonic = monotonic
        self._wall = wall
        self._lock = threading.Lock()
        self._result: Result[T] | None = None
        self._flight: _Flight[T] | None = None
        self._refetch = False  # a refresh waits for the fetch under way to end
        self.good: T | None = None  # the last value fetched successfully
        self.last_ok = False  # did the last fetch succeed?
        # (reason, code, sent) of the failure being warned of
        self._failing: tuple[str, int | None, bool] | None = None
        self.errors = dict.fromkeys(ERROR_REASONS, 0)
        self.last_success: float | None = None

    def _fresh(self, result: Result[T] | None) -> bool:
        if result is None:
            return False
        if result.error is not None:
            ttl = self.error_ttl
        elif self.ttl_of is not None:
            ttl = self.ttl_of(result.value)  # type: ignore[arg-type]
        else:
            ttl = self.ttl
        return self._monotonic() - result.started < ttl

    def invalidate(self) -> None:
        """Forget the cached result: the next caller fetches (or joins a fetch under way)."""
        with self._lock:
            self._result = None

    def refresh(self) -> None:
        """Fetch anew at once, in the background (Binance pushed a change): the cached result
        is dropped (:meth:`invalidate`) and a fetch starts; if one is under way, it may have
        read the state before the change, so one more follows it (at most one)."""
        with self._lock:
            self._result = None
            flight = self._flight
            if flight is not None:
                if self._refetch:
                    return
                self._refetch = True
        if flight is None:
            self.start(time.monotonic() + self.timeout)
        else:
            flight.future.add_done_callback(self._refetched)

    def _refetched(self, _done: Future[Result[T]]) -> None:
        with self._lock:
            self._refetch = False
        self.invalidate()
        try:
            self.start(time.monotonic() + self.timeout)
        except RuntimeError:  # the executor shut down: the exporter is closing
            pass

    def start(self, deadline: float) -> _Flight[T]:
        """The cached result if fresh, else the fetch under way, else a new fetch (which runs
        until ``timeout`` from now, whatever ``deadline`` the caller waits to)."""
        with self._lock:
            if self._fresh(self._result):
                done: _Flight[T] = _Flight(counted=True)
                done.future.set_result(self._result)  # type: ignore[arg-type]
                return done
            if self._flight is None:
                flight: _Flight[T] = _Flight()
                self._flight = flight
                # The fetch runs to the longest deadline any scrape may have (the request
                # timeout), not to the first caller's: a scrape with a short deadline answers
                # timeout for itself only, and never caches a failure for the others (one
                # request with X-Prometheus-Scrape-Timeout-Seconds: 0.001 made every scraper
                # up 0 for cache_ttl_seconds).
                self._executor.submit(self._run, flight,
                                      max(deadline, time.monotonic() + self.timeout))
            return self._flight

    def wait(self, flight: _Flight[T], deadline: float) -> Result[T]:
        """The flight's result, or a ``timeout`` if it is not back by ``deadline``."""
        waited_from = self._monotonic()
        timeout = max(0.0, deadline + WAIT_GRACE_SECONDS - time.monotonic())
        try:
            return flight.future.result(timeout=timeout)
        except FutureTimeout:
            error = UpstreamError("timeout", "no answer within the scrape's deadline")
            with self._lock:
                if not flight.counted:
                    flight.counted = True
                    self.errors["timeout"] += 1
                    log.warning("%s: %s", self.what, error)
            return Result(None, error, waited_from, self._monotonic() - waited_from)

    def get(self, deadline: float) -> Result[T]:
        return self.wait(self.start(deadline), deadline)

    def latest(self) -> T | None:
        """The last good value now; a background fetch when the cached one is due."""
        self.start(time.monotonic() + self.timeout)
        return self.good

    def _run(self, flight: _Flight[T], deadline: float) -> None:
        started = self._monotonic()
        value: T | None = None
        error: UpstreamError | None = None
        try:
            value = self._fetch(deadline)
        except UpstreamError as exc:
            error = bare(exc)
        except Exception as exc:
            error = UpstreamError("internal", f"unexpected {type(exc).__name__} while fetching")
            log.error("%s: %s (please report this)", self.what, error)
            log.debug("%s: the unexpected error", self.what, exc_info=True)
        result = Result(value, error, started, self._monotonic() - started)
        with self._lock:
            self.last_ok = error is None
            if error is None:
                if self._failing is not None:
                    log.info("%s: fetched again after failures (%s)", self.what,
                             self._failing[0])
                self._failing = None
                self.good = value
                self.last_success = self._wall()
            elif not flight.counted:
                flight.counted = True
                self.errors[error.reason] = self.errors.get(error.reason, 0) + 1
                kind = (error.reason, error.code, error.sent)
                if error.reason != "internal":
                    # one warning when a failure starts or changes kind; its repeats (every
                    # scrape, for a sub-account without margin) only at debug. A fetch held
                    # back by a back-off says why once, then each new attempt's failure again:
                    # a warning per back-off period.
                    level = logging.DEBUG if kind == self._failing else logging.WARNING
                    what = "fetch failed" if error.sent else "not fetched"
                    log.log(level, "%s: %s (%s): %s", self.what, what, error.reason, error)
                    self._failing = kind
            self._result = result
            self._flight = None
        flight.future.set_result(result)


def start_all(caches: Sequence[Cached[T]], deadline: float) -> Callable[[], list[Result[T]]]:
    """Start every cache's fetch now, side by side; return what waits for all of them (each
    until ``deadline``), in order: a product starts its fetches before any product waits."""
    flights = [cache.start(deadline) for cache in caches]
    return lambda: [cache.wait(flight, deadline)
                    for cache, flight in zip(caches, flights, strict=True)]
