"""One stream's thread with Binance's own timings (``Timing()``), against the simulator over real
HTTP and WebSocket. Its clock and its back-off waits are the test's: each wait is recorded (the
seconds it asks for are the behaviour) and held until the test releases it, and the clock moves
when the test says, so 30 minutes of keep-alive or a 300 s back-off take no time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from binance_margin_exporter.binance.egress import Egress
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.stream_connection import Stream, Timing
from binance_margin_exporter.binance.streams import MARGIN_RISK, PORTFOLIO, StreamKind
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.streams import StreamPart
from binance_margin_exporter.demo.simulator import Fault, Simulator
from binance_margin_exporter.products import SIMULATED
from tests.support.clocks import Clock
from tests.support.keys import API_KEY, SECRET
from tests.support.waiting import wait_for

PRODUCTION = Timing()
# only how often the thread looks at its (virtual) clock is shorter: no behaviour of its own
TICKING = Timing(poll=0.02)
SPACING = 5.0  # the collector's refresh spacing: at most one account fetch in this long
MARGIN_KEY = "POST /sapi/v1/margin/listen-key"
MARGIN_PUT = "PUT /sapi/v1/margin/listen-key"
MARGIN_DELETE = "DELETE /sapi/v1/margin/listen-key"


class LoopClock(Clock):
    """The thread's monotonic clock: moves only when the test says; counts the stream
    thread's looks at it (a round of its loop looks at least once)."""

    def __init__(self) -> None:
        super().__init__(5000.0)
        self.looks = 0

    def __call__(self) -> float:
        if threading.current_thread().name.startswith("stream-"):
            self.looks += 1
        return self.now

    def rounds(self, count: int = 3) -> None:
        """Until the thread has gone round its loop ``count`` more times."""
        seen = self.looks
        wait_for(lambda: self.looks >= seen + count, timeout=5)


class Waits:
    """The thread's waits: each recorded, then held until :meth:`release` (or the stop)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._go = threading.Semaphore(0)
        self.stop = threading.Event()

    def __call__(self, seconds: float) -> bool:
        self.seconds.append(seconds)
        while not self._go.acquire(timeout=0.01):
            if self.stop.is_set():
                return True
        return self.stop.is_set()

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self._go.release()

    def until(self, count: int) -> list[float]:
        """The waits once there are ``count`` of them."""
        wait_for(lambda: len(self.seconds) >= count, timeout=10)
        return self.seconds[:count]

    def passing(self, count: int) -> list[float]:
        """The first ``count`` waits, each released as it comes."""
        for seen in range(1, count):
            self.until(seen)
            self.release()
        return self.until(count)


class Later:
    """The collector's trailing refreshes: recorded, run when the test says."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.calls: list[Callable[[], None]] = []

    def __call__(self, delay: float, call: Callable[[], None]) -> Callable[[], None]:
        self.delays.append(delay)
        self.calls.append(call)
        return lambda: None

    def run(self) -> None:
        self.calls.pop(0)()


class Run:
    """A started stream (``stream``: the connection) and the collector's part it hands its
    events to (``part``: counted, the account refreshed)."""

    def __init__(self, sim: Simulator, stream: Stream, part: StreamPart, waits: Waits,
                 clock: LoopClock, later: Later) -> None:
        self.sim, self.stream, self.part, self.waits = sim, stream, part, waits
        self.clock, self.later = clock, later
        self.refreshes = 0

    def connected(self, count: int = 1) -> None:
        """Until the stream's ``count``-th connection is up (and the thread says so)."""
        wait_for(lambda: self.sim.streams.counts.get(f"POST {self.stream.kind.name}", 0)
                 >= count, timeout=10)
        self.sim.streams.wait_connected(self.stream.kind.name, timeout=10)
        wait_for(lambda: self.stream.up, timeout=10)

    def posts(self) -> int:
        return self.sim.streams.counts.get(f"POST {self.stream.kind.name}", 0)

    def reconnects(self, reason: str) -> int:
        return self.stream.reconnects()[reason]

    def events(self) -> dict[tuple[str, str], int]:
        return self.part.snapshot()[0]


