"""RateGate, ServerClock and Upstream: what one Binance host allows, and its clock."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests_mock

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.limits import (
    API_WEIGHT_HEADER,
    SAPI_WEIGHT_HEADER,
    RateGate,
    ServerClock,
    Upstream,
    retry_after,
)
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import TIME_PATH, BinanceClient
from tests.support.clocks import WALL, Clock
from tests.support.keys import API_KEY, SECRET

NOW = WALL  # a Unix time 20 s past a minute (the clocks' default)


def gate(clock: Clock, soft_limit: int = 9600) -> RateGate:
    return RateGate(SAPI_WEIGHT_HEADER, soft_limit, clock)


# -- retry_after ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [
    (None, 60.0), ("", 60.0), ("soon", 60.0), ("nan", 60.0), ("30", 30.0), ("2.5", 2.5),
    ("0", 1.0), ("-4", 1.0), ("1e9", 3 * 86400.0), ("inf", 3 * 86400.0), ("259200", 259200.0),
])
def test_retry_after_reads_seconds_within_bounds(value, seconds):
    headers = {} if value is None else {"Retry-After": value}
    assert retry_after(headers) == seconds


# -- RateGate ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("server_ms", "pause"), [
    (1_699_999_995_000, 46.0),  # 15 s into Binance's minute: 45 s to go, plus a second
    (1_700_000_020_000, 21.0),
    (1_699_999_980_000, 61.0),  # at the minute's first millisecond: a whole minute
    (1_700_000_019_999, 21.001),
])
def test_the_soft_limit_pauses_until_binance_s_minute_resets(server_ms, pause):
    clock = Clock()
    g = gate(clock)
    g.note_weight(9600, server_ms)
    assert abs(g.blocked_until - (NOW + pause)) < 1e-6  # not approx: 1 ms matters here
    assert g.reason == "throttled" and g.last_used_weight == 9600
    clock.now += pause - 0.01
    with pytest.raises(UpstreamError) as info:
        g.check()
    assert info.value.reason == "throttled" and info.value.sent is False
    clock.now += 0.02
    g.check()


def test_under_the_soft_limit_nothing_pauses(caplog):
    clock = Clock()
    g = gate(clock)
    g.note_weight(9599, 1_699_999_995_000)
    assert g.last_used_weight == 9599 and g.blocked_until == 0.0 and g.reason is None
    g.check()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_pause_is_logged_with_the_weight_and_the_limit(caplog):
    g = gate(Clock())
    g.note_weight(9700, 1_699_999_995_000)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == (
        "Binance reports 9700 of 12000 weight used this minute (X-SAPI-USED-IP-WEIGHT-1M); "
        "pausing requests for 46 s")


def test_a_block_lasts_at_least_a_second():
    clock = Clock()
    g = gate(clock)
    assert g.block(0.2, "rate_limited") is False
    assert g.blocked_until == NOW + 1.0 and g.reason == "rate_limited"


@pytest.mark.parametrize("first", ["rate_limited", "banned"])
def test_a_shorter_later_block_never_shortens_a_running_one(first):
    clock = Clock()
    g = gate(clock)
    g.block(600, first)
    clock.now += 10
    g.block(5, "throttled")
    assert g.blocked_until == NOW + 600
    g.note_weight(11000, 1_699_999_995_000)  # a throttle until the next minute
    assert g.blocked_until == NOW + 600
    assert g.backoff_until() == NOW + 600


def test_a_longer_later_block_extends_a_running_one():
    clock = Clock()
    g = gate(clock)
    g.block(30, "rate_limited")
    g.block(90, "rate_limited")
    assert g.blocked_until == NOW + 90


def test_after_a_block_ended_a_new_one_starts_from_now():
    clock = Clock()
    g = gate(clock)
    g.block(600, "banned")
    clock.now += 601
    assert g.backoff_until() == 0.0
    assert g.block(5, "rate_limited") is False
    assert g.blocked_until == clock.now + 5 and g.reason == "rate_limited"


def test_a_ban_outranks_a_rate_limit_and_keeps_its_reason():
    clock = Clock()
    g = gate(clock)
    assert g.block(60, "banned") is True
    assert g.block(600, "rate_limited") is False
    assert g.reason == "banned" and g.blocked_until == NOW + 600
    assert g.block(30, "banned") is False  # the same ban, not a new one
    with pytest.raises(UpstreamError) as info:
        g.check()
    assert info.value.reason == "banned"


def test_a_ban_replaces_a_rate_limit_and_is_new():
    clock = Clock()
    g = gate(clock)
    g.block(600, "rate_limited")
    assert g.block(60, "banned") is True
    assert g.reason == "banned" and g.blocked_until == NOW + 600


def test_check_says_until_when_and_why():
    clock = Clock()
    g = gate(clock)
    g.block(90, "rate_limited")
    with pytest.raises(UpstreamError) as info:
        g.check()
    assert str(info.value) == "not calling Binance until 22:14:50 UTC (90 s): rate limited"
    clock.now = NOW + 90  # the moment it ends, requests go again
    g.check()
    assert g.backoff_until() == 0.0


def test_check_before_any_block_passes():
    g = gate(Clock())
    g.check()
    assert g.backoff_until() == 0.0 and g.limit == 12000 and g.header == SAPI_WEIGHT_HEADER


# -- ServerClock ---------------------------------------------------------------------------------

def test_the_offset_is_the_server_time_less_the_midpoint_of_the_request(caplog):
    wall = Clock(1000.0)
    clock = ServerClock(wall, Clock(5.0))
    clock.update(1_002_500, 1000.0, 1001.0)
    assert clock.offset_ms == 2000
    assert clock.now_ms() == 1_002_000
    assert [r.getMessage() for r in caplog.records] == [
        "server clock differs from the local clock by +2000 ms"]
    clock.update(1_002_500, 1000.0, 1001.0)  # the same offset again: nothing new to say
    assert len(caplog.records) == 1


@pytest.mark.parametrize(("offset", "logged"), [(1000, False), (1001, True), (-1001, True)])
def test_a_new_offset_is_logged_only_when_it_moved_over_a_second(caplog, offset, logged):
    clock = ServerClock(Clock(0.0), Clock(0.0))
    clock.update(offset, 0.0, 0.0)
    assert ("server clock differs" in caplog.text) is logged


def test_a_sync_is_claimed_once_then_every_five_minutes():
    monotonic = Clock(100.0)
    clock = ServerClock(Clock(), monotonic)
    assert clock.claim_sync() is True
    clock.sync_ended()
    assert clock.claim_sync() is False
    monotonic.now += 300
    assert clock.claim_sync() is False
    monotonic.now += 0.01
    assert clock.claim_sync() is True
    clock.mark_failed()
    assert clock.claim_sync() is True


def test_a_stale_claim_is_for_one_caller_and_not_while_a_sync_runs():
    monotonic = Clock(100.0)
    clock = ServerClock(Clock(), monotonic)
    assert clock.claim_sync(stale_before=100.0) is True  # never measured
    assert clock.claim_sync(stale_before=100.0) is False  # under way
    clock.update(0, 0.0, 0.0)  # measured at 100
    clock.sync_ended()
    assert clock.claim_sync(stale_before=100.0) is False  # measured since the signing
    assert clock.claim_sync(stale_before=100.5) is True


def test_waiting_for_a_sync_ends_when_it_ends():
    clock = ServerClock()
    assert clock.claim_sync()
    threading.Timer(0.2, clock.sync_ended).start()
    started = time.monotonic()
    clock.wait_for_sync(30)
    assert time.monotonic() - started < 10
    clock.wait_for_sync(-5)  # a deadline passed already: no wait, no error


# -- Upstream -------------------------------------------------------------------------------------

def test_gates_get_the_soft_limit_s_share_of_each_budget():
    upstream = Upstream("https://api.binance.test/", soft_limit=6000)
    assert upstream.base_url == "https://api.binance.test"
    assert upstream.host == "api.binance.test"
    assert upstream.gates["sapi"].soft_limit == 6000
    assert upstream.gates["api"].soft_limit == 3000
    assert upstream.gate is upstream.gates["sapi"]
    tiny = Upstream("https://api.binance.test", soft_limit=1)
    assert tiny.gates["api"].soft_limit == 1


@pytest.mark.parametrize(("path", "budget", "header"), [
    ("/sapi/v1/margin/account", "sapi", SAPI_WEIGHT_HEADER),
    ("/api/v3/time", "api", API_WEIGHT_HEADER), ("/papi/v1/account", "api", API_WEIGHT_HEADER),
    ("/sapix", "api", API_WEIGHT_HEADER), ("/fapi/v3/account", "fapi", API_WEIGHT_HEADER),
    ("/dapi/v1/account", "dapi", API_WEIGHT_HEADER),
])
def test_each_path_counts_on_its_budget(path, budget, header):
    upstream = Upstream("https://api.binance.test")
    assert upstream.gate_for(path) is upstream.gates[budget]
    assert upstream.gates[budget].header == header


def test_portfolio_margin_s_host_keeps_time_with_the_api_host():
    api = Upstream("https://api.binance.test")
    papi = Upstream("https://papi.binance.test", clock_of=api)
    assert papi.clock is api.clock
    assert papi.time_upstream is api
    assert papi.base_url == "https://papi.binance.test"
    assert papi.gates["sapi"] is not api.gates["sapi"]
    alone = Upstream("https://papi.binance.test")
    assert alone.clock is not api.clock and alone.time_upstream is alone
    # a third host keeping time with papi keeps it with api (the one with /api/v3/time)
    assert Upstream("https://fapi.binance.test", clock_of=papi).time_upstream is api


def test_the_papi_client_syncs_its_clock_on_the_api_host():
    api = Upstream("https://api.binance.test")
    papi = Upstream("https://papi.binance.test", clock_of=api)
    client = BinanceClient(papi, API_KEY, HmacSigner(SECRET), background=lambda task: task())
    with requests_mock.Mocker() as m:
        server_ms = int(time.time() * 1000) + 30_000
        m.get("https://api.binance.test" + TIME_PATH, json={"serverTime": server_ms})
        m.get("https://papi.binance.test/papi/v1/account", json={})
        assert client.signed_get("/papi/v1/account") == {}
        assert [r.hostname for r in m.request_history] == ["api.binance.test",
                                                           "papi.binance.test"]
    assert 25_000 < api.clock.offset_ms < 35_000


@pytest.mark.parametrize("status, headers, reason", [
    (200, {"X-MBX-USED-WEIGHT-1M": "5990"}, "throttled"),
    (429, {"Retry-After": "30"}, "rate_limited"),
    (418, {"Retry-After": "300"}, "banned"),
    (403, {}, "waf"),
])
def test_the_api_host_s_answer_to_the_clock_sync_holds_only_the_api_host(status, headers,
                                                                         reason):
    """/api/v3/time is read on the api host: its weight, rate limit, ban or firewall are the
    api host's, never the papi host's (a busy spot bot on the IP must not stop a PM account)."""
    clock = Clock()
    api = Upstream("https://api.binance.test", wall=clock, monotonic=clock)
    papi = Upstream("https://papi.binance.test", clock_of=api, wall=clock)
    client = BinanceClient(papi, API_KEY, HmacSigner(SECRET), wall=clock,
                           background=lambda task: task())
    with requests_mock.Mocker() as m:
        body = {"serverTime": int(clock() * 1000)} if status == 200 else \
            {"code": -1003, "msg": "Too many requests."}
        if status == 403:
            m.get("https://api.binance.test" + TIME_PATH, status_code=403, text="<html></html>")
        else:
            m.get("https://api.binance.test" + TIME_PATH, status_code=status, json=body,
                  headers=headers)
        m.get("https://papi.binance.test/papi/v1/account", json={},
              headers={"X-MBX-USED-WEIGHT-1M": "20"})
        for _ in range(3):
            assert client.signed_get("/papi/v1/account") == {}
        assert [r.hostname for r in m.request_history].count("papi.binance.test") == 3
        assert [r.hostname for r in m.request_history].count("api.binance.test") == 1
    assert api.gates["api"].reason == reason and api.backoff_until() > clock()
    assert papi.backoff_until() == 0.0 and papi.gates["api"].reason is None
    assert papi.gates["api"].last_used_weight == 20
    if status == 200:
        assert api.gates["api"].last_used_weight == 5990
    else:  # the clock is synced again when the api host's back-off ends, not before
        clock.now = api.backoff_until() - 1
        assert not papi.clock.claim_sync()
        clock.now = api.backoff_until() + 1
        assert papi.clock.claim_sync()


def test_a_ban_blocks_every_budget_and_is_logged_once(caplog):
    clock = Clock()
    upstream = Upstream("https://api.binance.test", wall=clock)
    upstream.ban(120)
    upstream.ban(60)
    assert all(g.reason == "banned" and g.blocked_until == NOW + 120
               for g in upstream.gates.values())
    assert upstream.backoff_until() == NOW + 120
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage() == (
        "Binance has banned this IP (HTTP 418) for 120 s; the exporter sends nothing until "
        "then. Scrape less often or serve fewer accounts per IP")


def test_the_host_s_back_off_is_its_longest_gate_s():
    clock = Clock()
    upstream = Upstream("https://api.binance.test", wall=clock)
    assert upstream.backoff_until() == 0.0
    upstream.gates["api"].block(30, "rate_limited")
    upstream.gate.block(10, "rate_limited")
    assert upstream.backoff_until() == NOW + 30


def test_a_wait_for_a_sync_that_does_not_end_gives_up():
    clock = ServerClock()
    assert clock.claim_sync()  # under way, never ended
    started = time.monotonic()
    clock.wait_for_sync(0.1)
    clock.wait_for_sync(-5)  # past the deadline: no wait at all
    assert time.monotonic() - started < 0.9


def test_a_ban_ends_on_the_second_and_a_rate_limit_then_replaces_it():
    clock = Clock()
    g = gate(clock)
    g.block(600, "banned")
    clock.now = NOW + 600
    g.block(5, "rate_limited")
    assert g.reason == "rate_limited" and g.blocked_until == NOW + 605


def test_the_default_soft_limit_is_80_percent_of_each_budget():
    upstream = Upstream("https://api.binance.test")
    assert upstream.gates["sapi"].soft_limit == 9600
    assert upstream.gates["api"].soft_limit == 4800


@pytest.mark.parametrize(("budget", "path"), [("fapi", "/fapi/v3/account"),
                                              ("dapi", "/dapi/v1/positionRisk")])
def test_the_futures_hosts_count_2400_a_minute_and_pause_at_80_percent(budget, path, caplog):
    clock = Clock()
    upstream = Upstream("https://fapi.binance.test", wall=clock)
    gate = upstream.gate_for(path)
    assert gate is upstream.gates[budget] and gate.header == API_WEIGHT_HEADER
    server_ms = int(NOW * 1000)
    gate.note_weight(1919, server_ms)
    assert gate.backoff_until() == 0.0
    gate.note_weight(1920, server_ms)  # 80 % of 2,400
    assert gate.reason == "throttled" and gate.backoff_until() > NOW
    assert f"Binance reports 1920 of 2400 weight used this minute ({API_WEIGHT_HEADER})" in \
        caplog.text
    assert upstream.gates["api"].backoff_until() == 0.0  # /api and /papi: 6,000, apart
