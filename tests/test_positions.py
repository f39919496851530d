"""Positions of every market: the documented examples, the zero and duplicate rules, lenient
optional fields, and over real HTTP against the simulator (a Portfolio Margin account's UM and
CM positions on the papi host, a futures account's on the fapi and dapi hosts: each host a
simulator of its own)."""

from __future__ import annotations

import json

import pytest

from binance_margin_exporter.binance.positions import parse_positions
from binance_margin_exporter.collectors.positions import (
    MarketPositions,
    PositionsCollector,
    PositionsSource,
)
from binance_margin_exporter.demo.simulator import Fault
from binance_margin_exporter.wiring import account_config
from tests.support.exporters import Scraper, sample_values, scrape_once
from tests.support.fakes import StubClient, recorded
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json
from tests.support.tools import promtool_check_metrics

PAPI_UM = fixture_json("papi_um_position_risk_docs_example.json")
FAPI = fixture_json("fapi_position_risk_docs_example.json")
DAPI = fixture_json("dapi_position_risk_docs_example.json")


def market(account: str, name: str, raw) -> MarketPositions:
    positions = parse_positions(raw, name)
    return MarketPositions(account, name, StubClient(),
                           recorded(f"{name} positions of {account}", positions))


def docs_collector() -> PositionsCollector:
    return PositionsCollector([
        PositionsSource("pm", (market("pm", "um", PAPI_UM),)),
        PositionsSource("fut", (market("fut", "um", FAPI), market("fut", "cm", DAPI))),
    ])


def key(account: str, mkt: str, symbol: str, side: str) -> tuple:
    return (("account", account), ("market", mkt), ("side", side), ("symbol", symbol))


def test_golden_documented_examples(golden):
    body = Scraper(docs_collector()).render()
    golden("positions_docs_example.prom", body)
    promtool_check_metrics(body)


def test_every_documented_value_exactly():
    values = sample_values(Scraper(docs_collector()).text())
    ada = key("fut", "um", "ADAUSDT", "BOTH")
    fapi = FAPI[0]
    for field, metric in [("positionAmt", "amount"), ("entryPrice", "entry_price"),
                          ("markPrice", "mark_price"), ("liquidationPrice", "liquidation_price"),
                          ("unRealizedProfit", "unrealized_pnl"), ("notional", "notional"),
                          ("maintMargin", "maint_margin")]:
        assert values[(f"binance_margin_position_{metric}", ada)] == float(fapi[field])
    assert values[("binance_margin_position_liquidation_price", ada)] == 0.0  # kept, as sent
    assert ("binance_margin_position_leverage", ada) not in values  # fapi v3 sends none
    btc = key("fut", "cm", "BTCUSD_201225", "LONG")
    dapi = DAPI[0]
    for field, metric in [("positionAmt", "amount"), ("entryPrice", "entry_price"),
                          ("markPrice", "mark_price"), ("liquidationPrice", "liquidation_price"),
                          ("unRealizedProfit", "unrealized_pnl"), ("leverage", "leverage")]:
        assert values[(f"binance_margin_position_{metric}", btc)] == float(dapi[field])
    assert ("binance_margin_position_maint_margin", btc) not in values
    # the documented PM entry has positionAmt "0.000": no position, but the market is up
    assert not [k for k in values if k[0] == "binance_margin_position_amount"
                and ("account", "pm") in k[1]]
    assert values[("binance_margin_positions_up", (("account", "pm"), ("market", "um")))] == 1


