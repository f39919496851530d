"""The HTTP server: a landing page at ``/``, ``/metrics``, ``/healthz``, 404 elsewhere.

``/metrics`` speaks the Prometheus text format, or OpenMetrics when the scraper asks for it
(``prometheus_client``'s own negotiation), gzip when accepted.

Optional TLS (with client certificates) and basic auth come from a ``--web.config.file`` in the
format of Prometheus' exporter-toolkit. ``/healthz`` answers without authentication so that
probes need no credentials; it reveals nothing but "ok".
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import hmac
import io
import logging
import os
import selectors
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import bcrypt
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from binance_margin_exporter import __version__
from binance_margin_exporter.config import TLSConfig, WebConfig

log = logging.getLogger(__name__)

REALM = "binance-margin-exporter"
LANDING_PAGE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Binance margin exporter</title></head>
<body><h1>Binance margin exporter</h1>
<p>Version {__version__}. Prometheus metrics of the Binance Cross Margin account.</p>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/healthz">/healthz</a></li></ul>
</body></html>
""".encode()


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, in constant time.

    bcrypt is slow on purpose (tens of ms); a verified user:password pair is remembered as a
    keyed digest so that a scrape every few seconds does not pay for it each time.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {u: h.encode() for u, h in users.items()}
        # the users' own cost, so that an unknown user takes as long as a known one
        cost = max(int(h.split("$")[2]) for h in users.values()) if users else 10
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=cost))
        self._key = os.urandom(32)
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        digest = hmac.new(self._key, decoded.encode(), hashlib.sha256).digest()
        with self._lock:
            if digest in self._verified:
                return True
        hashed = self._users.get(user)
        # Unknown users cost the same bcrypt round as known ones: no user enumeration by timing.
        try:
            ok = bcrypt.checkpw(password.encode(), hashed or self._dummy) and hashed is not None
        except ValueError:  # over bcrypt's 72 bytes: never a user's password
            return False
        if ok:
            with self._lock:
                if len(self._verified) > 1000:
                    self._verified.clear()
                self._verified.add(digest)
        return ok


class TLSFiles:
    """The TLS context of the configured files, made again when one of them changes (as
    exporter-toolkit reads them for each connection): a certificate that cert-manager renews
    is served without a restart."""

    def __init__(self, tls: TLSConfig) -> None:
        self.config = tls
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[int, int, int], ...] | None = None
        self._context: ssl.SSLContext | None = None

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        paths = [self.config.cert_file, self.config.key_file, self.config.client_ca_file]
        stamps = []
        for path in paths:
            if path:
                info = os.stat(path)  # follows the symlink a Secret volume swaps
                stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    def context(self) -> ssl.SSLContext:
        with self._lock:
            try:
                stamp = self._files_stamp()
            except OSError:
                stamp = self._stamp  # mid-swap: keep the last good context
            if self._context is None or stamp != self._stamp:
                try:
                    self._context = tls_context(self.config)
                    self._stamp = stamp
                except (ssl.SSLError, OSError) as exc:
                    if self._context is None:
                        raise
                    log.error("TLS files changed but do not load (%s); serving the previous "
                              "certificate", type(exc).__name__)
                    self._stamp = stamp
            return self._context


