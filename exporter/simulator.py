"""A simulated Binance that speaks the real protocol: the upstream of ``--demo`` and of the tests.

It serves ``GET /api/v3/time``, ``GET /sapi/v1/margin/account`` and ``GET
/sapi/v1/margin/tradeCoeff`` on 127.0.0.1, and checks what Binance checks: the ``X-MBX-APIKEY``
header, the signature (HMAC-SHA256 hex, or base64 Ed25519 / RSA with the registered public key),
``timestamp`` against ``recvWindow``, and the IP weight per minute (429, then 418 for a client
that keeps going). Every number is a JSON string with 8 decimals, as Binance sends them.

Tests drive faults through :meth:`Simulator.set_fault`; ``--demo`` never does. The account is a
:class:`SimulatedAccount`: a few hundred assets, a dozen of them held or borrowed, prices that
drift, and a margin level that now and then nears the margin-call bar, all consistent
(``netAsset = free + locked - borrowed - interest``, margin level = assets / liabilities).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import random
import string
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

ACCOUNT_PATH = "/sapi/v1/margin/account"
TRADE_COEFF_PATH = "/sapi/v1/margin/tradeCoeff"
TIME_PATH = "/api/v3/time"
WEIGHTS = {ACCOUNT_PATH: 10, TRADE_COEFF_PATH: 10, TIME_PATH: 1}
IP_LIMIT_1M = 12000
EIGHT = Decimal("0.00000001")

# Assets a Binance margin account lists; the rest of the few hundred are made-up tickers.
KNOWN_ASSETS = (
    "BTC ETH USDT BNB SOL XRP ADA DOGE TRX DOT LINK MATIC LTC BCH AVAX UNI ATOM XLM ETC FIL "
    "APT ARB OP NEAR ICP VET HBAR ALGO QNT AAVE GRT EGLD SAND MANA AXS THETA FTM EOS XTZ CHZ "
    "FDUSD USDC TUSD DAI PEPE SHIB WIF BONK INJ SUI SEI TIA RUNE KAVA CRV MKR SNX COMP YFI ZEC"
).split()

# (asset, price in BTC, free, locked) of the assets the demo account holds
HOLDINGS = (
    ("BTC", "1", "0.85", "0.05"),
    ("ETH", "0.0385", "12.5", "0"),
    ("USDT", "0.0000106", "15000", "2500"),
    ("BNB", "0.0095", "40", "0"),
    ("SOL", "0.0022", "300", "25"),
    ("XRP", "0.0000081", "20000", "0"),
    ("ADA", "0.0000068", "35000", "0"),
    ("DOGE", "0.0000021", "150000", "0"),
    ("LINK", "0.00022", "800", "0"),
    ("DOT", "0.000075", "1500", "0"),
    ("FDUSD", "0.0000106", "5000", "0"),
    ("AVAX", "0.00038", "400", "0"),
)
# asset -> share of the liability: what the demo account borrows
BORROWS = {"USDT": Decimal("0.55"), "ETH": Decimal("0.25"), "BNB": Decimal("0.12"),
           "SOL": Decimal("0.08")}
BTC_USDT = Decimal("94250")


def q8(value: Decimal) -> Decimal:
    return value.quantize(EIGHT, rounding=ROUND_HALF_EVEN)


def s8(value: Decimal) -> str:
    return f"{q8(value):.8f}"


def asset_names(count: int, seed: int = 7) -> list[str]:
    """The demo's holdings first, then well-known tickers, then made-up ones."""
    held = [h[0] for h in HOLDINGS]
    names = [*held, *(a for a in KNOWN_ASSETS if a not in held)][:count]
    rng = random.Random(seed)
    seen = set(names)
    while len(names) < count:
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 6)))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