def test_zero_amounts_left_out_hedge_sides_apart_duplicates_once():
    entries = [
        {"symbol": "ETHUSDT", "positionSide": "LONG", "positionAmt": "2", "markPrice": "1"},
        {"symbol": "ETHUSDT", "positionSide": "SHORT", "positionAmt": "-1", "markPrice": "2"},
        {"symbol": "ETHUSDT", "positionSide": "LONG", "positionAmt": "5", "markPrice": "3"},
        {"symbol": "XRPUSDT", "positionSide": "BOTH", "positionAmt": "-0.000"},
        {"symbol": "BTCUSD_PERP", "positionSide": "BOTH", "positionAmt": "3",
         "notionalValue": "0.005"},
    ]
    positions = parse_positions(entries, "cm").positions
    assert [(p.symbol, p.side, p.amount) for p in positions] == [
        ("ETHUSDT", "LONG", 2.0), ("ETHUSDT", "SHORT", -1.0), ("BTCUSD_PERP", "BOTH", 3.0)]
    assert positions[2].notional == 0.005  # cm's notionalValue


def test_a_bad_optional_field_drops_only_its_metric():
    raw = [{**FAPI[0], "markPrice": "0,41"}]
    parsed = parse_positions(raw, "um")
    assert parsed.invalid == ("markPrice",)
    assert parsed.positions[0].mark_price is None
    assert parsed.positions[0].amount == 30.0


def expected(body: bytes, account: str, mkt: str) -> dict:
    """The simulator's answer, as the samples it must become: non-zero amounts only."""
    out = {}
    for entry in json.loads(body):
        if float(entry["positionAmt"]) == 0:
            continue
        k = key(account, mkt, entry["symbol"], entry["positionSide"])
        out[("binance_margin_position_amount", k)] = float(entry["positionAmt"])
        out[("binance_margin_position_mark_price", k)] = float(entry["markPrice"])
        out[("binance_margin_position_liquidation_price", k)] = float(
            entry["liquidationPrice"])
        out[("binance_margin_position_unrealized_pnl", k)] = float(entry["unRealizedProfit"])
        if "notional" in entry or "notionalValue" in entry:  # dapi documents neither
            out[("binance_margin_position_notional", k)] = float(
                entry.get("notional", entry.get("notionalValue")))
    return out


def positions_of(values: dict) -> dict:
    return {k: v for k, v in values.items() if k[0] in (
        "binance_margin_position_amount", "binance_margin_position_mark_price",
        "binance_margin_position_liquidation_price", "binance_margin_position_unrealized_pnl",
        "binance_margin_position_notional")}


def test_portfolio_margin_and_futures_positions_exactly_over_http(hosts):
    hosts.papi.positions.set_distance(0.04)
    settings = hosts.settings(
        account_config("pm", API_KEY, SECRET, type="portfolio_margin"),
        account_config("fut", API_KEY, SECRET, type="futures", markets=("um", "cm")))
    values = scrape_once(settings)
    papi, sim = hosts.papi.positions, hosts.dapi.positions
    want = {**expected(papi.papi_um({}), "pm", "um"), **expected(papi.papi_cm({}), "pm", "cm"),
            **expected(hosts.fapi.positions.fapi({}), "fut", "um"),
            **expected(sim.dapi({}), "fut", "cm")}
    assert positions_of(values) == want
    assert len({k[1] for k in want}) == 6  # PM: UM long, hedge short, CM; futures: 2 UM, 1 CM
    # COIN-M notional: papi's notionalValue as sent; dapi documents none, none is made up
    assert "notionalValue" not in sim.dapi({}).decode()
    assert not [k for k in values if k[0] == "binance_margin_position_notional"
                and ("account", "fut") in k[1] and ("market", "cm") in k[1]]
    pm_cm = key("pm", "cm", "BTCUSD_PERP", "BOTH")
    assert values[("binance_margin_position_notional", pm_cm)] == \
        pytest.approx(10 * 100 / 60500)  # 10 contracts of 100 USD at 60,500
    btc = key("pm", "um", "BTCUSDT", "BOTH")
    assert values[("binance_margin_position_mark_price", btc)] == 52000 * 1.04
    assert values[("binance_margin_position_leverage", btc)] == 10.0  # papi sends it
    assert values[("binance_margin_position_maint_margin",
                   key("fut", "um", "BNBUSDT", "BOTH"))] == 4.8  # fapi v3 sends it
    for path, host in (("/papi/v1/um/positionRisk", "papi_base_url"),
                       ("/papi/v1/cm/positionRisk", "papi_base_url"),
                       ("/fapi/v3/positionRisk", "fapi_base_url"),
                       ("/dapi/v1/positionRisk", "dapi_base_url")):
        assert hosts.hosts_of(path) == [host], path
        assert hosts.by_setting[host].counts[path] == 1, path
    weights = {dict(k[1])["budget"]: v for k, v in values.items()
               if k[0] == "binance_margin_api_ip_weight_used_1m"}
    assert weights["fapi"] >= 5 and weights["dapi"] >= 1  # each host's own budget


