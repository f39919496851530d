"""Binance's risk data streams: their listen keys and their events.

- Cross margin (an account read with its own key): ``POST/PUT /sapi/v1/margin/listen-key``
  (USER_STREAM: API-key header, no signature; weight 1), stream
  ``wss://margin-stream.binance.com/ws/<listenKey>``: ``MARGIN_LEVEL_STATUS_CHANGE`` and
  ``USER_LIABILITY_CHANGE``.
- Portfolio Margin: ``POST/PUT /papi/v1/listenKey`` (weight 1 each), stream
  ``wss://fstream.binance.com/pm/ws/<listenKey>``: ``riskLevelChange``, ``liabilityChange`` and
  ``listenKeyExpired`` (and the account's trade events, which are not read here).

A key lives 60 minutes without a ``PUT``; a connection at most 24 hours. ``-1125`` ("This
listenKey does not exist.") means: create a new one. A key is the account's, not a
connection's: a ``POST`` returns the account's active key to every caller, and a ``DELETE``
would close every program's stream on it, so none is ever sent here (Binance lets a key that
nobody keeps alive expire).

The connection that keeps a key and reads its events is :mod:`.stream_connection`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import UID, Endpoint
from binance_margin_exporter.binance.errors import invalid
from binance_margin_exporter.binance.transport import BinanceClient

UNKNOWN_KEY_CODE = -1125


class StreamKind(NamedTuple):
    """Where one kind of stream gets its key, and which events it reads."""

    name: str  # the ``stream`` label: margin_risk, portfolio
    key_path: str  # POST creates (or returns the account's active key), PUT extends
    key_param: bool  # PUT names the key (listenKey=...) in the query
    events: tuple[str, ...]  # the ``event`` labels it can send

    @property
    def calls(self) -> dict[str, Endpoint]:
        """Its listen-key endpoints by method (their weights)."""
        return KEY_CALLS[self.key_path]


# the listen-key calls, by method: cross margin's weigh on the account (UID), Portfolio
# Margin's on the papi host's IP budget; a DELETE is never sent (see above)
MARGIN_KEY = {method: Endpoint("/sapi/v1/margin/listen-key", weight, UID, method=method)
              for method, weight in (("POST", 1), ("PUT", 1), ("DELETE", 3000))}
PAPI_KEY = {method: Endpoint("/papi/v1/listenKey", 1, host_setting="papi_base_url",
                             method=method) for method in ("POST", "PUT", "DELETE")}
KEY_CALLS = {MARGIN_KEY["POST"].path: MARGIN_KEY, PAPI_KEY["POST"].path: PAPI_KEY}

MARGIN_RISK = StreamKind("margin_risk", MARGIN_KEY["POST"].path, True,
                         ("margin_level_status_change", "liability_change"))
PORTFOLIO = StreamKind("portfolio", PAPI_KEY["POST"].path, False,
                       ("risk_level_change", "liability_change"))

# Binance's event type -> (the ``event`` label, the field of its status, of its level)
EVENTS: dict[str, tuple[str, str, str | None]] = {
    "MARGIN_LEVEL_STATUS_CHANGE": ("margin_level_status_change", "s", "l"),
    "USER_LIABILITY_CHANGE": ("liability_change", "t", None),
    "riskLevelChange": ("risk_level_change", "s", "u"),
    "liabilityChange": ("liability_change", "t", None),
}
KEY_EXPIRED = "listenKeyExpired"
# the statuses Binance documents (the risk statuses of an account, the types of a liability
# change): only these become label values, anything else counts as ``other`` (a label value
# per status sent would let one stream grow the page without end)
LEVEL_STATUSES = frozenset({"NORMAL", "MARGIN_CALL", "SUPPLY_MARGIN", "REDUCE_ONLY",
                            "ACTIVE_LIQUIDATION", "FORCE_LIQUIDATION", "BANKRUPTED"})
LIABILITY_TYPES = frozenset({"BORROW", "REPAY", "INTEREST"})
OTHER = "other"
# Binance's event times (ms): from its launch (July 2017) to 2100; outside: an invalid event
EVENT_TIME_MS = (1_498_867_200_000, 4_102_444_800_000)
# a listen key is a plain token (Binance's are 60 letters and digits): anything else would
# open another path of the stream host ("/../admin?x=1"), or none ("")
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """One risk event: its ``event`` label, its status as sent, Binance's event time (ms) and,
    for a level event, the margin level (cross) or uniMMR (Portfolio Margin)."""

    event: str
    status: str
    time_ms: int
    level: float | None = None


@dataclass(frozen=True, slots=True)
class KeyExpired:
    time_ms: int


def parse_event(text: str | bytes) -> RiskEvent | KeyExpired | None:
    """One message of a stream; None for events not read here (trade updates). A risk event
    without its fields is an ``invalid_response`` naming the field."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid("stream message: not JSON") from None
    raw = fields.obj(raw, "stream message")
    kind = raw.get("e")
    if kind == KEY_EXPIRED:
        return KeyExpired(_event_time(raw))
    if not isinstance(kind, str) or kind not in EVENTS:
        return None
    label, status_key, level_key = EVENTS[kind]
    status = fields.string(raw, status_key, f"{kind}.")
    if not status:
        raise invalid(f"{kind}.{status_key}: empty")
    level = fields.number(raw, level_key, f"{kind}.") if level_key is not None else None
    return RiskEvent(label, status, _event_time(raw), level)


def status_label(event: str, status: str) -> str:
    """The ``status`` label of an event's status: as sent when Binance documents it, else
    ``other``."""
    known = LIABILITY_TYPES if event == "liability_change" else LEVEL_STATUSES
    return status if status in known else OTHER


def _event_time(raw: Any) -> int:
    value = raw.get("E")
    if type(value) is not int:
        raise invalid(f"{raw.get('e')}.E: missing or not an integer")
    low, high = EVENT_TIME_MS
    if not low <= value < high:
        raise invalid(f"{raw.get('e')}.E: not a time between 2017 and 2100")
    return value


def user_stream(client: BinanceClient, method: str, path: str, query: str = "", *,
                deadline: float | None = None) -> Any:
    """A USER_STREAM call (listen keys: ``POST``, ``PUT``): the client's API-key header, no
    signature; the same gates, deadline and errors as its GETs."""
    # the key is the client's own (it keeps it private): these calls are its only unsigned use
    return client.get(path, {"X-MBX-APIKEY": client._api_key}, query, deadline=deadline,
                      method=method)


def create_key(client: BinanceClient, kind: StreamKind, deadline: float | None = None) -> str:
    """``POST``: a new key, or the account's active one."""
    raw = fields.obj(user_stream(client, "POST", kind.key_path, deadline=deadline),
                     "listen key")
    key = fields.string(raw, "listenKey")
    if KEY_PATTERN.fullmatch(key) is None:  # never shown: it may be a valid key, truncated
        raise invalid("listenKey: not a plain token of letters and digits")
    return key


def keep_alive(client: BinanceClient, kind: StreamKind, key: str,
               deadline: float | None = None) -> None:
    """``PUT``: 60 more minutes; ``UpstreamError`` with code -1125 when the key is gone."""
    user_stream(client, "PUT", kind.key_path, _query(kind, key), deadline=deadline)


def _query(kind: StreamKind, key: str) -> str:
    return f"listenKey={key}" if kind.key_param else ""
