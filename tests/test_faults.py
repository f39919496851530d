"""Fault injection: what the exporter does for each way Binance can fail, over real HTTP.

The simulator injects the fault; a real client and collector (cache off) scrape it. After each
fault clears, the next scrape is ``up 1`` with fresh values. Logs are checked for tracebacks and
for the secret or any signature the simulator saw.
"""

from __future__ import annotations

import json
import logging
import re
import time

import pytest

from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cross import CrossAccount, CrossCollector
from binance_margin_exporter.collectors.exporter import Exporter
from binance_margin_exporter.collectors.rate_limits import HostsCollector
from binance_margin_exporter.demo.cross import ACCOUNT_PATH
from binance_margin_exporter.demo.simulator import TIME_PATH, Fault, Simulator
from binance_margin_exporter.products import SIMULATED
from tests.support.exporters import one_scrape, sample_values
from tests.support.keys import API_KEY, SECRET
from tests.support.pool import EXECUTOR
from tests.support.waiting import wait_for, wait_idle

SIGNED = re.compile(r"signature=(?!<redacted>)")


class ShiftClock:
    """Real time plus a shift that tests move forward instead of sleeping."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


class Rig:
    """A client and collector (cache off) on the simulator; ``share`` puts it on the same
    upstream (the same IP, clock and rate gate) as another rig."""

    def __init__(self, sim: Simulator, timeout: float = 1.0, share: Rig | None = None,
                 sync: bool = True) -> None:
        self.sim = sim
        self.clock = share.clock if share else ShiftClock()
        self.upstream = share.upstream if share else Upstream(sim.base_url, wall=self.clock)
        self.client = BinanceClient(self.upstream, API_KEY, HmacSigner(SECRET), timeout=timeout,
                                    wall=self.clock)
        if sync and self.upstream.clock.claim_sync():  # as the exporter's warm-up does
            self.client.sync_time()
        # no interest rates: their background calls would cross the faults injected here
        self.account = CrossAccount.create("main", self.client, EXECUTOR, ttl=0,
                                           interest_rates=False, wall=self.clock)
        if sync:  # the bars too, so that no background fetch of them crosses a test
            self.account.thresholds.get(time.monotonic() + timeout)
        self.exporter = Exporter([CrossCollector([self.account]),
                                  HostsCollector([self.upstream])], request_timeout=timeout)
        self.bodies: list[str] = []

    def scrape(self, scrape_timeout: float | None = None) -> dict:
        body = one_scrape(self.exporter, scrape_timeout)
        self.bodies.append(body)
        return sample_values(body)

    def check_down(self, reason: str) -> dict:
        before = self.account.account.errors[reason]
        values = self.scrape()
        assert values[("binance_margin_up", (("account", "main"),))] == 0.0
        assert not [k for k in values if k[0] in ("binance_margin_level",
                                                  "binance_margin_asset_free")], "stale values"
        key = ("binance_margin_scrape_errors_total", (("account", "main"), ("reason", reason)))
        assert values[key] == before + 1
        return values

    def check_up(self) -> dict:
        values = self.scrape()
        assert values[("binance_margin_up", (("account", "main"),))] == 1.0
        expected = json.loads(self.sim.account.body())
        assert values[("binance_margin_level", (("account", "main"),))] == float(
            expected["marginLevel"])
        return values


@pytest.fixture
def rig(simulator):
    rig = Rig(simulator)
    rig.check_up()
    yield rig
    assert_no_leaks(rig)


def assert_no_leaks(rig: Rig, records=None) -> None:
    texts = list(rig.bodies)
    if records is not None:
        texts += [r.getMessage() for r in records]
    for text in texts:
        assert SECRET not in text and API_KEY not in text
        assert not SIGNED.search(text)
        for signature in rig.sim.signatures:
            assert signature not in text


def assert_clean_log(caplog) -> None:
    for record in caplog.records:
        assert record.exc_info is None, f"traceback logged: {record.getMessage()}"
        message = record.getMessage()
        assert SECRET not in message and API_KEY not in message
        assert not SIGNED.search(message)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500, body=b'{"code": -3000, "msg": "Internal error."}'),
        Fault(status=502, body=b"<html><body>502 Bad Gateway</body></html>",
              headers={"Content-Type": "text/html"}),
        Fault(status=503, body=b'{"code": -1007, "msg": "Timeout waiting for response from '
                               b'backend server."}'),
    ],
    ids=["500-json", "502-html", "503-json"],
)
def test_http_errors(rig, caplog, fault):
    rig.sim.set_fault(fault)
    rig.check_down("http")
    assert any(f"HTTP {fault.status}" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)
    rig.sim.clear_faults()
    rig.check_up()
    assert_clean_log(caplog)


def test_a_403_is_binance_s_firewall_and_holds_the_host_back(rig, caplog):
    """Binance's WAF answers 403 with a page of its own (it may mean a rate limit violation):
    the host is held back 5 minutes (doubling while it repeats), not asked again every scrape
    nor before the 5 minutes Binance's block usually lasts."""
    rig.sim.set_fault(Fault.waf())
    rig.check_down("waf")
    sent = rig.sim.counts[ACCOUNT_PATH]
    rig.sim.clear_faults()
    values = rig.scrape()
    assert values[("binance_margin_up", (("account", "main"),))] == 0.0
    assert rig.sim.counts[ACCOUNT_PATH] == sent  # held back: nothing sent
    assert values[("binance_margin_ip_backoff_until_timestamp_seconds",
                   (("egress", "default"), ("host", rig.upstream.host)))] > 0
    rig.clock.shift += 299
    values = rig.scrape()
    assert values[("binance_margin_up", (("account", "main"),))] == 0.0
    assert rig.sim.counts[ACCOUNT_PATH] == sent  # 299 s on: still held back
    rig.clock.shift += 2
    rig.check_up()
    assert any("HTTP 403 (Binance's firewall), holding back 300 s" in r.getMessage()
               for r in caplog.records)