class SimulatedAccount:
    """A cross margin account whose numbers move plausibly and always add up."""

    def __init__(
        self,
        n_assets: int = 300,
        n_active: int = 12,
        *,
        seed: int = 7,
        drift: bool = True,
        account_type: str = "MARGIN_1",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.account_type = account_type
        self.drift = drift
        self._wall = wall
        self._started = int(wall())
        self._lock = threading.Lock()
        self._cache: tuple[Any, bytes] | None = None
        self.target_level: Decimal | None = None if drift else Decimal("2.5")
        self.coeff = {"normalBar": "1.5", "marginCallBar": "1.3", "forceLiquidationBar": "1.1"}
        names = asset_names(max(n_assets, len(HOLDINGS)), seed)
        rng = random.Random(seed)
        held = {a: (Decimal(p), Decimal(f), Decimal(lk)) for a, p, f, lk in HOLDINGS}
        self.assets: list[tuple[str, Decimal, Decimal, Decimal]] = []  # name, price, free, locked
        for i, name in enumerate(names):
            if name in held and i < n_active:
                self.assets.append((name, *held[name]))
            elif i < n_active:  # more active assets than the demo's holdings (benchmarks)
                price = Decimal(str(round(rng.uniform(1e-6, 1e-3), 10)))
                self.assets.append((name, price, q8(Decimal(rng.uniform(1, 1000))), Decimal(0)))
            else:
                self.assets.append((name, Decimal(1), Decimal(0), Decimal(0)))
        self._phases = [rng.uniform(0, 2 * math.pi) for _ in self.assets]
        self.borrows = {a: w for a, w in BORROWS.items() if a in dict.fromkeys(names[:n_active])}
        if not self.borrows and n_active:
            self.borrows = {self.assets[0][0]: Decimal(1)}

    def set_margin_level(self, level: float | None) -> None:
        """Hold the margin level at ``level`` (None: back to the drifting default)."""
        with self._lock:
            self.target_level = None if level is None else Decimal(str(level))
            self._cache = None

    def _tick(self) -> int:
        return int(self._wall()) if self.drift else 0

    def _level_now(self, t: float) -> Decimal:
        if self.target_level is not None:
            return self.target_level
        # between about 1.4 and 3.0 over half an hour: now and then close to the 1.3 bar
        return Decimal(str(round(2.2 + 0.8 * math.sin(2 * math.pi * t / 1800), 6)))

    def snapshot(self) -> dict[str, Any]:
        tick = self._tick()
        t = tick - self._started if self.drift else 0.0
        prices = []
        for (_name, price, _f, _l), phase in zip(self.assets, self._phases, strict=True):
            factor = Decimal(str(round(1 + 0.03 * math.sin(2 * math.pi * t / 600 + phase), 6)))
            prices.append(price if not self.drift else price * factor)
        total_asset = sum(
            ((f + lk) * p for (_n, _p, f, lk), p in zip(self.assets, prices, strict=True)),
            Decimal(0),
        )
        level = self._level_now(t)
        liability_btc = total_asset / level if self.borrows else Decimal(0)
        # interest: 0.02 % a day, as on a typical USDT loan, starting with an hour's worth
        days = (Decimal(int(t // 60)) + 60) / 1440 if self.drift else Decimal("0.5")
        user_assets = []
        for (name, _p, free, locked), price in zip(self.assets, prices, strict=True):
            share = self.borrows.get(name)
            borrowed = interest = Decimal(0)
            if share is not None and price > 0:
                debt = liability_btc * share / price  # borrowed + interest, in the asset
                interest = q8(debt * Decimal("0.0002") * days)
                borrowed = q8(debt) - interest
            net = free + locked - borrowed - interest
            user_assets.append((name, free, locked, borrowed, interest, net, price))
        asset_btc = q8(sum(((f + lk) * p for _n, f, lk, _b, _i, _ne, p in user_assets),
                           Decimal(0)))
        liab_btc = q8(sum(((b + i) * p for _n, _f, _l, b, i, _ne, p in user_assets), Decimal(0)))
        margin_level = q8(asset_btc / liab_btc) if liab_btc > 0 else Decimal(999)
        return {
            "created": True,
            "borrowEnabled": True,
            "marginLevel": s8(margin_level),
            "collateralMarginLevel": s8(margin_level * Decimal("0.97")),
            "totalAssetOfBtc": s8(asset_btc),
            "totalLiabilityOfBtc": s8(liab_btc),
            "totalNetAssetOfBtc": s8(asset_btc - liab_btc),
            "TotalCollateralValueInUSDT": s8(asset_btc * BTC_USDT * Decimal("0.95")),
            "totalOpenOrderLossInUSDT": "0.00000000",
            "tradeEnabled": True,
            "transferInEnabled": True,
            "transferOutEnabled": True,
            "accountType": self.account_type,
            "userAssets": [
                {"asset": n, "borrowed": s8(b), "free": s8(f), "interest": s8(i),
                 "locked": s8(lk), "netAsset": s8(ne)}
                for n, f, lk, b, i, ne, _p in user_assets
            ],
        }

    def body(self) -> bytes:
        with self._lock:
            tick = (self._tick(), self.target_level)
            if self._cache is None or self._cache[0] != tick:
                self._cache = (tick, json.dumps(self.snapshot(), separators=(",", ":")).encode())
            return self._cache[1]


@dataclass
class Fault:
    """What the simulator does instead of (or on top of) a normal answer on ``paths``."""

    status: int | None = None  # answer with this status and ``body`` instead of the account
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait first (longer than the client's timeout: a hang)
    transform: Callable[[bytes], bytes] | None = None  # rewrite the normal body
    paths: tuple[str, ...] = (ACCOUNT_PATH,)
    times: int | None = None  # answer this way so many times, then clear (None: until cleared)

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
                 port: int = 0, enforce_weight_limit: bool = True) -> None:
        self.account = account or SimulatedAccount()
        self.enforce_weight_limit = enforce_weight_limit
        self.clock_skew_ms = 0  # server time = real time + skew
        self.weight_bonus = 0  # weight used by "others" on this IP, added to the header
        self.latency = 0.0  # seconds added to every signed request
        self.counts: Counter[str] = Counter()
        self.signatures: deque[str] = deque(maxlen=5000)  # recent ones, to check none leaks
        self._keys: dict[str, tuple[str, Any]] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._weight: dict[int, int] = {}
        self._violations = 0
        self._banned_until = 0.0
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
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
        self._thread = threading.Thread(target=self._server.serve_forever, name="simulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
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

    def _spend(self, path: str) -> tuple[int, int | None]:
        """Count the request's weight; return (used weight, seconds to wait if over)."""
        now = self.server_ms()
        minute = now // 60000
        if not self.enforce_weight_limit:  # benchmarks: no accounting, each request alone
            return WEIGHTS.get(path, 1) + self.weight_bonus, None
        with self._lock:
            if time.time() < self._banned_until:
                self._violations += 1
                return IP_LIMIT_1M, -int(self._banned_until - time.time()) - 1
            used = self._weight.get(minute, 0) + WEIGHTS.get(path, 1)
            self._weight = {minute: used}
            used += self.weight_bonus
            if used > IP_LIMIT_1M:
                self._violations += 1
                if self._violations > 3:
                    self._banned_until = time.time() + 120
                    return used, -120
                return used, (60000 - now % 60000) // 1000 + 1
            self._violations = 0
        return used, None

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

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            all_headers = {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}
            for name, value in all_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _error(self, status: int, code: int, msg: str,
                   headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps({"code": code, "msg": msg}).encode(), headers)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            sim.counts[path] += 1
            if "&signature=" in parts.query:
                sim.signatures.append(parts.query.rpartition("&signature=")[2])
            if path not in WEIGHTS:
                self._error(404, -1000, "Not found")
                return
            used, wait = sim._spend(path)
            weight_header = ("x-sapi-used-ip-weight-1m" if path.startswith("/sapi")
                             else "x-mbx-used-weight-1m")
            headers = {weight_header: str(used)}
            if wait is not None:
                status = 418 if wait < 0 else 429
                headers["Retry-After"] = str(abs(wait))
                self._error(status, -1003, "Too many requests.", headers)
                return
            fault = sim._fault_for(path)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                self._send(fault.status, fault.body, {**headers, **fault.headers})
                return
            if path == TIME_PATH:
                body = json.dumps({"serverTime": sim.server_ms()}).encode()
                self._send(200, body, headers)
                return
            problem = sim._check_signed(parts.query, self.headers)
            if problem is not None:
                status, code, msg = problem
                self._error(status, code, msg, headers)
                return
            if sim.latency:
                time.sleep(sim.latency)
            if path == ACCOUNT_PATH:
                body = sim.account.body()
            else:
                body = json.dumps(sim.account.coeff).encode()
            if fault is not None and fault.transform is not None:
                body = fault.transform(body)
            self._send(200, body, headers)

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Run the simulator alone (benchmarks, local experiments): prints its base URL."""
    parser = argparse.ArgumentParser(prog="python -m exporter.simulator")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: any)")
    parser.add_argument("--assets", type=int, default=300, help="assets the account lists")
    parser.add_argument("--active", type=int, default=12, help="assets with balances")
    parser.add_argument("--static", action="store_true", help="no price drift")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per signed request")
    parser.add_argument("--no-weight-limit", action="store_true")
    args = parser.parse_args(argv)
    api_key = os.environ.get("SIM_API_KEY", "")
    secret = os.environ.get("SIM_API_SECRET", "")
    if not api_key or not secret:
        print("set SIM_API_KEY and SIM_API_SECRET", file=sys.stderr)
        return 2
    host, _, port = args.listen.rpartition(":")
    account = SimulatedAccount(args.assets, args.active, drift=not args.static)
    sim = Simulator(account, host=host, port=int(port),
                    enforce_weight_limit=not args.no_weight_limit)
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
