"""Isolated margin: parser, collector, golden exposition, weight economy, independence."""

from __future__ import annotations

import json

import pytest

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.isolated import (
    ISOLATED_ACCOUNT_PATH,
    fetch_isolated_account,
    parse_isolated_account,
)
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.cross import CrossCollector
from binance_margin_exporter.collectors.isolated import (
    NO_PAIRS_RECHECK_SECONDS,
    IsolatedCollector,
    IsolatedSource,
    _recheck,
)
from binance_margin_exporter.demo.simulator import Fault
from tests.support.clocks import StepClock
from tests.support.exporters import Scraper, sample_values
from tests.support.fakes import (
    FakeIsolated,
    FakeSource,
    fake_account,
    isolated_source,
    prices_collector,
)
from tests.support.paths import fixture_json
from tests.support.pool import EXECUTOR
from tests.support.tools import promtool_check_metrics
from tests.support.waiting import wait_idle

DOCS = fixture_json("isolated_account_docs_example.json")


def test_golden_isolated_docs_example(golden):
    body = Scraper(IsolatedCollector([isolated_source(FakeIsolated())])).render()
    golden("isolated_docs_example.prom", body)
    promtool_check_metrics(body)


def test_every_value_matches_the_upstream_json():
    values = sample_values(Scraper(IsolatedCollector([isolated_source(FakeIsolated())]))
                           .render().decode())
    pair = DOCS["assets"][0]
    key = (("account", "main"), ("symbol", "BTCUSDT"))
    for field, metric in [("marginLevel", "level"), ("marginRatio", "leverage"),
                          ("marginRatio", "margin_ratio"),
                          ("indexPrice", "index_price"), ("liquidatePrice", "liquidation_price"),
                          ("liquidateRate", "liquidation_rate")]:
        assert values[(f"binance_margin_isolated_{metric}", key)] == float(pair[field])
    for side in ("baseAsset", "quoteAsset"):
        raw = pair[side]
        labels = (("account", "main"), ("asset", raw["asset"]), ("symbol", "BTCUSDT"))
        for field, suffix in [("free", "free"), ("locked", "locked"), ("borrowed", "borrowed"),
                              ("interest", "interest"), ("netAsset", "net"),
                              ("totalAsset", "total"), ("netAssetOfBtc", "net_btc")]:
            assert values[(f"binance_margin_isolated_asset_{suffix}", labels)] == float(
                raw[field])
    for status in ("EXCESSIVE", "NORMAL", "MARGIN_CALL", "PRE_LIQUIDATION", "FORCE_LIQUIDATION"):
        labels = (("account", "main"), ("status", status), ("symbol", "BTCUSDT"))
        assert values[("binance_margin_isolated_status", labels)] == (
            1.0 if status == "EXCESSIVE" else 0.0)
    assert values[("binance_margin_isolated_enabled", key)] == 1.0
    assert values[("binance_margin_isolated_trade_enabled", key)] == 1.0
    for field in ("totalAssetOfBtc", "totalLiabilityOfBtc", "totalNetAssetOfBtc"):
        name = {"totalAssetOfBtc": "total_asset_btc", "totalLiabilityOfBtc":
                "total_liability_btc", "totalNetAssetOfBtc": "total_net_asset_btc"}[field]
        assert values[(f"binance_margin_isolated_{name}", (("account", "main"),))] == float(
            DOCS[field])


def test_a_status_binance_adds_later_is_shown_as_spelled():
    raw = json.loads(json.dumps(DOCS))
    raw["assets"][0]["marginLevelStatus"] = "AUTO_DELEVERAGE"
    text = Scraper(IsolatedCollector([isolated_source(FakeIsolated(raw))])).render().decode()
    assert 'status="AUTO_DELEVERAGE",symbol="BTCUSDT"} 1.0' in text
    assert 'status="EXCESSIVE",symbol="BTCUSDT"} 0.0' in text


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r["assets"][0].pop("baseAsset"), "assets[0].baseAsset: expected a JSON object"),
    (lambda r: r["assets"][0]["quoteAsset"].update(free="x"),
     "assets[0].quoteAsset.free: not a decimal number"),
    (lambda r: r["assets"][0].pop("symbol"), "assets[0].symbol: missing"),
    (lambda r: r.update(assets={}), "assets: expected a list"),
])
def test_a_bad_answer_names_the_field(change, message):
    raw = json.loads(json.dumps(DOCS))
    change(raw)
    with pytest.raises(UpstreamError) as info:
        parse_isolated_account(raw)
    assert info.value.reason == "invalid_response" and message in str(info.value)


