"""The Binance REST client: the only module that knows HTTP and Binance's camelCase.

It signs requests (HMAC-SHA256, Ed25519 or RSA), keeps the local clock in step with the server's,
honours Binance's rate limits for every account that shares this IP, and turns every answer into
either a typed, frozen model (numbers parsed from their JSON strings here, at the boundary) or an
:class:`UpstreamError` with a ``reason`` the collector can count. No message it produces contains
the API key, the secret, a signature or a signed URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from exporter.config import AccountConfig

log = logging.getLogger(__name__)


class RedactSignatures(logging.Filter):
    """urllib3 logs each request's URL at DEBUG; a signed URL must not reach any log."""

    pattern = re.compile(r"signature=[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "signature=" in message:
            record.msg = self.pattern.sub("signature=<redacted>", message)
            record.args = ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactSignatures())

ACCOUNT_PATH = "/sapi/v1/margin/account"
TRADE_COEFF_PATH = "/sapi/v1/margin/tradeCoeff"
TIME_PATH = "/api/v3/time"
IP_WEIGHT_LIMIT_1M = 12000
WEIGHT_HEADER = "X-SAPI-USED-IP-WEIGHT-1M"

# Reasons an account fetch can fail; the collector pre-sets a counter for each.
REASONS = (
    "api_error",
    "auth",
    "banned",
    "connection",
    "http",
    "invalid_response",
    "rate_limited",
    "throttled",
    "timeout",
)
AUTH_CODES = {-1022: "signature", -2014: "API-key format", -2015: "API key, IP or permissions"}
AUTH_HINT = (
    "check the API key and secret, that the key may read margin data, and the key's IP allow-list"
)
AUTH_BACKOFF_FIRST_SECONDS = 15.0
AUTH_BACKOFF_MAX_SECONDS = 300.0
CLOCK_RESYNC_SECONDS = 300.0
RETRY_AFTER_DEFAULT_SECONDS = 60.0


