"""What one Binance host allows, shared by every account that talks to it from this IP.

- :class:`ServerClock`: Binance's time as seen from here, kept in step with ``/api/v3/time``.
- :class:`RateGate`: one request-weight budget (:data:`BUDGETS`), chosen by the path's prefix:
  ``/sapi`` counts ``X-SAPI-USED-IP-WEIGHT-1M`` against 12,000 a minute; ``/api`` and ``/papi``
  count ``X-MBX-USED-WEIGHT-1M`` against 6,000; the futures hosts' ``/fapi`` and ``/dapi``
  count the same header against 2,400 each. It pauses before Binance has to say 429, and holds
  every request back while a ``Retry-After`` runs.
- :class:`Upstream`: a host's clock and gates.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from binance_margin_exporter.binance.egress import DEFAULT_EGRESS, Egress
from binance_margin_exporter.binance.errors import UpstreamError

log = logging.getLogger(__name__)

CLOCK_RESYNC_SECONDS = 300.0
RETRY_AFTER_DEFAULT_SECONDS = 60.0
RETRY_AFTER_MIN_SECONDS = 1.0
RETRY_AFTER_MAX_SECONDS = 3 * 86400.0  # Binance bans for 2 minutes to 3 days
# A ban or rate limit that names no end (no Retry-After, no "banned until"): 2 minutes, doubling
# while they repeat, as Binance's own bans grow.
PENALTY_FIRST_SECONDS = 120.0
# 403 is Binance's web application firewall (it may mean a rate limit violation). Its block
# "usually lasts 5 minutes and can be extended if requests look malicious" (Binance's FAQ):
# 5 minutes, doubling to 30 while it repeats; an earlier try only meets the block again
WAF_FIRST_SECONDS = 300.0
WAF_MAX_SECONDS = 1800.0
BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
SAPI_WEIGHT_HEADER = "X-SAPI-USED-IP-WEIGHT-1M"
API_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
# header -> Binance's limit a minute (of the /sapi and /api budgets)
WEIGHT_LIMITS = {SAPI_WEIGHT_HEADER: 12000, API_WEIGHT_HEADER: 6000}


class Budget(NamedTuple):
    """One weight budget of a host: the header Binance reports it in, its limit a minute, and
    the path prefixes that count against it."""

    header: str
    limit: int
    prefixes: tuple[str, ...]


# budget name (the ``budget`` label) -> budget; a path no prefix names counts on ``api``
BUDGETS: dict[str, Budget] = {
    "sapi": Budget(SAPI_WEIGHT_HEADER, 12000, ("/sapi/",)),
    "api": Budget(API_WEIGHT_HEADER, 6000, ("/api/", "/papi/")),
    "fapi": Budget(API_WEIGHT_HEADER, 2400, ("/fapi/",)),
    "dapi": Budget(API_WEIGHT_HEADER, 2400, ("/dapi/",)),
}
SOFT_LIMIT_SHARE = 0.8  # pause at 80 % of a limit unless configured otherwise


def budget_of(path: str) -> str:
    """The name of the budget a path counts against (/sapi, /api and /papi, /fapi, /dapi);
    ``api`` for any other. The endpoints' weights (:mod:`.endpoints`) count on it."""
    for name, budget in BUDGETS.items():
        if path.startswith(budget.prefixes):
            return name
    return "api"