def tls_context(tls: TLSConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = {"TLS12": ssl.TLSVersion.TLSv1_2,
                               "TLS13": ssl.TLSVersion.TLSv1_3}[tls.min_version]
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        context.load_verify_locations(tls.client_ca_file)
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    return context


@dataclass(eq=False)
class _Connection:
    """A client connection, and what it has sent of its next request so far."""

    sock: socket.socket
    address: Any
    data: bytearray = field(default_factory=bytearray)
    handshaken: bool = False
    since: float = 0.0  # monotonic: when it arrived, or went idle after an answer
    first_byte: float | None = None  # monotonic: when its next request began to arrive


class _Watcher:
    """Every connection that has not sent a whole request: new ones, and idle keep-alives.

    One thread and a selector hold them, not a thread each. A request whose headers are all
    there goes to the worker pool; one whose headers take longer than ``HEADER_SECONDS`` is
    dropped, and so is a keep-alive idle for ``IDLE_SECONDS``. At ``MAX_CONNECTIONS`` the
    oldest connection that has not sent a whole request is dropped for a new one (a flood of
    half requests cannot lock Prometheus out).
    """

    MAX_CONNECTIONS = 256
    HEADER_SECONDS = 10.0
    IDLE_SECONDS = 60.0
    MAX_HEADER_BYTES = 64 * 1024

    def __init__(self, server: ExporterHTTPServer) -> None:
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.waiting: dict[socket.socket, _Connection] = {}  # insertion order: oldest first
        self.busy = 0  # connections with a worker
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="http-watcher", daemon=True)
        self.thread.start()

    def add(self, conn: _Connection) -> None:
        conn.since = time.monotonic()
        conn.first_byte = time.monotonic() if conn.data else None
        if conn.data and _complete(conn.data):
            # a pipelined request that came with the last one: straight to a worker (in the
            # selector, the client's end of writing could be read first and close it)
            with self.lock:
                if self.closed:
                    _close(conn.sock)
                    return
                self.busy += 1
            self.server.workers.submit(self.server.serve_request, conn)
            return
        conn.sock.setblocking(False)
        with self.lock:
            if self.closed:
                _close(conn.sock)
                return
            if len(self.waiting) + self.busy >= self.MAX_CONNECTIONS:
                if not self.waiting:
                    log.debug("connection cap reached: refusing %s", conn.address)
                    _close(conn.sock)
                    return
                oldest = next(iter(self.waiting.values()))
                self._drop(oldest)
            self.waiting[conn.sock] = conn
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)
        self._wake()

    def _wake(self) -> None:
        try:
            self.wake_w.send(b"x")
        except OSError:  # closed, or its buffer full of wake-ups already: awake either way
            pass

    def _drop(self, conn: _Connection) -> None:  # with the lock held
        self.waiting.pop(conn.sock, None)
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        _close(conn.sock)

    def _dispatch(self, conn: _Connection) -> None:
        with self.lock:
            if self.waiting.pop(conn.sock, None) is None:
                return
            self.selector.unregister(conn.sock)
            self.busy += 1
        self.server.workers.submit(self.server.serve_request, conn)

    def done(self) -> None:
        with self.lock:
            self.busy -= 1

    def _run(self) -> None:
        while not self.closed:
            events = self.selector.select(timeout=1.0)
            for key, _ in events:
                if key.fileobj is self.wake_r:
                    try:
                        self.wake_r.recv(4096)
                    except OSError:
                        pass
                    continue
                self._read(key.data)
            self._expire()

    def _read(self, conn: _Connection) -> None:
        try:
            if not conn.handshaken and isinstance(conn.sock, ssl.SSLSocket):
                conn.sock.do_handshake()
            conn.handshaken = True
            chunk = conn.sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            with self.lock:
                self._drop(conn)
            return
        if conn.first_byte is None:
            conn.first_byte = time.monotonic()
        conn.data += chunk
        if _complete(conn.data):
            self._dispatch(conn)
        elif len(conn.data) > self.MAX_HEADER_BYTES:
            with self.lock:
                self._drop(conn)

    def _expire(self) -> None:
        now = time.monotonic()
        with self.lock:
            for conn in list(self.waiting.values()):
                started = conn.first_byte
                if (started is not None and now - started > self.HEADER_SECONDS) or \
                        (started is None and now - conn.since > self.IDLE_SECONDS) or \
                        (started is None and not conn.handshaken and
                         now - conn.since > self.HEADER_SECONDS):
                    self._drop(conn)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for conn in list(self.waiting.values()):
                self._drop(conn)
        self._wake()
        self.thread.join(5)
        self.selector.close()
        self.wake_r.close()
        self.wake_w.close()


def _complete(data: bytes | bytearray) -> bool:
    """Has a whole request arrived: its headers (``GET`` and ``HEAD`` have no body), or the
    one line of an HTTP/0.9 request?"""
    if b"\r\n\r\n" in data or b"\n\n" in data:
        return True
    line, newline, _ = bytes(data).partition(b"\n")
    return bool(newline) and b" HTTP/" not in line


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