class UpstreamError(Exception):
    """A failed call to Binance. ``str()`` is safe to log: no secret, signature or signed URL."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = code
        self.status = status
        self.sent = sent  # False: refused here (back-off), no request went out


# --------------------------------------------------------------------------------------------
# models


class UserAsset(NamedTuple):
    asset: str
    free: float
    locked: float
    borrowed: float
    interest: float
    net_asset: float


@dataclass(frozen=True, slots=True)
class MarginAccount:
    margin_level: float
    total_asset_btc: float
    total_liability_btc: float
    total_net_asset_btc: float
    assets: tuple[UserAsset, ...]  # the assets with any non-zero value, in Binance's order
    collateral_margin_level: float | None = None
    total_collateral_value_usdt: float | None = None
    total_open_order_loss_usdt: float | None = None
    created: bool | None = None
    trade_enabled: bool | None = None
    borrow_enabled: bool | None = None
    transfer_in_enabled: bool | None = None
    transfer_out_enabled: bool | None = None
    account_type: str | None = None
    zero_assets: tuple[str, ...] = ()  # assets listed with all five values zero


@dataclass(frozen=True, slots=True)
class TradeCoeff:
    normal_bar: float
    margin_call_bar: float
    force_liquidation_bar: float


def _invalid(message: str) -> UpstreamError:
    return UpstreamError("invalid_response", message)


def _number(raw: Mapping[str, Any], key: str, where: str = "") -> float:
    value = raw.get(key)
    if value is None:
        raise _invalid(f"{where}{key}: missing")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _invalid(f"{where}{key}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise _invalid(f"{where}{key}: not a number: {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise _invalid(f"{where}{key}: not a finite number: {str(value)[:40]!r}")
    return number


def _optional_number(raw: Mapping[str, Any], key: str) -> float | None:
    return None if raw.get(key) is None else _number(raw, key)


def _optional_flag(raw: Mapping[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _invalid(f"{key}: expected true or false, got {type(value).__name__}")
    return value


ASSET_FIELDS = ("free", "locked", "borrowed", "interest", "netAsset")
ZERO = "0.00000000"  # how Binance writes zero; most of the hundreds of listed assets are all-zero


def _parse_assets(raw: Any) -> tuple[tuple[UserAsset, ...], tuple[str, ...]]:
    """(assets holding anything, names of the all-zero assets): the hot loop of a scrape."""
    if not isinstance(raw, list):
        raise _invalid("userAssets: expected a list")
    new, asset_type = tuple.__new__, UserAsset  # tuple.__new__: half the cost of UserAsset()
    held: list[UserAsset] = []
    zeros: list[str] = []
    try:
        for entry in raw:
            name = entry["asset"]
            if type(name) is not str:
                raise ValueError
            free, locked, borrowed = entry["free"], entry["locked"], entry["borrowed"]
            interest, net = entry["interest"], entry["netAsset"]
            if free == ZERO and locked == ZERO and borrowed == ZERO and interest == ZERO \
                    and net == ZERO:
                zeros.append(name)
                continue
            # Most held assets still have zero locked, borrowed or interest: skip float() there.
            item = new(asset_type, (
                name,
                0.0 if free == ZERO else float(free),
                0.0 if locked == ZERO else float(locked),
                0.0 if borrowed == ZERO else float(borrowed),
                0.0 if interest == ZERO else float(interest),
                0.0 if net == ZERO else float(net),
            ))
            total = item[1] + item[2] + item[3] + item[4] + item[5]
            if total - total != 0.0:  # an inf or a nan among them
                raise ValueError
            if item[1] or item[2] or item[3] or item[4] or item[5]:
                held.append(item)
            else:  # zero written another way ("0", "0E-8")
                zeros.append(name)
    except (KeyError, TypeError, ValueError):
        # The fast path met something odd: look again, slowly, to name the field.
        for i, entry in enumerate(raw):
            where = f"userAssets[{i}]."
            if not isinstance(entry, dict):
                raise _invalid(f"userAssets[{i}]: expected an object") from None
            if not isinstance(entry.get("asset"), str):
                raise _invalid(f"{where}asset: expected a string") from None
            for key in ASSET_FIELDS:
                _number(entry, key, where)
        raise _invalid("userAssets: unreadable entry") from None  # pragma: no cover
    return tuple(held), tuple(zeros)


def parse_account(raw: Any) -> MarginAccount:
    """Turn the JSON of ``GET /sapi/v1/margin/account`` into a :class:`MarginAccount`."""
    if not isinstance(raw, dict):
        raise _invalid(f"account: expected a JSON object, got {type(raw).__name__}")
    account_type = raw.get("accountType")
    if account_type is not None and not isinstance(account_type, str):
        raise _invalid("accountType: expected a string")
    held, zeros = _parse_assets(raw.get("userAssets"))
    return MarginAccount(
        margin_level=_number(raw, "marginLevel"),
        total_asset_btc=_number(raw, "totalAssetOfBtc"),
        total_liability_btc=_number(raw, "totalLiabilityOfBtc"),
        total_net_asset_btc=_number(raw, "totalNetAssetOfBtc"),
        assets=held,
        zero_assets=zeros,
        collateral_margin_level=_optional_number(raw, "collateralMarginLevel"),
        total_collateral_value_usdt=_optional_number(raw, "TotalCollateralValueInUSDT"),
        total_open_order_loss_usdt=_optional_number(raw, "totalOpenOrderLossInUSDT"),
        created=_optional_flag(raw, "created"),
        trade_enabled=_optional_flag(raw, "tradeEnabled"),
        borrow_enabled=_optional_flag(raw, "borrowEnabled"),
        transfer_in_enabled=_optional_flag(raw, "transferInEnabled"),
        transfer_out_enabled=_optional_flag(raw, "transferOutEnabled"),
        account_type=account_type,
    )


def parse_trade_coeff(raw: Any) -> TradeCoeff:
    if not isinstance(raw, dict):
        raise _invalid("tradeCoeff: expected a JSON object")
    return TradeCoeff(
        normal_bar=_number(raw, "normalBar"),
        margin_call_bar=_number(raw, "marginCallBar"),
        force_liquidation_bar=_number(raw, "forceLiquidationBar"),
    )


# --------------------------------------------------------------------------------------------
# signing


class Signer(Protocol):
    def sign(self, payload: str) -> str:
        """Return the signature, ready to append to a URL as ``&signature=...``."""
        ...


class HmacSigner:
    """HMAC-SHA256 of the query string keyed with the API secret, as lower-case hex."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(<redacted>)"


