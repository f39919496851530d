"""The risk data streams: Binance pushes margin calls the moment they happen.

The products (:class:`StreamProduct`: ``MARGIN_RISK_PRODUCT``, ``PORTFOLIO_PRODUCT``), their
settings and the collector. Each account part is a :class:`StreamPart`: its connection (the
thread that keeps a listen key and a WebSocket open, :mod:`..binance.stream_connection`) and
what its events tell a scrape: they are counted, and each asks for a fetch of the account at
once (in the background), at most one every ``refresh_spacing`` seconds (one within that is
made at its end). The refresh is the account's part of the product the stream ``follows``
(cross margin's, Portfolio Margin's): the wiring passes it (``join``).

Example output::

    binance_margin_stream_up{account="main",stream="margin_risk"} 1.0
    binance_margin_risk_events_total{account="main",event="margin_level_status_change",status="MARGIN_CALL"} 1.0
    binance_margin_risk_event_level{account="main"} 1.1
    binance_margin_risk_last_event_timestamp_seconds{account="main"} 1.701949763462e+09
    binance_margin_stream_reconnects_total{account="main",reason="dropped",stream="margin_risk"} 0.0

A stream never touches the account's ``binance_margin_up``, and a scrape only reads what the
thread last saw: a failing stream never delays a scrape.
"""  # noqa: E501

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.stream_connection import Stream, Timing
from binance_margin_exporter.binance.streams import (
    MARGIN_RISK,
    PORTFOLIO,
    RiskEvent,
    StreamKind,
    status_label,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors import cross, portfolio
from binance_margin_exporter.collectors.portfolio import DEFAULT_PAPI_BASE_URL
from binance_margin_exporter.collectors.product import (
    Build,
    Closes,
    Joins,
    Product,
    WarmsUp,
)
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import (
    DEFAULT_BASE_URL,
    AccountConfig,
    ConfigError,
    Configured,
    Setting,
    Settings,
)
from binance_margin_exporter.config.schema import flag, string

log = logging.getLogger(__name__)

# the statuses each event is known to send (every series starts at 0: increase() works from
# the first event); other documented ones appear as Binance spells them, the rest as ``other``
KNOWN_STATUSES = {
    "margin_level_status_change": ("MARGIN_CALL",),
    "risk_level_change": ("MARGIN_CALL", "REDUCE_ONLY", "FORCE_LIQUIDATION"),
    "liability_change": ("BORROW",),
}
REFRESH_SPACING = 5.0  # seconds: at most one account fetch the events trigger in this long
Later = Callable[[float, Callable[[], None]], Callable[[], None]]  # (delay, call) -> cancel


def later(delay: float, call: Callable[[], None]) -> Callable[[], None]:
    """Run ``call`` in ``delay`` seconds (a daemon timer); what cancels it."""
    timer = threading.Timer(delay, call)
    timer.daemon = True
    timer.name = "account-refresh"  # not "stream-...": no stream thread outlives a stop
    timer.start()
    return timer.cancel


class StreamPart:
    """An account's stream: its connection, and what its events tell a scrape (counted by
    event and status, the last level and time), each event asking for the account's
    ``refresh`` (none until the wiring joins it)."""

    def __init__(self, connection: Stream, refresh_spacing: float = REFRESH_SPACING, *,
                 clock: Callable[[], float] = time.monotonic, schedule: Later = later) -> None:
        """``clock`` (monotonic) and ``schedule`` (the trailing refresh's timer) are the
        tests' to replace."""
        self.connection = connection
        self.account = connection.account
        self.kind = connection.kind
        self.refresh: Callable[[], None] = lambda: None  # the account's: set by join
        self.refresh_spacing = refresh_spacing
        self._clock = clock
        self._schedule = schedule
        self._lock = threading.Lock()
        self.events: Counter[tuple[str, str]] = Counter(
            {(event, status): 0 for event in self.kind.events
             for status in KNOWN_STATUSES[event]})
        self.level: float | None = None
        self.last_event: float | None = None
        self._last_refresh = -float("inf")
        self._cancel: Callable[[], None] | None = None  # the trailing refresh, when one waits
        connection.on_event = self.on_event

    def on_event(self, event: RiskEvent) -> None:
        """Count the event; refresh the account now, or at the end of the spacing."""
        with self._lock:
            self.events[(event.event, status_label(event.event, event.status))] += 1
            self.last_event = event.time_ms / 1000
            if event.level is not None:
                self.level = event.level
            now = self._clock()
            wait = self._last_refresh + self.refresh_spacing - now
            if wait > 0:
                if self._cancel is None:
                    self._cancel = self._schedule(wait, self._trailing)
                return
            self._last_refresh = now
        self._refresh()

    def _trailing(self) -> None:
        with self._lock:
            self._cancel = None
            self._last_refresh = self._clock()
        try:
            self._refresh()
        except Exception as exc:  # noqa: BLE001 - the timer's thread: say it, end quietly
            log.warning("%s stream of %s: the account's refresh failed: %s", self.kind.name,
                        self.account, type(exc).__name__)

    def _refresh(self) -> None:
        try:
            self.refresh()
        except RuntimeError:  # the executor shut down: the exporter is closing
            log.debug("%s stream of %s: no refresh, the exporter is closing",
                      self.kind.name, self.account)

    def start(self) -> None:
        self.connection.start()

    def stop(self) -> None:
        """The connection ends; a trailing refresh still waiting is dropped."""
        with self._lock:
            cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()
        self.connection.stop()

    @property
    def up(self) -> bool:
        return self.connection.up

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[str, int], float | None,
                                float | None]:
        """What a scrape reads: events, reconnections, the last level and event time."""
        with self._lock:
            events, level, last = dict(self.events), self.level, self.last_event
        return events, self.connection.reconnects(), level, last


