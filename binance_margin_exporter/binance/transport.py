"""One account's calls to Binance: signed GETs over one ``requests.Session``.

Every call has a deadline (a ``time.monotonic()`` value): the connection, the wait for the
answer and the reading of the body all end by then, so a Binance that drips its answer a byte at
a time cannot hold a scrape. Answers become parsed JSON or an :class:`UpstreamError`; nothing it
raises or logs contains the API key, the secret, a signature or a signed URL. This module
decides what to send (the key, the clock, the back-off) and what an answer means (weights,
bans, errors); :mod:`.wire` sends it and reads the answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests

# imported for its effect: every log record is redacted from here on
import binance_margin_exporter.binance.redaction  # noqa: F401
from binance_margin_exporter.binance.egress import new_session
from binance_margin_exporter.binance.endpoints import TIME
from binance_margin_exporter.binance.errors import UpstreamError, invalid
from binance_margin_exporter.binance.fields import Unchanged
from binance_margin_exporter.binance.limits import RateGate, Upstream, stated_wait
from binance_margin_exporter.binance.signing import Signer
from binance_margin_exporter.binance.wire import (
    Answer,
    Params,
    error_body,
    exchange,
    header_int,
    parse_json,
    signed_query,
)

log = logging.getLogger(__name__)

TIME_PATH = TIME.path
AUTH_CODES = {-1002: "unauthorized", -1022: "signature", -2014: "API-key format",
              -2015: "API key, IP or permissions"}
AUTH_HINT = (
    "check the API key and secret, that the key may read margin data, and the key's IP allow-list"
)
AUTH_BACKOFF_FIRST_SECONDS = 15.0
AUTH_BACKOFF_MAX_SECONDS = 300.0


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
        handshakes) the connections above it anew. ``session``: one :func:`new_session` made
        for the same upstream, shared with other clients (one pool of connections for the
        accounts on one host and egress); by default one of its own."""
        self.upstream = upstream
        self._api_key = api_key
        self._signer = signer
        self._recv_window_ms = recv_window_ms
        self.timeout = timeout
        self._max_bytes = max_response_bytes
        self._pool_size = pool_size
        self._session = session or new_session(upstream, pool_size)
        self._wall = wall
        self._background = background or _in_a_thread
        self._lock = threading.Lock()
        # path -> (rejections in a row, unix time of the next try): a key rejected on one
        # endpoint (a sub-account call, papi, isolated) is not held back on the others
        self._auth: dict[str, tuple[int, float]] = {}

    def __repr__(self) -> str:
        return f"BinanceClient({self.upstream.base_url!r}, <redacted>)"

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

    def deadline(self) -> float:
        """The default deadline of a call made now: ``timeout`` seconds from now."""
        return time.monotonic() + self.timeout

    def auth_backoff_until(self, path: str | None = None) -> float:
        """Unix time until which the key is not used because Binance rejected it: on ``path``,
        or (None) on any endpoint; 0 when none."""
        now = self._wall()
        with self._lock:
            if path is not None:
                retry_at = self._auth.get(path, (0, 0.0))[1]
            else:
                retry_at = max((t for _, t in self._auth.values()), default=0.0)
        return retry_at if now < retry_at else 0.0

    def backoff_until(self) -> float:
        """Unix time until which no request is sent for this account (0: none)."""
        return max(self.auth_backoff_until(), self.upstream.backoff_until())

    # -- calls ----------------------------------------------------------------------------

    def sync_time(self, deadline: float | None = None) -> None:
        """Measure the server clock offset (``GET /api/v3/time``, unsigned, weight 1), on the
        host that keeps this one's time, counted on that host's gates."""
        clock = self.upstream.clock
        host = self.upstream.time_upstream
        sent = self._wall()
        try:
            raw = self.get(TIME_PATH, deadline=deadline, upstream=host)
            received = self._wall()
            if not isinstance(raw, dict) or type(raw.get("serverTime")) is not int:
                raise invalid("serverTime: missing or not an integer")
            clock.update(raw["serverTime"], sent, received)
        except UpstreamError:
            # the time host held back (throttled, banned): again when its back-off ends
            clock.mark_failed(host.gate_for(TIME_PATH).backoff_until() - self._wall())
            raise
        finally:
            clock.sync_ended()

    def _sync_in_background(self) -> None:
        try:
            self.sync_time()
        except UpstreamError as exc:
            log.warning("clock sync with %s failed: %s", self.upstream.time_upstream.host, exc)

    def signed_get(self, path: str, params: Params = "", *,
                   deadline: float | None = None, reuse: Unchanged[Any] | None = None) -> Any:
        """A signed GET (``params``: without timestamp and signature; see
        :func:`encode_query`). ``reuse``: the answer parsed into its model, the last model
        again when the answer is unchanged."""
        deadline = self.deadline() if deadline is None else deadline
        retry_at = self.auth_backoff_until(path)
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
        for attempt in (1, 2):
            signed_at = clock.monotonic()
            signed = signed_query(params, self._recv_window_ms, clock.now_ms(), self._signer)
            try:
                result = self.get(path, {"X-MBX-APIKEY": self._api_key}, signed,
                                  deadline=deadline, reuse=reuse)
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
                    self._note_auth_failure(path)
                raise
            if path in self._auth:
                with self._lock:
                    self._auth.pop(path, None)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_auth_failure(self, path: str) -> None:
        with self._lock:
            failures = self._auth.get(path, (0, 0.0))[0] + 1
            delay = min(AUTH_BACKOFF_FIRST_SECONDS * 2 ** (failures - 1),
                        AUTH_BACKOFF_MAX_SECONDS)
            self._auth[path] = (failures, self._wall() + delay)

    def get(self, path: str, headers: dict[str, str] | None = None, query: str = "", *,
            deadline: float | None = None, upstream: Upstream | None = None,
            method: str = "GET", reuse: Unchanged[Any] | None = None) -> Any:
        """One GET (or ``method``); the parsed JSON of a 200 (``reuse``: its model), or
        :class:`UpstreamError`. ``upstream``: another host than the client's (the clock of the
        papi host is read on the api host): its gates, weight and bans are that host's."""
        upstream = upstream or self.upstream
        gate = upstream.gate_for(path)
        gate.check()
        deadline = self.deadline() if deadline is None else deadline
        base = upstream.base_url
        url = f"{base}{path}?{query}" if query else f"{base}{path}"
        what = f"{method} {path} on {urlsplit(base).netloc}"
        status, response_headers, body = self._exchange(url, headers or {}, what, deadline,
                                                        method)

        weight = header_int(response_headers.get(gate.header))
        if weight is not None:
            gate.note_weight(weight, upstream.clock.now_ms())

        if status == 200:
            upstream.succeeded()
        else:
            self._raise_for(status, response_headers, body, what, upstream, gate)
        if reuse is not None:
            return reuse(body, lambda body: parse_json(body, what))
        return parse_json(body, what)

    def _raise_for(self, status: int, headers: Mapping[str, str], body: bytes, what: str,
                   upstream: Upstream, gate: RateGate) -> NoReturn:
        """The :class:`UpstreamError` of an answer that is not a 200; holds the host back
        first where Binance asks for it (429, 418, -1003, 403)."""
        code, message, binance = error_body(body)
        if status == 403 and not binance:  # the WAF: an HTML page, no Binance body
            seconds = upstream.waf()
            raise UpstreamError("waf", f"{what}: HTTP 403 (Binance's firewall), holding back "
                                f"{seconds:.0f} s", code=code, status=status)
        if status in (418, 429) or code == -1003:
            banned = status == 418 or "banned until" in message
            seconds = upstream.penalty(stated_wait(headers, message, upstream.clock.now_ms()))
            if banned:
                upstream.ban(seconds)
            else:
                gate.block(seconds, "rate_limited")
            reason = "banned" if banned else "rate_limited"
            detail = message if code is None else f"Binance code {code}: {message}"
            raise UpstreamError(
                reason, f"{what}: HTTP {status}, retry after {seconds:.0f} s: {detail}",
                code=code, status=status,
            )
        if status >= 500 or not binance:
            detail = message if code is None else f"Binance code {code}: {message}"
            raise UpstreamError("http", f"{what}: HTTP {status}: {detail}", code=code,
                                status=status)
        if code in AUTH_CODES:
            raise UpstreamError(
                "auth",
                f"{what}: Binance code {code} ({AUTH_CODES[code]}): {message}; {AUTH_HINT}",
                code=code, status=status,
            )
        detail = f"Binance code {code}: {message}" if code is not None else message
        raise UpstreamError("api_error", f"{what}: {detail}", code=code, status=status)

    def _exchange(self, url: str, headers: dict[str, str], what: str, deadline: float,
                  method: str = "GET") -> Answer:
        """Status, headers and body, all of it by ``deadline``; at most ``max_bytes``."""
        return exchange(self._session, method, url, headers, what=what, deadline=deadline,
                        timeout=self.timeout, max_bytes=self._max_bytes)
