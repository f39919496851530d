"""The tests' shared fetch pool."""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor


class _ForkSafeExecutor(Executor):
    """The tests' shared pool, made anew in a forked child (mutmut forks its workers from a
    process whose pool has threads; the child would keep the pool but not its threads, and
    every test using it would fail whatever the mutant: false kills)."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="test-fetch")

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        return self._pool.submit(fn, *args, **kwargs)


EXECUTOR = _ForkSafeExecutor()