class ExporterHTTPServer(socketserver.TCPServer):
    """HTTP/1.1 with keep-alive (Prometheus reuses its connections), for clients that may be
    hostile: connections wait for a whole request in one watcher thread (:class:`_Watcher`),
    and only a whole request gets one of ``WORKERS`` threads. A flood of half requests costs
    sockets and memory within the connection cap, not threads.

    On shutdown, scrapes in flight finish and get their answer; connections that wait for a
    request are closed, so that stopping never waits on a slow or idle client.
    """

    allow_reuse_address = True
    request_queue_size = 128  # a burst of scrapes waits in the backlog, not in SYN retries
    WORKERS = 16
    WRITE_SECONDS = 10.0  # a client that does not read its answer holds a worker this long

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 web: WebConfig) -> None:
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.tls = TLSFiles(web.tls) if web.tls else None
        self.auth = BasicAuth(web.basic_auth_users) if web.basic_auth_users else None
        self.stopping = False
        super().__init__(address, handler)
        self.workers = ThreadPoolExecutor(max_workers=self.WORKERS, thread_name_prefix="http")
        self.watcher = _Watcher(self)

    def set_web(self, web: WebConfig) -> None:
        """A reloaded web config: new users, new certificate files (TLS stays on or off)."""
        self.auth = BasicAuth(web.basic_auth_users) if web.basic_auth_users else None
        if web.tls is not None:
            self.tls = TLSFiles(web.tls)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            # "::" is every address: IPv4 too, on the same socket (dual stack)
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        """A new connection: to the watcher, which calls for a worker once a request is in."""
        sock = request
        if self.tls is not None:
            # the handshake happens in the watcher, without blocking on a slow client
            sock = self.tls.context().wrap_socket(sock, server_side=True,
                                                  do_handshake_on_connect=False)
        self.watcher.add(_Connection(sock, client_address))

    def serve_request(self, conn: _Connection) -> None:
        """One whole request, in a worker; then back to the watcher for the next, or closed."""
        keep = False
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(self.WRITE_SECONDS)
            handler = self.RequestHandlerClass(conn, conn.address, self)  # type: ignore[arg-type]
            keep = not handler.close_connection and not self.stopping
        except Exception:  # noqa: BLE001 - a broken client must not cost the worker
            log.debug("connection from %s ended with an error", conn.address[0])
        finally:
            self.watcher.done()
        if keep:
            leftover = conn.data  # a pipelined request that came with this one
            self.watcher.add(_Connection(conn.sock, conn.address, leftover, handshaken=True))
        else:
            _close(conn.sock)

    def server_close(self) -> None:
        self.stopping = True
        if hasattr(self, "watcher"):  # not when the address could not be bound
            self.watcher.close()  # the waiting connections: closed
        super().server_close()
        if hasattr(self, "workers"):
            self.workers.shutdown(wait=True)  # the requests in flight: answered

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address[0])


class _Scraped:
    """The metrics of one scrape, in the shape ``prometheus_client``'s encoders read."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def scrape_timeout(header: str | None) -> float | None:
    """Prometheus' ``X-Prometheus-Scrape-Timeout-Seconds``; None when absent or odd."""
    try:
        seconds = float(header) if header else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < 3600 else None


Scrape = Callable[[float | None], Iterable[Metric]]