def test_a_ban_stated_only_in_its_message_is_honoured(rig, caplog):
    """A 418 without Retry-After (the futures and PM pages do not promise it) that says "IP
    banned until <ms>": nothing is sent until then, not for the 2-minute default."""
    until = time.time() + 3600
    rig.sim.set_fault(Fault.banned_until(int(until * 1000)))
    rig.check_down("banned")
    assert rig.upstream.backoff_until() == pytest.approx(until, abs=5)


def test_the_simulator_s_own_ban_may_state_its_end_only_in_its_message(simulator):
    simulator.states_retry_after = False
    simulator.weight_bonus = 20000  # others on this IP: every call is over the limit
    rig = Rig(simulator, sync=False)
    for _ in range(5):
        rig.scrape()
    assert rig.upstream.backoff_until() > time.time() + 60
    sent = sum(simulator.counts.values())
    simulator.weight_bonus = 0
    values = rig.scrape()
    assert values[("binance_margin_up", (("account", "main"),))] == 0.0
    assert sum(simulator.counts.values()) == sent  # held back: nothing sent


def test_a_legacy_error_body_is_an_api_error_with_its_message(rig, caplog):
    rig.sim.set_fault(Fault.legacy_error("Sub-account function is not enabled."))
    rig.check_down("api_error")
    assert any("Sub-account function is not enabled." in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize(
    "transform",
    [
        lambda body: body[: len(body) // 2],
        lambda body: b"[]",
        lambda body: b'{"marginLevel": "1.5"}',
        lambda body: re.sub(rb'"marginLevel":"[^"]*"', b'"marginLevel":"n/a"', body),
        lambda body: body.replace(b'"free":"0.85000000"', b'"free":null', 1),
        lambda body: b"",
    ],
    ids=["truncated", "list", "missing-fields", "non-numeric", "null-asset-value", "empty"],
)
def test_invalid_responses(rig, caplog, transform):
    rig.sim.set_fault(Fault(transform=transform))
    rig.check_down("invalid_response")
    rig.sim.clear_faults()
    rig.check_up()
    assert_clean_log(caplog)


def test_hang_is_a_timeout_well_under_the_scrape_timeout(rig, caplog):
    rig.sim.set_fault(Fault(delay=3.0))
    started = time.monotonic()
    rig.check_down("timeout")
    assert time.monotonic() - started < 9  # Prometheus gives up at 10 s
    rig.sim.clear_faults()
    rig.check_up()
    assert_clean_log(caplog)


def test_connection_refused(caplog):
    sim = Simulator(SIMULATED)
    sim._server.server_close()  # the port is closed: nothing listens
    Rig(sim, sync=False).check_down("connection")
    assert_clean_log(caplog)


def test_margin_account_does_not_exist(rig, caplog):
    rig.sim.set_fault(Fault.binance_error(-3003, "Margin account does not exist."))
    rig.check_down("api_error")
    assert any("-3003" in r.getMessage() and "Margin account does not exist" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
    rig.sim.clear_faults()
    rig.check_up()
    assert_clean_log(caplog)


@pytest.mark.parametrize("code", [-2014, -2015, -1022])
def test_bad_credentials_back_off(rig, caplog, code):
    rig.sim.set_fault(Fault.binance_error(code, "Invalid API-key, IP, or permissions for action.",
                                          status=401 if code == -2015 else 400))
    rig.check_down("auth")
    assert any("IP allow-list" in r.getMessage() for r in caplog.records)
    sent = rig.sim.counts[ACCOUNT_PATH]
    values = rig.check_down("auth")  # inside the back-off: nothing is sent
    assert rig.sim.counts[ACCOUNT_PATH] == sent
    backoff = values[("binance_margin_backoff_until_timestamp_seconds", (("account", "main"),))]
    assert backoff == pytest.approx(rig.clock() + 15, abs=2)
    rig.clock.shift += 16
    rig.check_down("auth")  # tried again, still bad: the next wait is longer
    assert rig.sim.counts[ACCOUNT_PATH] == sent + 1
    assert rig.client.backoff_until() == pytest.approx(rig.clock() + 30, abs=2)
    rig.sim.clear_faults()
    rig.clock.shift += 31
    rig.check_up()
    assert_clean_log(caplog)


@pytest.mark.parametrize("skew_ms", [30_000, -30_000])
def test_clock_skew_resyncs_within_the_same_scrape(rig, caplog, skew_ms):
    times = rig.sim.counts[TIME_PATH]
    rig.sim.clock_skew_ms = skew_ms
    values = rig.check_up()  # -1021, re-sync, retry: all inside this scrape
    assert rig.sim.counts[TIME_PATH] == times + 1
    assert sum(v for k, v in values.items() if k[0] == "binance_margin_scrape_errors_total") == 0
    assert rig.upstream.clock.offset_ms == pytest.approx(skew_ms, abs=500)
    assert_clean_log(caplog)


def test_clock_30s_off_from_the_start(simulator):
    simulator.clock_skew_ms = 30_000
    Rig(simulator, sync=False).check_up()
    simulator.clock_skew_ms = -30_000
    Rig(simulator, sync=False).check_up()


@pytest.mark.parametrize(("status", "reason"), [(429, "rate_limited"), (418, "banned")])
def test_rate_limit_and_ban_stop_all_requests_until_retry_after(simulator, caplog, status,
                                                                reason):
    first = Rig(simulator)
    second = Rig(simulator, share=first)
    first.check_up()
    simulator.set_fault(Fault.rate_limited(120, status=status))
    values = first.check_down(reason)
    # the IP's back-off is the host's, not an account's
    host = first.upstream.host
    until = values[("binance_margin_ip_backoff_until_timestamp_seconds",
                    (("egress", "default"), ("host", host)))]
    assert until == pytest.approx(first.clock() + 120, abs=2)
    assert values[("binance_margin_backoff_until_timestamp_seconds",
                   (("account", "main"),))] == 0.0
    sent = sum(simulator.counts.values())
    simulator.clear_faults()
    for _ in range(3):
        first.check_down(reason)
        second.check_down(reason)
    assert sum(simulator.counts.values()) == sent  # not one request during the back-off
    first.clock.shift += 121
    first.check_up()
    second.check_up()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == (1 if status == 418 else 0)
    assert_clean_log(caplog)
    assert_no_leaks(first, caplog.records)


def test_weight_near_the_limit_slows_down_before_binance_says_429(rig, caplog):
    rig.sim.weight_bonus = 9700  # others on this IP used most of the minute's weight
    values = rig.check_up()  # this answer is good, and says how much weight is used
    key = ("binance_margin_api_ip_weight_used_1m", (("budget", "sapi"), ("egress", "default"),
                                                   ("host", rig.upstream.host)))
    assert values[key] >= 9700
    sent = rig.sim.counts[ACCOUNT_PATH]
    rig.check_down("throttled")
    assert rig.sim.counts[ACCOUNT_PATH] == sent
    assert rig.client.backoff_until() > rig.clock()
    rig.sim.weight_bonus = 0
    rig.clock.shift += 61  # the next minute: Binance's counter starts again
    rig.check_up()
    assert_clean_log(caplog)


def test_simulator_enforces_the_real_limit(simulator):
    """Without the soft limit, the simulator says 429 and then 418, like Binance."""
    rig = Rig(simulator)
    rig.upstream.gate.soft_limit = 10**9
    simulator.weight_bonus = 11_995
    rig.scrape()
    assert rig.account.account.errors["rate_limited"] == 1


def test_every_fault_in_a_row_with_debug_logging(rig, caplog):
    """The whole matrix once more, at DEBUG: no secret, signature or traceback anywhere."""
    caplog.set_level(logging.DEBUG)
    faults = [
        Fault(status=500, body=b"oops"),
        Fault(transform=lambda b: b[:10]),
        Fault.binance_error(-2015, "Invalid API-key", status=401),
        Fault.binance_error(-1022, "Signature for this request is not valid."),
        Fault.binance_error(-3003, "Margin account does not exist."),
        Fault.rate_limited(5),
        Fault.rate_limited(5, status=418),
        Fault(delay=2.0),
    ]
    for fault in faults:
        rig.sim.set_fault(fault)
        rig.scrape()
        rig.sim.clear_faults()
        rig.clock.shift += 400
        rig.check_up()
    assert rig.sim.signatures
    assert_clean_log(caplog)
    assert_no_leaks(rig, caplog.records)


def test_a_clock_resync_is_one_request_for_all_accounts_on_the_upstream(simulator):
    upstream = Upstream(simulator.base_url)
    clients = [BinanceClient(upstream, API_KEY, HmacSigner(SECRET)) for _ in range(8)]
    accounts = [CrossAccount.create(f"a{i}", c, EXECUTOR, ttl=0) for i, c in enumerate(clients)]
    list(CrossCollector(accounts).collect(time.monotonic() + 5))
    # the sync runs beside the scrape: until it has been asked and has ended
    wait_for(lambda: simulator.counts[TIME_PATH] >= 1, timeout=10)
    upstream.clock.wait_for_sync(10)
    assert simulator.counts[TIME_PATH] == 1


def test_a_1021_storm_resyncs_once_for_all_accounts(simulator):
    upstream = Upstream(simulator.base_url)
    clients = [BinanceClient(upstream, API_KEY, HmacSigner(SECRET)) for _ in range(8)]
    assert upstream.clock.claim_sync()
    clients[0].sync_time()
    simulator.clock_skew_ms = 30_000
    accounts = [CrossAccount.create(f"a{i}", c, EXECUTOR, ttl=0) for i, c in enumerate(clients)]
    list(CrossCollector(accounts).collect(time.monotonic() + 5))
    assert simulator.counts[TIME_PATH] == 2  # the start-up sync and one re-sync


@pytest.mark.parametrize("scrape_timeout", [None, 1.5])
def test_a_dripping_body_is_a_timely_timeout(simulator, caplog, scrape_timeout):
    """Binance sends the headers, then the body a byte every 0.3 s: the whole scrape still
    ends by its deadline (Prometheus' timeout less a margin, or the request timeout)."""
    rig = Rig(simulator, timeout=2.0)
    rig.check_up()
    simulator.set_fault(Fault(drip=0.3))
    started = time.monotonic()
    values = rig.scrape(scrape_timeout)
    took = time.monotonic() - started
    budget = 2.0 if scrape_timeout is None else 1.0  # 1.5 s less the 0.5 s margin
    assert budget - 0.1 < took < budget + 0.5, took
    assert values[("binance_margin_up", (("account", "main"),))] == 0.0
    key = ("binance_margin_scrape_errors_total", (("account", "main"), ("reason", "timeout")))
    assert values[key] == 1.0
    simulator.clear_faults()
    # the fetch itself runs on to the request timeout (a scrape's short deadline is its own)
    wait_idle(rig.account.account)
    rig.clock.shift += 1
    rig.check_up()
    assert_clean_log(caplog)


def test_a_slow_first_byte_is_bounded_by_the_scrape_deadline(simulator, caplog):
    rig = Rig(simulator, timeout=5.0)
    rig.check_up()
    simulator.set_fault(Fault(delay=3.0))
    started = time.monotonic()
    values = rig.scrape(1.5)
    assert time.monotonic() - started < 1.5
    assert values[("binance_margin_up", (("account", "main"),))] == 0.0
    assert_clean_log(caplog)


def test_a_fetch_held_by_a_back_off_says_why_once_per_period(rig, caplog):
    rig.sim.set_fault(Fault.binance_error(-2015, "Invalid API-key, IP, or permissions.",
                                          status=401))
    for _ in range(4):
        rig.scrape()  # one real attempt, then three held back by the 15 s back-off
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"
                and r.name.endswith("cache")]
    assert len(warnings) == 2, warnings
    assert "fetch failed (auth)" in warnings[0]
    assert "not fetched (auth)" in warnings[1] and "backing off" in warnings[1]
    rig.clock.shift += 16  # the next period: another attempt, another failure, said again
    rig.scrape()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"
                and r.name.endswith("cache")]
    assert len(warnings) == 3 and "fetch failed (auth)" in warnings[2]
    rig.sim.clear_faults()
