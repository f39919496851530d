"""Grafana dashboards: generated, well-formed, importable into any Grafana."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
import yaml

from tests.support.paths import ROOT

GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))


def generator():
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_both_dashboards_exist_and_are_generated():
    gen = generator()
    assert sorted(p.name for p in DASHBOARDS) == sorted(gen.DASHBOARDS)
    for name, make in gen.DASHBOARDS.items():
        assert (GRAFANA / name).read_text() == gen.render(make), \
            f"{name} is stale: run python scripts/gen_dashboards.py"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path):
    board = json.loads(path.read_text())
    assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
    assert board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["account"]["multi"] and variables["account"]["includeAll"]
    text = path.read_text()
    # no hard-coded data source: every reference goes through the variable
    for match in re.finditer(r'"uid": "([^"]*)"', text):
        assert match.group(1) in {"${datasource}", board["uid"]}, match.group(0)
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert {"x", "y", "w", "h"} <= set(pos) and pos["x"] + pos["w"] <= 24
    for panel in panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def test_panels_do_not_overlap():
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        cells = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{path.name}: {panel['title']} overlaps"
                    cells.add((x, y))


def test_overview_covers_what_the_user_asked_for():
    board = json.loads((GRAFANA / "binance-margin-overview.json").read_text())
    exprs = " ".join(t["expr"] for p in panels(board) for t in p["targets"])
    for metric in ["binance_margin_level", "binance_margin_level_threshold",
                   "binance_margin_collateral_level", "binance_margin_total_asset_btc",
                   "binance_margin_total_liability_btc", "binance_margin_total_net_asset_btc",
                   "binance_margin_total_collateral_value_usdt", "binance_margin_asset_borrowed",
                   "binance_margin_asset_interest", "binance_margin_asset_free",
                   "binance_margin_asset_locked", "binance_margin_asset_net",
                   "binance_margin_trade_enabled", "binance_margin_borrow_enabled",
                   "binance_margin_transfer_in_enabled", "binance_margin_transfer_out_enabled",
                   "binance_margin_account_info",
                   "binance_margin_last_success_timestamp_seconds"]:
        assert metric in exprs, metric
    units = {p["fieldConfig"]["defaults"].get("unit") for p in panels(board)}
    assert {"currencyBTC", "suffix: USDT", "percentunit", "s"} <= units
    assert "$asset" in exprs and "$account" in exprs


def test_health_covers_what_the_user_asked_for():
    board = json.loads((GRAFANA / "binance-margin-exporter.json").read_text())
    exprs = " ".join(t["expr"] for p in panels(board) for t in p["targets"])
    for metric in ["binance_margin_up", "binance_margin_scrape_duration_seconds",
                   "binance_margin_scrape_errors_total",
                   "binance_margin_backoff_until_timestamp_seconds",
                   "binance_margin_ip_backoff_until_timestamp_seconds",
                   "binance_margin_api_ip_weight_used_1m", "12000"]:
        assert metric in exprs, metric


def test_provisioning_files():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" /
                                  "prometheus.yml").read_text())
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" /
                                "binance-margin.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def lost_in(original, back, path=""):
    """What of ``original`` is missing or different in ``back`` (defaults ``back`` adds are
    fine)."""
    if isinstance(original, dict):
        if not isinstance(back, dict):
            return [f"{path}: became {type(back).__name__}"]
        return [problem for key, value in original.items()
                for problem in ([f"{path}/{key}: lost"] if key not in back
                                else lost_in(value, back[key], f"{path}/{key}"))]
    if isinstance(original, list):
        if not isinstance(back, list) or len(back) != len(original):
            return [f"{path}: list changed"]
        return [p for i, (a, b) in enumerate(zip(original, back, strict=True))
                for p in lost_in(a, b, f"{path}[{i}]")]
    return [] if original == back else [f"{path}: {original!r} became {back!r}"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_round_trip_through_grafanas_own_models(path):
    from grafana_foundation_sdk.builders.dashboard import Dashboard as Builder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()  # the panel and query types, so their options decode
    original = json.loads(path.read_text())
    back = json.loads(JSONEncoder().encode(Dashboard.from_json(original)))
    assert lost_in(original, back) == []
    # the schema version current Grafana writes, as its own builder does
    written = json.loads(JSONEncoder().encode(Builder("x").build()))["schemaVersion"]
    assert original["schemaVersion"] == written


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_linter_rules_that_fit(path):
    board = json.loads(path.read_text())
    for panel in panels(board):
        if panel["type"] in {"stat", "timeseries", "gauge", "bargauge"}:
            assert panel["fieldConfig"]["defaults"].get("unit"), f"no unit: {panel['title']}"
        for target in panel["targets"]:
            for call in re.finditer(r"\b(rate|irate|increase|delta)\(([^()]*)\)",
                                    target["expr"]):
                assert call.group(2).endswith("[$__rate_interval]"), target["expr"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_that_shows_a_number_has_a_unit(path):
    """Tables too (the README promises a unit on every number): "none" says a plain number
    (amounts in each row's own asset), a column of another unit has its override."""
    board = json.loads(path.read_text())
    for panel in panels(board):
        if panel["type"] == "text":
            continue
        assert panel["fieldConfig"]["defaults"].get("unit"), f"no unit: {panel['title']}"


def test_the_sub_accounts_debt_is_in_btc():
    board = json.loads((GRAFANA / "binance-margin-overview.json").read_text())
    table = next(p for p in panels(board) if p["title"] == "Sub-accounts")
    units = {o["matcher"]["options"]: o["properties"] for o in table["fieldConfig"]["overrides"]}
    assert units["debt (BTC)"] == [{"id": "unit", "value": "currencyBTC"}]


PLACEHOLDERS = {"binance_margin_level": "< 999", "binance_margin_collateral_level": "< 999",
                "binance_margin_isolated_level": "< 999",
                "binance_margin_portfolio_uni_mmr": "< 99999999"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_no_time_series_plots_a_placeholder(path):
    """Binance's "nothing owed" placeholders (marginLevel 999, uniMMR 99999999) would flatten
    every scale: a time series that plots such a value leaves them out."""
    for panel in panels(json.loads(path.read_text())):
        if panel["type"] != "timeseries":
            continue
        for target in panel["targets"]:
            expr = target["expr"]
            for metric, bound in PLACEHOLDERS.items():
                plotted = re.match(rf"\(?{metric}\{{[^}}]*\}}\)?( |$)", expr)
                if plotted and " * 0 + " not in expr:
                    assert bound in expr, (panel["title"], expr)
