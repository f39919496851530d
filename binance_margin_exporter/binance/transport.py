"""One account's calls to Binance: signed GETs over one ``requests.Session``.

Every call has a deadline (a ``time.monotonic()`` value): the connection, the wait for the
answer and the reading of the body all end by then, so a Binance that drips its answer a byte at
a time cannot hold a scrape. Answers become parsed JSON or an :class:`UpstreamError`; nothing it
raises or logs contains the API key, the secret, a signature or a signed URL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from binance_margin_exporter.binance.egress import use_egress
from binance_margin_exporter.binance.errors import UpstreamError, invalid
from binance_margin_exporter.binance.limits import Upstream, retry_after
from binance_margin_exporter.binance.signing import Signer

log = logging.getLogger(__name__)

TIME_PATH = "/api/v3/time"
AUTH_CODES = {-1022: "signature", -2014: "API-key format", -2015: "API key, IP or permissions"}
AUTH_HINT = (
    "check the API key and secret, that the key may read margin data, and the key's IP allow-list"
)
AUTH_BACKOFF_FIRST_SECONDS = 15.0
AUTH_BACKOFF_MAX_SECONDS = 300.0
READ_CHUNK = 65536


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


def _error_body(body: bytes) -> tuple[int | None, str]:
    """Binance's ``{"code": -2015, "msg": "..."}``, or (None, a short description)."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        return None, "non-JSON body"
    if isinstance(raw, dict) and isinstance(raw.get("code"), int):
        message = str(raw.get("msg", ""))[:200].replace("\n", " ")
        return raw["code"], message
    return None, "unexpected JSON body"


def _in_a_thread(task: Callable[[], None]) -> None:
    threading.Thread(target=task, name="clock-sync", daemon=True).start()