class PrivateKeySigner:
    """Ed25519 or RSA (PKCS#1 v1.5, SHA-256): base64 signature, percent-encoded for the URL."""

    def __init__(self, pem: bytes, passphrase: bytes | None = None) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

        try:
            key = serialization.load_pem_private_key(pem, password=passphrase)
        except TypeError:
            raise ValueError(
                "the key is encrypted: set private_key_passphrase_file"
                if passphrase is None
                else "a passphrase was given but the key is not encrypted"
            ) from None
        except ValueError:
            raise ValueError(
                "not a PEM private key (PKCS#8), or a wrong passphrase"
            ) from None
        except Exception:  # noqa: BLE001 - cryptography raises several kinds; none is ours
            raise ValueError("unsupported private key") from None
        if isinstance(key, ed25519.Ed25519PrivateKey):
            self.kind = "ed25519"
        elif isinstance(key, rsa.RSAPrivateKey):
            self.kind = "rsa"
        else:
            raise ValueError("only Ed25519 and RSA private keys are supported")
        self._key = key

    def sign_raw(self, payload: str) -> bytes:
        if self.kind == "ed25519":
            return self._key.sign(payload.encode())
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return self._key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())

    def sign(self, payload: str) -> str:
        return quote(base64.b64encode(self.sign_raw(payload)).decode(), safe="")

    def __repr__(self) -> str:
        return f"PrivateKeySigner({self.kind}, <redacted>)"


def make_signer(account: AccountConfig) -> Signer:
    """The signer for an account; ``ValueError`` (naming no secret) for an unusable key."""
    if account.api_secret is not None:
        return HmacSigner(account.api_secret)
    assert account.private_key_pem is not None
    return PrivateKeySigner(account.private_key_pem, account.private_key_passphrase)


# --------------------------------------------------------------------------------------------
# shared state of one upstream: the server clock and the IP-wide rate limit


