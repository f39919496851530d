"""What each request gets: a landing page at ``/``, the metrics, ``/healthz``, ``POST
/-/reload``, 404 elsewhere.

The metrics speak the Prometheus text format, or OpenMetrics when the scraper asks for it
(``prometheus_client``'s own negotiation; the encoders of :mod:`.exposition`, byte for byte
``prometheus_client``'s output), gzip when accepted. ``/healthz`` answers without
authentication so that probes need no credentials; it reveals nothing but "ok".

The answer is written into memory (:class:`Output`); the connection's watcher sends it.
"""

from __future__ import annotations

import gzip
import html
import io
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from binance_margin_exporter import __version__
from binance_margin_exporter.web import exposition

if TYPE_CHECKING:
    from binance_margin_exporter.web.connections import Connection

log = logging.getLogger(__name__)

Scrape = Callable[[float | None], Iterable[Metric]]
Reload = Callable[[], str | None]


class Checker(Protocol):
    def check(self, header: str | None) -> bool:
        """Does the ``Authorization`` header name a user and the right password?"""
        ...


class Site(Protocol):
    """What a request reads of the server it came to (:mod:`.server`'s is one)."""

    scrape: Scrape
    metrics_path: str
    reload: Reload | None  # None: no /-/reload
    auth: Checker | None  # None: no basic auth
    stopping: bool  # the server is shutting down: every answer closes its connection


class TooSoon(Exception):
    """A ``POST /-/reload`` within the rate limit: ``429`` with ``Retry-After``."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

REALM = "binance-margin-exporter"
TEXT = "text/plain; charset=utf-8"


def landing_page(products: Sequence[str] = (), metrics_path: str = "/metrics") -> bytes:
    """The page at ``/``: the version, the products the exporter reads (the command line
    passes the product list's) and the links."""
    listed = f" Products: {html.escape(', '.join(products))}." if products else ""
    path = html.escape(metrics_path)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Binance margin exporter</title></head>
<body><h1>Binance margin exporter</h1>
<p>Version {__version__}. Prometheus metrics of Binance margin accounts: cross, isolated,
sub-accounts, Portfolio Margin and Pro, futures and their positions.{listed}</p>
<ul><li><a href="{path}">{path}</a></li><li><a href="/healthz">/healthz</a></li></ul>
</body></html>
""".encode()


def scrape_timeout(header: str | None) -> float | None:
    """Prometheus' ``X-Prometheus-Scrape-Timeout-Seconds``; None when absent or odd."""
    try:
        seconds = float(header) if header else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < 3600 else None


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


def has_body(headers: Message) -> bool:
    """Does the request carry a body? It is never read: the connection closes after the
    answer, so that the body cannot be taken for a next request (request smuggling)."""
    length = headers.get("Content-Length")
    return headers.get("Transfer-Encoding") is not None or \
        (length is not None and length.strip() != "0")


def request_end(data: bytes) -> int:
    """Where the request's headers (or its one HTTP/0.9 line) end in ``data``: at the first
    blank line, whichever line ending it has."""
    ends = [at + len(blank) for blank in (b"\r\n\r\n", b"\n\n")
            if (at := data.find(blank)) >= 0]
    return min(ends) if ends else data.find(b"\n") + 1


class Output:
    """The answer, kept as written (headers, then the body uncopied) for the watcher."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Handler(BaseHTTPRequestHandler):
    """One request, read from the bytes the watcher gathered; what follows it (a pipelined
    request) stays with the connection."""

    protocol_version = "HTTP/1.1"
    server_version = f"binance-margin-exporter/{__version__}"

    server: Site  # type: ignore[assignment]
    wfile: Output  # type: ignore[assignment]

    def setup(self) -> None:
        conn: Connection = self.request  # type: ignore[assignment]
        self.connection = conn.sock
        data = bytes(conn.data)
        end = request_end(data)
        self.rfile = io.BytesIO(data[:end])
        conn.data = bytearray(data[end:])
        self.wfile = Output()

    def handle(self) -> None:
        self.handle_one_request()  # one: the watcher brings the next, if any

    def version_string(self) -> str:
        return self.server_version  # without the Python version

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes | None, content_type: str,
              headers: Mapping[str, str] | None = None) -> None:
        """The answer; ``body`` None: a HEAD of the metrics, whose length is not known
        without a fetch, so it has no Content-Length (RFC 9110 allows that)."""
        self.send_response(status)
        if self.server.stopping or has_body(self.headers):
            self.send_header("Connection", "close")  # sets close_connection too
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
        metrics_path = self.server.metrics_path
        if path == "/healthz":
            self._send(200, b"ok\n", TEXT)
        elif path == "/-/reload":
            self._not_allowed()
        elif not self._authorized():
            self._unauthorized()
        elif path == metrics_path and self.command == "HEAD":
            # HEAD asks for the headers only: no fetch from Binance for an empty body
            _, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, None, content_type, {"Vary": "Accept-Encoding"})
        elif path == metrics_path:
            self._metrics()
        elif path == "/":
            self._send(200, self.server.landing, "text/html; charset=utf-8")
        else:
            self._send(404, f"Not found. Metrics are at {metrics_path}\n".encode(), TEXT)

    do_HEAD = do_GET

    def _metrics(self) -> None:
        encoder, content_type = exposition.choose(self.headers.get("Accept", ""))
        timeout = scrape_timeout(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
        try:
            body = encoder(self.server.scrape(timeout))
        except Exception as exc:  # noqa: BLE001 - answer 500, keep serving
            log.error("rendering /metrics failed: %s", type(exc).__name__)
            self._send(500, b"internal error\n", TEXT)
            return
        headers = {"Vary": "Accept-Encoding"}
        if accepts_gzip(self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._send(200, body, content_type, headers)

    def _unauthorized(self) -> None:
        self._send(401, b"Unauthorized\n", TEXT,
                   {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})

    def _authorized(self) -> bool:
        auth = self.server.auth
        return auth is None or auth.check(self.headers.get("Authorization"))

    def _not_allowed(self) -> None:
        allowed = "POST" if self.path.split("?", 1)[0] == "/-/reload" else "GET, HEAD"
        self._send(405, b"Method not allowed\n", TEXT, {"Allow": allowed})

    def do_POST(self) -> None:
        reload = self.server.reload
        if self.path.split("?", 1)[0] != "/-/reload" or reload is None:
            self._not_allowed()
        elif not self._authorized():
            self._unauthorized()
        else:
            try:
                error = reload()
            except TooSoon as exc:
                self._send(429, f"{exc}\n".encode(), TEXT,
                           {"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
                return
            if error is None:
                self._send(200, b"reloaded\n", TEXT)
            else:
                self._send(500, f"reload failed: {error}\n".encode(), TEXT)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = _not_allowed