@pytest.fixture
def run(simulator: Simulator) -> Iterator[Callable[..., Run]]:
    """``run(kind=..., timing=..., rng=..., url=..., client=...)``: a started stream."""
    runs: list[Run] = []

    def start(kind: StreamKind = MARGIN_RISK, timing: Timing = PRODUCTION,
              rng: Callable[[], float] = lambda: 1.0, url: str | None = None,
              client: object = None) -> Run:
        if client is None:
            client = BinanceClient(Upstream(simulator.base_url), API_KEY, HmacSigner(SECRET),
                                   timeout=5.0)
        if url is None:
            url = simulator.streams.url + ("/pm" if kind is PORTFOLIO else "")
        waits, clock, later = Waits(), LoopClock(), Later()
        stream = Stream("main", kind, client, url, timing,  # type: ignore[arg-type]
                        rng=rng, clock=clock, wait=waits)
        part = StreamPart(stream, SPACING, clock=clock, schedule=later)
        result = Run(simulator, stream, part, waits, clock, later)

        def refresh() -> None:
            result.refreshes += 1

        part.refresh = refresh
        runs.append(result)
        stream.start()
        return result

    yield start
    for each in runs:
        each.waits.stop.set()
        each.stream.stop()
        assert not each.stream.running


# -- reconnections and their back-off -------------------------------------------------------


def test_listen_key_expired_on_every_connection_backs_off_doubling(run):
    """The storm: an upstream that says listenKeyExpired the moment the stream connects got
    thousands of listen-key POSTs a minute. Each reconnection after a short connection waits:
    1 s, 2 s, 4 s (here with the jitter at its top)."""
    r = run(PORTFOLIO)
    for count, expected in ((1, [1.0]), (2, [1.0, 2.0]), (3, [1.0, 2.0, 4.0])):
        r.connected(count)
        r.sim.streams.push({"e": "listenKeyExpired"}, "portfolio")
        assert r.waits.until(count) == expected
        assert r.stream.up is False  # disconnected while it waits
        assert r.posts() == count  # no new key before the wait ends
        assert r.reconnects("key_expired") == count
        r.waits.release()
    r.connected(4)
    assert r.reconnects("failed") == 0


def test_a_drop_backs_off_and_the_stream_is_down_meanwhile(run):
    r = run()
    r.connected()
    r.sim.streams.drop("margin_risk")
    assert r.waits.until(1) == [1.0]
    assert not r.stream.up
    assert r.reconnects("dropped") == 1
    assert r.posts() == 1
    r.waits.release()
    r.connected(2)
    assert r.posts() == 2


def test_a_connection_that_lasted_is_renewed_at_its_lifetime_at_once(run):
    r = run(timing=TICKING)
    r.connected()
    r.clock.advance(TICKING.connection_lifetime)  # 23.5 hours (the key is kept alive)
    r.connected(2)
    assert r.reconnects("lifetime") == 1
    assert r.waits.seconds == []  # no back-off after a long connection


def test_a_connection_that_lasted_resets_the_back_off(run):
    r = run(timing=TICKING)
    r.connected()
    r.sim.streams.drop("margin_risk")
    assert r.waits.until(1) == [1.0]
    r.waits.release()
    r.connected(2)
    r.sim.streams.drop("margin_risk")  # at once again: doubles
    assert r.waits.until(2) == [1.0, 2.0]
    r.waits.release()
    r.connected(3)
    r.clock.advance(TICKING.stable - 0.5)
    r.sim.streams.drop("margin_risk")  # under a minute: doubles still
    assert r.waits.until(3) == [1.0, 2.0, 4.0]
    r.waits.release()
    r.connected(4)
    r.clock.advance(TICKING.stable)  # a minute up: a drop starts over at 1 s
    r.sim.streams.drop("margin_risk")
    assert r.waits.until(4) == [1.0, 2.0, 4.0, 1.0]


def test_failing_listen_key_requests_back_off_doubling_to_300_s(run, simulator):
    simulator.set_fault(Fault.binance_error(-1000, "unknown", status=500, paths=(MARGIN_KEY,)))
    r = run()
    expected = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]
    for count in range(1, len(expected) + 1):
        assert r.waits.until(count) == expected[:count]
        assert r.reconnects("failed") == count
        r.waits.release()
    assert not r.stream.up


