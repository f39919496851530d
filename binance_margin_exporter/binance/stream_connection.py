"""One account's risk data stream connection: a listen key and its WebSocket (:class:`Stream`).

One daemon thread per stream (started and stopped by its owner) keeps a listen key and a
WebSocket (:mod:`websockets`' sync client) open: ``POST`` a key (Binance returns the
account's active one if any), connect ``<stream_url>/ws/<key>``, ``PUT`` it every 30 minutes
(it lives 60), reconnect before Binance's 24-hour cut and after any drop, and take a new key
when Binance says it no longer exists (``-1125`` on the ``PUT``, ``listenKeyExpired``). A
drop, and any reconnection after a connection shorter than ``stable``, backs off (1 s doubling
to 300 s, with jitter): an upstream that hangs up or says "expired" at once never makes a
storm of listen-key requests. The connection leaves by the account's egress; log lines are
one per kind a minute, outside values cut short. Pings are answered by the library. The key
is never ``DELETE``\\ d: it is the account's, shared with every other program reading the
account's stream (a DELETE would cut theirs); at shutdown the thread only stops keeping it
alive, and Binance lets it expire 60 minutes later unless another program keeps it.

Each risk event is handed, parsed, to ``on_event`` (in the thread): what it means to the
exporter (counts, a refresh of the account) is the collector's (:mod:`..collectors.streams`).
websockets logs the request path, the listen key: :func:`~..logs.setup_logging` puts a filter
on its loggers.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from binance_margin_exporter.binance import streams
from binance_margin_exporter.binance.egress import DEFAULT_EGRESS, Egress, websocket_options
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.streams import KeyExpired, RiskEvent, StreamKind, parse_event
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.logs import Throttled, shorten

log = logging.getLogger(__name__)

# Why a stream connects again (the ``reason`` label)
DROPPED = "dropped"  # the connection closed or broke
KEY_EXPIRED = "key_expired"  # Binance says the listen key no longer exists: a new one
LIFETIME = "lifetime"  # ours, before Binance's 24-hour cut
FAILED = "failed"  # a listen-key request or a connection attempt failed: tried again later
RECONNECT_REASONS = (DROPPED, KEY_EXPIRED, LIFETIME, FAILED)


@dataclass(frozen=True)
class Timing:
    """A stream connection's intervals in seconds (tests shorten them)."""

    keep_alive: float = 1800.0  # PUT the key every 30 minutes: it lives 60
    keep_alive_retry: float = 60.0  # after a failed PUT (the key lives on meanwhile)
    key_lifetime: float = 3600.0
    connection_lifetime: float = 23.5 * 3600  # reconnect before Binance's 24-hour cut
    backoff_first: float = 1.0
    backoff_max: float = 300.0
    stable: float = 60.0  # a connection that lasted this long resets the back-off
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    ping_interval: float | None = 60.0  # ours (Binance pings too; the library answers)
    ping_timeout: float | None = 30.0
    # the longest the thread waits for a message before it looks at its timers: a keep-alive,
    # the lifetime's end, a trailing refresh are each at most this late
    poll: float = 1.0
    shutdown_seconds: float = 3.0  # the longest close() waits for the thread
    log_period: float = 60.0  # one log line per kind of line (an event, a broken message) this long


def _ignore(event: RiskEvent) -> None:
    pass


