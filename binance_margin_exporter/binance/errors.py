"""What a failed call to Binance becomes: an :class:`UpstreamError` with a countable reason."""

from __future__ import annotations

# Reasons a fetch can fail; the collectors pre-set an error counter for each.
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
    "waf",
)


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


def invalid(message: str) -> UpstreamError:
    """An answer that cannot be used: ``reason="invalid_response"``, naming the field."""
    return UpstreamError("invalid_response", message)