def soft_limit_of(budget: str, sapi_soft_limit: float) -> float:
    """A budget's pause point when /sapi's is ``sapi_soft_limit`` (the same share of each)."""
    return BUDGETS[budget].limit * (sapi_soft_limit / BUDGETS["sapi"].limit)


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds to wait from ``Retry-After``, within [1 s, 3 days]; 60 s when absent or odd."""
    return stated_wait(headers, "", 0) or RETRY_AFTER_DEFAULT_SECONDS


def stated_wait(headers: Mapping[str, str], message: str, server_ms: int) -> float | None:
    """The wait Binance states, within [1 s, 3 days]: ``Retry-After`` (seconds), else the
    "IP banned until <ms>" of a ``-1003`` message; None when it states none."""
    try:
        seconds = float(headers.get("Retry-After", ""))
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds):
        match = BANNED_UNTIL.search(message)
        if match is None:
            return None
        seconds = (int(match.group(1)) - server_ms) / 1000
    return min(max(seconds, RETRY_AFTER_MIN_SECONDS), RETRY_AFTER_MAX_SECONDS)


class ServerClock:
    """Binance time as seen from here: local time plus an offset measured with /api/v3/time."""

    def __init__(self, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self.offset_ms = 0
        self._synced_at: float | None = None  # when the last sync was claimed
        self._updated_at: float | None = None  # when the offset was last measured
        self._idle = threading.Event()  # clear while a sync is under way
        self._idle.set()

    def now_ms(self) -> int:
        return int(self._wall() * 1000) + self.offset_ms

    def claim_sync(self, stale_before: float | None = None) -> bool:
        """True for the one caller that should sync now.

        Without ``stale_before``: when the last sync is older than 5 minutes (or failed). With
        it (a monotonic time: when a request Binance refused with -1021 was signed): when no
        sync is under way and none has measured the offset since then. Everyone else goes on
        with the current offset (or waits for the sync under way), so a re-sync costs one
        request per host, not one per account.
        """
        with self._lock:
            now = self.monotonic()
            last = self._synced_at
            if stale_before is None:
                due = last is None or now - last > CLOCK_RESYNC_SECONDS
            else:  # not while a sync is under way, nor when one ended after the signing
                updated = self._updated_at
                due = self._idle.is_set() and (updated is None or updated < stale_before)
            if due:
                self._synced_at = now
                self._idle.clear()
            return due

    def sync_ended(self) -> None:
        """The claimed sync is over (measured or failed): release those waiting for it."""
        self._idle.set()

    def wait_for_sync(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for a sync under way to end."""
        self._idle.wait(max(0.0, timeout))

    def update(self, server_ms: int, sent: float, received: float) -> None:
        offset = int(server_ms - (sent + received) * 500)
        with self._lock:
            changed = abs(offset - self.offset_ms) > 1000
            self.offset_ms = offset
            self._updated_at = self.monotonic()
        if changed:
            log.info("server clock differs from the local clock by %+d ms", offset)

    def mark_failed(self, retry_in: float = 0.0) -> None:
        """Try again at the next request ``retry_in`` seconds from now (the time host's
        back-off), rather than waiting a whole resync period."""
        with self._lock:
            self._synced_at = None if retry_in <= 0 else \
                self.monotonic() + retry_in - CLOCK_RESYNC_SECONDS


class RateGate:
    """One weight budget of this IP: after a 429 or 418 nothing is sent until ``Retry-After``
    has passed; when the used weight Binance reports reaches ``soft_limit``, requests pause
    until the next minute, when Binance's counter starts again."""

    def __init__(self, header: str, soft_limit: int,
                 wall: Callable[[], float] = time.time, *, limit: int | None = None,
                 budget: str | None = None) -> None:
        self.header = header
        self.limit = WEIGHT_LIMITS[header] if limit is None else limit
        self.budget = budget or next(name for name, b in BUDGETS.items() if b.header == header)
        self.soft_limit = soft_limit
        self._wall = wall
        self._lock = threading.Lock()
        self.blocked_until = 0.0
        self.reason: str | None = None
        self.last_used_weight: int | None = None

    def check(self) -> None:
        with self._lock:
            until, reason = self.blocked_until, self.reason
        now = self._wall()
        if reason is not None and now < until:
            raise UpstreamError(
                reason,
                f"not calling Binance until {time.strftime('%H:%M:%S', time.gmtime(until))} "
                f"UTC ({until - now:.0f} s): {reason.replace('_', ' ')}",
                sent=False,
            )

    def block(self, seconds: float, reason: str) -> bool:
        """Hold requests back for ``seconds``; True when this starts a new ban."""
        now = self._wall()
        until = now + max(seconds, RETRY_AFTER_MIN_SECONDS)
        with self._lock:
            active = now < self.blocked_until
            if active and self.reason == "banned" and reason != "banned":
                # A ban outranks a rate limit: keep its reason (and its alert) until it ends.
                self.blocked_until = max(until, self.blocked_until)
                return False
            new_ban = reason == "banned" and not (active and self.reason == "banned")
            self.blocked_until = max(until, self.blocked_until) if active else until
            self.reason = reason
        return new_ban

    def note_weight(self, weight: int, server_ms: int) -> None:
        self.last_used_weight = weight
        if weight >= self.soft_limit:
            # until the next minute of Binance's clock, plus a second for our clock's error
            to_next_minute = (60000 - server_ms % 60000) / 1000 + 1
            log.warning(
                "Binance reports %d of %d weight used this minute (%s); pausing requests "
                "for %.0f s", weight, self.limit, self.header, to_next_minute,
            )
            self.block(to_next_minute, "throttled")

    def backoff_until(self) -> float:
        with self._lock:
            return self.blocked_until if self._wall() < self.blocked_until else 0.0


