"""The HTTP server: HTTP/1.1 with keep-alive, for clients that may be hostile.

Connections are held by one watcher thread (:mod:`.connections`) while they send a request
or take an answer; only a whole request gets one of ``WORKERS`` threads, which renders the
answer into memory (:mod:`.routes`). Optional TLS (:mod:`.tls`) and basic auth
(:mod:`.auth`) come from a ``--web.config.file`` in the format of Prometheus'
exporter-toolkit.

On shutdown, scrapes in flight finish and get their answer; connections that wait for a
request are closed, so that stopping never waits on a slow or idle client.
"""

from __future__ import annotations

import logging
import socket
import socketserver
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from binance_margin_exporter.config import WebConfig
from binance_margin_exporter.web.auth import BasicAuth
from binance_margin_exporter.web.connections import Connection, Limits, Watcher, close
from binance_margin_exporter.web.routes import Handler, Reload, Scrape, landing_page
from binance_margin_exporter.web.tls import TLSFiles, tls_context

__all__ = ["BasicAuth", "ExporterHTTPServer", "make_server", "parse_listen_address",
           "tls_context", "url_host"]

log = logging.getLogger(__name__)


class ExporterHTTPServer(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 128  # a burst of scrapes waits in the backlog, not in SYN retries
    WORKERS = 16

    def __init__(self, address: tuple[str, int], scrape: Scrape, web: WebConfig, *,
                 metrics_path: str = "/metrics", reload: Reload | None = None,
                 limits: Limits | None = None, landing: bytes | None = None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.scrape = scrape
        self.metrics_path = metrics_path
        self.landing = landing or landing_page(metrics_path=metrics_path)  # the page at /
        self.reload = reload
        self.tls = TLSFiles(web.tls) if web.tls else None
        self.auth = BasicAuth(web.basic_auth_users) if web.basic_auth_users else None
        self.stopping = False
        super().__init__(address, Handler)
        self.workers = ThreadPoolExecutor(max_workers=self.WORKERS, thread_name_prefix="http")
        self.watcher = Watcher(self._dispatch, limits or Limits())

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

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        """As socketserver's, with a shorter poll: ``shutdown()`` returns within it."""
        super().serve_forever(poll_interval)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A new connection: to the watcher, which calls for a worker once a request is in."""
        sock = request
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        except OSError:
            pass
        if self.tls is not None:
            # the handshake happens in the watcher, without blocking on a slow client
            sock = self.tls.context().wrap_socket(sock, server_side=True,
                                                  do_handshake_on_connect=False)
        self.watcher.add(Connection(sock, client_address))

    def _dispatch(self, conn: Connection) -> None:
        self.workers.submit(self.serve_request, conn)

    def serve_request(self, conn: Connection) -> None:
        """One whole request, in a worker; its answer goes out from the watcher."""
        try:
            handler = Handler(conn, conn.address, self)  # type: ignore[arg-type]
        except Exception:  # a bug or a broken client must not cost the worker
            log.debug("connection from %s ended with an error", conn.address[0], exc_info=True)
            self.watcher.answer(conn, [], keep=False)
            return
        keep = not handler.close_connection and not self.stopping
        self.watcher.answer(conn, handler.wfile.chunks, keep)

    def server_close(self) -> None:
        self.stopping = True
        super().server_close()
        if hasattr(self, "watcher"):  # not when the address could not be bound
            self.watcher.close_waiting()  # idle connections closed: no new request
            self.workers.shutdown(wait=True)  # the requests in flight: rendered
            self.watcher.close()  # and their answers sent

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address[0])
        close(request)


def make_server(
    address: tuple[str, int],
    scrape: Scrape,
    web: WebConfig | None = None,
    *,
    metrics_path: str = "/metrics",
    reload: Reload | None = None,
    products: Sequence[str] = (),
) -> ExporterHTTPServer:
    """``scrape(seconds)``: the metrics, gathered within Prometheus' scrape timeout (None: the
    exporter's own budget); ``products``, named on the landing page."""
    return ExporterHTTPServer(address, scrape, web or WebConfig(), metrics_path=metrics_path,
                              reload=reload, landing=landing_page(products, metrics_path))


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
