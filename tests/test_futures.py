"""Futures accounts: the documented examples, assets and totals exactly over HTTP, one account
fetch for both markets, and the futures hosts' weight budgets (2,400 a minute)."""

from __future__ import annotations

import json

import pytest

from binance_margin_exporter.binance.futures import Futures, parse_futures_account
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.futures import FuturesCollector, FuturesSource
from binance_margin_exporter.demo.simulator import Fault
from binance_margin_exporter.wiring import account_config, build_exporter
from tests.conftest import API_KEY, SECRET
from tests.helpers import (
    EXECUTOR,
    Scraper,
    StepClock,
    fixture_json,
    promtool_check_metrics,
    sample_values,
    scrape_built,
    settings_for,
)

FAPI = fixture_json("fapi_account_docs_example.json")
DAPI = fixture_json("dapi_account_docs_example.json")


class Client:
    timeout = 5.0

    def auth_backoff_until(self):
        return 0.0


def docs_source(name="fut") -> FuturesSource:
    futures = Futures((parse_futures_account(FAPI, "um"), parse_futures_account(DAPI, "cm")))
    return FuturesSource(name, Client(), Cached(
        f"futures account {name}", lambda deadline: futures, EXECUTOR, ttl=10,
        monotonic=StepClock(), wall=lambda: 1_700_000_000.0))


def test_golden_documented_examples(golden):
    body = Scraper(FuturesCollector([docs_source()])).render()
    golden("futures_docs_example.prom", body)
    promtool_check_metrics(body)


def test_documented_values_exactly_zero_assets_left_out():
    values = sample_values(Scraper(FuturesCollector([docs_source()])).text())
    usdt = (("account", "fut"), ("asset", "USDT"), ("market", "um"))
    asset = FAPI["assets"][0]
    for field, metric in [("walletBalance", "wallet_balance"),
                          ("marginBalance", "margin_balance"), ("maintMargin", "maint_margin"),
                          ("unrealizedProfit", "unrealized_pnl"),
                          ("availableBalance", "available_balance")]:
        assert values[(f"binance_margin_futures_asset_{metric}", usdt)] == float(asset[field])
    acc = (("account", "fut"),)
    assert values[("binance_margin_futures_total_margin_balance", acc)] == 103.12345678
    assert values[("binance_margin_futures_total_maint_margin", acc)] == 0.0
    assert not [k for k in values if ("market", "cm") in k[1]]  # WLD: all zero
    assert values[("binance_margin_up", acc)] == 1.0


def test_assets_and_totals_of_both_markets_exactly_over_http(simulator):
    simulator.futures.set_maint_margin(1700, 0.7)
    settings = settings_for(simulator, account_config("fut", API_KEY, SECRET, type="futures",
                                                      markets=("um", "cm")))
    built = build_exporter(settings)
    try:
        values = scrape_built(built)
    finally:
        built.exporter.close()
    want = {}
    for mkt, body in (("um", simulator.futures.um({})), ("cm", simulator.futures.cm({}))):
        for entry in json.loads(body)["assets"]:
            numbers = [float(entry[f]) for f in ("walletBalance", "marginBalance",
                                                 "maintMargin", "unrealizedProfit",
                                                 "availableBalance")]
            if not any(numbers):
                continue
            labels = (("account", "fut"), ("asset", entry["asset"]), ("market", mkt))
            for metric, number in zip(("wallet_balance", "margin_balance", "maint_margin",
                                       "unrealized_pnl", "available_balance"), numbers,
                                      strict=True):
                want[(f"binance_margin_futures_asset_{metric}", labels)] = number
    got = {k: v for k, v in values.items() if k[0].startswith("binance_margin_futures_asset")}
    assert got == want and len(want) == 10  # USDT (um) and BTC (cm), five values each
    acc = (("account", "fut"),)
    um = json.loads(simulator.futures.um({}))
    assert values[("binance_margin_futures_total_margin_balance", acc)] == float(
        um["totalMarginBalance"])
    assert values[("binance_margin_futures_total_maint_margin", acc)] == 1700.0
    assert simulator.counts["/fapi/v3/account"] == simulator.counts["/dapi/v1/account"] == 1


def test_one_market_failing_makes_the_account_down(simulator):
    simulator.set_fault(Fault(status=503, body=b"busy", paths=("/dapi/v1/account",)))
    settings = settings_for(simulator, account_config("fut", API_KEY, SECRET, type="futures",
                                                      markets=("um", "cm")))
    built = build_exporter(settings)
    try:
        values = scrape_built(built)
    finally:
        built.exporter.close()
    assert values[("binance_margin_up", (("account", "fut"),))] == 0.0
    assert not [k for k in values if k[0].startswith("binance_margin_futures_")]


def test_only_the_configured_markets_are_asked(simulator):
    settings = settings_for(simulator, account_config("fut", API_KEY, SECRET, type="futures"))
    built = build_exporter(settings)
    try:
        scrape_built(built)
    finally:
        built.exporter.close()
    assert simulator.counts["/fapi/v3/account"] == 1
    assert simulator.counts["/dapi/v1/account"] == simulator.counts["/dapi/v1/positionRisk"] == 0


@pytest.mark.parametrize("path, budget, limit", [
    ("/fapi/v3/account", "fapi", 2400), ("/dapi/v1/positionRisk", "dapi", 2400),
    ("/papi/v1/account", "api", 6000), ("/api/v3/ticker/price", "api", 6000),
    ("/sapi/v1/margin/account", "sapi", 12000)])
def test_the_weight_limit_follows_the_path(path, budget, limit):
    upstream = Upstream("https://fapi.binance.com", soft_limit=9600)
    gate = upstream.gate_for(path)
    assert (gate.budget, gate.limit, gate.soft_limit) == (budget, limit, limit * 8 // 10)
    assert gate.header == ("X-SAPI-USED-IP-WEIGHT-1M" if budget == "sapi"
                           else "X-MBX-USED-WEIGHT-1M")


def test_a_futures_host_pauses_at_its_own_soft_limit():
    upstream = Upstream("https://fapi.binance.com", soft_limit=9600)
    upstream.gate_for("/fapi/v3/account").note_weight(1920, 1_700_000_000_000)
    assert upstream.gates["fapi"].backoff_until() > 0  # 80 % of 2,400
    upstream.gate_for("/papi/v1/account").note_weight(1920, 1_700_000_000_000)
    assert upstream.gates["api"].backoff_until() == 0.0  # far below 6,000


def test_the_simulator_counts_each_futures_host_on_its_own(simulator):
    """Binance's fapi and dapi hosts each count 2,400 a minute, apart from /api and /papi."""
    for _ in range(2):  # once more should the minute turn during the first try
        minute = simulator.server_ms() // 60000
        for _ in range(480):
            simulator._spend("/fapi/v3/account")  # 480 x 5 = 2,400
        over = simulator._spend("/fapi/v3/account")
        dapi = simulator._spend("/dapi/v1/account")
        papi = simulator._spend("/papi/v1/account")
        if simulator.server_ms() // 60000 == minute:
            break
    assert over[0] == 2405 and over[1] is not None  # 429
    assert dapi == (5, None) and papi == (20, None)
