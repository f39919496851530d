"""Portfolio Margin Pro: Binance's own example (thousands comma included), the Portfolio Margin
families shared with the papi accounts, SPAN's v2 path, its futures positions on the fapi host,
over real HTTP against the simulator (each of Binance's hosts a simulator of its own)."""

from __future__ import annotations

from binance_margin_exporter.binance.portfolio_pro import (
    PRO_ACCOUNT_PATH,
    SPAN_ACCOUNT_PATH,
    parse_portfolio_pro,
)
from binance_margin_exporter.collectors.account_fetch import AccountCollector
from binance_margin_exporter.collectors.portfolio_pro import (
    PortfolioProFamilies,
    PortfolioProSource,
)
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

ACCOUNT = fixture_json("sapi_portfolio_account_docs_example.json")
ACC = (("account", "pro"),)


def PortfolioProCollector(sources):
    return AccountCollector(sources, lambda scrape: PortfolioProFamilies())


def docs_source(name="pro") -> PortfolioProSource:
    answer = parse_portfolio_pro(ACCOUNT)
    source = PortfolioProSource(name, StubClient(),
                                recorded(f"portfolio margin pro account {name}", answer))
    source.invalid.note(answer.invalid)
    return source


def test_golden_documented_example(golden):
    body = Scraper(PortfolioProCollector([docs_source()])).render()
    golden("portfolio_pro_docs_example.prom", body)
    promtool_check_metrics(body)


def test_documented_values_exactly_the_comma_drops_only_its_metric():
    values = sample_values(Scraper(PortfolioProCollector([docs_source()])).text())
    for field, metric in [("uniMMR", "uni_mmr"), ("accountEquity", "account_equity_usd"),
                          ("actualEquity", "actual_equity_usd"),
                          ("accountInitialMargin", "initial_margin_usd"),
                          ("accountMaintMargin", "maint_margin_usd")]:
        assert values[(f"binance_margin_portfolio_{metric}", ACC)] == float(ACCOUNT[field])
    assert ("binance_margin_portfolio_available_balance_usd", ACC) not in values
    assert values[("binance_margin_invalid_fields_total",
                   (*ACC, ("field", "totalAvailableBalance")))] == 1.0
    assert values[("binance_margin_portfolio_info", (*ACC, ("account_type", "PM_1")))] == 1.0
    assert values[("binance_margin_portfolio_status", (*ACC, ("status", "NORMAL")))] == 1.0
    assert values[("binance_margin_up", ACC)] == 1.0


def test_pm_pro_over_http_v1_and_its_futures_positions_on_fapi(hosts):
    settings = hosts.settings(account_config("pro", API_KEY, SECRET,
                                             type="portfolio_margin_pro"))
    values = scrape_once(settings)
    assert values[("binance_margin_portfolio_uni_mmr", ACC)] == 5167.92171923
    assert values[("binance_margin_portfolio_info", (*ACC, ("account_type", "PM_1")))] == 1.0
    assert hosts.api.counts[PRO_ACCOUNT_PATH] == 1 and hosts.api.counts[SPAN_ACCOUNT_PATH] == 0
    assert values[("binance_margin_position_amount", (*ACC, ("market", "um"), ("side", "BOTH"),
                                                       ("symbol", "ADAUSDT")))] == 30.0
    assert hosts.fapi.counts["/fapi/v3/positionRisk"] == 1
    assert hosts.hosts_of("/fapi/v3/positionRisk") == ["fapi_base_url"]
    assert hosts.fapi.counts["/fapi/v3/account"] == 0  # not a futures account's families


def test_a_span_account_reads_v2_and_keeps_to_it(hosts):
    simulator = hosts.api
    simulator.portfolio_pro.account_type = "PM_3"
    settings = hosts.settings(account_config("pro", API_KEY, SECRET,
                                             type="portfolio_margin_pro"))
    with built_exporter(settings) as built:
        values = scrape_built(built)
        assert (simulator.counts[PRO_ACCOUNT_PATH], simulator.counts[SPAN_ACCOUNT_PATH]) == (1, 1)
        scrape_built(built)
        assert (simulator.counts[PRO_ACCOUNT_PATH], simulator.counts[SPAN_ACCOUNT_PATH]) == (1, 2)
    assert values[("binance_margin_portfolio_info", (*ACC, ("account_type", "PM_3")))] == 1.0


def test_a_span_answer_without_account_type_keeps_to_v2(hosts):
    """v1 said PM_3; should v2 leave accountType out, the account is still read on v2."""
    import json

    from binance_margin_exporter.demo.simulator import Fault

    def drop_type(body: bytes) -> bytes:
        raw = json.loads(body)
        del raw["accountType"]
        return json.dumps(raw).encode()

    simulator = hosts.api
    simulator.portfolio_pro.account_type = "PM_3"
    simulator.set_fault(Fault(transform=drop_type, paths=(SPAN_ACCOUNT_PATH,)))
    settings = hosts.settings(account_config("pro", API_KEY, SECRET,
                                             type="portfolio_margin_pro"))
    with built_exporter(settings) as built:
        scrape_built(built)
        values = scrape_built(built)
    assert (simulator.counts[PRO_ACCOUNT_PATH], simulator.counts[SPAN_ACCOUNT_PATH]) == (1, 2)
    assert values[("binance_margin_portfolio_uni_mmr", ACC)] == 5167.92171923
    assert not [k for k in values if k[0] == "binance_margin_portfolio_info"]
