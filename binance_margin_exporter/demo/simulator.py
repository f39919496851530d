"""A simulated Binance that speaks the real protocol: the upstream of ``--demo`` and of the tests.

It serves ``GET /api/v3/time`` and the signed endpoints of each product module of this package
(:mod:`.cross`: ``/sapi/v1/margin/account`` and ``/sapi/v1/margin/tradeCoeff``) on 127.0.0.1,
and checks what Binance checks: the ``X-MBX-APIKEY`` header, the signature (HMAC-SHA256 hex, or
base64 Ed25519 / RSA with the registered public key), ``timestamp`` against ``recvWindow``, and
the IP weight per minute (429, then 418 for a client that keeps going).

Tests drive faults through :meth:`Simulator.set_fault`; ``--demo`` never does.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from binance_margin_exporter.demo import interest
from binance_margin_exporter.demo.cross import ACCOUNT_PATH, SimulatedAccount
from binance_margin_exporter.demo.futures import SimulatedFutures
from binance_margin_exporter.demo.isolated import SimulatedIsolated
from binance_margin_exporter.demo.portfolio import SimulatedPortfolio
from binance_margin_exporter.demo.portfolio_pro import SimulatedPortfolioPro
from binance_margin_exporter.demo.positions import SimulatedPositions
from binance_margin_exporter.demo.routes import RequestError, Route
from binance_margin_exporter.demo.streams import API_KEY, SimulatedStreams
from binance_margin_exporter.demo.sub_accounts import SimulatedSubAccounts
from binance_margin_exporter.products import ENTRIES

TIME_PATH = "/api/v3/time"
TIME_WEIGHT = 1
IP_LIMIT_1M = 12000  # /sapi
API_LIMIT_1M = 6000  # /api (and /papi)
FUTURES_LIMIT_1M = 2400  # /fapi and /dapi, each its own host's


def budget_of(path: str) -> str:
    """The weight counter a path counts on (Binance's hosts each count their own)."""
    for prefix in ("sapi", "fapi", "dapi"):
        if path.startswith(f"/{prefix}/"):
            return prefix
    return "api"
# What a query may hold as sent: RFC 3986's query characters. A raw space or non-ASCII byte
# (a client that signed an unencoded query) is refused, as Binance refuses it.
QUERY_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*")

@dataclass
class Fault:
    """What the simulator does instead of (or on top of) a normal answer on ``paths``."""

    status: int | None = None  # answer with this status and ``body`` instead of the account
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait first (longer than the client's timeout: a hang)
    drip: float = 0.0  # send the headers, then the body one byte every ``drip`` seconds
    transform: Callable[[bytes], bytes] | None = None  # rewrite the normal body
    paths: tuple[str, ...] = (ACCOUNT_PATH,)
    times: int | None = None  # answer this way so many times, then clear (None: until cleared)
    # gzip the answer when the client accepts it, as normal answers are; False: the bytes on
    # the wire are the test's own (a transformed body, its Content-Length, a drip)
    gzip: bool = False

    @classmethod
    def binance_error(cls, code: int, msg: str, status: int = 400, **kw: Any) -> Fault:
        body = json.dumps({"code": code, "msg": msg}).encode()
        return cls(status=status, body=body, headers={"Content-Type": "application/json"}, **kw)

    @classmethod
    def rate_limited(cls, retry_after: int, status: int = 429, **kw: Any) -> Fault:
        msg = "Way too many requests; IP banned until 1700000000000." if status == 418 else (
            "Too many requests; current limit of IP is 12000 requests per minute.")
        fault = cls.binance_error(-1003, msg, status=status, **kw)
        fault.headers["Retry-After"] = str(retry_after)
        return fault


class Simulator:
    """The fake Binance over real HTTP on 127.0.0.1."""

    def __init__(self, account: SimulatedAccount | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, enforce_weight_limit: bool = True,
                 isolated_pairs: bool = True,
                 subs: SimulatedSubAccounts | None = None) -> None:
        self.account = account or SimulatedAccount()
        self.isolated = SimulatedIsolated(self.account, pairs=isolated_pairs)
        self.subs = subs or SimulatedSubAccounts(
            ["alice@fund.example", "bob@fund.example", "carol@fund.example",
             "dave@fund.example"],
            no_margin=["carol@fund.example"], frozen=["dave@fund.example"], n_assets=60,
            n_active=6, drift=self.account.drift)
        self.portfolio = SimulatedPortfolio(drift=self.account.drift)
        self.portfolio_pro = SimulatedPortfolioPro()
        self.futures = SimulatedFutures()
        self.positions = SimulatedPositions(drift=self.account.drift)
        self.streams = SimulatedStreams()  # the risk data streams: push, drop, expire
        self.non_master_keys: set[str] = set()  # keys refused by the sub-account endpoints
        # what each product of the product list serves (by path for a GET, else by
        # "METHOD path"), and the interest rates they share
        self.routes: dict[str, Route] = interest.routes()
        for entry in ENTRIES:
            self.routes.update(entry.simulated.routes(self))
        self.enforce_weight_limit = enforce_weight_limit
        self.clock_skew_ms = 0  # server time = real time + skew
        self.weight_bonus = 0  # weight used by "others" on this IP, added to the header
        self.latency = 0.0  # seconds added to every signed request
        self.counts: Counter[str] = Counter()
        self.signatures: deque[str] = deque(maxlen=5000)  # recent ones, to check none leaks
        self._keys: dict[str, tuple[str, Any]] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        # Binance counts per IP: (client address, budget, minute) -> weight used
        self._weight: dict[tuple[str, str, int], int] = {}
        self._violations: Counter[str] = Counter()  # by client address
        self._banned_until: dict[str, float] = {}  # by client address
        self.sources: Counter[tuple[str, str]] = Counter()  # requests by (client address, path)
        self.source_bonus: Counter[str] = Counter()  # like weight_bonus, for one address
        self._server = _Server((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_hmac_key(self, api_key: str, secret: str) -> None:
        self._keys[api_key] = ("hmac", secret.encode())

    def add_public_key(self, api_key: str, pem: bytes) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        self._keys[api_key] = ("public", load_pem_public_key(pem))

    def set_fault(self, fault: Fault | None) -> None:
        with self._lock:
            self._faults = [] if fault is None else [fault]

    def clear_faults(self) -> None:
        self.set_fault(None)

    def start(self) -> Simulator:
        self.streams.start(self._server.server_address[0])
        self._thread = threading.Thread(target=self._server.serve_forever, name="simulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.streams.stop()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol ------------------------------------------------------------------------

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_skew_ms

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path in fault.paths:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def weight_of(self, path: str) -> int:
        route = self.routes.get(path)
        return TIME_WEIGHT if route is None else route.weight

    def _spend(self, path: str, source: str = "127.0.0.1",
               route: str | None = None) -> tuple[int, int | None]:
        """Count the request's weight against its client address (Binance counts per IP;
        ``route``: its key in :attr:`routes`, if not the path); return (used weight,
        seconds to wait if over: negative for a ban)."""
        route = route or path
        now = self.server_ms()
        minute = now // 60000
        budget = budget_of(path)
        sapi = budget == "sapi"
        # "others" on this IP use /sapi weight
        bonus = self.weight_bonus + self.source_bonus[source] if sapi else 0
        limit = {"sapi": IP_LIMIT_1M, "api": API_LIMIT_1M}.get(budget, FUTURES_LIMIT_1M)
        if not self.enforce_weight_limit:  # benchmarks: no accounting, each request alone
            return self.weight_of(route) + bonus, None
        with self._lock:
            banned_until = self._banned_until.get(source, 0.0)
            if time.time() < banned_until:
                self._violations[source] += 1
                return limit, -int(banned_until - time.time()) - 1
            used = self._weight.get((source, budget, minute), 0) + self.weight_of(route)
            self._weight = {k: v for k, v in self._weight.items() if k[2] == minute}
            self._weight[(source, budget, minute)] = used
            used += bonus
            if used > limit:
                self._violations[source] += 1
                if self._violations[source] > 3:
                    self._banned_until[source] = time.time() + 120
                    return used, -120
                return used, (60000 - now % 60000) // 1000 + 1
            self._violations[source] = 0
        return used, None

    def _check_keyed(self, query: str, headers: Any) -> tuple[int, int, str] | None:
        """MARKET_DATA: None if the request carries a known key (and, if it is signed, a good
        signature in time), else (status, code, msg)."""
        if "&signature=" in query or query.startswith("signature="):
            return self._check_signed(query, headers)
        if headers.get("X-MBX-APIKEY") is None:
            return 400, -2014, "API-key format invalid."
        if headers.get("X-MBX-APIKEY") not in self._keys:
            return 401, -2015, "Invalid API-key, IP, or permissions for action."
        return None

    def _check_signed(self, query: str, headers: Any) -> tuple[int, int, str] | None:
        """None if the request is properly signed and timely, else (status, code, msg)."""
        key = self._keys.get(headers.get("X-MBX-APIKEY", ""))
        if headers.get("X-MBX-APIKEY") is None:
            return 400, -2014, "API-key format invalid."
        if key is None:
            return 401, -2015, "Invalid API-key, IP, or permissions for action."
        payload, sep, signature = query.rpartition("&signature=")
        if not sep or not signature:
            return 400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null."
        kind, material = key
        if kind == "hmac":
            expected = hmac.new(material, payload.encode(), hashlib.sha256).hexdigest()
            valid = hmac.compare_digest(expected, signature)
        else:
            valid = _verify_public(material, payload.encode(), signature)
        if not valid:
            return 400, -1022, "Signature for this request is not valid."
        params = dict(parse_qsl(payload))
        if "timestamp" not in params:
            return 400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null."
        try:
            timestamp = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            return 400, -1100, "Illegal characters found in a parameter."
        if recv_window > 60000:
            return 400, -1131, "recvWindow must be less than 60000"
        now = self.server_ms()
        if timestamp >= now + 1000:
            return 400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
        if now - timestamp > recv_window:
            return 400, -1021, "Timestamp for this request is outside of the recvWindow."
        return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # a burst of a fund's sub-accounts: Binance's backlog is deep


def _verify_public(key: Any, payload: bytes, signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding

    try:
        raw = base64.b64decode(unquote(signature), validate=True)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, payload)
        else:
            key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def _handler_for(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "simulated-binance"
        disable_nagle_algorithm = True

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
            parts = urlsplit(self.path)
            path = parts.path
            key = path if method == "GET" else f"{method} {path}"
            sim.counts[key] += 1
            length = self.headers.get("Content-Length", "")
            if length.isdigit():
                self.rfile.read(int(length))
            if "&signature=" in parts.query:
                sim.signatures.append(parts.query.rpartition("&signature=")[2])
            if (path != TIME_PATH or method != "GET") and key not in sim.routes:
                self._error(404, -1000, "Not found")
                return
            source = self.client_address[0]
            sim.sources[(source, path)] += 1
            used, wait = sim._spend(path, source, key)
            weight_header = ("x-sapi-used-ip-weight-1m" if path.startswith("/sapi/")
                             else "x-mbx-used-weight-1m")
            headers = {weight_header: str(used)}
            if wait is not None:
                status = 418 if wait < 0 else 429
                headers["Retry-After"] = str(abs(wait))
                self._error(status, -1003, "Too many requests.", headers)
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
            if path.startswith("/sapi/v1/sub-account/") and \
                    self.headers.get("X-MBX-APIKEY") in sim.non_master_keys:
                self._error(400, -1002, "You are not authorized to execute this request.",
                            headers)
                return
            params = dict(parse_qsl(parts.query))  # percent-decoded, "+" a space, as Binance
            if method != "GET":
                params[API_KEY] = self.headers.get(API_KEY, "")
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

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Run the simulator alone (benchmarks, local experiments): prints its base URL."""
    parser = argparse.ArgumentParser(prog="python -m binance_margin_exporter.demo.simulator")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: any)")
    parser.add_argument("--assets", type=int, default=300, help="assets the account lists")
    parser.add_argument("--active", type=int, default=12, help="assets with balances")
    parser.add_argument("--static", action="store_true", help="no price drift")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per signed request")
    parser.add_argument("--no-weight-limit", action="store_true")
    parser.add_argument("--sub-accounts", type=int, default=0, metavar="N",
                        help="the master has N sub-accounts (sub000@fund.example, ...), each "
                        "listing --assets assets, --active of them held")
    args = parser.parse_args(argv)
    api_key = os.environ.get("SIM_API_KEY", "")
    secret = os.environ.get("SIM_API_SECRET", "")
    if not api_key or not secret:
        print("set SIM_API_KEY and SIM_API_SECRET", file=sys.stderr)
        return 2
    host, _, port = args.listen.rpartition(":")
    account = SimulatedAccount(args.assets, args.active, drift=not args.static)
    subs = None
    if args.sub_accounts:
        subs = SimulatedSubAccounts([f"sub{i:03d}@fund.example" for i in range(args.sub_accounts)],
                                    n_assets=args.assets, n_active=args.active,
                                    drift=not args.static)
    sim = Simulator(account, host=host, port=int(port),
                    enforce_weight_limit=not args.no_weight_limit, subs=subs)
    sim.add_hmac_key(api_key, secret)
    sim.latency = args.latency
    print(sim.base_url, flush=True)
    try:
        sim._server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
