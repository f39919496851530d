"""The cost ledger's counting: an account's histories (:class:`Stream`), what was counted of
them (:class:`Tally`: the sums in decimal, the end of each history's last window and the ids
seen within the overlap) and one read of them all (:class:`Ledger`). No HTTP here: a
stream's ``read`` is its ``binance/ledger.py`` call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.ledger import Read
from binance_margin_exporter.collectors.invalid_fields import InvalidFields

OVERLAP_MS = 15 * 60 * 1000  # each window starts this long before the last one ended
INTEREST = "interest"
LIQUIDATIONS = "liquidations"
INCOME = "income"
LABELS = {INTEREST: ("asset", "symbol"), LIQUIDATIONS: ("symbol", "side"),
          INCOME: ("market", "type", "asset", "direction")}


@dataclass(frozen=True)
class Stream:
    """One history of an account: its key (of its cursor and seen ids), the counter it adds
    to, and its read of a window (start ms, end ms, deadline)."""

    key: str
    family: str
    read: Callable[[int, int, float], Read]


@dataclass
class Tally:
    """An account's counters and, per history, the end of its last window read and the ids
    seen within the overlap."""

    started_ms: int
    overlap_ms: int = OVERLAP_MS
    sums: dict[str, dict[tuple[str, ...], Decimal]] = field(
        default_factory=lambda: {family: {} for family in LABELS})
    last_liquidation_ms: int | None = None
    cursors: dict[str, int] = field(default_factory=dict)
    seen: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # the latest id's time let go
    resume: dict[str, int] = field(default_factory=dict)  # a window read in part goes on here
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def window(self, key: str, now_ms: int) -> tuple[int, int] | None:
        """The window to read next: from the last one's end less the overlap (never before
        the start) to now; None when now is not past that (a clock stepped back).

        A clock that stepped back behind the last window's end (after a step forward) pulls
        the cursor back to now, so the records of the time it skipped are read; the window
        then starts after the latest id let go (``dropped``): no record is counted twice."""
        with self.lock:
            cursor = self.cursors.get(key, self.started_ms)
            if now_ms < cursor:
                cursor = self.cursors[key] = max(self.started_ms, now_ms)
            start = max(self.started_ms, cursor - self.overlap_ms)
            start = max(start, self.dropped.get(key, -1) + 1, self.resume.get(key, -1))
        return (start, now_ms) if now_ms >= start else None

    def take(self, stream: Stream, read: Read, start: int, end: int) -> list[str]:
        """Count the records of a window read not counted before; the fields of the new ones
        that did not parse (each such record is skipped, and noted once)."""
        bad: list[str] = []
        with self.lock:
            seen = self.seen.setdefault(stream.key, {})
            sums = self.sums[stream.family]
            for record in read.records:
                # a row without a usable time (-1) is kept as seen at the window's end: it
                # is let go only once windows start past that end, so past the row itself
                unknown = record.time_ms < 0
                if record.id in seen or not (unknown or start <= record.time_ms <= end):
                    continue
                seen[record.id] = end if unknown else record.time_ms
                if record.amount is None:
                    bad.append(record.bad)
                    continue
                sums[record.labels] = sums.get(record.labels, Decimal(0)) + record.amount
                if stream.family == LIQUIDATIONS and (self.last_liquidation_ms is None or
                                                      record.time_ms > self.last_liquidation_ms):
                    self.last_liquidation_ms = record.time_ms
            # a window read in part (at the page budget) moves only as far as it was read
            done = end if read.until is None else min(end, read.until)
            cursor = max(self.cursors.get(stream.key, self.started_ms), done)
            if read.until is None:
                self.resume.pop(stream.key, None)
            else:  # the next window goes on from there (not the overlap: it would read the
                # same pages again)
                self.resume[stream.key] = max(self.resume.get(stream.key, start), done + 1)
            self.cursors[stream.key] = cursor
            keep_from = cursor - self.overlap_ms
            for old in [i for i, t in seen.items() if t < keep_from]:
                self.dropped[stream.key] = max(self.dropped.get(stream.key, -1), seen.pop(old))
        return bad

    def snapshot(self) -> tuple[dict[str, list[tuple[tuple[str, ...], Decimal]]], int | None]:
        with self.lock:
            return ({family: sorted(sums.items()) for family, sums in self.sums.items()},
                    self.last_liquidation_ms)


@dataclass(frozen=True)
class LedgerRead:
    """A fetch's outcome (the counters live in the part's :class:`Tally`)."""

    records: int
    invalid: tuple[str, ...] = ()


class Ledger:
    """An account's ledger: its histories (``streams()``: they may depend on the account,
    as the isolated pairs do), read into its tally."""

    def __init__(self, streams: Callable[[float], tuple[list[Stream], list[UpstreamError]]],
                 invalid: InvalidFields, wall: Callable[[], float] = time.time,
                 tally: Tally | None = None) -> None:
        self.streams = streams
        self.invalid = invalid
        self.wall = wall
        # a rebuilt account's (on a reload) goes on with its tally: nothing in between is lost
        self.tally = tally if tally is not None else Tally(int(wall() * 1000))
        self.closed = threading.Event()  # the exporter closes: no further page is asked

    def fetch(self, deadline: float) -> LedgerRead:
        """Read every history's next window; one that fails keeps its cursor (read again
        next time) and, after the others are read, fails the fetch."""
        streams, errors = self.streams(deadline)
        counted = 0
        for stream in streams:
            if self.closed.is_set():
                errors.append(UpstreamError("timeout", "not read: the exporter is closing",
                                            sent=False))
                break
            window = self.tally.window(stream.key, int(self.wall() * 1000))
            if window is None:
                continue
            try:
                read = stream.read(window[0], window[1], deadline)
            except UpstreamError as exc:
                errors.append(exc)
                continue
            counted += len(read.records)
            self.invalid.note(self.tally.take(stream, read, *window))
        if errors:
            raise errors[0]
        return LedgerRead(counted)
