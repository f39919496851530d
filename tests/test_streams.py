"""The risk data streams against the simulator over real HTTP and WebSocket: events counted
and refreshing the account, the listen-key lifecycle, reconnections, reloads and shutdown."""

from __future__ import annotations

import copy
import threading
import time

import pytest

from binance_margin_exporter.binance import streams
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.stream_connection import Stream, Timing
from binance_margin_exporter.binance.streams import KeyExpired, RiskEvent, parse_event
from binance_margin_exporter.collectors.streams import StreamPart, StreamProduct
from binance_margin_exporter.config import ConfigError
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.demo.streams import API_KEY as KEY_PARAM
from binance_margin_exporter.demo.streams import PM, SimulatedStreams
from binance_margin_exporter.products import PRODUCTS, SIMULATED
from binance_margin_exporter.wiring import build_exporter, load, warm_up
from tests.support.exporters import Scraper, built_exporter, sample_values
from tests.support.keys import API_KEY, SECRET
from tests.support.waiting import wait_for

FAST = Timing(keep_alive=30.0, backoff_first=0.05, backoff_max=0.2, poll=0.05,
              open_timeout=2.0, shutdown_seconds=2.0)
ACCOUNT_PATH = "/sapi/v1/margin/account"
PM_PATH = "/papi/v1/account"


def products(timing: Timing = FAST, refresh_spacing: float = 0.0) -> tuple:
    out = []
    for product in PRODUCTS:
        if isinstance(product, StreamProduct):
            product = copy.copy(product)
            product.timing = timing
            product.refresh_spacing = refresh_spacing
        out.append(product)
    return tuple(out)


