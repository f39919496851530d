"""Binance's risk lists: the parsers, the collector (once per process, in the background, on
its own cadence), the setting, and the whole path over HTTP against the simulator."""

from __future__ import annotations

import json
import textwrap
import threading
import time

import pytest

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.risk_lists import (
    DELIST_SCHEDULE_PATH,
    RESTRICTED_ASSET_PATH,
    fetch_delist_schedule,
    fetch_restricted_assets,
    parse_delist_schedule,
    parse_restricted_assets,
)
from binance_margin_exporter.collectors.risk_lists import (
    DELIST_REFRESH_SECONDS,
    DELIST_RETRY_SECONDS,
    RESTRICTED_REFRESH_SECONDS,
    RiskLists,
    RiskListsCollector,
)
from binance_margin_exporter.wiring import build_exporter, load, warm_up
from tests.support.clocks import WALL, StepClock
from tests.support.exporters import Scraper, built_exporter, sample_values, scrape_built
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json
from tests.support.pool import EXECUTOR
from tests.support.tools import promtool_check_metrics
from tests.support.waiting import wait_for, wait_idle

SCHEDULE = fixture_json("delist_schedule_docs_example.json")
RESTRICTED = fixture_json("restricted_asset_docs_example.json")


def test_docs_examples_parse_exactly():
    schedule = parse_delist_schedule(SCHEDULE)
    assert schedule.assets == {"BTC": 1686161202.0, "USDT": 1686161202.0}
    assert schedule.symbols == {"ADAUSDT": 1686161202.0, "BNBUSDT": 1686161202.0}
    restricted = parse_restricted_assets(RESTRICTED)
    assert restricted.by_restriction == {"open_long": ("ADA", "CHZ"),
                                         "max_collateral_exceeded": ("ACH", "BNB")}


def test_milliseconds_become_seconds_exactly_and_the_earliest_delisting_wins():
    schedule = parse_delist_schedule([
        {"delistTime": 1686161202123, "crossMarginAssets": ["BTC", "币安人生"]},
        {"delistTime": 1686000000000, "crossMarginAssets": ["BTC"],
         "isolatedMarginSymbols": ["BTCUSDT", "BTCUSDT"]},
        {"delistTime": 1687000000000, "isolatedMarginSymbols": ["BTCUSDT"],
         "crossMarginAssets": None},
    ])
    assert schedule.assets == {"BTC": 1686000000.0, "币安人生": 1686161202.123}
    assert schedule.symbols == {"BTCUSDT": 1686000000.0}


def test_restricted_names_are_kept_as_sent_once_each_and_a_missing_list_is_empty():
    # an empty name would be a series without its asset label: left out
    restricted = parse_restricted_assets({"openLongRestrictedAsset": ["币安人生", "ADA", "ADA",
                                                                      ""]})
    assert restricted.by_restriction == {"open_long": ("币安人生", "ADA"),
                                         "max_collateral_exceeded": ()}


@pytest.mark.parametrize(("parse", "raw", "message"), [
    (parse_delist_schedule, {}, "delist schedule: expected a list"),
    (parse_delist_schedule, ["x"], "[0]: expected a JSON object"),
    (parse_delist_schedule, [{"crossMarginAssets": ["BTC"]}], "[0].delistTime: missing"),
    (parse_delist_schedule, [{"delistTime": "soon"}], "[0].delistTime: not a decimal number"),
    (parse_delist_schedule, [{"delistTime": 1, "crossMarginAssets": "BTC"}],
     "[0].crossMarginAssets: expected a list"),
    (parse_delist_schedule, [{"delistTime": 1, "isolatedMarginSymbols": ["BTCUSDT", 7]}],
     "[0].isolatedMarginSymbols[1]: expected a string"),
    (parse_restricted_assets, [], "restricted assets: expected a JSON object"),
    (parse_restricted_assets, {"openLongRestrictedAsset": {}},
     "openLongRestrictedAsset: expected a list"),
    (parse_restricted_assets, {"maxCollateralExceededAsset": [None]},
     "maxCollateralExceededAsset[0]: expected a string"),
])
def test_a_bad_answer_is_invalid_response_naming_the_field(parse, raw, message):
    with pytest.raises(UpstreamError) as info:
        parse(raw)
    assert info.value.reason == "invalid_response"
    assert str(info.value).startswith(message)


