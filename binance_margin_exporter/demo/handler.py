"""The simulator's HTTP side: the server and the request handler that answers as Binance does.

:class:`SimulatorServer` carries its simulator (what the handler asks of it: :class:`Served`,
which :class:`~.simulator.Simulator` is); :class:`Handler` reads it from its server, counts
and weighs each request, applies a test's :class:`~.faults.Fault`, checks the key and
signature, and sends the route's answer (gzipped when the client accepts).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from binance_margin_exporter.binance.endpoints import TIME
from binance_margin_exporter.binance.limits import BUDGETS, budget_of
from binance_margin_exporter.demo.faults import Fault
from binance_margin_exporter.demo.routes import API_KEY, RequestError, Route

log = logging.getLogger(__name__)

TIME_PATH = TIME.path
# What a query may hold as sent: RFC 3986's query characters. A raw space or non-ASCII byte
# (a client that signed an unencoded query) is refused, as Binance refuses it.
QUERY_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*")


class Served(Protocol):
    """What the HTTP side reads and counts of the simulator it serves."""

    routes: Mapping[str, Route]  # by path for a GET, else by "METHOD path"
    counts: Counter[str]  # requests by route key
    sources: Counter[tuple[str, str]]  # requests by (client address, path)
    signatures: deque[str]  # recent ones, to check none leaks
    states_retry_after: bool  # Retry-After on its own 429 and 418
    latency: float  # seconds added to every signed request

    def answers(self, path: str) -> bool: ...

    def server_ms(self) -> int: ...

    def _spend(self, path: str, source: str = ...,
               route: str | None = ...) -> tuple[int, int | None]: ...

    def _fault_for(self, path: str) -> Fault | None: ...

    def _check_signed(self, query: str, headers: Any) -> tuple[int, int, str] | None: ...

    def _check_keyed(self, query: str, headers: Any) -> tuple[int, int, str] | None: ...


class SimulatorServer(ThreadingHTTPServer):
    """The simulator's HTTP server: :class:`Handler` finds its simulator here."""

    request_queue_size = 1024  # a burst of a fund's sub-accounts: Binance's backlog is deep

    def __init__(self, address: tuple[str, int], simulator: Served) -> None:
        self.simulator = simulator
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a deadline, a test's cut-off) is no error of the simulator;
        anything else is logged, not printed to stderr as socketserver does."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("simulator: %s hung up: %s", client_address[0], error)
        else:
            log.error("simulator: a request from %s failed", client_address[0],
                      exc_info=error)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "simulated-binance"
    disable_nagle_algorithm = True
    server: SimulatorServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: requests carry signatures

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              drip: float = 0.0, gzipped: bool = True) -> None:
        self.send_response(status)
        all_headers = {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}
        if gzipped and body and self._accepts_gzip():
            # as Binance does: gzip whenever the client accepts it (requests always does)
            body = gzip.compress(body, compresslevel=6, mtime=0)
            all_headers["Content-Encoding"] = "gzip"
        for name, value in all_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if not drip:
                self.wfile.write(body)
                return
            self.wfile.flush()
            for i in range(len(body)):  # ends when the client hangs up
                time.sleep(drip)
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _accepts_gzip(self) -> bool:
        offered = self.headers.get("Accept-Encoding", "")
        return any(token.split(";")[0].strip().lower() == "gzip"
                   for token in offered.split(","))

    def _error(self, status: int, code: int, msg: str,
               headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps({"code": code, "msg": msg}).encode(), headers)

    def do_POST(self) -> None:
        self.do_GET("POST")

    def do_PUT(self) -> None:
        self.do_GET("PUT")

    def do_DELETE(self) -> None:
        self.do_GET("DELETE")

    def do_GET(self, method: str = "GET") -> None:
        sim = self.server.simulator
        parts = urlsplit(self.path)
        path = parts.path
        key = path if method == "GET" else f"{method} {path}"
        sim.counts[key] += 1
        length = self.headers.get("Content-Length", "")
        if length.isdigit():
            self.rfile.read(int(length))
        if "&signature=" in parts.query:
            sim.signatures.append(parts.query.rpartition("&signature=")[2])
        if ((path != TIME_PATH or method != "GET") and key not in sim.routes) or \
                not sim.answers(path):
            self._error(404, -1000, "Not found")
            return
        source = self.client_address[0]
        sim.sources[(source, path)] += 1
        used, wait = sim._spend(path, source, key)
        # Binance sends the weight headers' names in lower case
        headers = {BUDGETS[budget_of(path)].header.lower(): str(used)}
        if wait is not None:
            # Binance's words; Retry-After only where the simulator is told Binance sends it
            # (the spot docs promise it, the futures and PM pages do not)
            status = 418 if wait < 0 else 429
            if sim.states_retry_after:
                headers["Retry-After"] = str(abs(wait))
            until_ms = sim.server_ms() + abs(wait) * 1000
            msg = (f"Way too much request weight used; IP banned until {until_ms}. Please use "
                   f"WebSocket Streams for live updates to avoid bans." if status == 418 else
                   f"Too much request weight used; current limit is "
                   f"{BUDGETS[budget_of(path)].limit} request weight per 1 MINUTE. Please use "
                   f"WebSocket Streams for live updates to avoid polling the API.")
            self._error(status, -1003, msg, headers)
            return
        fault = sim._fault_for(key)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            self._send(fault.status, fault.body, {**headers, **fault.headers},
                       gzipped=fault.gzip)
            return
        if path == TIME_PATH:
            body = json.dumps({"serverTime": sim.server_ms()}).encode()
            self._send(200, body, headers)
            return
        route = sim.routes[key]
        if not QUERY_CHARACTERS.fullmatch(parts.query):
            self._error(400, -1100, "Illegal characters found in a parameter.", headers)
            return
        problem = None
        if route.signed:
            problem = sim._check_signed(parts.query, self.headers)
        elif route.keyed:
            problem = sim._check_keyed(parts.query, self.headers)
        if problem is not None:
            status, code, msg = problem
            self._error(status, code, msg, headers)
            return
        if sim.latency:
            time.sleep(sim.latency)
        params = dict(parse_qsl(parts.query))  # percent-decoded, "+" a space, as Binance
        params[API_KEY] = self.headers.get(API_KEY, "")  # whose call it is
        try:
            body = route.answer(params)
        except RequestError as exc:
            self._error(400, exc.code, exc.msg, headers)
            return
        if fault is None:
            self._send(200, body, headers)
            return
        if fault.transform is not None:
            body = fault.transform(body)
        self._send(200, body, headers, fault.drip, gzipped=fault.gzip)