def config(sim: Simulator, *, accounts: str = "both", extra: str = "") -> str:
    lines = [f"base_url: {sim.base_url}", f"papi_base_url: {sim.base_url}",
             f"margin_stream_url: {sim.streams.url}", f"papi_stream_url: {sim.streams.url}/pm",
             "usdt_values: false", "interest_rates: false", "risk_lists: false",
             "cache_ttl_seconds: 60", extra, "accounts:"]
    if accounts in ("both", "cross"):
        lines.append(f"  - {{name: main, api_key: {API_KEY}, api_secret: {SECRET}, "
                     f"isolated: false}}")
    if accounts in ("both", "pm"):
        lines.append(f"  - {{name: pm, api_key: {API_KEY}, api_secret: {SECRET}, "
                     f"type: portfolio_margin}}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def started(simulator, tmp_path):
    """``start(accounts=..., timing=..., extra=...)``: a built, warmed-up exporter; closed at
    the end."""
    built_list = []

    def start(accounts: str = "both", timing: Timing = FAST, extra: str = "", connect=True,
              refresh_spacing: float = 0.0):
        path = tmp_path / "config.yml"
        text = config(simulator, accounts=accounts, extra="" if extra == "unreachable" else extra)
        if extra == "unreachable":  # a port nothing listens on
            text = text.replace(simulator.streams.url, "ws://127.0.0.1:9")
        path.write_text(text)
        prods = products(timing, refresh_spacing)
        built = build_exporter(load(str(path), {}, products=prods), products=prods)
        built_list.append(built)
        warm_up(built)
        if connect:
            simulator.streams.wait_connected(None, 2 if accounts == "both" else 1)
            # the server sees the connection a moment before the client says it is up
            wait_for(lambda: all(v == 1 for k, v in values(built).items()
                                 if k[0] == "binance_margin_stream_up"), timeout=10)
        return built

    yield start
    for built in built_list:
        built.exporter.close()


def values(built) -> dict:
    return sample_values(Scraper(*built.exporter.collectors).text())


def value(built, name: str, **labels: str) -> float | None:
    return values(built).get((name, tuple(sorted(labels.items()))))


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stream-")]


# -- parsing ------------------------------------------------------------------------------


def test_the_documented_events_parse():
    assert parse_event('{"e": "MARGIN_LEVEL_STATUS_CHANGE", "E": 1701949763462, "l": "1.1", '
                       '"s": "MARGIN_CALL"}') == RiskEvent(
        "margin_level_status_change", "MARGIN_CALL", 1701949763462, 1.1)
    assert parse_event('{"e": "USER_LIABILITY_CHANGE", "E": 1701949801133, "a": "BTC", '
                       '"t": "BORROW", "p": "0.00000100", "i": "0.00000000"}') == RiskEvent(
        "liability_change", "BORROW", 1701949801133, None)
    assert parse_event('{"e": "riskLevelChange", "E": 1587727187525, "u": "1.99999999", '
                       '"s": "MARGIN_CALL", "eq": "30.23416728", "ae": "30.23416728", '
                       '"m": "15.11708371"}') == RiskEvent(
        "risk_level_change", "MARGIN_CALL", 1587727187525, 1.99999999)
    assert parse_event('{"e": "liabilityChange", "E": 1573200697110, "a": "BTC", '
                       '"t": "BORROW", "T": 1352286576452864727, "p": "1.03453430", "i": "0", '
                       '"l": "1.03476851"}') == RiskEvent(
        "liability_change", "BORROW", 1573200697110, None)  # its l is not a margin level
    assert parse_event('{"e": "listenKeyExpired", "E": 1576653824250}') == \
        KeyExpired(1576653824250)
    assert parse_event('{"e": "ORDER_TRADE_UPDATE", "E": 1}') is None  # not read here


@pytest.mark.parametrize(("text", "message"), [
    ('{"e": "riskLevelChange", "E": 1, "s": "MARGIN_CALL"}', "riskLevelChange.u: missing"),
    ('{"e": "riskLevelChange", "E": 1, "u": "x", "s": "MARGIN_CALL"}',
     "riskLevelChange.u: not a decimal"),
    ('{"e": "MARGIN_LEVEL_STATUS_CHANGE", "E": 1, "l": "1.1"}',
     "MARGIN_LEVEL_STATUS_CHANGE.s: missing"),
    ('{"e": "USER_LIABILITY_CHANGE", "E": 1, "t": ""}', "USER_LIABILITY_CHANGE.t: empty"),
    ('{"e": "USER_LIABILITY_CHANGE", "t": "BORROW"}', "USER_LIABILITY_CHANGE.E: missing"),
    ("[1]", "stream message: expected a JSON object"),
    ("{", "stream message: not JSON"),
])
def test_a_broken_event_names_its_field(text, message):
    with pytest.raises(UpstreamError) as info:
        parse_event(text)
    assert info.value.reason == "invalid_response"
    assert str(info.value).startswith(message)


# -- events -------------------------------------------------------------------------------


def test_every_counter_starts_at_zero(started):
    built = started()
    got = values(built)
    events = {k: v for k, v in got.items() if k[0] == "binance_margin_risk_events_total"}
    assert events == {
        ("binance_margin_risk_events_total", (("account", a), ("event", e), ("status", s))): 0.0
        for a, e, s in [("main", "margin_level_status_change", "MARGIN_CALL"),
                        ("main", "liability_change", "BORROW"),
                        ("pm", "risk_level_change", "MARGIN_CALL"),
                        ("pm", "risk_level_change", "REDUCE_ONLY"),
                        ("pm", "risk_level_change", "FORCE_LIQUIDATION"),
                        ("pm", "liability_change", "BORROW")]}
    for account, stream in (("main", "margin_risk"), ("pm", "portfolio")):
        assert got[("binance_margin_stream_up", (("account", account), ("stream", stream)))] == 1
        for reason in ("dropped", "key_expired", "lifetime", "failed"):
            assert got[("binance_margin_stream_reconnects_total",
                        (("account", account), ("reason", reason), ("stream", stream)))] == 0
    assert not [k for k in got if k[0] in ("binance_margin_risk_event_level",
                                           "binance_margin_risk_last_event_timestamp_seconds")]


def test_a_margin_call_is_counted_and_the_account_fetched_at_once(simulator, started):
    built = started("cross")
    assert value(built, "binance_margin_level", account="main") == 2.5
    fetches = simulator.counts[ACCOUNT_PATH]
    simulator.account.set_margin_level(1.25)
    assert simulator.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "E": 1701949763462,
                                   "l": "1.25", "s": "MARGIN_CALL"}, "margin_risk") == 1
    # a fetch starts without a scrape (the cache's ttl is 60 s)
    wait_for(lambda: simulator.counts[ACCOUNT_PATH] > fetches, timeout=5)
    got = values(built)
    assert got[("binance_margin_level", (("account", "main"),))] == 1.25
    assert got[("binance_margin_risk_events_total", (("account", "main"),
               ("event", "margin_level_status_change"), ("status", "MARGIN_CALL")))] == 1
    assert got[("binance_margin_risk_event_level", (("account", "main"),))] == 1.25
    assert got[("binance_margin_risk_last_event_timestamp_seconds",
                (("account", "main"),))] == 1701949763.462