class FakeLists:
    """Recorded answers (or errors) of both endpoints, counted; ``gate`` holds a fetch."""

    def __init__(self) -> None:
        self.schedule: object = parse_delist_schedule(SCHEDULE)
        self.restricted: object = parse_restricted_assets(RESTRICTED)
        self.calls = {"delist": 0, "restricted": 0}
        self.gate = threading.Event()
        self.gate.set()

    def _answer(self, kind, value):
        self.calls[kind] += 1
        self.gate.wait(10)
        if isinstance(value, Exception):
            raise value
        return value

    def lists(self, *, monotonic=time.monotonic, wall=lambda: WALL) -> RiskLists:
        return RiskLists(EXECUTOR, client="the first account's client",
                         fetch_delist=lambda client, deadline: self._answer(
                             "delist", self.schedule),
                         fetch_restricted=lambda client, deadline: self._answer(
                             "restricted", self.restricted),
                         monotonic=monotonic, wall=wall)


def settled(lists: RiskLists) -> RiskLists:
    wait_idle(lists.delist.cached)
    wait_idle(lists.restricted.cached)
    return lists


def test_golden_risk_lists_docs_examples(golden):
    lists = FakeLists().lists()
    scraper = Scraper(RiskListsCollector(lists))
    scraper.render()  # starts both fetches in the background
    settled(lists)
    body = scraper.render()
    golden("risk_lists_docs_example.prom", body)
    promtool_check_metrics(body)


def test_a_scrape_never_waits_for_the_lists():
    fake = FakeLists()
    fake.gate.clear()  # Binance does not answer
    lists = fake.lists()
    scraper = Scraper(RiskListsCollector(lists))
    try:
        started = time.monotonic()
        values = sample_values(scraper.text())
        assert time.monotonic() - started < 0.5
        wait_for(lambda: fake.calls == {"delist": 1, "restricted": 1})  # both under way
        assert values[("binance_margin_delist_schedule_up", ())] == 0.0
        assert values[("binance_margin_restricted_assets_up", ())] == 0.0
        assert not [k for k in values if "delist_timestamp" in k[0] or
                    k[0] == "binance_margin_asset_restricted"]
        scraper.text()
        assert fake.calls == {"delist": 1, "restricted": 1}  # the fetch under way is joined
    finally:
        fake.gate.set()
    settled(lists)
    values = sample_values(scraper.text())
    assert values[("binance_margin_delist_schedule_up", ())] == 1.0
    assert values[("binance_margin_asset_delist_timestamp_seconds", (("asset", "BTC"),))] \
        == 1686161202.0
    assert values[("binance_margin_asset_restricted", (("asset", "BNB"),
                                                       ("restriction",
                                                        "max_collateral_exceeded")))] == 1.0


def test_the_schedule_is_asked_hourly_and_the_restricted_assets_every_ten_minutes():
    fake = FakeLists()
    mono = StepClock(step=0.0)
    lists = fake.lists(monotonic=mono)
    scraper = Scraper(RiskListsCollector(lists))
    for _ in range(40):  # 20 minutes of scrapes every 30 s
        scraper.render()
        settled(lists)
        mono.now += 30
    assert fake.calls == {"delist": 1, "restricted": 2}
    mono.now = 1000.0 + RESTRICTED_REFRESH_SECONDS * 2 - 1
    scraper.render()
    settled(lists)
    assert fake.calls == {"delist": 1, "restricted": 2}
    mono.now = 1000.0 + DELIST_REFRESH_SECONDS - 1
    scraper.render()
    settled(lists)
    assert fake.calls["delist"] == 1
    mono.now = 1000.0 + DELIST_REFRESH_SECONDS
    scraper.render()
    settled(lists)
    assert fake.calls["delist"] == 2


def test_a_failed_refresh_is_counted_and_the_last_list_kept_for_three_hours_only():
    fake = FakeLists()
    mono = StepClock(start=1000.0, step=0.0)
    wall = StepClock(start=WALL, step=0.0)
    lists = fake.lists(monotonic=mono, wall=wall)
    scraper = Scraper(RiskListsCollector(lists))
    scraper.render()
    settled(lists)
    fake.schedule = UpstreamError("http", "HTTP 502")
    mono.now += DELIST_REFRESH_SECONDS
    wall.now += DELIST_REFRESH_SECONDS
    scraper.render()
    settled(lists)
    values = sample_values(scraper.text())
    assert values[("binance_margin_delist_schedule_up", ())] == 0.0
    assert values[("binance_margin_delist_schedule_scrape_errors_total",
                   (("reason", "http"),))] == 1.0
    assert ("binance_margin_asset_delist_timestamp_seconds", (("asset", "BTC"),)) in values
    assert values[("binance_margin_restricted_assets_up", ())] == 1.0  # the other list
    mono.now += DELIST_RETRY_SECONDS - 1  # no retry before its time
    scraper.render()
    assert fake.calls["delist"] == 2
    wall.now = WALL + 3 * DELIST_REFRESH_SECONDS + 1
    values = sample_values(scraper.text())
    assert not [k for k in values if "delist_timestamp" in k[0]]
    assert values[("binance_margin_delist_schedule_up", ())] == 0.0