class StreamCollector:
    def __init__(self, streams: Sequence[StreamPart]) -> None:
        self.streams = tuple(streams)

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        return self._families

    def _families(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "binance_margin_stream_up",
            "1 while the account's risk data stream is connected and its listen key alive.",
            labels=["account", "stream"])
        events = CounterMetricFamily(
            "binance_margin_risk_events",
            "Risk events Binance pushed on the stream, by event and status (as sent: s, or t "
            "of a liability change).", labels=["account", "event", "status"])
        level = GaugeMetricFamily(
            "binance_margin_risk_event_level",
            "The margin level (cross) or uniMMR (Portfolio Margin) of the last risk level "
            "event.", labels=["account"])
        last = GaugeMetricFamily(
            "binance_margin_risk_last_event_timestamp_seconds",
            "Binance's event time of the last risk event on the stream.", labels=["account"])
        reconnects = CounterMetricFamily(
            "binance_margin_stream_reconnects",
            "Reconnections of the risk data stream, by reason.",
            labels=["account", "stream", "reason"])
        for stream in self.streams:
            name, kind = stream.account, stream.kind.name
            counts, reasons, value, at = stream.snapshot()
            up.add_metric([name, kind], 1.0 if stream.up else 0.0)
            for (event, status), count in sorted(counts.items()):
                events.add_metric([name, event, status], float(count))
            if value is not None:
                level.add_metric([name], value)
            if at is not None:
                last.add_metric([name], at)
            for reason, count in reasons.items():
                reconnects.add_metric([name, kind, reason], float(count))
        return (family for family in (up, events, level, last, reconnects) if family.samples)


def ws_url(value: Any, key: str) -> str:
    text = string(value, key).rstrip("/")
    scheme, sep, rest = text.partition("://")
    if scheme not in ("wss", "ws") or not sep or not rest or "?" in rest:
        raise ConfigError(f"{key}: expected a WebSocket URL such as "
                          f"wss://margin-stream.binance.com")
    if "@" in rest.split("/", 1)[0]:
        raise ConfigError(f"{key}: a user or password in the URL is not accepted")
    return text