def test_optional_fields_drop_only_their_metric():
    raw = json.loads(json.dumps(DOCS))
    for key in ("marginLevel", "liquidateRate", "marginLevelStatus", "enabled"):
        del raw["assets"][0][key]
    del raw["assets"][0]["baseAsset"]["netAssetOfBtc"]
    text = Scraper(IsolatedCollector([isolated_source(FakeIsolated(raw))])).render().decode()
    for gone in ("binance_margin_isolated_level{", "binance_margin_isolated_liquidation_rate{",
                 "binance_margin_isolated_status{", "binance_margin_isolated_enabled{",
                 'binance_margin_isolated_asset_net_btc{account="main",asset="BTC"'):
        assert gone not in text
    assert "binance_margin_isolated_liquidation_price{" in text
    assert 'binance_margin_isolated_asset_net_btc{account="main",asset="USDT"' in text


def test_a_pair_listed_twice_is_shown_once():
    raw = json.loads(json.dumps(DOCS))
    raw["assets"].append(json.loads(json.dumps(raw["assets"][0])) | {"marginLevel": "5"})
    values = sample_values(Scraper(IsolatedCollector([isolated_source(FakeIsolated(raw))]))
                           .render().decode())
    key = ("binance_margin_isolated_level", (("account", "main"), ("symbol", "BTCUSDT")))
    assert values[key] == 0.0


def test_isolated_and_cross_fail_apart():
    fake = FakeIsolated()
    cross_source = FakeSource()
    cross = CrossCollector([fake_account("main", cross_source, ttl=0)])
    scraper = Scraper(cross, IsolatedCollector([isolated_source(fake, ttl=0)]))
    fake.answer = UpstreamError("http", "HTTP 500")
    values = sample_values(scraper.render().decode())
    assert values[("binance_margin_up", (("account", "main"),))] == 1.0
    assert values[("binance_margin_isolated_up", (("account", "main"),))] == 0.0
    key = ("binance_margin_isolated_scrape_errors_total", (("account", "main"),
                                                           ("reason", "http")))
    assert values[key] == 1.0
    assert ("binance_margin_scrape_errors_total", (("account", "main"), ("reason", "http"))) \
        in values and values[("binance_margin_scrape_errors_total",
                              (("account", "main"), ("reason", "http")))] == 0.0
    assert not [k for k in values if k[0] == "binance_margin_isolated_level"]
    fake.answer = parse_isolated_account(DOCS)
    cross_source.account = UpstreamError("auth", "bad key")
    values = sample_values(scraper.render().decode())
    assert values[("binance_margin_up", (("account", "main"),))] == 0.0
    assert values[("binance_margin_isolated_up", (("account", "main"),))] == 1.0


def test_an_account_without_pairs_is_asked_again_only_every_five_minutes():
    fake = FakeIsolated({"assets": [], "totalAssetOfBtc": "0", "totalLiabilityOfBtc": "0",
                         "totalNetAssetOfBtc": "0"})
    mono = StepClock(step=0.0)
    scraper = Scraper(IsolatedCollector([isolated_source(fake, ttl=10, monotonic=mono)]))
    scraper.render()
    mono.now += 60
    text = scraper.render().decode()
    assert fake.calls == 1 and 'binance_margin_isolated_up{account="main"} 1.0' in text
    mono.now += NO_PAIRS_RECHECK_SECONDS - 60
    scraper.render()
    assert fake.calls == 2
    # with pairs, the normal cache time again
    fake.answer = parse_isolated_account(DOCS)
    mono.now += NO_PAIRS_RECHECK_SECONDS
    scraper.render()
    mono.now += 11
    scraper.render()
    assert fake.calls == 4


