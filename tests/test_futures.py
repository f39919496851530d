"""Futures accounts: the documented examples, assets and totals exactly over HTTP (each of
Binance's hosts a simulator of its own), one account fetch for both markets, and the futures
hosts' weight budgets (2,400 a minute)."""

from __future__ import annotations

import json

import pytest

from binance_margin_exporter.binance.futures import Futures, parse_futures_account
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.collectors.account_fetch import AccountCollector
from binance_margin_exporter.collectors.futures import FuturesFamilies, FuturesSource
from binance_margin_exporter.demo.simulator import Fault
from binance_margin_exporter.wiring import account_config
from tests.support.exporters import (
    Scraper,
    built_exporter,
    sample_values,
    scrape_built,
    scrape_once,
)
from tests.support.fakes import StubClient, recorded
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json
from tests.support.tools import promtool_check_metrics

FAPI = fixture_json("fapi_account_docs_example.json")
DAPI = fixture_json("dapi_account_docs_example.json")


def docs_source(name="fut") -> FuturesSource:
    futures = Futures((parse_futures_account(FAPI, "um"), parse_futures_account(DAPI, "cm")))
    return FuturesSource(name, StubClient(), recorded(f"futures account {name}", futures))


def FuturesCollector(sources):
    return AccountCollector(sources, lambda scrape: FuturesFamilies())


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


def test_assets_and_totals_of_both_markets_exactly_over_http(hosts):
    hosts.fapi.futures.set_maint_margin(1700, 0.7)
    settings = hosts.settings(account_config("fut", API_KEY, SECRET, type="futures",
                                             markets=("um", "cm"), ledger=False))
    values = scrape_once(settings)
    want = {}
    for mkt, body in (("um", hosts.fapi.futures.um({})), ("cm", hosts.dapi.futures.cm({}))):
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
    um = json.loads(hosts.fapi.futures.um({}))
    assert values[("binance_margin_futures_total_margin_balance", acc)] == float(
        um["totalMarginBalance"])
    assert values[("binance_margin_futures_total_maint_margin", acc)] == 1700.0
    # each on its own host, once; the clock kept with the api host's /api/v3/time
    assert hosts.hosts_of("/fapi/v3/account") == ["fapi_base_url"]
    assert hosts.hosts_of("/dapi/v1/account") == ["dapi_base_url"]
    assert hosts.fapi.counts["/fapi/v3/account"] == hosts.dapi.counts["/dapi/v1/account"] == 1
    assert hosts.hosts_of("/api/v3/time") in ([], ["base_url"])
    # each host's weight on its own gates (account and positions, side by side: the last
    # answer read is either's), nothing of the api host's
    weights = {(dict(k[1])["host"], dict(k[1])["budget"]): v for k, v in values.items()
               if k[0] == "binance_margin_api_ip_weight_used_1m"}
    fapi, dapi = (sim.base_url.split("//")[1] for sim in (hosts.fapi, hosts.dapi))
    assert {k for k in weights if k[0] in (fapi, dapi)} == {(fapi, "fapi"), (dapi, "dapi")}
    assert weights[(fapi, "fapi")] in (5.0, 10.0) and weights[(dapi, "dapi")] in (5.0, 6.0)


def test_one_market_failing_makes_the_account_down(hosts):
    hosts.dapi.set_fault(Fault(status=503, body=b"busy", paths=("/dapi/v1/account",)))
    settings = hosts.settings(account_config("fut", API_KEY, SECRET, type="futures",
                                             markets=("um", "cm")))
    values = scrape_once(settings)
    assert values[("binance_margin_up", (("account", "fut"),))] == 0.0
    assert not [k for k in values if k[0].startswith("binance_margin_futures_")]


def test_only_the_configured_markets_are_asked(hosts):
    settings = hosts.settings(account_config("fut", API_KEY, SECRET, type="futures"))
    scrape_once(settings)
    assert hosts.fapi.counts["/fapi/v3/account"] == 1
    assert not [path for path in hosts.dapi.counts if path.startswith("/dapi/")]


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


def test_a_busy_fapi_host_holds_only_the_fapi_host(hosts):
    """Others on the IP use 1,950 of the fapi host's 2,400 (over the 80 % soft limit): the
    um market pauses until the next minute; the dapi host and the api host go on."""
    hosts.fapi.budget_bonus["fapi"] = 1950
    settings = hosts.settings(account_config("fut", API_KEY, SECRET, type="futures",
                                             markets=("um", "cm")))

    def sent() -> tuple[int, int]:
        fapi = hosts.fapi.counts
        return fapi["/fapi/v3/account"] + fapi["/fapi/v3/positionRisk"], \
            hosts.dapi.counts["/dapi/v1/positionRisk"]

    with built_exporter(settings) as built:
        scrape_built(built)
        before = sent()
        values = scrape_built(built)
    acc = (("account", "fut"),)
    assert values[("binance_margin_up", acc)] == 0.0
    assert values[("binance_margin_scrape_errors_total", (*acc, ("reason", "throttled")))] >= 1
    # the fapi host held back the second time; the cm positions on dapi were not
    assert sent() == (before[0], before[1] + 1)
    up = {dict(k[1])["market"]: v for k, v in values.items()
          if k[0] == "binance_margin_positions_up"}
    assert up == {"um": 0.0, "cm": 1.0}
    backoff = {dict(k[1])["host"]: v for k, v in values.items()
               if k[0] == "binance_margin_ip_backoff_until_timestamp_seconds"}
    host = {name: sim.base_url.split("//")[1] for name, sim in hosts.by_setting.items()}
    assert backoff[host["fapi_base_url"]] > 0
    assert backoff[host["dapi_base_url"]] == backoff[host["base_url"]] == 0.0


def test_each_simulated_host_answers_only_its_own_paths(hosts):
    """A request sent to the wrong host fails in the tests as it would against Binance: the
    papi, fapi and dapi hosts have no /api/v3/time, the api host no /fapi."""
    import requests

    for sim, path, status in ((hosts.papi, "/api/v3/time", 404), (hosts.fapi, "/api/v3/time", 404),
                              (hosts.api, "/fapi/v3/account", 404),
                              (hosts.dapi, "/papi/v1/account", 404),
                              (hosts.api, "/api/v3/time", 200)):
        assert requests.get(sim.base_url + path, timeout=5).status_code == status, (sim, path)
