"""Write grafana/*.json: the dashboards are generated, so ids, grid positions, the data-source
variable and units stay consistent. Run ``python scripts/gen_dashboards.py`` after a change;
a test fails when the committed JSON differs from what this script writes, and another when a
dashboard does not round-trip through Grafana's own models (grafana-foundation-sdk) unchanged.

The dashboard-linter rules that fit hold (tests/test_dashboards.py): a unit on every panel that
shows a number, ``$__rate_interval`` in every ``rate``, a data-source variable. There are no
``job`` and ``instance`` variables on purpose: every series is keyed by ``account`` (unique
across shards: names you choose, sub-account e-mails), and one exporter per IP budget is the
deployment the docs recommend, so those filters would select nothing the account does not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 41  # what current Grafana (and grafana-foundation-sdk's builder) writes
# panels that show numbers: each has a unit ("none": a plain number, said so); a table's
# columns of another unit have an override each
NUMBER_PANELS = {"stat", "timeseries", "gauge", "bargauge", "table"}
ACC = 'account=~"$account"'
ASSET = 'account=~"$account", asset=~"$asset"'
BTC = "currencyBTC"
USDT = "suffix: USDT"


def target(expr: str, legend: str = "", *, instant: bool = False, ref: str = "A",
           fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto",
                         "refId": ref, "range": not instant, "instant": instant}
    if fmt != "time_series":
        t["format"] = fmt
    return t


class Board:
    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0
        self.row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "id": len(self.panels) + 1, "gridPos": self._place(24, 1)})
        self.y += 1
        self.x, self.row_h = 0, 0

    def panel(self, kind: str, title: str, description: str, targets: list[dict[str, Any]],
              *, w: int = 12, h: int = 8, unit: str | None = None,
              defaults: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
              overrides: list[dict[str, Any]] | None = None,
              transformations: list[dict[str, Any]] | None = None) -> None:
        field_defaults: dict[str, Any] = {**(defaults or {})}
        if unit:
            field_defaults["unit"] = unit
        elif kind in NUMBER_PANELS:
            field_defaults["unit"] = "none"  # a plain number, said so (dashboard-linter)
        for i, t in enumerate(targets):
            t["refId"] = chr(ord("A") + i)
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": self._place(w, h),
            "targets": targets,
            "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
            "options": options or {},
        }
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)


def variables(with_asset: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "datasource", "label": "Data source", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
         "options": []},
        {"name": "account", "label": "Account", "type": "query", "datasource": DS,
         "query": {"query": "label_values(binance_margin_up, account)", "refId": "account"},
         "refresh": 2,
         "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "hide": 0,
         "sort": 1, "options": [], "regex": ""},
    ]
    if with_asset:
        query = f"label_values(binance_margin_asset_net{{{ACC}}}, asset)"
        out.append({"name": "asset", "label": "Asset", "type": "query", "datasource": DS,
                    "query": {"query": query, "refId": "asset"},
                    "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
                    "current": {}, "hide": 0, "sort": 1, "options": [], "regex": ""})
    return out


def dashboard(uid: str, title: str, description: str, board: Board,
              with_asset: bool, annotations: list[dict[str, Any]] | None = None,
              ) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["binance", "margin", "prometheus-exporter"],
        "timezone": "",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [],
        "annotations": {"list": annotations or []},
        "templating": {"list": variables(with_asset)},
        "panels": board.panels,
    }


def threshold_colours() -> list[dict[str, Any]]:
    colours = {"normal": "yellow", "margin_call": "orange", "force_liquidation": "red"}
    return [
        {"matcher": {"id": "byRegexp", "options": f".*{name}$"},
         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}},
                        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                        {"id": "custom.lineWidth", "value": 2}]}
        for name, colour in colours.items()
    ]


ENABLED = [{"type": "value", "options": {
    "0": {"text": "disabled", "color": "red", "index": 0},
    "1": {"text": "enabled", "color": "green", "index": 1}}}]
UP_MAP = [{"type": "value", "options": {
    "0": {"text": "DOWN", "color": "red", "index": 0},
    "1": {"text": "UP", "color": "green", "index": 1}}}]
STAT = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
        "justifyMode": "auto", "orientation": "auto"}
TABLE_MERGE = [{"id": "merge", "options": {}},
               {"id": "organize", "options": {
                   "excludeByName": {"Time": True, "__name__": True, "job": True,
                                     "instance": True},
                   "renameByName": {"Value #A": "borrowed", "Value #B": "interest",
                                    "Value #C": "net"}}}]


# forced liquidations (and futures insurance clearances) counted by the ledger, as annotations
LIQUIDATIONS: dict[str, Any] = {
    "name": "Liquidations", "datasource": DS, "enable": True, "iconColor": "red",
    "expr": f"sum by (account, symbol) (increase(binance_margin_liquidations_total{{{ACC}}}"
            f"[$__rate_interval])) > 0 or sum by (account) "
            f"(increase(binance_margin_futures_income_total"
            f"{{{ACC},type=\"insurance_clear\"}}[$__rate_interval])) > 0",
}


def overview() -> dict[str, Any]:
    b = Board()
    b.row("Margin level")
    b.panel("timeseries", "Margin level against this account's bars",
            "marginLevel of each account (the 999 no-liability placeholder is hidden) with the "
            "account's own bars from tradeCoeff: normal (yellow), margin call (orange) and "
            "forced liquidation (red). Binance liquidates at the red line.",
            [target(f"binance_margin_level{{{ACC}}} < 999", "{{account}} margin level"),
             target(f"binance_margin_level_threshold{{{ACC}}}", "{{account}} {{threshold}}")],
            w=16, h=9, unit="none",
            defaults={"decimals": 3, "custom": {"lineWidth": 2, "fillOpacity": 0}},
            overrides=threshold_colours(),
            options={"legend": {"displayMode": "table", "placement": "right",
                                "calcs": ["lastNotNull", "min"]},
                     "tooltip": {"mode": "multi", "sort": "none"}})
    b.panel("stat", "Headroom above the margin-call bar",
            "How far the margin level is above this account's margin-call bar, as a share of "
            "the bar: 0 % means a margin call now.",
            [target(f"(binance_margin_level{{{ACC}}} < 999) / on (account) group_left "
                    f"max by (account) (binance_margin_level_threshold{{threshold=\"margin_call\","
                    f"{ACC}}}) - 1", "{{account}}")],
            w=8, h=9, unit="percentunit",
            defaults={"decimals": 1, "thresholds": {"mode": "absolute", "steps": [
                {"color": "red", "value": None}, {"color": "orange", "value": 0.05},
                {"color": "yellow", "value": 0.15}, {"color": "green", "value": 0.3}]}},
            options=STAT)
    b.panel("timeseries", "Collateral margin level",
            "collateralMarginLevel of each account.",
            [target(f"binance_margin_collateral_level{{{ACC}}} < 999", "{{account}}")],
            w=8, unit="none", defaults={"decimals": 3})
    b.panel("timeseries", "Totals in BTC",
            "totalAssetOfBtc, totalLiabilityOfBtc and totalNetAssetOfBtc.",
            [target(f"binance_margin_total_asset_btc{{{ACC}}}", "{{account}} assets"),
             target(f"binance_margin_total_liability_btc{{{ACC}}}", "{{account}} liabilities"),
             target(f"binance_margin_total_net_asset_btc{{{ACC}}}", "{{account}} net")],
            w=8, unit=BTC, defaults={"decimals": 4})
    b.panel("timeseries", "Collateral value and open order loss (USDT)",
            "TotalCollateralValueInUSDT and totalOpenOrderLossInUSDT.",
            [target(f"binance_margin_total_collateral_value_usdt{{{ACC}}}",
                    "{{account}} collateral"),
             target(f"binance_margin_total_open_order_loss_usdt{{{ACC}}}",
                    "{{account}} open order loss")],
            w=8, unit=USDT, defaults={"decimals": 2})

    b.row("In money (USDT)")
    b.panel("timeseries", "Net value and debt in USDT",
            "Total net assets and total liabilities in USDT (the BTC totals x BTCUSDT), of the "
            "cross account and of all its isolated pairs.",
            [target(f"binance_margin_total_net_asset_usdt{{{ACC}}}", "{{account}} cross net"),
             target(f"binance_margin_total_liability_usdt{{{ACC}}}", "{{account}} cross debt"),
             target(f"binance_margin_isolated_total_net_asset_usdt{{{ACC}}}",
                    "{{account}} isolated net"),
             target(f"binance_margin_isolated_total_liability_usdt{{{ACC}}}",
                    "{{account}} isolated debt")],
            w=12, h=9, unit=USDT, defaults={"decimals": 2})
    b.panel("stat", "Cross: distance to liquidation",
            "How much the collateral's value may fall against the debt before the margin level "
            "reaches the force-liquidation bar (1 - bar / level; accounts that owe something).",
            [target(f"binance_margin:liquidation_distance_ratio{{{ACC}}}", "{{account}}")],
            w=6, h=9, unit="percentunit",
            defaults={"decimals": 1, "thresholds": {"mode": "absolute", "steps": [
                {"color": "red", "value": None}, {"color": "orange", "value": 0.05},
                {"color": "yellow", "value": 0.15}, {"color": "green", "value": 0.3}]}},
            options=STAT)
    b.panel("stat", "Projected interest per day (USDT)",
            "Borrowed amounts x Binance's next hourly rate x 24, in USDT, cross and isolated.",
            [target(f"binance_margin:interest_projected_daily_usdt{{{ACC}}}", "{{account}}")],
            w=6, h=9, unit=USDT, defaults={"decimals": 2}, options={**STAT,
                                                                     "colorMode": "none"})
    b.panel("table", "Debt by asset in USDT",
            "(borrowed + interest) x the asset's USDT price, of the assets with a debt.",
            [target(f"binance_margin_asset_liability_usdt{{{ASSET}}} > 0", instant=True,
                    fmt="table")],
            w=12, h=8, unit=USDT, defaults={"decimals": 2},
            transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True},
                "renameByName": {"Value": "debt (USDT)"}}}],
            options={"showHeader": True, "sortBy": [{"displayName": "debt (USDT)",
                                                     "desc": True}]})
    b.panel("timeseries", "Net value by asset in USDT",
            "netAsset x the asset's USDT price (assets without a route to USDT are left out).",
            [target(f"binance_margin_asset_net_usdt{{{ASSET}}}", "{{account}} {{asset}}")],
            w=12, h=8, unit=USDT, defaults={"decimals": 2})

    b.row("Isolated pairs")
    b.panel("table", "Isolated pairs",
            "Each isolated pair: margin level, Binance's status, index and liquidation price, "
            "and how far the index price is from the liquidation price.",
            [target(f"binance_margin_isolated_level{{{ACC}}}", instant=True, fmt="table"),
             target(f"binance_margin_isolated_index_price{{{ACC}}}", instant=True,
                    fmt="table"),
             target(f"binance_margin_isolated_liquidation_price{{{ACC}}}", instant=True,
                    fmt="table"),
             target(f"binance_margin:isolated_liquidation_distance_ratio{{{ACC}}}",
                    instant=True, fmt="table"),
             target(f"binance_margin_isolated_status{{{ACC}}} == 1", instant=True,
                    fmt="table")],
            w=24, h=8, defaults={"decimals": 4},
            transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True, "Value #E": True},
                "renameByName": {"Value #A": "margin level", "Value #B": "index price",
                                 "Value #C": "liquidation price",
                                 "Value #D": "distance to liquidation"}}}],
            overrides=[{"matcher": {"id": "byName", "options": "distance to liquidation"},
                        "properties": [{"id": "unit", "value": "percentunit"}]}],
            options={"showHeader": True, "sortBy": [{"displayName": "distance to liquidation",
                                                     "desc": False}]})
    b.panel("timeseries", "Isolated: distance to liquidation",
            "|index price - liquidation price| / index price of each pair with a debt. The "
            "critical alert fires under 5 %.",
            [target(f"binance_margin:isolated_liquidation_distance_ratio{{{ACC}}}",
                    "{{account}} {{symbol}}")],
            w=12, h=8, unit="percentunit", defaults={"decimals": 1, "min": 0})
    b.panel("timeseries", "Isolated: margin level",
            "marginLevel of each pair (999: no debt, hidden).",
            [target(f"binance_margin_isolated_level{{{ACC}}} < 999",
                    "{{account}} {{symbol}}")],
            w=12, h=8, unit="none", defaults={"decimals": 3})

    b.row("Delistings and restrictions")
    held = ("group by (account, {key}) (binance_margin{side}_asset_net{{{sel}}} != 0 "
            "or binance_margin{side}_asset_borrowed{{{sel}}} > 0)")
    cross_held = held.format(key="asset", side="", sel=ASSET)
    isolated_held = held.format(key="symbol", side="_isolated", sel=ACC)
    b.panel("table", "Delistings within 30 days",
            "Assets (cross) and isolated pairs an account holds or owes that Binance delists "
            "from margin within 30 days (GET /sapi/v1/margin/delist-schedule), and the time "
            "left; then Binance repays or liquidates them itself. The alert fires under 7 days.",
            [target("(min by (asset) (binance_margin_asset_delist_timestamp_seconds) - time()) "
                    f"* on (asset) group_right () ({cross_held}) < 30 * 86400",
                    instant=True, fmt="table"),
             target("(min by (symbol) (binance_margin_isolated_delist_timestamp_seconds) "
                    f"- time()) * on (symbol) group_right () ({isolated_held}) < 30 * 86400",
                    instant=True, fmt="table")],
            w=12, h=8, unit="dtdurations",
            transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "renameByName": {"Value #A": "cross: time left",
                                 "Value #B": "isolated pair: time left"}}}],
            options={"showHeader": True})
    b.panel("table", "Restricted assets held",
            "Assets an account holds or owes that Binance restricts (GET "
            "/sapi/v1/margin/restricted-asset): open_long (no new long positions), "
            "max_collateral_exceeded (its collateral is capped).",
            [target(f"({cross_held}) * on (asset) group_left (restriction) max by (asset, "
                    f'restriction) (binance_margin_asset_restricted{{restriction="{r}"}})',
                    instant=True, fmt="table")
             for r in ("open_long", "max_collateral_exceeded")],
            w=12, h=8,
            transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value #A": True, "Value #B": True}}}],
            options={"showHeader": True})

    b.row("Cost of borrowing")
    b.panel("timeseries", "Projected interest per day by asset (USDT)",
            "Borrowed x next hourly rate x 24 x USDT price, per borrowed asset (cross) and per "
            "pair's borrowed side (isolated).",
            [target(f"binance_margin:asset_interest_projected_daily_usdt{{{ACC}}}",
                    "{{account}} {{asset}}"),
             target(f"binance_margin:isolated_asset_interest_projected_daily_usdt{{{ACC}}}",
                    "{{account}} {{symbol}} {{asset}}")],
            w=12, h=8, unit=USDT, defaults={"decimals": 4})
    b.panel("timeseries", "Interest rate per day",
            "Binance's next hourly interest rate x 24 of each borrowed asset.",
            [target(f"24 * binance_margin_asset_interest_rate_hourly{{{ACC}}}",
                    "{{account}} {{asset}}"),
             target(f"24 * binance_margin_isolated_asset_interest_rate_hourly{{{ACC}}}",
                    "{{account}} {{symbol}} {{asset}}")],
            w=12, h=8, unit="percentunit", defaults={"decimals": 4})

    b.row("Cost ledger (since the exporter started)")
    b.panel("timeseries", "Interest paid per day",
            "increase() of binance_margin_interest_paid_total over a day (a bar a day), by "
            "account, asset and isolated pair (empty: cross), in units of the asset.",
            [target(f"sum by (account, asset, symbol) "
                    f"(increase(binance_margin_interest_paid_total{{{ACC}}}[$__rate_interval]))",
                    "{{account}} {{asset}} {{symbol}}")],
            w=12, h=8, unit="short", defaults={"decimals": 6, "custom": {"drawStyle": "bars"}})
    b.panels[-1]["interval"] = "1d"  # $__rate_interval: a day, a bar a day
    b.panel("timeseries", "Funding paid and received per day",
            "increase() of binance_margin_futures_income_total{type=\"funding_fee\"} over a "
            "day, by account, market, asset and direction (paid shown below zero).",
            [target(f"sum by (account, market, asset) (increase(binance_margin_futures_income_"
                    f"total{{{ACC},type=\"funding_fee\",direction=\"received\"}}[$__rate_interval]))",
                    "{{account}} {{market}} {{asset}} received"),
             target(f"-sum by (account, market, asset) (increase(binance_margin_futures_income_"
                    f"total{{{ACC},type=\"funding_fee\",direction=\"paid\"}}[$__rate_interval]))",
                    "{{account}} {{market}} {{asset}} paid")],
            w=12, h=8, unit="short", defaults={"decimals": 6, "custom": {"drawStyle": "bars"}})
    b.panels[-1]["interval"] = "1d"

    b.row("Sub-accounts")
    b.panel("stat", "Sub-accounts up",
            "Sub-accounts read through each master key whose last fetch worked, of all listed.",
            [target('count by (master) (binance_margin_sub_account_info{master=~"$account"})',
                    "{{master}} listed"),
             target("count by (master) (binance_margin_up == 1 and on (account) "
                    "binance_margin_sub_account_info)", "{{master}} up")],
            w=6, h=8, options={**STAT, "colorMode": "none"})
    b.panel("table", "Sub-accounts",
            "Each sub-account: its master, margin level (999: no debt), debt in BTC, and "
            "whether its last fetch worked (a sub-account without margin is down).",
            [target("binance_margin_sub_account_info", instant=True, fmt="table"),
             target("binance_margin_level and on (account) binance_margin_sub_account_info",
                    instant=True, fmt="table"),
             target("binance_margin_total_liability_btc and on (account) "
                    "binance_margin_sub_account_info", instant=True, fmt="table"),
             target("binance_margin_up and on (account) binance_margin_sub_account_info",
                    instant=True, fmt="table")],
            w=18, h=8, defaults={"decimals": 4},
            transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True, "Value #A": True},
                "renameByName": {"Value #B": "margin level", "Value #C": "debt (BTC)",
                                 "Value #D": "up"}}}],
            overrides=[{"matcher": {"id": "byName", "options": "debt (BTC)"},
                        "properties": [{"id": "unit", "value": BTC}]}],
            options={"showHeader": True, "sortBy": [{"displayName": "margin level",
                                                     "desc": False}]})

    b.row("Risk events (Binance's streams)")
    b.panel("timeseries", "Risk events pushed by Binance",
            "Events on the risk data streams, by account, event and status: a margin level "
            "status change (cross), a risk level change (Portfolio Margin), a liability "
            "change. Counted the moment Binance sends them, even if the level recovers before "
            "a scrape.",
            [target(f"sum by (account, event, status) (increase("
                    f"binance_margin_risk_events_total{{{ACC}}}[$__rate_interval]))",
                    "{{account}} {{event}} {{status}}")],
            w=12, h=8, unit="none", defaults={"custom": {"drawStyle": "bars",
                                                         "fillOpacity": 60}})
    b.panel("stat", "Level of the last risk event",
            "The margin level (cross) or uniMMR (Portfolio Margin) Binance sent with the last "
            "risk level event.",
            [target(f"binance_margin_risk_event_level{{{ACC}}}", "{{account}}")],
            w=6, h=8, options=STAT, defaults={"decimals": 3})
    b.panel("stat", "Since the last risk event",
            "Time since Binance's event time of the last risk event of each account.",
            [target(f"time() - binance_margin_risk_last_event_timestamp_seconds{{{ACC}}}",
                    "{{account}}")], w=6, h=8, unit="s", options=STAT)

    b.row("Portfolio Margin")
    b.panel("timeseries", "uniMMR against Binance's levels",
            "Unified maintenance margin ratio of each Portfolio Margin account, with Binance's "
            "levels: reminder at 1.5 (yellow), reduce-only at 1.2 (orange), liquidation at "
            "1.05 (red). The 99999999 placeholder (no maintenance margin) is hidden.",
            [target(f"binance_margin_portfolio_uni_mmr{{{ACC}}} < 99999999", "{{account}} uniMMR"),
             target(f"binance_margin_portfolio_uni_mmr{{{ACC}}} * 0 + 1.5",
                    "{{account}} normal"),
             target(f"binance_margin_portfolio_uni_mmr{{{ACC}}} * 0 + 1.2",
                    "{{account}} margin_call"),
             target(f"binance_margin_portfolio_uni_mmr{{{ACC}}} * 0 + 1.05",
                    "{{account}} force_liquidation")],
            w=12, h=9, unit="none", defaults={"decimals": 3},
            overrides=threshold_colours())
    b.panel("stat", "Portfolio Margin status",
            "accountStatus of each Portfolio Margin account.",
            [target(f"binance_margin_portfolio_status{{{ACC}}} == 1",
                    "{{account}}: {{status}}")],
            w=4, h=9, options={**STAT, "textMode": "name", "colorMode": "none"})
    b.panel("timeseries", "Equity and margins (USD)",
            "accountEquity, actualEquity, accountInitialMargin, accountMaintMargin and "
            "virtualMaxWithdrawAmount.",
            [target(f"binance_margin_portfolio_account_equity_usd{{{ACC}}}",
                    "{{account}} equity"),
             target(f"binance_margin_portfolio_actual_equity_usd{{{ACC}}}",
                    "{{account}} actual equity"),
             target(f"binance_margin_portfolio_initial_margin_usd{{{ACC}}}",
                    "{{account}} initial margin"),
             target(f"binance_margin_portfolio_maint_margin_usd{{{ACC}}}",
                    "{{account}} maintenance margin"),
             target(f"binance_margin_portfolio_virtual_max_withdraw_usd{{{ACC}}}",
                    "{{account}} max withdraw")],
            w=8, h=9, unit="currencyUSD", defaults={"decimals": 2})
    b.panel("table", "Portfolio Margin balances",
            "Per asset: wallet balance, cross margin borrowed and interest, UM and CM "
            "unrealized profit and loss, negative balance.",
            [target(f"binance_margin_portfolio_asset_wallet_balance{{{ACC}}}", instant=True,
                    fmt="table"),
             target(f"binance_margin_portfolio_asset_cross_margin_borrowed{{{ACC}}}",
                    instant=True, fmt="table"),
             target(f"binance_margin_portfolio_asset_cross_margin_interest{{{ACC}}}",
                    instant=True, fmt="table"),
             target(f"binance_margin_portfolio_asset_um_unrealized_pnl{{{ACC}}}",
                    instant=True, fmt="table"),
             target(f"binance_margin_portfolio_asset_cm_unrealized_pnl{{{ACC}}}",
                    instant=True, fmt="table"),
             target(f"binance_margin_portfolio_asset_negative_balance{{{ACC}}}",
                    instant=True, fmt="table")],
            w=24, h=8, defaults={"decimals": 8},
            transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True},
                "renameByName": {"Value #A": "wallet", "Value #B": "borrowed",
                                 "Value #C": "interest", "Value #D": "UM PnL",
                                 "Value #E": "CM PnL", "Value #F": "negative"}}}],
            options={"showHeader": True})

    b.row("Positions and futures")
    b.panel("table", "Positions",
            "Every leveraged position with a non-zero amount (Portfolio Margin, futures and "
            "Portfolio Margin Pro accounts): amount (signed; contracts for cm), mark and "
            "liquidation price (0: none), distance of the mark price to the liquidation "
            "price, unrealized profit and loss in the margin asset.",
            [target(f"binance_margin_position_amount{{{ACC}}}", instant=True, fmt="table"),
             target(f"binance_margin_position_mark_price{{{ACC}}}", instant=True,
                    fmt="table"),
             target(f"binance_margin_position_liquidation_price{{{ACC}}}", instant=True,
                    fmt="table"),
             target(f"binance_margin:position_liquidation_distance_ratio{{{ACC}}}",
                    instant=True, fmt="table"),
             target(f"binance_margin_position_unrealized_pnl{{{ACC}}}", instant=True,
                    fmt="table")],
            w=24, h=8, defaults={"decimals": 4},
            transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True},
                "indexByName": {"account": 0, "market": 1, "symbol": 2, "side": 3,
                                "Value #A": 4, "Value #B": 5, "Value #C": 6, "Value #D": 7,
                                "Value #E": 8},
                "renameByName": {"Value #A": "amount", "Value #B": "mark price",
                                 "Value #C": "liquidation price",
                                 "Value #D": "distance to liquidation",
                                 "Value #E": "unrealized PnL"}}}],
            overrides=[{"matcher": {"id": "byName", "options": "distance to liquidation"},
                        "properties": [{"id": "unit", "value": "percentunit"}]}],
            options={"showHeader": True, "sortBy": [{"displayName": "distance to liquidation",
                                                     "desc": False}]})
    b.panel("timeseries", "Positions: distance to liquidation",
            "|mark price - liquidation price| / mark price of each position with a "
            "liquidation price. The critical alert fires under 5 %.",
            [target(f"binance_margin:position_liquidation_distance_ratio{{{ACC}}}",
                    "{{account}} {{market}} {{symbol}} {{side}}")],
            w=12, h=8, unit="percentunit", defaults={"decimals": 1, "min": 0})
    b.panel("timeseries", "Positions: unrealized PnL",
            "unRealizedProfit of each position, in its margin asset (USDT or USD for um, the "
            "coin for cm).",
            [target(f"binance_margin_position_unrealized_pnl{{{ACC}}}",
                    "{{account}} {{market}} {{symbol}} {{side}}")],
            w=12, h=8, unit="short", defaults={"decimals": 4})
    b.panel("timeseries", "Futures margin ratio",
            "Binance's margin ratio of each futures account (maintenance margin / margin "
            "balance; cm: its worst asset), with the alerts' 80 % (orange) and 90 % (red); "
            "Binance liquidates at 100 %.",
            [target(f"binance_margin:futures_margin_ratio{{{ACC}}}",
                    "{{account}} {{market}}"),
             target(f"binance_margin:futures_margin_ratio{{{ACC}}} * 0 + 0.8",
                    "{{account}} {{market}} margin_call"),
             target(f"binance_margin:futures_margin_ratio{{{ACC}}} * 0 + 0.9",
                    "{{account}} {{market}} force_liquidation")],
            w=12, h=8, unit="percentunit", defaults={"decimals": 1, "min": 0},
            overrides=threshold_colours())
    b.panel("timeseries", "Futures margin balance and maintenance margin",
            "marginBalance and maintMargin per asset of each futures account's markets.",
            [target(f"binance_margin_futures_asset_margin_balance{{{ACC}}}",
                    "{{account}} {{market}} {{asset}} margin balance"),
             target(f"binance_margin_futures_asset_maint_margin{{{ACC}}}",
                    "{{account}} {{market}} {{asset}} maintenance margin")],
            w=12, h=8, unit="short", defaults={"decimals": 4})

    b.row("Crypto loans")
    loan = "{{account}} {{loan}} {{loan_asset}}/{{collateral_asset}} {{order_id}}"
    b.panel("timeseries", "Loans: LTV against its bars",
            "Each crypto loan's LTV: Binance's currentLTV (as of the last fetch of the "
            "orders, every loans_interval_seconds) and the live LTV (flexible loans, at each "
            "scrape's prices), with its margin-call (orange) and liquidation (red) LTV. The "
            "alerts fire at the margin-call LTV and within 5 % of the liquidation LTV.",
            [target(f"binance_margin_loan_ltv_live{{{ACC}}}", f"{loan} live"),
             target(f"binance_margin_loan_ltv{{{ACC}}}", f"{loan} Binance"),
             target(f'binance_margin_loan_ltv_threshold{{{ACC},threshold="margin_call"}}',
                    f"{loan} margin_call"),
             target(f'binance_margin_loan_ltv_threshold{{{ACC},threshold="liquidation"}}',
                    f"{loan} liquidation")],
            w=14, h=8, unit="percentunit", defaults={"decimals": 1, "min": 0},
            overrides=[
                {"matcher": {"id": "byRegexp", "options": f".*{name}$"},
                 "properties": [
                     {"id": "color", "value": {"mode": "fixed", "fixedColor": colour}},
                     {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                     {"id": "custom.lineWidth", "value": 2}]}
                for name, colour in (("margin_call", "orange"), ("liquidation", "red"))])
    b.panel("table", "Loans",
            "Every crypto loan: debt (in the loan asset), Binance's LTV, the live LTV and the "
            "margin-call and liquidation LTV (none for a VIP loan without vip_loan_ltv_bars).",
            [target(f"binance_margin_loan_debt{{{ACC}}}", instant=True, fmt="table"),
             target(f"binance_margin_loan_ltv{{{ACC}}}", instant=True, fmt="table"),
             target(f"binance_margin_loan_ltv_live{{{ACC}}}", instant=True, fmt="table"),
             target(f'binance_margin_loan_ltv_threshold{{{ACC},threshold="margin_call"}}',
                    instant=True, fmt="table"),
             target(f'binance_margin_loan_ltv_threshold{{{ACC},threshold="liquidation"}}',
                    instant=True, fmt="table")],
            w=10, h=8, defaults={"decimals": 4},
            transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True, "threshold": True},
                "indexByName": {"account": 0, "loan": 1, "loan_asset": 2,
                                "collateral_asset": 3, "order_id": 4, "Value #A": 5,
                                "Value #B": 6, "Value #C": 7, "Value #D": 8, "Value #E": 9},
                "renameByName": {"Value #A": "debt", "Value #B": "LTV",
                                 "Value #C": "live LTV", "Value #D": "margin call",
                                 "Value #E": "liquidation"}}}],
            options={"showHeader": True, "sortBy": [{"displayName": "live LTV",
                                                     "desc": True}]})

    b.row("Borrowing")
    b.panel("table", "Borrowed and interest by asset",
            "Assets with a loan: borrowed amount, interest owed and net amount, in units of the "
            "asset.",
            [target(f"binance_margin_asset_borrowed{{{ASSET}}} > 0", instant=True,
                    fmt="table"),
             target(f"binance_margin_asset_interest{{{ASSET}}} and on (account, asset) "
                    f"binance_margin_asset_borrowed{{{ASSET}}} > 0", instant=True,
                    fmt="table"),
             target(f"binance_margin_asset_net{{{ASSET}}} and on (account, asset) "
                    f"binance_margin_asset_borrowed{{{ASSET}}} > 0", instant=True,
                    fmt="table")],
            w=8, h=9, defaults={"decimals": 8}, transformations=TABLE_MERGE,
            options={"showHeader": True, "sortBy": [{"displayName": "borrowed",
                                                     "desc": True}]})
    b.panel("timeseries", "Borrowed by asset",
            "userAssets[].borrowed of the assets that have a loan.",
            [target(f"binance_margin_asset_borrowed{{{ASSET}}} > 0",
                    "{{account}} {{asset}}")],
            w=8, h=9, unit="short", defaults={"decimals": 4})
    b.panel("timeseries", "Interest owed by asset",
            "userAssets[].interest; it grows hourly while a loan is open.",
            [target(f"binance_margin_asset_interest{{{ASSET}}} > 0",
                    "{{account}} {{asset}}")],
            w=8, h=9, unit="short", defaults={"decimals": 6})

    b.row("Balances")
    b.panel("table", "Free, locked and net by asset",
            "userAssets[] of the non-zero assets, in units of the asset.",
            [target(f"binance_margin_asset_free{{{ASSET}}}", instant=True, fmt="table"),
             target(f"binance_margin_asset_locked{{{ASSET}}}", instant=True, fmt="table"),
             target(f"binance_margin_asset_net{{{ASSET}}}", instant=True, fmt="table")],
            w=10, h=10, defaults={"decimals": 8},
            transformations=[TABLE_MERGE[0], {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True,
                                  "instance": True},
                "renameByName": {"Value #A": "free", "Value #B": "locked",
                                 "Value #C": "net"}}}],
            options={"showHeader": True})
    b.panel("timeseries", "Net amount by asset",
            "userAssets[].netAsset = free + locked - borrowed - interest.",
            [target(f"binance_margin_asset_net{{{ASSET}}}", "{{account}} {{asset}}")],
            w=14, h=10, unit="short", defaults={"decimals": 4})

    b.row("Account")
    for metric, title, field in [
        ("binance_margin_trade_enabled", "Trading", "tradeEnabled"),
        ("binance_margin_borrow_enabled", "Borrowing", "borrowEnabled"),
        ("binance_margin_transfer_in_enabled", "Transfers in", "transferInEnabled"),
        ("binance_margin_transfer_out_enabled", "Transfers out", "transferOutEnabled"),
    ]:
        b.panel("stat", title, f"{field} of each account.",
                [target(f"{metric}{{{ACC}}}", "{{account}}")], w=4, h=5,
                defaults={"mappings": ENABLED}, options=STAT)
    b.panel("stat", "Account type", "accountType: MARGIN_1 is Cross Margin Classic, MARGIN_2 "
            "Cross Margin Pro (a different margin-level formula).",
            [target(f"binance_margin_account_info{{{ACC}}}",
                    "{{account}}: {{account_type}} ({{mode}})")],
            w=8, h=5, options={**STAT, "textMode": "name", "colorMode": "none"})
    b.panel("stat", "Since the last good fetch",
            "Time since the exporter last fetched each account successfully.",
            [target(f"time() - binance_margin_last_success_timestamp_seconds{{{ACC}}}",
                    "{{account}}")],
            w=8, h=5, unit="s", defaults={"thresholds": {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "orange", "value": 120},
                {"color": "red", "value": 900}]}}, options=STAT)
    b.panel("stat", "Fetch status", "binance_margin_up: did the last fetch succeed?",
            [target(f"binance_margin_up{{{ACC}}}", "{{account}}")], w=8, h=5,
            defaults={"mappings": UP_MAP}, options=STAT)
    b.panel("stat", "Margin bars", "This account's bars from GET /sapi/v1/margin/tradeCoeff.",
            [target(f"binance_margin_level_threshold{{{ACC}}}", "{{account}} {{threshold}}")],
            w=8, h=5, unit="none", options={**STAT, "colorMode": "none"})
    return dashboard("binance-margin-overview", "Binance margin — overview",
                     "Margin level against the account's own bars, borrowings, interest and "
                     "balances of Binance Cross Margin accounts (binance-margin-exporter).",
                     b, with_asset=True, annotations=[LIQUIDATIONS])


def health() -> dict[str, Any]:
    b = Board()
    b.row("Exporter")
    b.panel("stat", "Account fetch", "binance_margin_up: 1 if the last account fetch worked.",
            [target(f"binance_margin_up{{{ACC}}}", "{{account}}")], w=8, h=5,
            defaults={"mappings": UP_MAP}, options=STAT)
    b.panel("stat", "Exporter target", "Prometheus' own up for the exporter's targets.",
            [target('up{job=~"binance-margin.*"}', "{{instance}}")], w=8, h=5,
            defaults={"mappings": UP_MAP}, options=STAT)
    b.panel("stat", "Version", "binance_margin_exporter_build_info.",
            [target("binance_margin_exporter_build_info", "{{version}}")], w=8, h=5,
            options={**STAT, "textMode": "name", "colorMode": "none"})
    b.panel("stat", "Isolated pairs fetch",
            "binance_margin_isolated_up: 1 if the last fetch of the isolated pairs worked.",
            [target(f"binance_margin_isolated_up{{{ACC}}}", "{{account}}")], w=12, h=5,
            defaults={"mappings": UP_MAP}, options=STAT)
    b.panel("stat", "Prices fetch",
            "binance_margin_prices_up: 1 if the last fetch of the ticker prices worked (values "
            "in USDT need it).",
            [target("binance_margin_prices_up", "prices")], w=12, h=5,
            defaults={"mappings": UP_MAP}, options=STAT)
    b.panel("stat", "Positions fetch",
            "binance_margin_positions_up: 1 if the last fetch of the account's positions in "
            "the market (um, cm) worked.",
            [target(f"binance_margin_positions_up{{{ACC}}}", "{{account}} {{market}}")],
            w=24, h=5, defaults={"mappings": UP_MAP}, options=STAT)
    b.panel("stat", "Risk lists fetch",
            "1 if the last fetch of Binance's delist schedule (hourly) and of its restricted "
            "assets (every 10 minutes) worked; once per exporter, for all accounts.",
            [target("binance_margin_delist_schedule_up", "delist schedule"),
             target("binance_margin_restricted_assets_up", "restricted assets")], w=24, h=5,
            defaults={"mappings": UP_MAP}, options=STAT)
    b.panel("stat", "Risk streams",
            "binance_margin_stream_up: 1 while the account's risk data stream (margin_risk, "
            "portfolio) is connected and its listen key alive.",
            [target(f"binance_margin_stream_up{{{ACC}}}", "{{account}} {{stream}}")], w=12, h=5,
            defaults={"mappings": UP_MAP}, options=STAT)
    b.panel("timeseries", "Stream reconnections by reason",
            "Reconnections of the risk data streams: dropped, key_expired, lifetime (before "
            "Binance's 24-hour cut), failed (a listen-key request or connection attempt).",
            [target(f"sum by (account, stream, reason) (increase("
                    f"binance_margin_stream_reconnects_total{{{ACC}}}[$__rate_interval]))",
                    "{{account}} {{stream}} {{reason}}")], w=12, h=5, unit="none",
            defaults={"custom": {"drawStyle": "bars", "fillOpacity": 60}})
    b.panel("timeseries", "Fetch duration",
            "Duration of the last account fetch from Binance (signing, request, parsing).",
            [target(f"binance_margin_scrape_duration_seconds{{{ACC}}}", "{{account}}")],
            unit="s")
    b.panel("timeseries", "Errors by reason",
            "Failed account fetches per second, by reason (auth, rate_limited, banned, "
            "throttled, timeout, http, invalid_response, connection, api_error, internal).",
            [target(f"sum by (account, reason) (rate(binance_margin_scrape_errors_total"
                    f"{{{ACC}}}[$__rate_interval]))", "{{account}} {{reason}}"),
             target(f"sum by (account, reason) (rate(binance_margin_isolated_scrape_errors_total"
                    f"{{{ACC}}}[$__rate_interval]))", "{{account}} isolated {{reason}}"),
             target("sum by (reason) (rate(binance_margin_prices_scrape_errors_total"
                    "[$__rate_interval]))", "prices {{reason}}"),
             target(f"sum by (account, market, reason) (rate("
                    f"binance_margin_positions_scrape_errors_total{{{ACC}}}[$__rate_interval]))",
                    "{{account}} {{market}} positions {{reason}}")],
            unit="reqps", defaults={"custom": {"drawStyle": "bars", "fillOpacity": 60,
                                               "stacking": {"mode": "normal"}}})
    b.row("Binance limits")
    b.panel("timeseries", "IP back-off remaining",
            "Seconds until the exporter sends requests to the host again from this IP (429/418 "
            "Retry-After, or weight at the soft limit); 0 when it is not waiting.",
            [target("clamp_min(max by (host) (binance_margin_ip_backoff_until_timestamp_seconds)"
                    " - time(), 0)", "{{host}}")], w=12, unit="s")
    b.panel("timeseries", "Account back-off remaining",
            "Seconds until the exporter tries an account's key again after Binance rejected "
            "it (15 s doubling to 5 minutes); 0 when it is not waiting.",
            [target(f"clamp_min(binance_margin_backoff_until_timestamp_seconds{{{ACC}}} "
                    f"- time(), 0)", "{{account}}")], w=12, unit="s")
    b.panel("timeseries", "IP request weight used this minute",
            "X-SAPI-USED-IP-WEIGHT-1M (budget sapi, limit 12,000) and X-MBX-USED-WEIGHT-1M "
            "(budget api, limit 6,000; fapi and dapi, the futures hosts, 2,400 each) as last "
            "reported by Binance, per host. The exporter pauses at its soft limit (80 % by "
            "default).",
            [target("max by (host, budget) (binance_margin_api_ip_weight_used_1m)",
                    "{{host}} {{budget}}"),
             target('max by (host) (binance_margin_api_ip_weight_used_1m{budget="sapi"}) * 0 '
                    '+ 12000', "{{host}} sapi limit")],
            w=16, h=7, unit="short",
            overrides=[{"matcher": {"id": "byRegexp", "options": ".*limit$"},
                        "properties": [{"id": "color", "value": {
                            "mode": "fixed", "fixedColor": "red"}}]}])
    b.panel("gauge", "Share of the IP weight limit",
            "Used /sapi IP weight as a share of Binance's 12,000 per minute, per host.",
            [target('max by (host) (binance_margin_api_ip_weight_used_1m{budget="sapi"}) '
                    '/ 12000', "{{host}}")], w=8, h=7,
            unit="percentunit", defaults={"min": 0, "max": 1, "thresholds": {
                "mode": "absolute", "steps": [{"color": "green", "value": None},
                                              {"color": "orange", "value": 0.6},
                                              {"color": "red", "value": 0.8}]}},
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                       "values": False}})
    b.panel("timeseries", "Exporter memory",
            "Resident memory of the exporter process.",
            [target('process_resident_memory_bytes{job=~"binance-margin.*"}',
                    "{{instance}}")], w=16, h=7, unit="bytes")
    return dashboard("binance-margin-exporter", "Binance margin — exporter health",
                     "Is binance-margin-exporter working, and how close is it to Binance's "
                     "request limits?", b, with_asset=False)


DASHBOARDS = {
    "binance-margin-overview.json": overview,
    "binance-margin-exporter.json": health,
}


def render(make: Any) -> str:
    return json.dumps(make(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    for name, make in DASHBOARDS.items():
        (ROOT / "grafana" / name).write_text(render(make), encoding="utf-8")
        print(f"wrote grafana/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