@pytest.mark.parametrize(("rng", "first"), [(lambda: 0.0, 0.5), (lambda: 0.5, 0.75)])
def test_the_back_off_is_jittered_down_to_half(run, simulator, rng, first):
    simulator.set_fault(Fault.binance_error(-1000, "unknown", status=500, paths=(MARGIN_KEY,)))
    r = run(rng=rng)
    assert r.waits.passing(2) == [first, 2 * first]


def test_an_unreachable_host_is_a_failed_attempt_with_back_off(run):
    r = run(url="ws://127.0.0.1:9")
    assert r.waits.passing(2) == [1.0, 2.0]
    assert r.reconnects("failed") >= 2
    assert r.reconnects("dropped") == 0


@pytest.mark.parametrize("key", ["", "/../../admin?x=1", "a b", "k" * 129])
def test_an_unsafe_listen_key_is_refused_with_back_off(run, simulator, caplog, key):
    import json

    simulator.set_fault(Fault(status=200, body=json.dumps({"listenKey": key}).encode(),
                              headers={"Content-Type": "application/json"},
                              paths=(MARGIN_KEY,)))
    r = run()
    assert r.waits.passing(2) == [1.0, 2.0]
    assert r.reconnects("failed") >= 2
    assert simulator.streams.connections() == []
    assert not r.stream.up
    assert "listenKey: not a plain token" in caplog.text
    if key:
        assert key not in caplog.text


def test_a_bug_of_ours_ends_neither_the_stream_nor_the_exporter(run, caplog):
    class Broken:
        _api_key = "k"

        def get(self, *args, **kwargs):
            raise RuntimeError("a bug")

    r = run(client=Broken())
    assert r.waits.until(1) == [PRODUCTION.backoff_max]
    assert r.reconnects("failed") == 1
    error, debug = [rec for rec in caplog.records if "unexpected" in rec.getMessage()]
    assert (error.levelname, error.getMessage()) == (
        "ERROR", "margin_risk stream of main: unexpected RuntimeError (please report this); "
                 "starting over")
    assert (debug.levelname, debug.getMessage()) == ("DEBUG", "the unexpected error")
    assert debug.exc_info is not None and debug.exc_info[0] is RuntimeError
    r.waits.release()
    assert r.waits.until(2) == [300.0, 300.0]  # the thread lives on
    assert r.reconnects("failed") == 2 and r.stream.running


# -- the listen key's keep-alive --------------------------------------------------------------


def test_the_key_is_put_every_30_minutes_and_no_more(run, simulator):
    r = run(timing=TICKING)
    r.connected()
    put = simulator.streams.counts

    def puts() -> int:
        return put.get("PUT margin_risk", 0)

    r.clock.advance(1799.0)
    keys = simulator.counts[MARGIN_KEY]
    r.clock.rounds()
    assert puts() == 0
    r.clock.advance(1.0)
    wait_for(lambda: puts() == 1, timeout=5)
    for _ in range(3):  # some ticks later: still one
        r.clock.rounds()
    assert puts() == 1
    r.clock.advance(1800.0)  # the key would have expired at 3600 without the PUT
    wait_for(lambda: puts() == 2, timeout=5)
    assert r.stream.up and r.reconnects("key_expired") == 0
    assert simulator.counts[MARGIN_KEY] == keys  # no new key


def test_a_failed_put_is_tried_again_after_a_minute_and_the_key_lasts_its_hour(run, simulator):
    r = run(timing=TICKING)
    r.connected()
    simulator.set_fault(Fault.binance_error(-1000, "unknown", status=500, paths=(MARGIN_PUT,)))

    def tried() -> int:
        return simulator.counts[MARGIN_PUT]

    r.clock.advance(1800.0)
    wait_for(lambda: tried() == 1, timeout=5)
    r.clock.advance(59.0)
    r.clock.rounds()
    assert tried() == 1
    r.clock.advance(1.0)
    wait_for(lambda: tried() == 2, timeout=5)
    assert r.stream.up
    r.clock.advance(1740.0 - 0.5)  # 3599.5 s after the key: alive still
    r.clock.rounds()
    assert r.stream.up and r.reconnects("key_expired") == 0
    r.clock.advance(0.5)  # its hour is over: a new key, at once (the connection lasted)
    wait_for(lambda: r.reconnects("key_expired") == 1, timeout=5)
    simulator.clear_faults()
    r.connected(2)
    assert r.waits.seconds == []


