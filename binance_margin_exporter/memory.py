"""Memory given back to the system once a scrape is over, and the collector of cycles kept to
what is new (:class:`Settle`).

glibc's ``malloc`` keeps what is freed for reuse, and raises its mmap threshold each time a
large block is freed: after a few scrapes the large blocks of one (Binance's answers, the
exposition text, its gzip) all come from the heap, and the heap stays at the largest scrape's
peak (200 configured accounts: 83 MiB where 76 hold). Fixed thresholds keep blocks of 128 KiB
and up in mappings of their own, unmapped when freed, and give back free memory past 128 KiB
at the heap's top. Nothing happens where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import gc
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 128 * 1024


def release_promptly() -> bool:
    """Set the thresholds (before the threads start); False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and \
        bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES))


class Settle:
    """After each scrape, the objects that outlive it leave the collector of cycles.

    Python's full collection walks every tracked object: at 2,000 sub-accounts about 134,000
    (their parsed answers, clients, caches), 75 to 120 ms of CPU, which landed in about one
    scrape of three. After a scrape, what it left for good is frozen (``gc.freeze()``): the
    collections that follow walk only what is newer, 1 to 2 ms. The cycles made since the
    last freeze are collected first, so no garbage is frozen; a frozen object that dies
    without a cycle (an answer replaced by the next) is freed as ever. One that becomes a
    cycle's garbage later is collected when everything is thawed: with a new configuration
    (the old one's clients go), and every ``thaw_every`` scrapes (about once an hour at
    30 s), so nothing stays uncollected for long.
    """

    def __init__(self, thaw_every: int = 120, growth: float = 2.0) -> None:
        self.thaw_every = thaw_every
        self.growth = growth
        self._count = 0
        self._configuration: object = None
        self._thawed_at = 0  # the objects frozen right after the last thaw

    def __call__(self, configuration: object = None) -> None:
        """``configuration``: the one in use for this scrape (a new one thaws first). The
        frozen objects growing to ``growth`` times what the last thaw left thaw too: what a
        scrape leaves for good is about the same each time, so growth is garbage kept."""
        self._count += 1
        if configuration is not self._configuration or self._count % self.thaw_every == 0 \
                or gc.get_freeze_count() > self.growth * self._thawed_at + 10_000:
            self._configuration = configuration
            gc.unfreeze()
            self._thawed_at = -1
        gc.collect()  # only what is not frozen: what is new since the last scrape
        gc.freeze()
        if self._thawed_at < 0:
            self._thawed_at = gc.get_freeze_count()