def test_a_portfolio_risk_event_is_counted_with_its_uni_mmr(simulator, started):
    built = started("pm")
    assert value(built, "binance_margin_up", account="pm") == 1
    fetches = simulator.counts[PM_PATH]
    simulator.streams.push({"e": "riskLevelChange", "u": "1.15", "s": "REDUCE_ONLY",
                            "eq": "1", "ae": "1", "m": "1"}, "portfolio")
    wait_for(lambda: simulator.counts[PM_PATH] > fetches, timeout=5)
    assert value(built, "binance_margin_risk_events_total", account="pm",
                 event="risk_level_change", status="REDUCE_ONLY") == 1
    assert value(built, "binance_margin_risk_event_level", account="pm") == 1.15


def test_a_liability_change_counts_its_type_and_sets_no_level(simulator, started):
    built = started("cross")
    fetches = simulator.counts[ACCOUNT_PATH]
    simulator.streams.push({"e": "USER_LIABILITY_CHANGE", "E": 1701949801133, "a": "BTC",
                            "t": "REPAY", "p": "1", "i": "0"}, "margin_risk")
    wait_for(lambda: simulator.counts[ACCOUNT_PATH] > fetches, timeout=5)
    got = values(built)
    assert got[("binance_margin_risk_events_total", (("account", "main"),
               ("event", "liability_change"), ("status", "REPAY")))] == 1  # as sent
    assert ("binance_margin_risk_event_level", (("account", "main"),)) not in got
    assert got[("binance_margin_risk_last_event_timestamp_seconds",
                (("account", "main"),))] == 1701949801.133


def test_a_burst_of_events_costs_one_fetch_per_spacing(simulator, started):
    built = started("cross", refresh_spacing=0.5)
    stream = built.accounts[built.settings.accounts[0]].parts["margin_risk_stream"]
    values(built)  # the account is cached (for 60 s): scrapes fetch nothing more
    fetches = simulator.counts[ACCOUNT_PATH]
    for _ in range(10):
        simulator.streams.push({"e": "USER_LIABILITY_CHANGE", "t": "BORROW"}, "margin_risk")
    wait_for(lambda: stream.snapshot()[0][("liability_change", "BORROW")] == 10, timeout=5)
    # the trailing refresh comes at the end of the spacing (0.5 s)
    wait_for(lambda: simulator.counts[ACCOUNT_PATH] - fetches >= 2, timeout=10)
    assert simulator.counts[ACCOUNT_PATH] - fetches == 2


def test_a_broken_event_is_ignored_and_the_stream_goes_on(simulator, started, caplog):
    built = started("cross")
    simulator.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "s": "MARGIN_CALL"},
                           "margin_risk")  # no l
    simulator.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": "1.2", "s": "MARGIN_CALL"},
                           "margin_risk")
    wait_for(lambda: value(built, "binance_margin_risk_events_total", account="main",
                           event="margin_level_status_change", status="MARGIN_CALL") == 1,
             timeout=5)
    assert "MARGIN_LEVEL_STATUS_CHANGE.l: missing" in caplog.text
    assert value(built, "binance_margin_stream_reconnects_total", account="main",
                 stream="margin_risk", reason="dropped") == 0


# -- lifecycle ----------------------------------------------------------------------------


def test_a_dropped_connection_reconnects_with_a_fresh_post(simulator, started):
    built = started()
    posts = simulator.streams.counts["POST margin_risk"]
    simulator.streams.drop("margin_risk")
    wait_for(lambda: value(built, "binance_margin_stream_reconnects_total", account="main",
                           stream="margin_risk", reason="dropped") == 1, timeout=5)
    simulator.streams.wait_connected("margin_risk")
    wait_for(lambda: value(built, "binance_margin_stream_up", account="main",
                           stream="margin_risk") == 1, timeout=5)
    assert simulator.streams.counts["POST margin_risk"] == posts + 1
    # the other account's stream was left alone
    assert value(built, "binance_margin_stream_reconnects_total", account="pm",
                 stream="portfolio", reason="dropped") == 0


def test_a_key_binance_forgot_is_replaced_after_the_put_says_1125(simulator, started):
    built = started("cross", Timing(**{**FAST.__dict__, "keep_alive": 0.1}))
    (old,) = simulator.streams.keys("margin_risk")
    with simulator.streams._lock:
        del simulator.streams._keys[old]  # Binance forgets it; the connection stays
    wait_for(lambda: value(built, "binance_margin_stream_reconnects_total", account="main",
                           stream="margin_risk", reason="key_expired") == 1, timeout=5)
    wait_for(lambda: simulator.streams.keys("margin_risk"), timeout=5)
    assert simulator.streams.keys("margin_risk") != [old]
    simulator.streams.wait_connected("margin_risk")


