"""Waiting with a deadline: poll a condition, never sleep a fixed time before an assertion."""

from __future__ import annotations

import time
from collections.abc import Callable

from binance_margin_exporter.collectors.cache import Cached


def wait_for(predicate: Callable[[], object], timeout: float = 20.0,
             interval: float = 0.05) -> object:
    """Poll until ``predicate()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def wait_idle(cached: Cached) -> None:
    """Until the cache has no fetch under way (a background refresh has ended)."""
    deadline = time.monotonic() + 5
    while cached._flight is not None and time.monotonic() < deadline:
        time.sleep(0.002)