def test_a_put_that_says_1125_takes_a_new_key_at_once(run, simulator):
    r = run(timing=TICKING)
    r.connected()
    (old,) = simulator.streams.keys("margin_risk")
    with simulator.streams._lock:
        del simulator.streams._keys[old]  # Binance forgets it; the connection stays
    r.clock.advance(1800.0)
    wait_for(lambda: r.reconnects("key_expired") == 1, timeout=5)
    r.connected(2)
    assert r.waits.seconds == []


def test_the_stream_url_loses_its_trailing_slash():
    stream = Stream("main", MARGIN_RISK, None, "ws://127.0.0.1:1/pmX/")  # type: ignore[arg-type]
    assert stream.url == "ws://127.0.0.1:1/pmX"  # connect then asks for .../pmX/ws/<key>


def test_an_event_before_the_account_joins_refreshes_nothing():
    """``refresh`` is the account's, set when the parts join; before that an event is only
    counted."""
    stream = Stream("main", MARGIN_RISK, None, "ws://unused", clock=LoopClock())  # type: ignore[arg-type]
    part = StreamPart(stream, clock=LoopClock())
    assert not stream._handle('{"e": "MARGIN_LEVEL_STATUS_CHANGE", "E": 1701949763462, '
                              '"l": "1.1", "s": "MARGIN_CALL"}')
    assert part.snapshot()[0][("margin_level_status_change", "MARGIN_CALL")] == 1


def test_each_event_is_handed_to_on_event_and_a_key_expiry_is_not():
    seen = []
    stream = Stream("main", PORTFOLIO, None, "ws://unused", on_event=seen.append)  # type: ignore[arg-type]
    assert not stream._handle('{"e": "riskLevelChange", "E": 1587727187525, "u": "1.9", '
                              '"s": "MARGIN_CALL", "eq": "1", "ae": "1", "m": "1"}')
    assert not stream._handle('{"e": "ORDER_TRADE_UPDATE", "E": 1587727187525}')  # not read
    assert not stream._handle('{"e": "riskLevelChange"}')  # broken: logged, not handed on
    assert stream._handle('{"e": "listenKeyExpired", "E": 1576653824250}')
    assert [(e.event, e.status, e.level) for e in seen] == [
        ("risk_level_change", "MARGIN_CALL", 1.9)]


def test_an_os_error_inside_a_connection_is_a_drop(run):
    """Whatever breaks a connection once it is up (here the refresh it calls) is a drop: a
    back-off and a new connection, never the 300 s of an unexpected error."""
    r = run()
    r.connected()

    def refresh() -> None:
        raise ConnectionResetError("the account's fetch")

    r.part.refresh = refresh
    r.sim.streams.push(margin_call(), "margin_risk")
    assert r.waits.until(1) == [1.0]
    assert r.reconnects("dropped") == 1 and r.reconnects("failed") == 0
    r.waits.release()
    r.connected(2)


@pytest.mark.parametrize(("egress", "options"), [
    (Egress("a", source_address="127.0.0.2"), {"source_address": ("127.0.0.2", 0)}),
    (Egress("p", proxy="http://127.0.0.1:9"), {"proxy": "http://127.0.0.1:9"}),
])
def test_the_connection_leaves_by_the_egress(simulator, monkeypatch, egress, options):
    """Bound to the egress's address, or through its proxy (not the environment's): over
    real parts in test_egress.py; here what the thread asks of websockets."""
    from binance_margin_exporter.binance import stream_connection

    asked = []

    def connect(url: str, **kwargs: object):
        asked.append(kwargs)
        raise ConnectionRefusedError

    monkeypatch.setattr(stream_connection, "connect", connect)
    client = BinanceClient(Upstream(simulator.base_url), API_KEY, HmacSigner(SECRET))
    waits = Waits()
    stream = Stream("main", MARGIN_RISK, client, simulator.streams.url, egress=egress,
                    wait=waits)
    stream.start()
    try:
        waits.until(1)
    finally:
        waits.stop.set()
        stream.stop()
    assert {k: v for k, v in asked[0].items() if k in ("source_address", "proxy")} == options


