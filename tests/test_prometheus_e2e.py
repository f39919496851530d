"""End to end with a real Prometheus: it scrapes the exporter (against the simulator) every
second and loads the project's rule file. Every dashboard expression must run and return data,
and a margin level pushed under the margin-call bar must raise the alert."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.products import SIMULATED
from tests.support import tools
from tests.support.keys import API_KEY, SECRET
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.processes import ExporterProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
RULES = ROOT / "deploy" / "prometheus" / "rules" / "binance-margin.rules.yml"


class Stack:
    def __init__(self, sim: Simulator, exporter: ExporterProcess, prometheus_url: str) -> None:
        self.sim = sim
        self.exporter = exporter
        self.url = prometheus_url

    def query(self, expr: str) -> list[dict]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        return body["data"]["result"]

    def alerts(self) -> list[dict]:
        return requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    prometheus = tools.prometheus()
    sim = Simulator(SIMULATED, account=SimulatedAccount(300, 12, drift=False))
    sim.add_hmac_key(API_KEY, SECRET)
    sim.start()
    workdir = Path(tempfile.mkdtemp(prefix="prom-e2e-"))
    config = workdir / "exporter.yml"
    # every kind of account: a master with its isolated pairs and sub-accounts, a Portfolio
    # Margin account, a futures account on both markets and a PM Pro account, all on the
    # simulator
    config.write_text(
        f"cache_ttl_seconds: 0.5\nledger_interval_seconds: 10\n"
        f"base_url: {sim.base_url}\npapi_base_url: {sim.base_url}\n"
        f"fapi_base_url: {sim.base_url}\ndapi_base_url: {sim.base_url}\n"
        f"margin_stream_url: {sim.streams.url}\npapi_stream_url: {sim.streams.url}/pm\n"
        f"loans_interval_seconds: 30\n"
        f"accounts:\n"
        f"  - {{name: default, api_key: {API_KEY}, api_secret: {SECRET}, sub_accounts: all, "
        f"loans: [flexible, vip], vip_loan_ltv_bars: {{margin_call: 0.75, liquidation: 0.85}}}}\n"
        f"  - {{name: pm, api_key: {API_KEY}, api_secret: {SECRET}, "
        f"type: portfolio_margin}}\n"
        f"  - {{name: fut, api_key: {API_KEY}, api_secret: {SECRET}, "
        f"type: futures, markets: [um, cm]}}\n"
        f"  - {{name: pro, api_key: {API_KEY}, api_secret: {SECRET}, "
        f"type: portfolio_margin_pro}}\n")
    exporter = ExporterProcess(["--config", str(config)], {})
    port = free_port()
    (workdir / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                   "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "binance-margin", "static_configs": [
            {"targets": [f"127.0.0.1:{exporter.port}"]}]}],
    }))
    log = open(workdir / "prometheus.log", "w")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={workdir / 'prometheus.yml'}",
         f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, (workdir / "prometheus.log").read_text()[-3000:]
            try:
                return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout=60, interval=0.2)
        result = Stack(sim, exporter, url)
        wait_for(lambda: result.query('binance_margin_up{account="default"} == 1'), timeout=60,
                 interval=0.2)
        # the risk streams' panels need an event each; none that alerts (a level event of a
        # healthy account, a borrow)
        sim.streams.wait_connected(None, 2, timeout=30)
        sim.streams.push({"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": "2.5", "s": "NORMAL"},
                         "margin_risk")
        sim.streams.push({"e": "liabilityChange", "a": "USDT", "t": "BORROW", "p": "1",
                          "i": "0", "l": "1"}, "portfolio")
        # the ledger's panels need records after the exporter's start: interest, and funding
        # paid and received (no liquidation: it would alert), counted at its next read
        sim.ledger.add_interest("USDT", "0.02865000")
        sim.ledger.add_income("um", "FUNDING_FEE", "-0.41250000", "USDT")
        sim.ledger.add_income("um", "FUNDING_FEE", "0.10000000", "USDT")
        wait_for(lambda: len(result.query(
            'increase(binance_margin_futures_income_total{type="funding_fee"}[1m])')) == 2 and
            result.query("increase(binance_margin_interest_paid_total[1m])"), timeout=60,
            interval=0.5)  # two samples each: what increase() needs
        yield result
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        exporter.stop()
        sim.stop()


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((ROOT / "grafana").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def substitute(expr: str) -> str:
    """Grafana's variables as Grafana would expand them with "All" selected."""
    return (expr.replace("$__rate_interval", "1m").replace('"$account"', '".*"')
            .replace('"$asset"', '".*"'))