def test_usdt_values_of_pairs_and_totals():
    raw = json.loads(json.dumps(DOCS))
    quote = raw["assets"][0]["quoteAsset"]
    quote.update(borrowed="500.00000000", interest="1.50000000", netAsset="-501.50000000")
    raw["totalNetAssetOfBtc"] = "0.25"
    raw["totalLiabilityOfBtc"] = "0.05015"
    values = sample_values(Scraper(IsolatedCollector([isolated_source(FakeIsolated(raw))]),
                                   prices_collector()).render().decode())
    usdt = (("account", "main"), ("asset", "USDT"), ("symbol", "BTCUSDT"))
    assert values[("binance_margin_isolated_asset_net_usdt", usdt)] == -501.5
    assert values[("binance_margin_isolated_asset_liability_usdt", usdt)] == 501.5
    acc = (("account", "main"),)
    assert values[("binance_margin_isolated_total_net_asset_usdt", acc)] == 0.25 * 10000
    assert values[("binance_margin_isolated_total_liability_usdt", acc)] == 0.05015 * 10000
    assert values[("binance_margin_asset_price_usdt", (("asset", "USDT"),))] == 1.0


def test_rates_of_borrowed_sides_are_isolated_rates_fetched_in_the_background():
    raw = json.loads(json.dumps(DOCS))
    raw["assets"][0]["quoteAsset"]["borrowed"] = "500.00000000"
    fake = FakeIsolated(raw, rates={"USDT": 0.00000955})
    source = isolated_source(fake, ttl=0)
    scraper = Scraper(IsolatedCollector([source]))
    first = scraper.render().decode()  # the rate is asked for now, in the background
    assert "interest_rate_hourly" not in first
    wait_idle(source.rates.cached)
    assert fake.rate_calls == [(["USDT"], True)]
    values = sample_values(scraper.render().decode())
    key = (("account", "main"), ("asset", "USDT"), ("symbol", "BTCUSDT"))
    assert values[("binance_margin_isolated_asset_interest_rate_hourly", key)] == 0.00000955


@pytest.mark.parametrize("code", [-11001, -3003])
def test_no_isolated_account_is_no_pairs_asked_every_five_minutes(simulator, client, code):
    """Binance may answer "Isolated margin account does not exist." rather than an empty list:
    that is no pairs (up 1), asked again on the no-pairs cadence, not an error every scrape."""
    simulator.isolated.no_account = True
    mono = StepClock(step=0.0)
    source = IsolatedSource("main", client, Cached(
        "isolated pairs of main", lambda deadline: fetch_isolated_account(client, deadline),
        EXECUTOR, ttl=10, ttl_of=_recheck(10), monotonic=mono))
    if code != -11001:
        simulator.set_fault(Fault.binance_error(code, "Margin account does not exist.",
                                                paths=(ISOLATED_ACCOUNT_PATH,)))
    scraper = Scraper(IsolatedCollector([source]))
    for _ in range(3):
        text = scraper.text()
        mono.now += 60
    assert 'binance_margin_isolated_up{account="main"} 1.0' in text
    assert 'reason="api_error"} 0.0' in text
    assert simulator.counts[ISOLATED_ACCOUNT_PATH] == 1
    mono.now += NO_PAIRS_RECHECK_SECONDS
    scraper.render()
    assert simulator.counts[ISOLATED_ACCOUNT_PATH] == 2


def test_another_isolated_error_is_still_an_error(simulator, client):
    simulator.set_fault(Fault.binance_error(-1102, "Mandatory parameter was not sent.",
                                            paths=(ISOLATED_ACCOUNT_PATH,)))
    source = IsolatedSource.create("main", client, EXECUTOR, ttl=10, interest_rates=False)
    text = Scraper(IsolatedCollector([source])).text()
    assert 'binance_margin_isolated_up{account="main"} 0.0' in text


def test_an_unreadable_optional_pair_field_drops_only_its_metric():
    raw = json.loads(json.dumps(DOCS))
    raw["assets"][0]["indexPrice"] = "n/a"
    raw["assets"][0]["enabled"] = "yes"
    account = parse_isolated_account(raw)
    assert account.invalid == ("indexPrice", "enabled")
    (pair,) = account.pairs
    assert pair.index_price is None and pair.enabled is None
    assert pair.margin_level == float(DOCS["assets"][0]["marginLevel"])