def accepts_gzip(header: str) -> bool:
    """Does ``Accept-Encoding`` accept gzip (``gzip;q=0`` and ``*;q=0`` refuse it)?"""
    weights: dict[str, float] = {}
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        weights[coding.strip().lower()] = quality
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def make_server(
    address: tuple[str, int],
    scrape: Scrape,
    web: WebConfig | None = None,
    *,
    metrics_path: str = "/metrics",
    reload: Callable[[], str | None] | None = None,
) -> ExporterHTTPServer:
    """``scrape(seconds)``: the metrics, gathered within Prometheus' scrape timeout (None: the
    exporter's own budget)."""
    web = web or WebConfig()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"binance-margin-exporter/{__version__}"
        sys_version = ""
        disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms ACK stall
        # A buffered wfile: headers and a small body leave in one write (one system call, one
        # segment); handle_one_request flushes after each answer. A large body goes straight
        # through, uncopied.
        wbufsize = 1 << 16

        server: ExporterHTTPServer

        def setup(self) -> None:
            conn: _Connection = self.request  # type: ignore[assignment]
            self.connection = conn.sock
            if self.disable_nagle_algorithm:
                try:
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
                except OSError:
                    pass
            # the request as it arrived; what follows it (a pipelined request) stays with the
            # connection for the watcher
            data = bytes(conn.data)
            end = data.find(b"\r\n\r\n")
            end = end + 4 if end >= 0 else (data.find(b"\n\n") + 2 if b"\n\n" in data
                                             else data.find(b"\n") + 1)
            self.rfile = io.BytesIO(data[:end])
            conn.data = bytearray(data[end:])
            self.wfile = conn.sock.makefile("wb", self.wbufsize)

        def handle(self) -> None:
            self.close_connection = True
            self.handle_one_request()
            if self.server.stopping:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes | None, content_type: str,
                  headers: Mapping[str, str] | None = None) -> None:
            """The answer; ``body`` None: a HEAD of /metrics, whose length is not known
            without a fetch, so it has no Content-Length (RFC 9110 allows that)."""
            self.send_response(status)
            if self.server.stopping:
                self.close_connection = True
                self.send_header("Connection", "close")
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body is not None:
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == metrics_path and self.command == "HEAD":
                # HEAD asks for the headers only: no fetch from Binance for an empty body
                if not self._authorized():
                    self._unauthorized()
                    return
                _, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, None, content_type, {"Vary": "Accept-Encoding"})
                return
            if path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
                return
            if path == "/-/reload":
                self._not_allowed()
                return
            if not self._authorized():
                self._unauthorized()
                return
            if path == "/":
                self._send(200, LANDING_PAGE, "text/html; charset=utf-8")
            elif path == metrics_path:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                timeout = scrape_timeout(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
                try:
                    body = encoder(_Scraped(scrape(timeout)))
                except Exception as exc:  # noqa: BLE001 - answer 500, keep serving
                    log.error("rendering /metrics failed: %s", type(exc).__name__)
                    self._send(500, b"internal error\n", "text/plain; charset=utf-8")
                    return
                headers = {"Vary": "Accept-Encoding"}
                if accepts_gzip(self.headers.get("Accept-Encoding", "")):
                    body = gzip.compress(body, compresslevel=1)
                    headers["Content-Encoding"] = "gzip"
                self._send(200, body, content_type, headers)
            else:
                self._send(404, f"Not found. Metrics are at {metrics_path}\n".encode(),
                           "text/plain; charset=utf-8")

        do_HEAD = do_GET

        def _unauthorized(self) -> None:
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                       {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})

        def _authorized(self) -> bool:
            auth = self.server.auth
            return auth is None or auth.check(self.headers.get("Authorization"))

        def _not_allowed(self) -> None:
            allowed = "POST" if self.path.split("?", 1)[0] == "/-/reload" else "GET, HEAD"
            self._send(405, b"Method not allowed\n", "text/plain; charset=utf-8",
                       {"Allow": allowed})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/-/reload" or reload is None:
                self._not_allowed()
                return
            if not self._authorized():
                self._unauthorized()
                return
            error = reload()
            self.close_connection = True  # any body it sent is not read
            if error is None:
                self._send(200, b"reloaded\n", "text/plain; charset=utf-8")
            else:
                self._send(500, f"reload failed: {error}\n".encode(), "text/plain; charset=utf-8")

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = _not_allowed

    return ExporterHTTPServer(address, Handler, web)


def parse_listen_address(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces, IPv6 and IPv4 on one
    dual-stack socket where the machine has IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address: expected host:port, got {text!r}")
    host = host.strip("[]")
    return (host or ("::" if socket.has_ipv6 else "0.0.0.0"), int(port))


def url_host(host: str) -> str:
    """A host as it stands in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