STREAMS = Setting("streams", flag, True,
                  "Read Binance's risk data streams (margin calls the moment they are sent); "
                  "false turns them off (also per account).")
ACCOUNT_STREAMS = Setting("streams", flag, True,
                          "Read the account's risk data stream (false: polling only).")


class StreamProduct(Product[StreamPart], Configured, Joins, WarmsUp, Closes):
    """An account's risk data stream: ``kind``'s listen key and WebSocket."""

    account_settings = (ACCOUNT_STREAMS,)

    def __init__(self, kind: StreamKind, types: tuple[str, ...], follows: Product,
                 url_setting: Setting, rest: tuple[str, str],
                 timing: Timing = Timing(),  # noqa: B008 (Timing is frozen)
                 refresh_spacing: float = REFRESH_SPACING) -> None:
        """``follows``: the product whose cached answer of the account an event drops (the
        wiring joins its part's ``refresh``); ``rest``: the account's REST host setting and
        its default: a stream goes to Binance's default stream host only while the REST
        calls go to Binance's too (not to a simulator, nor to a proxy someone set up: set
        the stream URL then)."""
        self.kind = kind
        self.name = f"{kind.name}_stream"
        self.types = types
        self.follows = follows
        self.refresh_spacing = refresh_spacing
        self.url_setting = url_setting.key
        self.url_default = url_setting.default
        self.rest = rest
        self.settings = (STREAMS, url_setting)
        self.timing = timing

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        if account.type not in self.types or not settings.option("streams") or \
                not account.option("streams"):
            return False
        rest_key, rest_default = self.rest
        rest = settings.base_url if rest_key == "base_url" else settings.option(rest_key)
        if settings.option(self.url_setting) == self.url_default and rest != rest_default:
            return False
        # cross margin: only an account read with its own key (sub-accounts have no stream)
        return account.type != "cross" or bool(account.option("master"))

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> StreamPart:
        connection = Stream(account.name, self.kind, client,
                            build.settings.option(self.url_setting), self.timing,
                            egress=build.settings.egress_of(account))
        return StreamPart(connection, self.refresh_spacing)

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The keep-alive (a PUT every ``keep_alive`` seconds) and a new key (a POST) with each
        connection, once a day while it holds. Cross margin's listen key weighs on the
        account (UID), not on the IP: declared as 0 on its host."""
        if not self.reads(account, settings):
            return {}
        costs = Costs(settings, interval).every(self.timing.keep_alive, self.kind.calls["PUT"],
                                                at_start=False)
        return costs.every(self.timing.connection_lifetime, self.kind.calls["POST"]).by_host

    def join(self, part: StreamPart, refresh: Callable[[], None]) -> None:
        part.refresh = refresh

    def collector(self, parts: Sequence[StreamPart], build: Build) -> StreamCollector | None:
        return StreamCollector(parts) if parts else None

    def warm_up(self, part: StreamPart) -> None:
        part.start()

    def close(self, part: StreamPart) -> None:
        part.stop()


MARGIN_STREAM_URL = Setting(
    "margin_stream_url", ws_url, "wss://margin-stream.binance.com",
    "Cross margin's risk data stream host (a listen key's stream is <this>/ws/<key>).")
PAPI_STREAM_URL = Setting(
    "papi_stream_url", ws_url, "wss://fstream.binance.com/pm",
    "Portfolio Margin's stream host (a listen key's stream is <this>/ws/<key>).")

MARGIN_RISK_PRODUCT = StreamProduct(MARGIN_RISK, ("cross",), cross.PRODUCT, MARGIN_STREAM_URL,
                                    ("base_url", DEFAULT_BASE_URL))
PORTFOLIO_PRODUCT = StreamProduct(PORTFOLIO, ("portfolio_margin",), portfolio.PRODUCT,
                                  PAPI_STREAM_URL, ("papi_base_url", DEFAULT_PAPI_BASE_URL))
