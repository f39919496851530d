"""Clocks a test moves itself, instead of sleeping."""

from __future__ import annotations

import threading

WALL = 1_700_000_000.0  # the fake wall clock of collector tests


class Clock:
    """A clock that reads ``now`` and moves only when the test moves it."""

    def __init__(self, now: float = WALL) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StepClock:
    """A clock that advances by ``step`` every time it is read."""

    def __init__(self, start: float = 1000.0, step: float = 0.25) -> None:
        self.now = start
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            value = self.now
            self.now += self.step
            return value
