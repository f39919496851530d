"""The simulated risk data streams: listen keys over HTTP and a WebSocket server per key.

- ``POST/PUT/DELETE /sapi/v1/margin/listen-key`` (weight 1, 1 and 3000) and
  ``/papi/v1/listenKey`` (weight 1 each): API key checked, no signature; a PUT or DELETE of a
  key it does not know is ``-1125``.
- A key is the account's, as Binance's is: one per account and stream, shared by every caller
  (every API key of the account, every program): a POST returns the account's active key, a
  PUT extends it for all, a DELETE closes every connection on it. Every API key the simulator
  knows reads its one account unless :attr:`SimulatedStreams.accounts` names another.
- ``<stream_url>/ws/<key>`` (cross margin) and ``<stream_url>/pm/ws/<key>`` (Portfolio Margin),
  served by :mod:`websockets`' sync server; an unknown key is refused (close 1008).

Tests drive it through :class:`SimulatedStreams`: :meth:`~SimulatedStreams.push` any event,
:meth:`~SimulatedStreams.drop` the connections, :meth:`~SimulatedStreams.expire` the keys.
``--demo`` runs :meth:`~SimulatedStreams.watch`: the drifting account's ``MARGIN_CALL`` when
its level crosses the margin-call bar (and Portfolio Margin's status changes).
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from binance_margin_exporter.binance.streams import MARGIN_KEY, PAPI_KEY
from binance_margin_exporter.demo import cross, portfolio
from binance_margin_exporter.demo.portfolio import status_of
from binance_margin_exporter.demo.routes import API_KEY, Demo, Host, RequestError, Route, route_of
from binance_margin_exporter.logs import RedactListenKeys

# The simulated server's own log, apart from the exporter's client ("websockets.client"): its
# routine lines (listening, connection open and closed) are not the exporter's news.
SERVER_LOG = logging.getLogger(__name__ + ".server")
SERVER_LOG.setLevel(logging.WARNING)
SERVER_LOG.addFilter(RedactListenKeys())

# The simulator's own copies of the paths
MARGIN_KEY_PATH = MARGIN_KEY["POST"].path
PAPI_KEY_PATH = PAPI_KEY["POST"].path
KEY_SECONDS = 3600.0
MARGIN = "margin_risk"
PM = "portfolio"
PREFIXES = {MARGIN: "/ws/", PM: "/pm/ws/"}


@dataclass
class _Key:
    kind: str
    account: str  # the account it belongs to (not the API key that asked for it)
    expires_at: float


class SimulatedStreams:
    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}
        # API key -> the account it belongs to; a key not listed: the simulator's one account
        self.accounts: dict[str, str] = {}
        self._conns: dict[str, set[ServerConnection]] = {}  # listen key -> connections
        self.counts: dict[str, int] = {}  # "POST margin_risk" -> calls
        self.ping_interval: float | None = 20.0  # Binance's spot rule: a ping every 20 s
        self.ping_timeout: float | None = None  # the pong's deadline; None: ping_interval
        self._server: Server | None = None
        self._stopping = threading.Event()

    # -- listen keys ----------------------------------------------------------------------

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def account_of(self, api_key: str) -> str:
        return self.accounts.get(api_key, "main")

    def create(self, kind: str, api_key: str) -> str:
        """The account's active key of ``kind`` (60 more minutes), or a new one."""
        self._count(f"POST {kind}")
        now = self._wall()
        account = self.account_of(api_key)
        with self._lock:
            self._keys = {k: e for k, e in self._keys.items() if e.expires_at > now}
            for key, entry in self._keys.items():
                if entry.kind == kind and entry.account == account:
                    entry.expires_at = now + KEY_SECONDS
                    return key
            key = secrets.token_urlsafe(45).replace("-", "x").replace("_", "y")[:60]
            self._keys[key] = _Key(kind, account, now + KEY_SECONDS)
            return key

    def keep_alive(self, kind: str, key: str) -> None:
        self._count(f"PUT {kind}")
        with self._lock:
            entry = self._valid(kind, key)
            entry.expires_at = self._wall() + KEY_SECONDS

    def delete(self, kind: str, key: str) -> None:
        self._count(f"DELETE {kind}")
        with self._lock:
            self._valid(kind, key)
            del self._keys[key]
        self._close(lambda k: k == key)

    def _valid(self, kind: str, key: str) -> _Key:
        entry = self._keys.get(key)
        if entry is None or entry.kind != kind or entry.expires_at <= self._wall():
            raise RequestError(-1125, "This listenKey does not exist.")
        return entry

    def keys(self, kind: str) -> list[str]:
        with self._lock:
            return [k for k, e in self._keys.items() if e.kind == kind]

    def _papi_key(self, params: dict[str, str]) -> str:
        """Portfolio Margin's PUT/DELETE name no key: the caller's account's active one."""
        account = self.account_of(params.get(API_KEY, ""))
        now = self._wall()
        with self._lock:
            for key, entry in self._keys.items():
                if entry.kind == PM and entry.account == account and entry.expires_at > now:
                    return key
        raise RequestError(-1125, "This listenKey does not exist.")

    # -- the WebSocket server -------------------------------------------------------------

    def start(self, host: str = "127.0.0.1") -> None:
        """Serve the streams on ``host`` (the simulator's: it starts and stops them)."""
        self._server = serve(self._serve, host, 0, ping_interval=self.ping_interval,
                             ping_timeout=self.ping_timeout or self.ping_interval,
                             logger=SERVER_LOG)
        threading.Thread(target=self._server.serve_forever, name="simulator-streams",
                         daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
        self._close(lambda key: True)

    @property
    def url(self) -> str:
        """The stream host: ``margin_stream_url`` is this, ``papi_stream_url`` this + /pm."""
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}"

    def _serve(self, conn: ServerConnection) -> None:
        path = conn.request.path if conn.request is not None else ""
        for kind, prefix in PREFIXES.items():
            if path.startswith(prefix):
                key = path[len(prefix):]
                with self._lock:
                    try:
                        self._valid(kind, key)
                    except RequestError:
                        break
                    self._conns.setdefault(key, set()).add(conn)
                try:
                    for _ in conn:  # Binance ignores what a client sends
                        pass
                except ConnectionClosed:
                    pass
                finally:
                    with self._lock:
                        self._conns.get(key, set()).discard(conn)
                return
        conn.close(1008, "invalid listen key")

    def connections(self, kind: str | None = None) -> list[ServerConnection]:
        with self._lock:
            return [c for key, conns in self._conns.items() for c in conns
                    if kind is None or (key in self._keys and self._keys[key].kind == kind)]

    def wait_connected(self, kind: str | None = None, count: int = 1,
                       timeout: float = 5.0) -> None:
        """Tests: until ``count`` clients are connected (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.connections(kind)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} {kind or 'stream'} connection(s) in time")
            time.sleep(0.01)

    # -- controls ---------------------------------------------------------------------------

    def push(self, event: dict[str, Any], kind: str | None = None) -> int:
        """Send ``event`` (``E`` filled in if absent) to every connection of ``kind``; how
        many got it."""
        message = json.dumps({"E": int(self._wall() * 1000), **event})
        sent = 0
        for conn in self.connections(kind):
            try:
                conn.send(message)
                sent += 1
            except ConnectionClosed:
                pass
        return sent

    def drop(self, kind: str | None = None) -> None:
        """Break the connections without a closing handshake (a network drop)."""
        for conn in self.connections(kind):
            try:
                conn.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def expire(self, kind: str | None = None) -> None:
        """Forget the keys (a key not kept alive); Portfolio Margin says listenKeyExpired."""
        if kind in (None, PM):
            self.push({"e": "listenKeyExpired"}, PM)
        with self._lock:
            gone = {k for k, e in self._keys.items() if kind is None or e.kind == kind}
            for key in gone:
                del self._keys[key]
        self._close(lambda key: key in gone)

    def _close(self, which: Callable[[str], bool]) -> None:
        with self._lock:
            conns = [c for key, cs in self._conns.items() if which(key) for c in cs]
        for conn in conns:
            conn.close()

    def watch(self, host: Host, interval: float = 1.0) -> None:
        """``--demo``: the events Binance would send as the drifting accounts move."""
        account, pm = cross.state(host), portfolio.state(host)

        def run() -> None:
            margin_status = pm_status = "NORMAL"
            borrowed_at: float | None = None  # the demo account borrows hourly, as interest
            while not self._stopping.wait(interval):
                if self.connections(MARGIN) and (borrowed_at is None
                                                 or self._wall() - borrowed_at >= 3600):
                    self.push({"e": "USER_LIABILITY_CHANGE", "a": "USDT", "t": "BORROW",
                               "p": "0.00000100", "i": "0.00000000"}, MARGIN)
                    borrowed_at = self._wall()
                level = Decimal(json.loads(account.body())["marginLevel"])
                bar = Decimal(account.coeff["marginCallBar"])
                status = "MARGIN_CALL" if level <= bar else "NORMAL"
                if status != margin_status and status == "MARGIN_CALL":
                    self.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": str(level),
                               "s": status}, MARGIN)
                margin_status = status
                uni = pm.uni_mmr()
                status = status_of(uni)
                if status != pm_status and status != "NORMAL":
                    self.push({"e": "riskLevelChange", "u": str(uni), "s": status,
                               "eq": "0", "ae": "0", "m": "0"}, PM)
                pm_status = status

        threading.Thread(target=run, name="simulator-watch", daemon=True).start()


def state(host: Host) -> SimulatedStreams:
    """The risk data streams: their listen keys and WebSocket server."""
    return host.state("streams", SimulatedStreams)


def routes(host: Host) -> dict[str, Route]:
    """The listen-key endpoints, by "METHOD path" (the simulator's key for what is not a GET)."""
    streams = state(host)

    def margin_key(params: dict[str, str]) -> str:
        key = params.get("listenKey")
        if not key:
            raise RequestError(-1102, "Mandatory parameter 'listenKey' was not sent.")
        return key

    def answer(value: Any) -> bytes:
        return json.dumps(value).encode()

    # The margin listen key's calls weigh on the account (UID), not on the IP: they cost the
    # IP's budget nothing (binance/streams.py declares them).
    return dict((
        route_of(MARGIN_KEY["POST"], lambda p: answer(
            {"listenKey": streams.create(MARGIN, p[API_KEY])}), signed=False, keyed=True),
        route_of(MARGIN_KEY["PUT"], lambda p: answer(
            streams.keep_alive(MARGIN, margin_key(p)) or {}), signed=False, keyed=True),
        route_of(MARGIN_KEY["DELETE"], lambda p: answer(
            streams.delete(MARGIN, margin_key(p)) or {}), signed=False, keyed=True),
        route_of(PAPI_KEY["POST"], lambda p: answer(
            {"listenKey": streams.create(PM, p[API_KEY])}), signed=False, keyed=True),
        route_of(PAPI_KEY["PUT"], lambda p: answer(
            streams.keep_alive(PM, streams._papi_key(p)) or {}), signed=False, keyed=True),
        route_of(PAPI_KEY["DELETE"], lambda p: answer(
            streams.delete(PM, streams._papi_key(p)) or {}), signed=False, keyed=True),
    ))


def demo(host: Host) -> Demo:
    """``--demo``: the accounts' events as they drift, on the simulator's stream host."""
    streams = state(host)
    streams.watch(host)
    return Demo(options={"margin_stream_url": streams.url,
                         "papi_stream_url": f"{streams.url}/pm"})