class BinanceClient:
    """Signed calls for one API key. Thread-safe; one ``requests.Session`` (connection reuse)."""

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
        background: Callable[[Callable[[], None]], None] | None = None,
        pool_size: int = 10,
    ) -> None:
        """``pool_size``: connections kept open to Binance; as many as the requests this
        client makes at once (a master key's sub-accounts), or each scrape opens (and TLS
        handshakes) the connections above it anew."""
        self.upstream = upstream
        self._api_key = api_key
        self._signer = signer
        self._recv_window_ms = recv_window_ms
        self.timeout = timeout
        self._max_bytes = max_response_bytes
        self._session = session or requests.Session()
        # requests reads proxy, netrc and CA settings from the environment on every request:
        # at fund scale (200 requests a scrape) that is 30 ms of CPU of a 405 ms scrape, over
        # the 400 ms target. Read them once, here, instead.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(upstream.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self._session.verify = bundle
        if session is None and pool_size > 10:
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        if session is None:  # the upstream's egress: a source address, or a proxy
            use_egress(self._session, upstream.egress, pool_size)
        self._wall = wall
        self._background = background or _in_a_thread
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._auth_failures = 0
        self._auth_retry_at = 0.0

    def on(self, upstream: Upstream) -> BinanceClient:
        """A client of the same key on another host (a futures account's fapi and dapi
        hosts): its own connections and its own back-off after a rejected key (a key may be
        allowed on one host and not on another), the host's clock and gates."""
        if upstream is self.upstream:
            return self
        return BinanceClient(upstream, self._api_key, self._signer,
                             recv_window_ms=self._recv_window_ms, timeout=self.timeout,
                             max_response_bytes=self._max_bytes, wall=self._wall,
                             background=self._background, pool_size=self._pool_size)

    def __repr__(self) -> str:
        return f"BinanceClient({self.upstream.base_url!r}, <redacted>)"

    def deadline(self) -> float:
        """The default deadline of a call made now: ``timeout`` seconds from now."""
        return time.monotonic() + self.timeout

    def auth_backoff_until(self) -> float:
        with self._lock:
            return self._auth_retry_at if self._wall() < self._auth_retry_at else 0.0

    def backoff_until(self) -> float:
        """Unix time until which no request is sent for this account (0: none)."""
        return max(self.auth_backoff_until(), self.upstream.backoff_until())

    # -- calls ----------------------------------------------------------------------------

    def sync_time(self, deadline: float | None = None) -> None:
        """Measure the server clock offset (``GET /api/v3/time``, unsigned, weight 1)."""
        clock = self.upstream.clock
        sent = self._wall()
        try:
            raw = self.get(TIME_PATH, deadline=deadline, base_url=self.upstream.time_base_url)
            received = self._wall()
            if not isinstance(raw, dict) or type(raw.get("serverTime")) is not int:
                raise invalid("serverTime: missing or not an integer")
            clock.update(raw["serverTime"], sent, received)
        except UpstreamError:
            clock.mark_failed()
            raise
        finally:
            clock.sync_ended()

    def _sync_in_background(self) -> None:
        try:
            self.sync_time()
        except UpstreamError as exc:
            log.warning("clock sync with %s failed: %s", self.upstream.host, exc)

    def signed_get(self, path: str, params: str = "", *, deadline: float | None = None) -> Any:
        """A signed GET (``params``: a query string without timestamp and signature)."""
        deadline = self.deadline() if deadline is None else deadline
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
            # Off the scrape's path: this request goes on with the current offset.
            self._background(self._sync_in_background)
        prefix = f"{params}&" if params else ""
        for attempt in (1, 2):
            signed_at = clock.monotonic()
            query = f"{prefix}recvWindow={self._recv_window_ms}&timestamp={clock.now_ms()}"
            signed = f"{query}&signature={self._signer.sign(query)}"
            try:
                result = self.get(path, {"X-MBX-APIKEY": self._api_key}, signed,
                                  deadline=deadline)
            except UpstreamError as exc:
                if exc.code == -1021 and attempt == 1:
                    if clock.claim_sync(stale_before=signed_at):
                        log.info("Binance says the timestamp is outside recvWindow; "
                                 "re-syncing the clock")
                        self.sync_time(deadline)
                    else:  # another request is measuring the offset: use its result
                        clock.wait_for_sync(deadline - time.monotonic())
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

    def get(self, path: str, headers: dict[str, str] | None = None, query: str = "", *,
            deadline: float | None = None, base_url: str | None = None) -> Any:
        """One GET; the parsed JSON of a 200, or :class:`UpstreamError`. ``base_url``: another
        host than the upstream's (the clock of the papi host is read on the api host)."""
        upstream = self.upstream
        gate = upstream.gate_for(path)
        gate.check()
        deadline = self.deadline() if deadline is None else deadline
        base = base_url or upstream.base_url
        url = f"{base}{path}?{query}" if query else f"{base}{path}"
        what = f"GET {path} on {urlsplit(base).netloc}"
        status, response_headers, body = self._fetch(url, headers or {}, what, deadline)

        weight = response_headers.get(gate.header)
        if weight is not None and weight.isdigit():
            gate.note_weight(int(weight), upstream.clock.now_ms())

        if status in (418, 429):
            seconds = retry_after(response_headers)
            if status == 418:
                reason = "banned"
                upstream.ban(seconds)
            else:
                reason = "rate_limited"
                gate.block(seconds, reason)
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
                gate.block(retry_after(response_headers), "rate_limited")
                raise UpstreamError("rate_limited", f"{what}: Binance code {code}: {message}",
                                    code=code, status=status)
            raise UpstreamError("api_error", f"{what}: Binance code {code}: {message}",
                                code=code, status=status)
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise invalid(f"{what}: body is not valid JSON ({len(body)} bytes)") from None

    def _fetch(self, url: str, headers: dict[str, str], what: str,
               deadline: float) -> tuple[int, requests.structures.CaseInsensitiveDict[str], bytes]:
        """Status, headers and body, all of it by ``deadline``; at most ``max_bytes``."""

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpstreamError("timeout", f"{what}: no complete answer in time")
            return min(left, self.timeout)

        try:
            response = self._session.get(url, headers=headers, timeout=remaining(),
                                         allow_redirects=False, stream=True)
            with response:
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > self._max_bytes:
                    raise invalid(f"{what}: response of {int(length)} bytes is over the limit")
                raw = response.raw
                sock = getattr(raw.connection, "sock", None)
                chunks, size = [], 0
                while True:
                    # Each read waits at most until the deadline, however the bytes trickle in.
                    if sock is not None:
                        sock.settimeout(remaining())
                    chunk = raw.read1(READ_CHUNK, decode_content=True)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise invalid(f"{what}: response is over {self._max_bytes} bytes")
                    chunks.append(chunk)
                    remaining()
                return response.status_code, response.headers, b"".join(chunks)
        except requests.RequestException as exc:
            # requests' own messages repeat the URL (and so the signature): never show them.
            self._raise_connection_error(exc, what)
        except (ReadTimeoutError, TimeoutError):
            raise UpstreamError("timeout", f"{what}: no complete answer in time") from None
        except (Urllib3Error, OSError) as exc:
            kind = type(exc).__name__
            raise UpstreamError("connection", f"{what}: connection failed ({kind})") from None

    def _raise_connection_error(self, exc: requests.RequestException, what: str) -> NoReturn:
        if isinstance(exc, requests.Timeout) or any(
            isinstance(a, ReadTimeoutError) for a in exc.args
        ):
            raise UpstreamError("timeout", f"{what}: no complete answer in time") from None
        kind = type(exc).__name__
        raise UpstreamError("connection", f"{what}: connection failed ({kind})") from None