# -- events ------------------------------------------------------------------------------------


def margin_call(level: str = "1.2", **extra: object) -> dict:
    return {"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": level, "s": "MARGIN_CALL", **extra}


@pytest.mark.parametrize("time_ms", [10**400, -5, 0, 2**63, 4_102_444_800_000, "1", 1.5e12,
                                     True])
def test_an_absurd_event_time_is_an_invalid_event_and_the_next_is_counted(run, caplog,
                                                                          time_ms):
    r = run()
    r.connected()
    r.sim.streams.push(margin_call(E=time_ms), "margin_risk")
    r.sim.streams.push(margin_call("1.1", E=1701949763462), "margin_risk")
    wait_for(lambda: r.events()[("margin_level_status_change", "MARGIN_CALL")] == 1, timeout=5)
    assert r.part.snapshot()[2:] == (1.1, 1701949763.462)
    assert r.reconnects("failed") == r.reconnects("dropped") == 0
    assert r.waits.seconds == []
    assert "MARGIN_LEVEL_STATUS_CHANGE.E: " in caplog.text
    assert "unexpected" not in caplog.text


def test_only_documented_statuses_become_label_values(run, caplog):
    r = run()
    r.connected()
    for i in range(50):
        r.sim.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": "1.2",
                            "s": f"{i}" + "X" * 2000}, "margin_risk")
        r.sim.streams.push({"e": "USER_LIABILITY_CHANGE", "t": f"T{i}"}, "margin_risk")
    r.sim.streams.push({"e": "USER_LIABILITY_CHANGE", "t": "REPAY"}, "margin_risk")
    r.sim.streams.push(margin_call(), "margin_risk")
    wait_for(lambda: r.events().get(("margin_level_status_change", "MARGIN_CALL")) == 1,
             timeout=5)
    assert r.events() == {("margin_level_status_change", "MARGIN_CALL"): 1,
                          ("margin_level_status_change", "other"): 50,
                          ("liability_change", "BORROW"): 0,
                          ("liability_change", "REPAY"): 1,
                          ("liability_change", "other"): 50}
    assert max(len(record.getMessage()) for record in caplog.records) < 600


def test_event_lines_are_one_per_kind_a_minute_with_what_was_left_out(run, caplog):
    r = run()
    r.connected()
    caplog.clear()
    for _ in range(20):
        r.sim.streams.push(margin_call(), "margin_risk")
        r.sim.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE"}, "margin_risk")  # invalid
    wait_for(lambda: r.events()[("margin_level_status_change", "MARGIN_CALL")] == 20,
             timeout=5)
    wait_for(lambda: sum("does not parse" in m for m in caplog.messages) == 1, timeout=5)
    ours = [m for m in caplog.messages if m.startswith("margin_risk stream of main")]
    assert len(ours) == 2, ours
    r.clock.advance(PRODUCTION.log_period)
    r.sim.streams.push(margin_call(), "margin_risk")
    wait_for(lambda: r.events()[("margin_level_status_change", "MARGIN_CALL")] == 21,
             timeout=5)
    assert any(m.endswith("MARGIN_CALL (19 more like it left out in the last 60 s)")
               for m in caplog.messages), caplog.messages


def test_each_status_of_an_event_has_a_log_line_of_its_own(run, caplog):
    """The throttle's kind is the event and its status label: a MARGIN_CALL after a NORMAL
    of the same event is a line of its own, not one left out."""
    r = run()
    r.connected()
    r.sim.streams.push(margin_call(), "margin_risk")
    r.sim.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": "1.6", "s": "NORMAL"},
                       "margin_risk")
    wait_for(lambda: r.events().get(("margin_level_status_change", "NORMAL")) == 1, timeout=5)
    assert [m for m in caplog.messages if "margin_level_status_change" in m] == [
        "margin_risk stream of main: margin_level_status_change MARGIN_CALL",
        "margin_risk stream of main: margin_level_status_change NORMAL"]