class Stream:
    """One account's stream connection: the thread, whether it is up, why it reconnected."""

    def __init__(self, account: str, kind: StreamKind, client: BinanceClient, url: str,
                 timing: Timing = Timing(), *,
                 on_event: Callable[[RiskEvent], object] = _ignore,
                 egress: Egress = DEFAULT_EGRESS,
                 rng: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], object] | None = None) -> None:
        """``on_event``: called in the thread with each risk event (an ``OSError`` it raises
        is a dropped connection). ``clock`` (monotonic) and ``wait`` (the back-off's: it
        returns early at ``stop``) are the tests' to replace."""
        self.account = account
        self.kind = kind
        self.client = client
        self.url = url.rstrip("/")
        self.timing = timing
        self.egress = egress
        self.on_event = on_event
        self._rng = rng
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._log = Throttled(log, timing.log_period, clock)
        self._thread: threading.Thread | None = None
        self._ws: ClientConnection | None = None
        self._connected = False
        self._key_valid_until = 0.0  # monotonic
        self._reconnects = dict.fromkeys(RECONNECT_REASONS, 0)

    # -- control --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (once; again after a reload: nothing)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._guarded, name=f"stream-{self.kind.name}-{self.account}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the thread and the connection; the key is left to expire (never DELETEd)."""
        self._stop.set()
        with self._lock:
            thread, ws = self._thread, self._ws
        if ws is not None:
            ws.close()
        deadline = time.monotonic() + self.timing.shutdown_seconds
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def up(self) -> bool:
        with self._lock:
            return self._connected and self._clock() < self._key_valid_until

    # -- the thread -----------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        delay = min(self.timing.backoff_max, self.timing.backoff_first * 2 ** (failures - 1))
        return delay * (0.5 + 0.5 * self._rng())  # jitter: accounts do not retry in step

    def _note(self, reason: str) -> None:
        with self._lock:
            self._reconnects[reason] += 1

    def _where(self) -> str:
        return f"{self.kind.name} stream of {self.account}"

    def _guarded(self) -> None:
        """The thread: a bug of ours ends neither the stream nor the exporter."""
        while not self._stop.is_set():
            try:
                self._run()
            except Exception as exc:  # logged; the stream starts over
                log.error("%s stream of %s: unexpected %s (please report this); starting "
                          "over", self.kind.name, self.account, type(exc).__name__)
                log.debug("the unexpected error", exc_info=True)
                self._note(FAILED)
                self._wait(self.timing.backoff_max)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                key = streams.create_key(self.client, self.kind)
            except UpstreamError as exc:
                failures += 1
                self._log.warning("%s: no listen key (%s): %s", self._where(),
                                  exc.reason, shorten(str(exc)))
                self._note(FAILED)
                self._wait(self._backoff(failures))
                continue
            key_at = self._clock()
            connected_at: float | None = None
            try:
                with connect(f"{self.url}/ws/{key}", open_timeout=self.timing.open_timeout,
                             close_timeout=self.timing.close_timeout,
                             ping_interval=self.timing.ping_interval,
                             ping_timeout=self.timing.ping_timeout,
                             **websocket_options(self.egress)) as ws:
                    connected_at = self._clock()
                    reason = self._session(ws, key, key_at)
            except (OSError, TimeoutError, WebSocketException) as exc:
                if connected_at is None:
                    failures += 1
                    self._log.warning("%s: connection failed (%s)", self._where(),
                                      type(exc).__name__)
                    self._note(FAILED)
                    self._wait(self._backoff(failures))
                    continue
                reason = DROPPED
            if self._stop.is_set():
                break
            self._log.info("%s: reconnecting (%s)", self._where(), reason)
            self._note(reason)
            if self._clock() - connected_at >= self.timing.stable:
                failures = 0
                if reason != DROPPED:
                    continue  # a connection that lasted: a new one at once
            # a drop, or anything after a short connection (an upstream that says "expired"
            # on every connection): back off, or listen-key POSTs spend the weight
            failures += 1
            self._wait(self._backoff(failures))

    def _session(self, ws: ClientConnection, key: str, key_at: float) -> str:
        with self._lock:
            self._ws = ws
            self._connected = True
            self._key_valid_until = key_at + self.timing.key_lifetime
        if self._stop.is_set():  # stop() came before the connection was known to it
            ws.close()
        self._log.info("%s: connected", self._where())
        try:
            return self._serve(ws, key, key_at)
        finally:
            with self._lock:
                self._ws = None
                self._connected = False

    def _serve(self, ws: ClientConnection, key: str, key_at: float) -> str:
        """Read events until the connection must be replaced; the reason it must."""
        timing = self.timing
        ends_at = self._clock() + timing.connection_lifetime
        next_put = key_at + timing.keep_alive
        while not self._stop.is_set():
            now = self._clock()
            if now >= ends_at:
                return LIFETIME
            if now >= next_put:
                try:
                    streams.keep_alive(self.client, self.kind, key)
                    with self._lock:
                        self._key_valid_until = now + timing.key_lifetime
                    next_put = now + timing.keep_alive
                except UpstreamError as exc:
                    if exc.code == streams.UNKNOWN_KEY_CODE:
                        return KEY_EXPIRED
                    self._log.warning("%s: keeping the listen key alive failed: %s",
                                      self._where(), shorten(str(exc)))
                    next_put = now + timing.keep_alive_retry
            with self._lock:
                if now >= self._key_valid_until:
                    return KEY_EXPIRED
            try:
                message = ws.recv(timeout=timing.poll)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return DROPPED
            if self._handle(message):
                return KEY_EXPIRED
        return DROPPED

    def _handle(self, message: str | bytes) -> bool:
        """Hand a risk event to ``on_event``; True: the key expired."""
        try:
            event = parse_event(message)
        except UpstreamError as exc:
            self._log.warning("%s: an event that does not parse is ignored: %s",
                              self._where(), shorten(str(exc)))
            return False
        if event is None:
            return False
        if isinstance(event, KeyExpired):
            return True
        status = streams.status_label(event.event, event.status)
        self._log.info("%s: %s %s", self._where(), event.event, shorten(event.status),
                       kind=f"{event.event} {status}")
        self.on_event(event)
        return False

    # -- what a scrape reads ----------------------------------------------------------------

    def reconnects(self) -> dict[str, int]:
        """Reconnections so far, by reason (every reason, 0 included)."""
        with self._lock:
            return dict(self._reconnects)