def write(tmp_path, text: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def config(simulator, extra: str = "") -> str:
    return textwrap.dedent(f"""
        base_url: {simulator.base_url}
        usdt_values: false
        interest_rates: false
        accounts:
          - {{name: a, api_key: {API_KEY}, api_secret: {SECRET}, isolated: false}}
          - {{name: b, api_key: {API_KEY}, api_secret: {SECRET}, isolated: false}}
    """) + extra


def test_over_http_once_for_all_accounts_and_off_the_scrape(simulator, tmp_path):
    with built_exporter(load(write(tmp_path, config(simulator)), {})) as built:
        warm_up(built)
        lists = built.kept["risk_lists"]["lists"]
        settled(lists)
        values = scrape_built(built)
        scrape_built(built)
        assert simulator.counts[DELIST_SCHEDULE_PATH] == 1  # two accounts, two scrapes
        assert simulator.counts[RESTRICTED_ASSET_PATH] == 1
        held = simulator.routes[DELIST_SCHEDULE_PATH].answer({})
        dot = json.loads(held)[0]["delistTime"] / 1000
        assert values[("binance_margin_asset_delist_timestamp_seconds",
                       (("asset", "DOT"),))] == dot
        assert values[("binance_margin_isolated_delist_timestamp_seconds",
                       (("symbol", "BNBUSDT"),))] == dot
        assert values[("binance_margin_asset_restricted",
                       (("asset", "币安人生"), ("restriction", "open_long")))] == 1.0
        assert values[("binance_margin_delist_schedule_up", ())] == 1.0
        assert values[("binance_margin_restricted_assets_up", ())] == 1.0
        # a reload keeps the lists and their answers, whichever account asks now
        again = build_exporter(load(write(tmp_path, config(simulator).replace(
            f"name: a, api_key: {API_KEY}", "name: c, api_key: other")), {}), built)
        assert again.kept["risk_lists"]["lists"] is lists
        assert lists.client is not built.accounts[built.settings.accounts[0]].client
        scrape_built(again)
        assert simulator.counts[DELIST_SCHEDULE_PATH] == 1


def test_the_simulator_serves_them_as_binance_does(client, simulator):
    # the schedule is USER_DATA (signed); the restricted assets MARKET_DATA (a key is enough,
    # a signed request is accepted too)
    assert fetch_delist_schedule(client).assets["DOT"] > time.time() + 4 * 86400
    assert fetch_restricted_assets(client).by_restriction["open_long"][0] == "ADA"
    assert simulator.signatures  # asked signed
    key = {"X-MBX-APIKEY": API_KEY}
    assert client.get(RESTRICTED_ASSET_PATH, key)["maxCollateralExceededAsset"] == ["ACH", "BNB"]
    with pytest.raises(UpstreamError) as info:
        client.get(RESTRICTED_ASSET_PATH)
    assert info.value.code == -2014
    with pytest.raises(UpstreamError) as info:
        client.get(DELIST_SCHEDULE_PATH, key)
    assert info.value.code == -1102
    assert simulator.weight_of(DELIST_SCHEDULE_PATH) == 100
    assert simulator.weight_of(RESTRICTED_ASSET_PATH) == 1


def test_the_setting_turns_it_off(simulator, tmp_path):
    text = config(simulator, "risk_lists: false\n")
    with built_exporter(load(write(tmp_path, text), {})) as built:
        warm_up(built)
        assert not [parts for parts in built.accounts.values() if "risk_lists" in parts.parts]
        values = scrape_built(built)
        assert not [k for k in values if "delist" in k[0] or "restricted" in k[0]]
        assert simulator.counts[DELIST_SCHEDULE_PATH] == 0
        assert simulator.counts[RESTRICTED_ASSET_PATH] == 0
