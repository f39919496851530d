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
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class ExporterHTTPServer(ThreadingHTTPServer):
    """Thread per connection, HTTP/1.1 keep-alive (Prometheus reuses its connections).

    On shutdown, scrapes in flight finish and get their answer; connections that wait idle
    for their next request are closed, so that stopping never waits on a keep-alive.
    """

    daemon_threads = False  # on shutdown, server_close() waits for scrapes in flight
    block_on_close = True
    request_queue_size = 128  # a burst of scrapes waits in the backlog, not in SYN retries

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 web: WebConfig) -> None:
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.tls = TLSFiles(web.tls) if web.tls else None
        self.auth = BasicAuth(web.basic_auth_users) if web.basic_auth_users else None
        self.stopping = False
        self._idle: set[socket.socket] = set()
        self._idle_lock = threading.Lock()
        super().__init__(address, handler)

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

    def set_idle(self, sock: socket.socket, idle: bool) -> bool:
        """Mark a connection idle (waiting for a request) or busy; False once stopping."""
        with self._idle_lock:
            if idle:
                self._idle.add(sock)
            else:
                self._idle.discard(sock)
            return not self.stopping

    def server_close(self) -> None:
        with self._idle_lock:
            self.stopping = True
            idle = list(self._idle)
        for sock in idle:
            try:
                sock.shutdown(socket.SHUT_RD)  # its handler reads EOF and ends
            except OSError:
                pass
        super().server_close()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake happens in the request's own thread (see Handler.setup), so one slow
            # client cannot hold up the accept loop.
            sock = self.tls.context().wrap_socket(sock, server_side=True,
                                              do_handshake_on_connect=False)
        return sock, addr

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
        timeout = 30  # an idle keep-alive or a slow request is dropped after this
        disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms ACK stall
        # A buffered wfile: headers and a small body leave in one write (one system call, one
        # segment); handle_one_request flushes after each answer. A large body goes straight
        # through, uncopied.
        wbufsize = 1 << 16

        server: ExporterHTTPServer

        def setup(self) -> None:
            super().setup()
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()

        def handle(self) -> None:
            self.close_connection = True
            try:
                while self.server.set_idle(self.connection, True):
                    self.handle_one_request()
                    if self.close_connection:
                        break
            finally:
                self.server.set_idle(self.connection, False)

        def parse_request(self) -> bool:
            # A request line has arrived: this connection is busy until it is answered.
            if not self.server.set_idle(self.connection, False):
                self.close_connection = True
            return super().parse_request()

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
                    self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                               {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
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
                self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                           {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
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
                self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                           {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
                return
            error = reload()
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