class ServerClock:
    """Binance time as seen from here: local time plus an offset measured with /api/v3/time."""

    def __init__(self, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.offset_ms = 0
        self._synced_at: float | None = None

    def now_ms(self) -> int:
        return int(self._wall() * 1000) + self.offset_ms

    def claim_sync(self) -> bool:
        """True for the one caller that should re-sync now; the accounts sharing this clock
        go on with the current offset meanwhile, so a re-sync costs one request, not one per
        account."""
        with self._lock:
            now = self._monotonic()
            if self._synced_at is not None and now - self._synced_at <= CLOCK_RESYNC_SECONDS:
                return False
            self._synced_at = now
            return True

    def update(self, server_ms: int, sent: float, received: float) -> None:
        offset = int(server_ms - (sent + received) * 500)
        with self._lock:
            changed = abs(offset - self.offset_ms) > 1000
            self.offset_ms = offset
            self._synced_at = self._monotonic()
        if changed:
            log.info("server clock differs from the local clock by %+d ms", offset)

    def mark_failed(self) -> None:
        """Try again at the next request rather than waiting a whole resync period."""
        with self._lock:
            self._synced_at = None


class RateGate:
    """What Binance allows this IP: shared by every account that talks to the same host.

    After a 429 or 418 nothing is sent until ``Retry-After`` has passed. When the used IP weight
    reported by Binance reaches ``soft_limit``, requests pause until the next minute, when
    Binance's counter starts again, so that Binance never has to say 429.
    """

    def __init__(self, soft_limit: int = 9600, wall: Callable[[], float] = time.time) -> None:
        self.soft_limit = soft_limit
        self._wall = wall
        self._lock = threading.Lock()
        self.blocked_until = 0.0
        self.reason: str | None = None

    def check(self) -> None:
        with self._lock:
            until, reason = self.blocked_until, self.reason
        if reason is not None and self._wall() < until:
            raise UpstreamError(
                reason,
                f"not calling Binance until {time.strftime('%H:%M:%S', time.gmtime(until))} "
                f"UTC ({until - self._wall():.0f} s): {reason.replace('_', ' ')}",
                sent=False,
            )

    def block(self, seconds: float, reason: str) -> None:
        until = self._wall() + max(seconds, 1.0)
        with self._lock:
            if until <= self.blocked_until and self.reason == reason:
                return
            first_ban = reason == "banned" and (
                self.reason != "banned" or self._wall() >= self.blocked_until
            )
            self.blocked_until = max(until, self.blocked_until)
            self.reason = reason
        if first_ban:
            log.error(
                "Binance has banned this IP (HTTP 418) for %.0f s; the exporter sends nothing "
                "until then. Scrape less often or serve fewer accounts per IP",
                seconds,
            )

    def note_weight(self, weight: int, server_ms: int) -> None:
        if weight >= self.soft_limit:
            to_next_minute = (60000 - server_ms % 60000) / 1000 + 1
            log.warning(
                "Binance reports %d of %d IP weight used this minute; pausing requests for %.0f s",
                weight, IP_WEIGHT_LIMIT_1M, to_next_minute,
            )
            self.block(to_next_minute, "throttled")

    def backoff_until(self) -> float:
        with self._lock:
            return self.blocked_until if self._wall() < self.blocked_until else 0.0


class Upstream:
    """The clock and rate gate of one Binance host, shared by all its accounts."""

    def __init__(self, base_url: str, *, soft_limit: int = 9600,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self.clock = ServerClock(wall, monotonic)
        self.gate = RateGate(soft_limit, wall)


# --------------------------------------------------------------------------------------------
# the client


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        return max(float(headers.get("Retry-After", "")), 1.0)
    except ValueError:
        return RETRY_AFTER_DEFAULT_SECONDS


def _error_body(body: bytes) -> tuple[int | None, str]:
    """Binance's ``{"code": -2015, "msg": "..."}``, or (None, a short description)."""
    try:
        raw = json.loads(body)
    except ValueError:
        return None, "non-JSON body"
    if isinstance(raw, dict) and isinstance(raw.get("code"), int):
        message = str(raw.get("msg", ""))[:200].replace("\n", " ")
        return raw["code"], message
    return None, "unexpected JSON body"


class BinanceClient:
    """Signed calls for one account. Thread-safe; one ``requests.Session`` (connection reuse)."""

    def __init__(
        self,
        upstream: Upstream,
        api_key: str,
        signer: Signer,
        *,
        recv_window_ms: int = 5000,
        timeout: float = 5.0,
        max_response_bytes: int = 16 * 1024 * 1024,
        session: requests.Session | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.upstream = upstream
        self._api_key = api_key
        self._signer = signer
        self._recv_window_ms = recv_window_ms
        self._timeout = timeout
        self._max_bytes = max_response_bytes
        self._session = session or requests.Session()
        # requests reads proxy and CA settings from the environment on every request, which
        # costs more than the rest of a small scrape. Read them once, here, instead.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(upstream.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self._session.verify = bundle
        self._wall = wall
        self._lock = threading.Lock()
        self._auth_failures = 0
        self._auth_retry_at = 0.0
        self.last_used_weight: int | None = None

    def __repr__(self) -> str:
        return f"BinanceClient({self.upstream.base_url!r}, <redacted>)"

    # -- public calls ---------------------------------------------------------------------

    def get_account(self) -> MarginAccount:
        return parse_account(self._signed_get(ACCOUNT_PATH))

    def get_trade_coeff(self) -> TradeCoeff:
        return parse_trade_coeff(self._signed_get(TRADE_COEFF_PATH))

    def sync_time(self) -> None:
        """Measure the server clock offset (``GET /api/v3/time``, unsigned, weight 1)."""
        clock = self.upstream.clock
        sent = self._wall()
        try:
            raw = self._get(TIME_PATH, {})
            received = self._wall()
            if not isinstance(raw, dict) or not isinstance(raw.get("serverTime"), int):
                raise _invalid("serverTime: missing or not an integer")
        except UpstreamError:
            clock.mark_failed()
            raise
        clock.update(raw["serverTime"], sent, received)

    def auth_backoff_until(self) -> float:
        with self._lock:
            return self._auth_retry_at if self._wall() < self._auth_retry_at else 0.0

    def backoff_until(self) -> float:
        """Unix time until which no request is sent for this account (0: none)."""
        return max(self.auth_backoff_until(), self.upstream.gate.backoff_until())

    # -- internals ------------------------------------------------------------------------

    def _signed_get(self, path: str) -> Any:
        self.upstream.gate.check()
        retry_at = self.auth_backoff_until()
        if retry_at:
            raise UpstreamError(
                "auth",
                f"backing off after rejected credentials; next try in "
                f"{retry_at - self._wall():.0f} s",
                sent=False,
            )
        clock = self.upstream.clock
        if clock.claim_sync():
            try:
                self.sync_time()
            except UpstreamError as exc:
                log.debug("clock sync with %s failed: %s", self.upstream.host, exc)
        for attempt in (1, 2):
            query = f"recvWindow={self._recv_window_ms}&timestamp={clock.now_ms()}"
            signed = f"{query}&signature={self._signer.sign(query)}"
            try:
                result = self._get(path, {"X-MBX-APIKEY": self._api_key}, signed)
            except UpstreamError as exc:
                if exc.code == -1021 and attempt == 1:
                    log.info("Binance says the timestamp is outside recvWindow; re-syncing clock")
                    self.sync_time()
                    continue
                if exc.reason == "auth":
                    self._note_auth_failure()
                raise
            with self._lock:
                self._auth_failures = 0
                self._auth_retry_at = 0.0
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_auth_failure(self) -> None:
        with self._lock:
            self._auth_failures += 1
            delay = min(
                AUTH_BACKOFF_FIRST_SECONDS * 2 ** (self._auth_failures - 1),
                AUTH_BACKOFF_MAX_SECONDS,
            )
            self._auth_retry_at = self._wall() + delay

    def _get(self, path: str, headers: dict[str, str], query: str = "") -> Any:
        """One GET; returns parsed JSON of a 200 or raises :class:`UpstreamError`."""
        upstream = self.upstream
        url = f"{upstream.base_url}{path}?{query}" if query else f"{upstream.base_url}{path}"
        what = f"GET {path} on {upstream.host}"
        deadline = time.monotonic() + self._timeout
        try:
            response = self._session.get(
                url, headers=headers, timeout=self._timeout, allow_redirects=False, stream=True
            )
            with response:
                status = response.status_code
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > self._max_bytes:
                    raise _invalid(f"{what}: response of {int(length)} bytes is over the limit")
                chunks, size = [], 0
                for chunk in response.iter_content(65536):
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise _invalid(f"{what}: response is over {self._max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise UpstreamError("timeout", f"{what}: answer slower than "
                                                       f"{self._timeout:g} s")
                    chunks.append(chunk)
                body = b"".join(chunks)
                response_headers = response.headers
        except requests.RequestException as exc:
            # requests' own messages repeat the URL (and so the signature): never show them.
            # A read timeout in the middle of the body arrives as a ConnectionError.
            if isinstance(exc, requests.Timeout) or any(
                isinstance(a, ReadTimeoutError) for a in exc.args
            ):
                message = f"{what}: no answer within {self._timeout:g} s"
                raise UpstreamError("timeout", message) from None
            kind = type(exc).__name__
            raise UpstreamError("connection", f"{what}: connection failed ({kind})") from None

        weight = response_headers.get(WEIGHT_HEADER)
        if weight is not None and weight.isdigit():
            self.last_used_weight = int(weight)
            upstream.gate.note_weight(int(weight), upstream.clock.now_ms())

        if status in (418, 429):
            seconds = _retry_after(response_headers)
            reason = "banned" if status == 418 else "rate_limited"
            upstream.gate.block(seconds, reason)
            code, message = _error_body(body)
            raise UpstreamError(
                reason, f"{what}: HTTP {status}, retry after {seconds:.0f} s: {message}",
                code=code, status=status,
            )
        if status != 200:
            code, message = _error_body(body)
            if status >= 500 or code is None:
                detail = message if code is None else f"Binance code {code}: {message}"
                raise UpstreamError("http", f"{what}: HTTP {status}: {detail}", code=code,
                                    status=status)
            if code in AUTH_CODES:
                raise UpstreamError(
                    "auth",
                    f"{what}: Binance code {code} ({AUTH_CODES[code]}): {message}; {AUTH_HINT}",
                    code=code, status=status,
                )
            if code == -1003:
                upstream.gate.block(_retry_after(response_headers), "rate_limited")
                raise UpstreamError("rate_limited", f"{what}: Binance code {code}: {message}",
                                    code=code, status=status)
            raise UpstreamError("api_error", f"{what}: Binance code {code}: {message}",
                                code=code, status=status)
        try:
            return json.loads(body)
        except ValueError:
            raise _invalid(f"{what}: body is not valid JSON ({len(body)} bytes)") from None