def test_the_key_is_kept_alive_with_put_not_post(simulator, started):
    started("cross", Timing(**{**FAST.__dict__, "keep_alive": 0.05}))
    wait_for(lambda: simulator.streams.counts.get("PUT margin_risk", 0) >= 3, timeout=5)
    assert simulator.streams.counts["POST margin_risk"] == 1


def test_portfolio_margin_s_listen_key_expired_brings_a_new_key(simulator, started):
    built = started("pm")
    simulator.streams.expire("portfolio")
    wait_for(lambda: value(built, "binance_margin_stream_reconnects_total", account="pm",
                           stream="portfolio", reason="key_expired") == 1, timeout=5)
    simulator.streams.wait_connected("portfolio")
    assert simulator.streams.counts["POST portfolio"] == 2


def test_a_connection_is_renewed_before_its_lifetime_ends(simulator, started):
    built = started("cross", Timing(**{**FAST.__dict__, "connection_lifetime": 0.2}))
    wait_for(lambda: (value(built, "binance_margin_stream_reconnects_total", account="main",
                            stream="margin_risk", reason="lifetime") or 0) >= 2, timeout=5)
    assert value(built, "binance_margin_stream_reconnects_total", account="main",
                 stream="margin_risk", reason="dropped") == 0


def test_server_pings_are_answered():
    sim = Simulator(SIMULATED, account=SimulatedAccount(30, 12, drift=False))
    sim.add_hmac_key(API_KEY, SECRET)
    # a ping every 0.05 s, and a pong within 0.5 s or the server hangs up (0.05 s, as it was,
    # failed on a busy machine: the client's answer came a little late)
    sim.streams.ping_interval, sim.streams.ping_timeout = 0.05, 0.5
    with sim:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yml"
            path.write_text(config(sim, accounts="cross"))
            prods = products(Timing(**{**FAST.__dict__, "ping_interval": None}))
            with built_exporter(load(str(path), {}, products=prods), products=prods) as built:
                warm_up(built)
                sim.streams.wait_connected("margin_risk")
                (conn,) = sim.streams.connections("margin_risk")
                wait_for(lambda: conn.latency > 0, timeout=10)  # a ping answered
                # pings keep coming; one unanswered would end the connection within 0.55 s:
                # a window of three times that (what did not happen cannot be polled for)
                time.sleep(1.5)
                assert sim.streams.connections("margin_risk") == [conn]
                assert value(built, "binance_margin_stream_reconnects_total", account="main",
                             stream="margin_risk", reason="dropped") == 0


def test_a_failing_stream_never_fails_nor_delays_a_scrape(simulator, started):
    from binance_margin_exporter.demo.simulator import Fault

    simulator.set_fault(Fault.binance_error(-1000, "unknown", status=500,
                                            paths=("POST /sapi/v1/margin/listen-key",)))
    built = started("cross", connect=False)
    wait_for(lambda: simulator.counts["POST /sapi/v1/margin/listen-key"] >= 2, timeout=5)
    begun = time.monotonic()
    got = values(built)
    assert time.monotonic() - begun < 1.0
    assert got[("binance_margin_up", (("account", "main"),))] == 1
    assert got[("binance_margin_stream_up", (("account", "main"), ("stream", "margin_risk")))] == 0
    assert got[("binance_margin_stream_reconnects_total", (("account", "main"),
               ("reason", "failed"), ("stream", "margin_risk")))] >= 2
    time.sleep(0.5)  # back-off: 0.05 s doubling to 0.2 s, with jitter: a handful of tries
    assert simulator.counts["POST /sapi/v1/margin/listen-key"] <= 8
    simulator.clear_faults()
    simulator.streams.wait_connected("margin_risk")


def test_an_unreachable_stream_host_is_counted_as_failed(simulator, started):
    built = started("cross", extra="unreachable", connect=False)
    wait_for(lambda: (value(built, "binance_margin_stream_reconnects_total", account="main",
                            stream="margin_risk", reason="failed") or 0) >= 1, timeout=5)
    assert value(built, "binance_margin_up", account="main") == 1


# -- settings, reloads, shutdown -----------------------------------------------------------


@pytest.mark.parametrize("extra", ["streams: false", ""])
def test_streams_false_turns_them_off(simulator, started, extra, tmp_path):
    if extra:
        built = started(extra=extra, connect=False)
    else:  # per account
        path = tmp_path / "off.yml"
        path.write_text(config(simulator, accounts="cross").replace(
            "isolated: false}", "isolated: false, streams: false}"))
        with built_exporter(load(str(path), {}, products=products()),
                            products=products()) as built:
            warm_up(built)
    assert not [name for parts in built.accounts.values() for name in parts.parts
                if name.endswith("_stream")]
    assert "POST margin_risk" not in simulator.streams.counts