def test_events_within_the_spacing_refresh_once_at_its_end(run):
    r = run(timing=TICKING)
    r.connected()
    r.sim.streams.push(margin_call(), "margin_risk")
    wait_for(lambda: r.refreshes == 1, timeout=5)
    r.clock.advance(1.0)
    r.sim.streams.push(margin_call(), "margin_risk")
    r.sim.streams.push(margin_call(), "margin_risk")
    wait_for(lambda: r.events()[("margin_level_status_change", "MARGIN_CALL")] == 3, timeout=5)
    assert r.refreshes == 1
    assert r.later.delays == [SPACING - 1.0]  # one, at the end of the spacing since the first
    r.clock.advance(SPACING - 1.0)
    r.later.run()
    assert r.refreshes == 2
    r.clock.advance(SPACING)
    r.sim.streams.push(margin_call(), "margin_risk")  # after the spacing: at once
    wait_for(lambda: r.refreshes == 3, timeout=5)
    assert r.later.delays == [SPACING - 1.0]


def test_logging_keeps_no_logger_busy(caplog):
    """The throttle's own arithmetic: a kind's next line after the period, with its count."""
    from binance_margin_exporter.logs import Throttled, shorten

    clock = LoopClock()
    throttled = Throttled(logging.getLogger("t"), 60.0, clock)
    assert throttled.info("one %s", "x")
    assert not throttled.info("one %s", "y")
    assert throttled.warning("other")
    assert throttled.info("one %s", "k", kind="k")  # a kind of its own
    clock.advance(59.9)
    assert not throttled.info("one %s", "z")
    clock.advance(0.1)
    assert throttled.info("one %s", "w")
    assert caplog.messages == ["one x", "other", "one k",
                               "one w (2 more like it left out in the last 60 s)"]
    assert shorten("x" * 201) == "x" * 200 + "... (1 more characters)"
    assert shorten("x" * 200) == "x" * 200


# -- what the thread says, and its stop --------------------------------------------------------


def test_the_log_lines_of_a_stream_s_life(run, simulator, caplog):
    """Each line exactly (a line a minute per kind: the clock does not move here)."""
    r = run(timing=TICKING)
    r.connected()
    r.sim.streams.push(margin_call(E=1701949763462), "margin_risk")
    r.sim.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "s": "MARGIN_CALL"}, "margin_risk")
    r.sim.streams.push({"e": "ORDER_TRADE_UPDATE"}, "margin_risk")  # not read: no line
    r.sim.streams.push(margin_call("1.1", E=1701949763463), "margin_risk")
    r.sim.streams.push({"e": "USER_LIABILITY_CHANGE", "t": "BORROW"}, "margin_risk")
    wait_for(lambda: r.events()[("liability_change", "BORROW")] == 1, timeout=5)
    simulator.set_fault(Fault.binance_error(-1000, "unknown", status=500,
                                            paths=(MARGIN_PUT,)))
    r.clock.advance(1800.0)
    wait_for(lambda: simulator.counts[MARGIN_PUT] == 1, timeout=5)
    simulator.set_fault(Fault.binance_error(-1000, "unknown", status=500, paths=(MARGIN_KEY,)))
    r.sim.streams.drop("margin_risk")
    r.waits.passing(2)
    host = simulator.base_url.split("//")[1]
    ours = [(rec.levelname, rec.getMessage()) for rec in caplog.records
            if rec.name == "binance_margin_exporter.binance.stream_connection"]
    assert ours == [
        ("INFO", "margin_risk stream of main: connected"),
        ("INFO", "margin_risk stream of main: margin_level_status_change MARGIN_CALL"),
        ("WARNING", "margin_risk stream of main: an event that does not parse is ignored: "
                    "MARGIN_LEVEL_STATUS_CHANGE.l: missing"),
        ("INFO", "margin_risk stream of main: liability_change BORROW"),  # a kind of its own
        ("WARNING", "margin_risk stream of main: keeping the listen key alive failed: "
                    f"PUT /sapi/v1/margin/listen-key on {host}: HTTP 500: Binance code "
                    "-1000: unknown"),
        ("INFO", "margin_risk stream of main: reconnecting (dropped)"),
        ("WARNING", "margin_risk stream of main: no listen key (http): POST "
                    f"/sapi/v1/margin/listen-key on {host}: HTTP 500: Binance code -1000: "
                    "unknown"),
    ]
    assert r.reconnects("key_expired") == 0  # a trade event is no expiry


