"""Memory given back to the system once a scrape is over.

glibc's ``malloc`` keeps what is freed for reuse, and raises its mmap threshold each time a
large block is freed: after a few scrapes the large blocks of one (Binance's answers, the
exposition text, its gzip) all come from the heap, and the heap stays at the largest scrape's
peak (200 configured accounts: 83 MiB where 76 hold). Fixed thresholds keep blocks of 128 KiB
and up in mappings of their own, unmapped when freed, and give back free memory past 128 KiB
at the heap's top. Nothing happens where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
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