def test_a_failing_market_is_down_alone(hosts):
    hosts.dapi.set_fault(Fault.binance_error(-1000, "An unknown error occured.",
                                             paths=("/dapi/v1/positionRisk",)))
    settings = hosts.settings(account_config("fut", API_KEY, SECRET, type="futures",
                                             markets=("um", "cm")))
    values = scrape_once(settings)
    up = {dict(k[1])["market"]: v for k, v in values.items()
          if k[0] == "binance_margin_positions_up"}
    assert up == {"um": 1.0, "cm": 0.0}
    assert values[("binance_margin_positions_scrape_errors_total",
                   (("account", "fut"), ("market", "cm"), ("reason", "api_error")))] == 1.0
    assert values[("binance_margin_up", (("account", "fut"),))] == 1.0  # the account's own
    assert not [k for k in values if k[0] == "binance_margin_position_amount"
                and ("market", "cm") in k[1]]


def test_unsigned_requests_are_refused_by_the_simulator(hosts):
    """The new routes are signed routes: a wrong secret is refused, and nothing is shown."""
    settings = hosts.settings(account_config("fut", API_KEY, "wrong-secret", type="futures"))
    values = scrape_once(settings)
    assert values[("binance_margin_positions_up", (("account", "fut"), ("market", "um")))] == 0
    assert values[("binance_margin_positions_scrape_errors_total",
                   (("account", "fut"), ("market", "um"), ("reason", "auth")))] == 1.0
    # the key's back-off on the futures hosts is the account's back-off
    assert values[("binance_margin_up", (("account", "fut"),))] == 0.0
    assert values[("binance_margin_backoff_until_timestamp_seconds",
                   (("account", "fut"),))] > 0


def test_over_max_positions_the_largest_notional_are_shown_and_the_rest_counted(caplog):
    """85,000 positions made a 56 MB page scraped in 16 s against a 10 s timeout."""
    raw = [{"symbol": f"S{i:05d}USDT", "positionSide": "BOTH", "positionAmt": "1",
            "entryPrice": "1", "markPrice": "1", "unRealizedProfit": "0",
            "liquidationPrice": "0", "leverage": "10", "notional": str(i if i % 2 else -i),
            "updateTime": 1} for i in range(1, 11)]
    collector = PositionsCollector([PositionsSource("pm", (market("pm", "um", raw),))],
                                   max_positions=4)
    for _ in range(3):
        values = sample_values(Scraper(collector).text())
    shown = sorted(dict(k[1])["symbol"] for k in values
                   if k[0] == "binance_margin_position_amount")
    assert shown == ["S00007USDT", "S00008USDT", "S00009USDT", "S00010USDT"]  # |notional|
    assert values[("binance_margin_positions_left_out",
                   (("account", "pm"), ("market", "um")))] == 6
    assert [m for m in caplog.messages if "max_positions" in m] == [
        "pm has 10 um positions: the 4 of the largest notional are shown (max_positions), "
        "6 left out"]


def test_within_max_positions_no_left_out_series():
    values = sample_values(Scraper(docs_collector()).text())
    assert not [k for k in values if k[0] == "binance_margin_positions_left_out"]