def test_every_dashboard_expression_runs_and_returns_data(stack):
    queries = dashboard_queries()
    assert len(queries) > 30
    # rate() and increase() need two scrapes, the rates a background fetch and the recording
    # rules an evaluation after that; poll instead of sleeping
    wait_for(lambda: stack.query("rate(binance_margin_scrape_errors_total[1m])"), timeout=30,
             interval=0.2)
    wait_for(lambda: stack.query("binance_margin:interest_projected_daily_usdt"), timeout=30,
             interval=0.2)
    empty = []
    for dashboard, title, expr in queries:
        assert "$" not in substitute(expr), f"unsubstituted variable in {title}: {expr}"
        if not stack.query(substitute(expr)):
            empty.append(f"{dashboard}: {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_variable_queries_return_values(stack):
    for path in sorted((ROOT / "grafana").glob("*.json")):
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
            selector, label = substitute(match.group(1)), match.group(2)
            response = requests.get(f"{stack.url}/api/v1/label/{label}/values",
                                    params={"match[]": selector}, timeout=10).json()
            assert response["data"], variable["name"]


def test_rules_are_loaded_and_healthy(stack):
    groups = requests.get(f"{stack.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 15

    def evaluated() -> bool:
        current = requests.get(f"{stack.url}/api/v1/rules", timeout=10).json()["data"]
        states = [r.get("health") for g in current["groups"] for r in g["rules"]]
        return all(s == "ok" for s in states)

    wait_for(evaluated, timeout=30, interval=0.2)
    assert stack.query('binance_margin:margin_call_bar{account="default"}')[0]["value"][1] == \
        "1.3"


def test_margin_level_under_the_margin_call_bar_raises_the_alert(stack):
    def margin_alerts() -> list[dict]:
        return [a for a in stack.alerts() if a["labels"]["alertname"].startswith(
            ("BinanceMarginCall", "BinanceMarginNearLiquidation", "BinanceMarginLevelLow"))]

    assert not margin_alerts(), "a healthy account must not alert"
    stack.sim.account.set_margin_level(1.2)
    try:
        alert = wait_for(lambda: [a for a in margin_alerts()
                                  if a["labels"]["alertname"] == "BinanceMarginCall"],
                         timeout=60, interval=0.2)[0]
        assert alert["state"] in {"pending", "firing"}
        assert alert["labels"]["account"] == "default"
        assert alert["labels"]["severity"] == "critical"
        assert "1.200" in alert["annotations"]["description"]
        names = {a["labels"]["alertname"] for a in margin_alerts()}
        assert "BinanceMarginLevelLow" not in names
    finally:
        stack.sim.account.set_margin_level(None)


def test_isolated_pair_near_liquidation_raises_the_isolated_alerts(stack):
    def isolated_alerts() -> dict[str, dict]:
        return {a["labels"]["alertname"]: a for a in stack.alerts()
                if a["labels"]["alertname"].startswith("BinanceMarginIsolated")}

    assert not isolated_alerts(), "healthy pairs must not alert"
    stack.sim.isolated.set_level("ETHUSDT", 1.4)  # Binance says MARGIN_CALL
    try:
        alert = wait_for(lambda: isolated_alerts().get("BinanceMarginIsolatedMarginCall"),
                         timeout=60, interval=0.2)
        assert alert["labels"]["symbol"] == "ETHUSDT" and alert["labels"]["account"] == "default"
        assert alert["labels"]["severity"] == "critical" and alert["state"] == "firing"
        # 1.14: force liquidation status, and the index 3.5 % from the liquidation price
        stack.sim.isolated.set_level("ETHUSDT", 1.14)
        alerts = wait_for(lambda: (lambda a: a if {"BinanceMarginIsolatedPreLiquidation",
                                                   "BinanceMarginIsolatedNearLiquidation"} <= set(a)
                                   else None)(isolated_alerts()), timeout=60, interval=0.2)
        near = alerts["BinanceMarginIsolatedNearLiquidation"]
        assert near["labels"]["symbol"] == "ETHUSDT"
        assert "3.509%" in near["annotations"]["description"]  # 1 - 1.1 / 1.14
        assert alerts["BinanceMarginIsolatedPreLiquidation"]["labels"]["status"] == \
            "FORCE_LIQUIDATION"
    finally:
        stack.sim.isolated.set_level("ETHUSDT", None)


def test_portfolio_margin_status_raises_its_alert(stack):
    def pm_alerts() -> dict[str, dict]:
        return {a["labels"]["alertname"]: a for a in stack.alerts()
                if a["labels"]["alertname"].startswith("BinanceMarginPortfolio")}

    assert not pm_alerts(), "a healthy Portfolio Margin account must not alert"
    stack.sim.portfolio.set_uni_mmr(1.15)  # Binance: MARGIN_CALL, reduce-only orders
    try:
        alerts = wait_for(lambda: (lambda a: a if {"BinanceMarginPortfolioMarginCall",
                                                   "BinanceMarginPortfolioStatus"} <= set(a)
                                   else None)(pm_alerts()), timeout=60, interval=0.2)
        call = alerts["BinanceMarginPortfolioMarginCall"]
        assert call["labels"]["account"] == "pm" and "1.150" in call["annotations"][
            "description"]
        assert alerts["BinanceMarginPortfolioStatus"]["labels"]["status"] == "MARGIN_CALL"
    finally:
        stack.sim.portfolio.set_uni_mmr(None)


def test_a_loans_live_ltv_over_its_margin_call_bar_raises_the_loan_alert(stack):
    def loan_alerts() -> list[dict]:
        return [a for a in stack.alerts()
                if a["labels"]["alertname"].startswith("BinanceMarginLoan")]

    assert not loan_alerts(), "healthy loans must not alert"
    account = stack.sim.account
    before = list(account.assets)
    # BNB falls 26 %: the flexible loan's LTV of 0.57 rises to 0.77, over BNB's margin-call
    # LTV (0.75), under 95 % of its liquidation LTV (0.83)
    account.assets[:] = [(n, p * Decimal("0.74") if n == "BNB" else p, f, lk)
                         for n, p, f, lk in before]
    try:
        alert = wait_for(lambda: [a for a in loan_alerts()
                                  if a["labels"]["alertname"] == "BinanceMarginLoanMarginCall"],
                         timeout=60, interval=0.2)[0]
        assert alert["state"] in {"pending", "firing"}
        assert (alert["labels"]["account"], alert["labels"]["loan"],
                alert["labels"]["collateral_asset"]) == ("default", "flexible", "BNB")
        assert "77.03%" in alert["annotations"]["description"]  # 0.57 / 0.74
        assert not [a for a in loan_alerts()
                    if a["labels"]["alertname"] == "BinanceMarginLoanNearLiquidation"]
    finally:
        account.assets[:] = before


def test_the_demo_delisting_of_a_held_asset_and_pair_raises_its_alert(stack):
    # the simulator delists DOT and the isolated pair BNBUSDT, both held, ~5 days ahead: the
    # alert is pending at once (it fires after its 10 minutes); XDEL, 45 days ahead, is not
    def delisting() -> set[tuple[str, str, str]]:
        return {(a["labels"]["account"], a["labels"].get("asset", ""),
                 a["labels"].get("symbol", "")) for a in stack.alerts()
                if a["labels"]["alertname"] == "BinanceMarginAssetDelisting"}

    alerts = wait_for(lambda: (lambda d: d if len(d) >= 2 else None)(delisting()),
                      timeout=60, interval=0.2)
    assert {("default", "DOT", ""), ("default", "", "BNBUSDT")} <= alerts
    assert not [a for a in alerts if "XDEL" in a[1] + a[2]]
