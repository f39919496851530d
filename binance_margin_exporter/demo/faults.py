"""What a test makes the simulator do instead of a normal answer: :class:`Fault`.

Tests drive faults through :meth:`~.simulator.Simulator.set_fault`; ``--demo`` never does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# where a fault strikes unless a test names its paths: the cross margin account, the answer
# most tests break (the simulator's own copy of the path, as each product module keeps its own)
DEFAULT_PATHS = ("/sapi/v1/margin/account",)


@dataclass
class Fault:
    """What the simulator does instead of (or on top of) a normal answer on ``paths``."""

    status: int | None = None  # answer with this status and ``body`` instead of the account
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait first (longer than the client's timeout: a hang)
    drip: float = 0.0  # send the headers, then the body one byte every ``drip`` seconds
    transform: Callable[[bytes], bytes] | None = None  # rewrite the normal body
    paths: tuple[str, ...] = DEFAULT_PATHS
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

    @classmethod
    def banned_until(cls, until_ms: int, status: int = 418, **kw: Any) -> Fault:
        """A ban that states its end only in the message (no ``Retry-After``), in Binance's
        words."""
        return cls.binance_error(
            -1003, f"Way too much request weight used; IP banned until {until_ms}. Please use "
                   f"WebSocket Streams for live updates to avoid bans.", status=status, **kw)

    @classmethod
    def waf(cls, **kw: Any) -> Fault:
        """Binance's web application firewall: 403 and a page of its own, no Binance body."""
        return cls(status=403, body=b"<html><head><title>403 Forbidden</title></head><body>"
                                    b"<h1>403 Forbidden</h1></body></html>",
                   headers={"Content-Type": "text/html"}, **kw)

    @classmethod
    def legacy_error(cls, msg: str, status: int = 400, **kw: Any) -> Fault:
        """An older error body: no integer ``code``, ``{"success": false, "msg": ...}``."""
        body = json.dumps({"success": False, "msg": msg}).encode()
        return cls(status=status, body=body, headers={"Content-Type": "application/json"}, **kw)