def test_binance_s_stream_host_only_while_rest_goes_to_binance(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("base_url: http://127.0.0.1:1\naccounts: [{name: a, api_key: k, "
                    "api_secret: s}]\n")
    settings = load(str(path), {})
    with built_exporter(settings) as built:
        assert "margin_risk_stream" not in built.accounts[settings.accounts[0]].parts
    path.write_text("accounts: [{name: a, api_key: k, api_secret: s}]\n")
    settings = load(str(path), {})
    assert settings.option("margin_stream_url") == "wss://margin-stream.binance.com"
    assert settings.option("papi_stream_url") == "wss://fstream.binance.com/pm"
    with built_exporter(settings) as built:  # not warmed up: nothing connects
        assert "margin_risk_stream" in built.accounts[settings.accounts[0]].parts


@pytest.mark.parametrize(("url", "ok"), [
    ("ws://127.0.0.1:8080", True), ("wss://margin-stream.binance.com/", True),
    ("https://margin-stream.binance.com", False), ("wss://u:p@host", False),
    ("wss://host/?x=1", False), ("wss://", False),
])
def test_stream_urls(tmp_path, url, ok):
    path = tmp_path / "c.yml"
    path.write_text(f"margin_stream_url: '{url}'\naccounts: [{{name: a, api_key: k, "
                    f"api_secret: s}}]\n")
    if ok:
        assert load(str(path), {}).option("margin_stream_url") == url.rstrip("/")
    else:
        with pytest.raises(ConfigError) as info:
            load(str(path), {})
        assert str(info.value).startswith("margin_stream_url: ")


def test_shutdown_ends_the_threads_and_leaves_the_keys_to_expire(simulator, started):
    """A listen key is the account's: a DELETE would cut every other program's stream on it.
    At shutdown the exporter stops keeping it alive, and sends nothing."""
    built = started()
    assert len(stream_threads()) == 2
    built.exporter.close()
    assert stream_threads() == []
    assert not [what for what in simulator.streams.counts if what.startswith("DELETE")]
    assert not [path for path in simulator.counts if path.startswith("DELETE")]
    assert len(simulator.streams.keys("margin_risk")) == 1  # Binance lets it expire
    assert len(simulator.streams.keys("portfolio")) == 1
    wait_for(lambda: not simulator.streams.connections(), timeout=5)


def test_a_reload_keeps_the_stream_and_a_removed_account_s_stops(simulator, started,
                                                                  tmp_path):
    built = started()
    stream = built.accounts[built.settings.accounts[0]].parts["margin_risk_stream"]
    prods = products()
    path = tmp_path / "config.yml"
    for _ in range(3):  # the same configuration: the same streams, no new key
        built = build_exporter(load(str(path), {}, products=prods), built, products=prods)
        warm_up(built)
    assert built.accounts[built.settings.accounts[0]].parts["margin_risk_stream"] is stream
    assert len(stream_threads()) == 2
    assert simulator.streams.counts["POST margin_risk"] == 1
    path.write_text(config(simulator, accounts="cross"))
    after = build_exporter(load(str(path), {}, products=prods), built, products=prods)
    warm_up(after)
    wait_for(lambda: len(stream_threads()) == 1, timeout=5)
    assert "DELETE portfolio" not in simulator.streams.counts  # never
    assert simulator.streams.counts["POST margin_risk"] == 1
    after.exporter.close()
    assert stream_threads() == []


def test_the_simulator_s_listen_keys_are_the_account_s(client, simulator):
    """One key per account and stream, whichever API key or program asks (Binance: "a POST on
    an account with an active listenKey will return the currently active listenKey"); a
    DELETE closes it for all of them."""
    from tests.support.exporters import master_client

    key = streams.create_key(client, streams.MARGIN_RISK)
    assert streams.create_key(client, streams.MARGIN_RISK) == key  # the active one
    simulator.add_hmac_key("bot-key-0123456789", SECRET)
    bot = master_client(simulator, "bot-key-0123456789")  # another key of the same account
    assert streams.create_key(bot, streams.MARGIN_RISK) == key
    pm = streams.create_key(client, streams.PORTFOLIO)
    assert streams.create_key(bot, streams.PORTFOLIO) == pm != key  # one per stream
    simulator.add_hmac_key("other-account-key-01", SECRET)
    simulator.streams.accounts["other-account-key-01"] = "other"
    other = master_client(simulator, "other-account-key-01")
    assert streams.create_key(other, streams.MARGIN_RISK) not in (key, pm)
    streams.keep_alive(bot, streams.MARGIN_RISK, key)
    streams.keep_alive(bot, streams.PORTFOLIO, pm)  # papi's PUT names none: the account's
    with pytest.raises(UpstreamError) as info:
        streams.keep_alive(client, streams.MARGIN_RISK, "nope")
    assert info.value.code == -1125
    # cross margin's listen key weighs on the account (UID 1, 1, 3000), not on the IP
    assert simulator.weight_of("DELETE /sapi/v1/margin/listen-key") == 0
    assert simulator.weight_of("POST /sapi/v1/margin/listen-key") == 0
    assert simulator.weight_of("PUT /papi/v1/listenKey") == 1
    streams.user_stream(bot, "DELETE", streams.MARGIN_RISK.key_path, f"listenKey={key}")
    with pytest.raises(UpstreamError) as info:  # gone for every caller
        streams.keep_alive(client, streams.MARGIN_RISK, key)
    assert info.value.code == -1125
    assert len(simulator.streams.keys("margin_risk")) == 1  # the other account's


# -- the process and the demo --------------------------------------------------------------


def test_another_program_keeps_its_streams_across_the_exporter_s_stop_and_restart(
        simulator, tmp_path):
    """A trading bot on the same account (its own API key) reads the account's streams: the
    exporter gets the same keys, a SIGHUP keeps its streams, and its SIGTERM and a restart
    leave the bot's streams and keys alone (no DELETE)."""
    import json
    import signal

    from websockets.sync.client import connect

    from tests.support.exporters import master_client
    from tests.support.processes import exporter_process

    simulator.add_hmac_key("bot-key-0123456789", SECRET)
    bot = master_client(simulator, "bot-key-0123456789")
    keys = {kind.name: streams.create_key(bot, kind)
            for kind in (streams.MARGIN_RISK, streams.PORTFOLIO)}
    url = simulator.streams.url
    with connect(f"{url}/ws/{keys['margin_risk']}") as margin, \
            connect(f"{url}/pm/ws/{keys['portfolio']}") as pm:
        simulator.streams.wait_connected(None, 2)

        def bot_hears(kind: str, event: dict) -> None:
            simulator.streams.push(event, kind)
            got = json.loads((margin if kind == "margin_risk" else pm).recv(timeout=5))
            assert got["e"] == event["e"]

        path = tmp_path / "config.yml"
        path.write_text(config(simulator))
        call = {"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": "1.2", "s": "MARGIN_CALL"}
        for run in range(2):  # a start, a stop, a restart, a stop
            with exporter_process(["--config", str(path)], {}) as exporter:
                simulator.streams.wait_connected(None, 4, timeout=15)
                # the account's keys: the bot's
                assert {k: simulator.streams.keys(k) for k in keys} == \
                    {k: [v] for k, v in keys.items()}
                wait_for(lambda: exporter.metrics().count(
                    "binance_margin_stream_up{") == 2, timeout=10)
                bot_hears("margin_risk", call)
                wait_for(lambda: 'status="MARGIN_CALL"} 1.0' in exporter.metrics(), timeout=5)
                if run == 0:
                    exporter.proc.send_signal(signal.SIGHUP)
                    wait_for(lambda: "configuration reloaded" in exporter.log, timeout=5)
                    # the same stream, counted
                    assert 'status="MARGIN_CALL"} 1.0' in exporter.metrics()
                    assert simulator.streams.counts["POST margin_risk"] == 2  # bot, exporter
                assert exporter.stop() == 0
            # the exporter's connections are gone, the bot's are not; its keys still live
            wait_for(lambda: len(simulator.streams.connections()) == 2, timeout=5)
            bot_hears("margin_risk", call)
            bot_hears("portfolio", {"e": "riskLevelChange", "u": "1.1", "s": "MARGIN_CALL",
                                    "eq": "0", "ae": "0", "m": "0"})
            streams.keep_alive(bot, streams.MARGIN_RISK, keys["margin_risk"])
            streams.keep_alive(bot, streams.PORTFOLIO, keys["portfolio"])
            for key in keys.values():
                assert key not in exporter.log  # a listen key reads the stream: never logged
    assert not [what for what in simulator.streams.counts if what.startswith("DELETE")]


def test_the_demo_streams_a_margin_call_when_its_account_crosses_the_bar():
    from binance_margin_exporter.demo import start_demo

    settings, sim = start_demo(load(None, {}, require_accounts=False))
    try:
        with built_exporter(settings) as built:
            warm_up(built)
            sim.streams.wait_connected(None, 2)
            sim.account.set_margin_level(1.25)  # under the demo's 1.3 margin-call bar
            wait_for(lambda: (value(built, "binance_margin_risk_events_total", account="demo",
                                    event="margin_level_status_change",
                                    status="MARGIN_CALL") or 0) >= 1, timeout=5)
            assert value(built, "binance_margin_risk_event_level", account="demo") == 1.25
            sim.portfolio.set_uni_mmr(1.1)  # Binance's MARGIN_CALL band of uniMMR
            wait_for(lambda: (value(built, "binance_margin_risk_events_total",
                                    account="demo-pm", event="risk_level_change",
                                    status="MARGIN_CALL") or 0) >= 1, timeout=5)
    finally:
        sim.stop()


def test_shutdown_closes_the_streams_side_by_side(simulator, tmp_path, monkeypatch):
    path = tmp_path / "config.yml"
    text = config(simulator, accounts="cross")
    line = text.splitlines()[-1]
    path.write_text(text + "".join(line.replace("name: main", f"name: a{i}") + "\n"
                                   for i in range(4)))
    prods = products()
    built = build_exporter(load(str(path), {}, products=prods), products=prods)
    warm_up(built)
    simulator.streams.wait_connected("margin_risk", 5)
    # each stop waits for all five to be under way at once: one after another, the first
    # would wait alone until the barrier gives up
    barrier, met = threading.Barrier(5, timeout=10), []
    real_stop = Stream.stop

    def stop(self) -> None:
        try:
            barrier.wait()
            met.append(self.account)
        except threading.BrokenBarrierError:
            pass
        real_stop(self)

    monkeypatch.setattr(Stream, "stop", stop)
    built.exporter.close()
    assert sorted(met) == ["a0", "a1", "a2", "a3", "main"]  # side by side
    assert stream_threads() == []


def test_the_families_render_as_documented(golden):
    """Names, HELP, types and label order of the five families: a golden exposition."""
    from binance_margin_exporter.collectors.streams import StreamCollector
    from tests.support.tools import promtool_check_metrics

    cross_stream = Stream("main", streams.MARGIN_RISK, None, "ws://unused", FAST)  # type: ignore[arg-type]
    pm_stream = Stream("pm", streams.PORTFOLIO, None, "ws://unused", FAST)  # type: ignore[arg-type]
    cross, pm = StreamPart(cross_stream, 0.0), StreamPart(pm_stream, 0.0)
    refreshed = []
    cross.refresh = lambda: refreshed.append("main")
    assert not cross_stream._handle('{"e": "MARGIN_LEVEL_STATUS_CHANGE", '
                                    '"E": 1701949763462, "l": "1.1", "s": "MARGIN_CALL"}')
    assert not cross_stream._handle('{"e": "USER_LIABILITY_CHANGE", "E": 1701949801133, '
                                    '"a": "BTC", "t": "BORROW", "p": "0.00000100", '
                                    '"i": "0.00000000"}')
    assert pm_stream._handle('{"e": "listenKeyExpired", "E": 1576653824250}')  # no count
    cross_stream._note("dropped")
    assert refreshed == ["main", "main"]  # each event refreshes the account (spacing 0)
    body = Scraper(StreamCollector([cross, pm])).render()
    golden("streams.prom", body)
    promtool_check_metrics(body)


def test_a_refresh_after_the_exporter_closed_is_said_at_debug_and_the_next_event_counts(
        caplog):
    """The account's refresh raises once the exporter's pool shut down: the event is counted
    all the same, one debug line says why nothing was fetched."""
    import logging

    stream = Stream("main", streams.MARGIN_RISK, None, "ws://unused", FAST)  # type: ignore[arg-type]
    part = StreamPart(stream, 0.0)

    def refresh() -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    part.refresh = refresh
    caplog.set_level(logging.DEBUG, "binance_margin_exporter.collectors.streams")
    for _ in range(2):
        assert not stream._handle('{"e": "USER_LIABILITY_CHANGE", "E": 1701949801133, '
                                  '"t": "BORROW"}')
    assert part.snapshot()[0][("liability_change", "BORROW")] == 2
    assert [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "binance_margin_exporter.collectors.streams"] == [
        ("DEBUG", "margin_risk stream of main: no refresh, the exporter is closing")] * 2


def test_a_stopped_part_drops_its_trailing_refresh():
    """An event within the spacing waits for its end; the part's stop cancels that wait."""
    now, asked, cancelled = [100.0], [], []

    def schedule(delay: float, call) -> object:
        asked.append(delay)
        return lambda: cancelled.append(delay)

    stream = Stream("main", streams.MARGIN_RISK, None, "ws://unused", FAST)  # type: ignore[arg-type]
    part = StreamPart(stream, 5.0, clock=lambda: now[0], schedule=schedule)
    refreshed = []
    part.refresh = lambda: refreshed.append(now[0])
    event = '{"e": "USER_LIABILITY_CHANGE", "E": 1701949801133, "t": "BORROW"}'
    stream._handle(event)
    now[0] += 2.0
    stream._handle(event)
    stream._handle(event)
    assert refreshed == [100.0] and asked == [3.0]  # one trailing refresh, 3 s on
    part.stop()
    assert cancelled == [3.0]


def test_the_trailing_refresh_comes_each_spacing_and_a_failing_one_is_said(caplog):
    """Within the spacing (even half a second before its end) an event waits for the trailing
    refresh; after that one, the next event within the spacing waits again. A trailing
    refresh that fails (in the timer's thread) is one warning, nothing raised."""
    now, calls = [100.0], []

    def schedule(delay: float, call) -> object:
        calls.append((delay, call))
        return lambda: None

    stream = Stream("main", streams.MARGIN_RISK, None, "ws://unused", FAST)  # type: ignore[arg-type]
    part = StreamPart(stream, 5.0, clock=lambda: now[0], schedule=schedule)
    refreshed = []
    part.refresh = lambda: refreshed.append(now[0])
    event = '{"e": "USER_LIABILITY_CHANGE", "E": 1701949801133, "t": "BORROW"}'
    stream._handle(event)
    now[0] += 4.5
    stream._handle(event)
    assert refreshed == [100.0] and [d for d, _ in calls] == [0.5]
    now[0] += 0.5
    calls[0][1]()  # the timer fires
    assert refreshed == [100.0, 105.0]
    now[0] += 1.0
    stream._handle(event)  # within the spacing since the trailing one: waits again
    assert [d for d, _ in calls] == [0.5, 4.0]

    def refresh() -> None:
        raise ConnectionResetError("the pool")

    part.refresh = refresh
    calls[1][1]()
    assert [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "binance_margin_exporter.collectors.streams"] == [
        ("WARNING", "margin_risk stream of main: the account's refresh failed: "
                    "ConnectionResetError")]


def test_the_trailing_refresh_waits_in_a_daemon_timer_of_its_own():
    from binance_margin_exporter.collectors.streams import later

    ran, before = threading.Event(), set(threading.enumerate())
    cancel = later(60.0, ran.set)
    (timer,) = set(threading.enumerate()) - before
    assert timer.name == "account-refresh"
    assert timer.daemon
    cancel()
    timer.join(5)
    assert not timer.is_alive() and not ran.is_set()


def test_a_refresh_during_a_fetch_fetches_once_more_after_it():
    """The fetch under way may have read the account before the event: one more follows it,
    however many events came meanwhile; with none under way, one starts at once."""
    from concurrent.futures import ThreadPoolExecutor

    from binance_margin_exporter.collectors.cache import Cached

    gate = threading.Event()
    calls: list[float] = []

    def fetch(deadline: float) -> int:
        calls.append(time.monotonic())
        gate.wait(2)
        return len(calls)

    with ThreadPoolExecutor(2) as pool:
        cached = Cached("account x", fetch, pool, ttl=60)
        flight = cached.start(time.monotonic() + 2)
        wait_for(lambda: calls, timeout=2)
        cached.refresh()
        cached.refresh()
        cached.refresh()
        gate.set()
        assert flight.future.result(2).value == 1
        wait_for(lambda: len(calls) == 2 and cached.good == 2, timeout=2)
        time.sleep(0.05)
        assert len(calls) == 2
        assert cached.get(time.monotonic() + 1).value == 2  # fresh: the cache serves it
        cached.refresh()  # none under way: at once
        wait_for(lambda: len(calls) == 3, timeout=2)


def test_portfolio_margin_s_put_extends_the_account_s_active_key_after_an_old_one_expired():
    """Binance's PM PUT names no key: it extends the account's active one. The simulator
    took the first key it ever made, expired or not, so every PUT after a key expired was
    -1125 and the stream reconnected at each keep-alive."""
    now = [0.0]
    sim = SimulatedStreams(wall=lambda: now[0])
    sim.create(PM, "k")
    now[0] += 3601  # nobody kept it alive
    active = sim.create(PM, "k")
    assert sim._papi_key({KEY_PARAM: "k"}) == active
    sim.keep_alive(PM, sim._papi_key({KEY_PARAM: "k"}))  # no -1125
    assert sim.keys(PM) == [active]  # the expired one is gone
