"""Portfolio Margin: the documented examples, empty strings, one family with the cross accounts,
and over real HTTP against the simulator (the papi host and the api host, whose clock it keeps,
each a simulator of its own)."""

from __future__ import annotations

import json
import time

import pytest

from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.portfolio import (
    PAPI_ACCOUNT_PATH,
    Portfolio,
    fetch_portfolio,
    parse_portfolio_account,
    parse_portfolio_balances,
)
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.account_fetch import AccountCollector, account_part
from binance_margin_exporter.collectors.cross import CrossCollector
from binance_margin_exporter.collectors.portfolio import PortfolioFamilies, PortfolioSource
from binance_margin_exporter.demo.simulator import Fault
from tests.support.exporters import Scraper, built_exporter, sample_values
from tests.support.fakes import FakeSource, StubClient, fake_account, recorded
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json
from tests.support.pool import EXECUTOR
from tests.support.tools import promtool_check_metrics

ACCOUNT = fixture_json("papi_account_docs_example.json")
BALANCE = fixture_json("papi_balance_docs_example.json")


def PortfolioCollector(sources):
    return AccountCollector(sources, lambda scrape: PortfolioFamilies())


def docs_source(name="pm") -> PortfolioSource:
    portfolio = Portfolio(parse_portfolio_account(ACCOUNT), parse_portfolio_balances(BALANCE))
    return PortfolioSource(name, StubClient(),
                           recorded(f"portfolio margin account {name}", portfolio))


def test_golden_documented_examples(golden):
    body = Scraper(PortfolioCollector([docs_source()])).render()
    golden("portfolio_docs_example.prom", body)
    promtool_check_metrics(body)


def test_every_value_exactly_and_empty_strings_dropped():
    values = sample_values(Scraper(PortfolioCollector([docs_source()])).text())
    acc = (("account", "pm"),)
    for field, metric in [("uniMMR", "uni_mmr"), ("accountEquity", "account_equity_usd"),
                          ("actualEquity", "actual_equity_usd"),
                          ("accountInitialMargin", "initial_margin_usd"),
                          ("accountMaintMargin", "maint_margin_usd"),
                          ("virtualMaxWithdrawAmount", "virtual_max_withdraw_usd")]:
        assert values[(f"binance_margin_portfolio_{metric}", acc)] == float(ACCOUNT[field])
    assert ("binance_margin_portfolio_available_balance_usd", acc) not in values  # ""
    usdt = (("account", "pm"), ("asset", "USDT"))
    for field, metric in [("totalWalletBalance", "wallet_balance"),
                          ("crossMarginBorrowed", "cross_margin_borrowed"),
                          ("crossMarginInterest", "cross_margin_interest"),
                          ("umUnrealizedPNL", "um_unrealized_pnl"),
                          ("negativeBalance", "negative_balance")]:
        assert values[(f"binance_margin_portfolio_asset_{metric}", usdt)] == float(
            BALANCE[0][field])
    assert ("binance_margin_portfolio_asset_cm_unrealized_pnl", usdt) not in values  # ""
    states = {dict(k[1])["status"]: v for k, v in values.items()
              if k[0] == "binance_margin_portfolio_status"}
    assert states == {"NORMAL": 1.0, "MARGIN_CALL": 0.0, "SUPPLY_MARGIN": 0.0,
                      "REDUCE_ONLY": 0.0, "ACTIVE_LIQUIDATION": 0.0, "FORCE_LIQUIDATION": 0.0,
                      "BANKRUPTED": 0.0}


def test_up_is_one_family_with_the_cross_accounts():
    text = Scraper(CrossCollector([fake_account("cross", FakeSource())]),
                   PortfolioCollector([docs_source()])).text()
    assert text.count("# TYPE binance_margin_up gauge") == 1
    assert text.count("# TYPE binance_margin_scrape_errors_total counter") == 1
    values = sample_values(text)
    assert values[("binance_margin_up", (("account", "cross"),))] == 1.0
    assert values[("binance_margin_up", (("account", "pm"),))] == 1.0