class Upstream:
    """The clock and weight gates of one Binance host from one egress, shared by all the
    accounts that leave by it."""

    def __init__(self, base_url: str, *, soft_limit: int = 9600,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock_of: Upstream | None = None, egress: Egress = DEFAULT_EGRESS) -> None:
        """``clock_of``: another host of Binance whose clock this one shares (Portfolio
        Margin's papi host has no /api/v3/time: it keeps time with the api host).
        ``egress``: the address Binance sees: each (egress, host) is a budget of its own."""
        self.egress = egress
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self.clock = clock_of.clock if clock_of is not None else ServerClock(wall, monotonic)
        # the host /api/v3/time is read on: its answer (weight, 429, 418, 403) is that host's
        self.time_upstream: Upstream = clock_of.time_upstream if clock_of is not None else self
        # by budget name (the gates of budgets this host never serves stay unused)
        self._penalty_lock = threading.Lock()
        self._unstated = 0  # penalties in a row that stated no end
        self._waf = 0  # 403s in a row
        self.gates = {name: RateGate(b.header, 1, wall, limit=b.limit, budget=name)
                      for name, b in BUDGETS.items()}
        self.set_soft_limit(soft_limit)

    def keep_time_with(self, other: Upstream) -> None:
        """A reload moved the host this one keeps time with: its clock is now ``other``'s
        (this host's gates, bans and weight stay)."""
        self.clock = other.clock
        self.time_upstream = other.time_upstream

    def set_soft_limit(self, soft_limit: int) -> None:
        """The pause point of the /sapi budget (the others at the same share of theirs). A
        reload changes it in place: the gates keep their bans and the weight they know of."""
        for name, gate in self.gates.items():
            gate.soft_limit = max(1, int(soft_limit_of(name, soft_limit)))

    @property
    def gate(self) -> RateGate:
        """The ``/sapi`` gate, which every margin endpoint counts against."""
        return self.gates["sapi"]

    def gate_for(self, path: str) -> RateGate:
        """The gate of the budget the path counts against (/sapi, /api and /papi, /fapi,
        /dapi); ``api`` for any other."""
        return self.gates[budget_of(path)]

    def penalty(self, stated: float | None) -> float:
        """How long to hold back after a 429, 418 or -1003: what Binance stated, or, when it
        states nothing, 2 minutes doubling while such answers repeat (reset by a success)."""
        with self._penalty_lock:
            if stated is not None:
                return stated
            self._unstated += 1
            return min(PENALTY_FIRST_SECONDS * 2 ** (self._unstated - 1),
                       RETRY_AFTER_MAX_SECONDS)

    def waf(self) -> float:
        """HTTP 403, Binance's web application firewall: the host is held back, every budget
        alike, 5 minutes doubling to 30 while it repeats (reset by a success)."""
        with self._penalty_lock:
            self._waf += 1
            seconds = min(WAF_FIRST_SECONDS * 2 ** (self._waf - 1), WAF_MAX_SECONDS)
        for gate in self.gates.values():
            gate.block(seconds, "waf")
        return seconds

    def succeeded(self) -> None:
        """A 200: the escalating penalties start again from their first step."""
        if self._unstated or self._waf:
            with self._penalty_lock:
                self._unstated = self._waf = 0

    def ban(self, seconds: float) -> None:
        """HTTP 418: the whole IP is banned, every budget alike."""
        new = [gate.block(seconds, "banned") for gate in self.gates.values()]
        if any(new):
            log.error(
                "Binance has banned this IP (HTTP 418) for %.0f s; the exporter sends nothing "
                "until then. Scrape less often or serve fewer accounts per IP",
                seconds,
            )

    def backoff_until(self) -> float:
        return max(gate.backoff_until() for gate in self.gates.values())