def test_a_failed_connection_says_why(run, caplog):
    r = run(url="ws://127.0.0.1:9")
    r.waits.until(1)
    assert "margin_risk stream of main: connection failed (ConnectionRefusedError)" in \
        caplog.messages


def test_stop_closes_the_connection_the_thread_waits_on():
    """However long the thread waits for a message (a poll of 30 s here), stop() hangs up its
    connection: the thread ends at once, not at its next look at the clock."""
    sim = Simulator(SIMULATED)
    sim.add_hmac_key(API_KEY, SECRET)
    with sim:
        client = BinanceClient(Upstream(sim.base_url), API_KEY, HmacSigner(SECRET))
        stream = Stream("main", MARGIN_RISK, client, sim.streams.url, Timing(poll=30.0))
        stream.start()
        sim.streams.wait_connected("margin_risk", timeout=10)
        wait_for(lambda: stream.up, timeout=10)
        stream.stop()
        assert not stream.running
        assert stream.up is False


def test_a_stream_starts_once_and_never_after_its_stop(run, monkeypatch):
    """A reload calls start() again on a kept stream: nothing; after stop(): nothing."""
    from binance_margin_exporter.binance import stream_connection

    opened = []
    real = stream_connection.connect

    def connect(url: str, **options: object):
        opened.append(options)
        return real(url, **options)

    monkeypatch.setattr(stream_connection, "connect", connect)
    r = run()
    r.connected()
    thread = r.stream._thread
    assert thread is not None and thread.daemon and thread.name == "stream-margin_risk-main"
    r.stream.start()
    assert r.stream._thread is thread
    assert r.part.snapshot()[2:] == (None, None)  # no level, no event yet
    # Binance's timings, and the default egress: the environment's proxy, no bound address
    assert opened == [{"open_timeout": 10.0, "close_timeout": 2.0, "ping_interval": 60.0,
                       "ping_timeout": 30.0}]
    r.waits.stop.set()
    r.stream.stop()
    assert not r.stream.running
    r.stream.start()
    assert not r.stream.running and r.stream._thread is thread


def test_up_ends_the_moment_the_key_s_hour_is_over():
    clock = LoopClock()
    stream = Stream("main", MARGIN_RISK, None, "ws://unused", clock=clock)  # type: ignore[arg-type]
    assert stream.up is False
    stream._connected = True
    stream._key_valid_until = clock.now + 0.001
    assert stream.up is True
    clock.advance(0.001)
    assert stream.up is False


def test_stop_waits_for_a_stuck_thread_at_most_its_shutdown_seconds(run):
    """A thread that does not end (here: held in its back-off wait) holds stop() for
    ``shutdown_seconds`` (3 s), not for ever: shutdown goes on."""
    import time

    r = run(url="ws://127.0.0.1:9")
    r.waits.until(1)  # held there until the test lets it go
    started = time.monotonic()
    r.stream.stop()
    took = time.monotonic() - started
    assert r.stream.running  # still held
    assert took >= PRODUCTION.shutdown_seconds - 0.1, took  # it did wait (a lower bound only)


def test_stop_never_deletes_the_key_however_often_the_exporter_closes(run, simulator):
    """The key is the account's, shared with every program on it: neither a reload's stop
    nor the shutdown's DELETEs it (that cut a trading bot's stream); it stays the account's
    active key until Binance lets it expire."""
    r = run()
    r.connected()
    (key,) = simulator.streams.keys("margin_risk")
    r.waits.stop.set()
    r.stream.stop()
    r.stream.stop()
    assert simulator.counts.get(MARGIN_DELETE, 0) == 0
    assert simulator.streams.keys("margin_risk") == [key]