def test_over_http_on_the_papi_host_keeping_time_with_the_api_host(hosts):
    api = Upstream(hosts.api.base_url)
    papi = Upstream(hosts.papi.base_url, clock_of=api)  # its own gates, the api clock
    hosts.api.clock_skew_ms = hosts.papi.clock_skew_ms = 20_000  # Binance's time, 20 s ahead
    client = BinanceClient(papi, API_KEY, HmacSigner(SECRET), background=lambda f: f())
    portfolio = fetch_portfolio(client, time.monotonic() + 5)
    assert portfolio.account.uni_mmr == float(
        hosts.papi.portfolio.account({}).decode().split('"uniMMR": "')[1].split('"')[0])
    assert api.clock.offset_ms == papi.clock.offset_ms != 0
    assert hosts.api.counts["/api/v3/time"] == 1 and not hosts.papi.counts["/api/v3/time"]
    assert hosts.papi.counts["/papi/v1/account"] == hosts.papi.counts["/papi/v1/balance"] == 1
    assert [b.asset for b in portfolio.balances] == ["USDT", "BTC", "ETH", "BNB"]
    # each host's weight on its own gates
    assert api.gates["api"].last_used_weight == 1  # the time
    assert papi.gates["api"].last_used_weight in (20, 40)  # account and balance, 20 each


@pytest.mark.parametrize("api_host", ["busy", "banned", "waf"])
def test_a_busy_api_host_never_holds_a_portfolio_margin_account_on_its_own_host(hosts,
                                                                              api_host):
    """A spot bot on the same IP uses 5,990 of the api host's 6,000 (or got the IP banned
    there, or its firewall blocks it): the api host is held back, and the Portfolio Margin
    account on the papi host is read on every scrape all the same (the clock sync on the api
    host counts there, not on papi's gates)."""
    from binance_margin_exporter.wiring import account_config, warm_up
    from tests.support.exporters import scrape_built

    hosts.api.budget_bonus["api"] = 5989  # and the time request: 5,990
    if api_host == "banned":
        hosts.api.set_fault(Fault.rate_limited(600, status=418, paths=("/api/v3/time",)))
    elif api_host == "waf":
        hosts.api.set_fault(Fault.waf(paths=("/api/v3/time",)))
    with built_exporter(hosts.settings(account_config(
            "pm", API_KEY, SECRET, type="portfolio_margin", ledger=False))) as built:
        warm_up(built)  # the clock, synced on the api host
        for _ in range(3):
            values = scrape_built(built)
            assert values[("binance_margin_up", (("account", "pm"),))] == 1.0
    assert hosts.api.counts["/api/v3/time"] == 1
    assert hosts.papi.counts["/papi/v1/account"] == 3
    host = {name: sim.base_url.split("//")[1] for name, sim in hosts.by_setting.items()}
    weights = {(dict(k[1])["host"], dict(k[1])["budget"]): v for k, v in values.items()
               if k[0] == "binance_margin_api_ip_weight_used_1m"}
    if api_host == "busy":
        assert weights[(host["base_url"], "api")] == 5990.0
    # papi's own: account, balance, um and cm positions (20 + 20 + 5 + 1) a scrape
    assert weights[(host["papi_base_url"], "api")] <= 3 * 46
    backoff = {dict(k[1])["host"]: v for k, v in values.items()
               if k[0] == "binance_margin_ip_backoff_until_timestamp_seconds"}
    assert backoff[host["base_url"]] > 0 and backoff[host["papi_base_url"]] == 0.0


def test_a_thousands_comma_drops_only_its_metric_over_http(hosts, caplog):
    """Binance's own PM Pro example sends "totalAvailableBalance": "122,559.90199491"."""
    def comma(body: bytes) -> bytes:
        raw = json.loads(body)
        raw["totalAvailableBalance"] = "122,559.90199491"
        return json.dumps(raw).encode()

    hosts.papi.set_fault(Fault(transform=comma, paths=(PAPI_ACCOUNT_PATH,)))
    api = Upstream(hosts.api.base_url)
    client = BinanceClient(Upstream(hosts.papi.base_url, clock_of=api), API_KEY,
                           HmacSigner(SECRET))
    source = account_part("portfolio margin account pm", "pm", client,
                          lambda deadline: fetch_portfolio(client, deadline), EXECUTOR, ttl=0)
    values = sample_values(Scraper(PortfolioCollector([source])).text())
    acc = (("account", "pm"),)
    assert values[("binance_margin_up", acc)] == 1.0
    assert ("binance_margin_portfolio_available_balance_usd", acc) not in values
    assert values[("binance_margin_portfolio_uni_mmr", acc)] > 0
    assert values[("binance_margin_invalid_fields_total",
                   (*acc, ("field", "totalAvailableBalance")))] == 1.0
