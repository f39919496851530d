"""The standard ``process_*`` metrics: the bytes ``prometheus_client``'s ProcessCollector gives.

ProcessCollector builds six metric objects and passes them through ``generate_latest`` on every
scrape, which cost about a tenth of a whole scrape of a small account (0.10 ms of 0.95 ms).
This reads the same three places of ``/proc`` and fills the text in directly. A test compares
the two byte for byte on a fake ``/proc``, and by name and type on the real one.
"""

from __future__ import annotations

import mmap
import os

from exporter.exposition import go_float

_STAT = (
    "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
    "# TYPE process_virtual_memory_bytes gauge\n"
    "process_virtual_memory_bytes {}\n"
    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
    "# TYPE process_resident_memory_bytes gauge\n"
    "process_resident_memory_bytes {}\n"
    "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
    "# TYPE process_start_time_seconds gauge\n"
    "process_start_time_seconds {}\n"
    "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
    "# TYPE process_cpu_seconds_total counter\n"
    "process_cpu_seconds_total {}\n"
)
_FDS = (
    "# HELP process_open_fds Number of open file descriptors.\n"
    "# TYPE process_open_fds gauge\n"
    "process_open_fds {}\n"
    "# HELP process_max_fds Maximum number of open file descriptors.\n"
    "# TYPE process_max_fds gauge\n"
    "process_max_fds {}\n"
)


class ProcessMetrics:
    """``render()`` gives the process metrics of ``<proc>/<pid>``; nothing where there is no
    ``/proc`` (as ProcessCollector does)."""

    def __init__(self, proc: str = "/proc", pid: str = "self") -> None:
        directory = os.path.join(proc, pid)
        self._stat = os.path.join(directory, "stat")
        self._limits = os.path.join(directory, "limits")
        self._fd = os.path.join(directory, "fd")
        try:
            self._ticks = float(os.sysconf("SC_CLK_TCK"))
        except (ValueError, OSError):
            self._ticks = 100.0
        self._pagesize = mmap.PAGESIZE
        self._btime = 0.0
        try:
            with open(os.path.join(proc, "stat"), "rb") as stat:
                for line in stat:
                    if line.startswith(b"btime "):
                        self._btime = float(line.split()[1])
                        break
        except OSError:
            pass

    def render(self) -> bytes:
        if not self._btime:
            return b""
        out = []
        try:
            with open(self._stat, "rb") as stat:
                parts = stat.read().rsplit(b")", 1)[-1].split()
            ticks = self._ticks
            out.append(_STAT.format(
                go_float(float(parts[20])),
                go_float(float(parts[21]) * self._pagesize),
                go_float(float(parts[19]) / ticks + self._btime),
                go_float(float(parts[11]) / ticks + float(parts[12]) / ticks),
            ))
        except (OSError, IndexError, ValueError):
            pass
        try:
            max_fds = None
            with open(self._limits, "rb") as limits:
                for line in limits:
                    if line.startswith(b"Max open file"):
                        max_fds = float(line.split()[3])
                        break
            if max_fds is not None:
                open_fds = len(os.listdir(self._fd))
                out.append(_FDS.format(go_float(float(open_fds)), go_float(max_fds)))
        except (OSError, IndexError, ValueError):
            pass
        return "".join(out).encode("utf-8")
