"""Answers recorded from the live API by users of other libraries (tests/fixtures/captures/, a
copy of the steering repo's shared/captures/): each parses, and every value comes out exactly,
through the exporter's own parsers and families."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from binance_margin_exporter.binance.cross import parse_account
from binance_margin_exporter.binance.interest import parse_rates
from binance_margin_exporter.binance.isolated import parse_isolated_account
from binance_margin_exporter.binance.portfolio import (
    ACCOUNT_FIELDS,
    BALANCE_FIELDS,
    Portfolio,
    parse_portfolio_account,
    parse_portfolio_balances,
)
from binance_margin_exporter.binance.prices import parse_prices
from binance_margin_exporter.collectors.account_fetch import AccountCollector
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.isolated import IsolatedCollector, IsolatedSource
from binance_margin_exporter.collectors.portfolio import PortfolioFamilies, PortfolioSource
from tests.support.exporters import Scraper, sample_values
from tests.support.paths import FIXTURES, ROOT
from tests.support.pool import EXECUTOR

CAPTURES = FIXTURES / "captures"
SHARED = ROOT.parent / "shared" / "captures"


def PortfolioCollector(sources):
    return AccountCollector(sources, lambda scrape: PortfolioFamilies())


def capture(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())


def captures_of(endpoint: str) -> list[Path]:
    return sorted(p for p in CAPTURES.glob("*.json")
                  if json.loads(p.read_text())["endpoint"] == endpoint)


class Key:
    timeout = 5.0

    def auth_backoff_until(self) -> float:
        return 0.0


def test_every_capture_is_a_fixture_here():
    """Each capture of shared/captures/ is copied here (the same bytes, where the steering
    repo's shared/ stands beside this one) and read by a test below."""
    names = {p.name for p in CAPTURES.glob("*.json")}
    assert len(names) == 11
    if SHARED.is_dir():
        assert {p.name for p in SHARED.glob("*.json")} == names
        for name in names:
            assert (SHARED / name).read_bytes() == (CAPTURES / name).read_bytes(), name
    read = {p.name for endpoint in ("GET /sapi/v1/margin/account",
                                    "GET /sapi/v1/margin/isolated/account",
                                    "GET /sapi/v1/margin/next-hourly-interest-rate",
                                    "GET /papi/v1/account", "GET /papi/v1/balance",
                                    "GET /api/v3/ticker/price")
            for p in captures_of(endpoint)}
    errors = {n for n in names if n.startswith("error_")}
    assert read | errors == names


def test_the_legacy_cross_account_parses_exactly():
    body = capture("cross_account_ccxt_comment.json")["body"]
    account = parse_account(body)
    assert account.margin_level == 999.0  # the no-liability placeholder, as sent
    assert (account.total_asset_btc, account.total_liability_btc,
            account.total_net_asset_btc) == (0.0, 0.0, 0.0)
    assert (account.transfer_enabled, account.trade_enabled, account.borrow_enabled) == (
        True, True, True)
    assert account.account_type is None and account.created is None
    assert account.collateral_margin_level is None
    assert [a.asset for a in account.assets] == ["MATIC", "VET", "USDT"]
    assert all(a.is_zero for a in account.assets)


@pytest.mark.parametrize("path", captures_of("GET /sapi/v1/margin/isolated/account"),
                         ids=lambda p: p.stem)
def test_isolated_pairs_parse_and_render_exactly(path):
    body = json.loads(path.read_text())["body"]
    account = parse_isolated_account(body)
    (raw,) = body["assets"]
    (pair,) = account.pairs
    for attr, key in [("margin_level", "marginLevel"), ("margin_ratio", "marginRatio"),
                      ("index_price", "indexPrice"), ("liquidate_price", "liquidatePrice"),
                      ("liquidate_rate", "liquidateRate")]:
        assert getattr(pair, attr) == float(raw[key]), key
    assert (pair.margin_level_status, pair.enabled) == (raw["marginLevelStatus"], raw["enabled"])
    source = IsolatedSource("cap", Key(), Cached("cap", lambda d: account, EXECUTOR, ttl=10))
    values = sample_values(Scraper(IsolatedCollector([source])).text())
    for side in ("baseAsset", "quoteAsset"):
        labels = (("account", "cap"), ("asset", raw[side]["asset"]), ("symbol", raw["symbol"]))
        for key, suffix in [("free", "free"), ("borrowed", "borrowed"), ("netAsset", "net"),
                            ("totalAsset", "total"), ("netAssetOfBtc", "net_btc")]:
            assert values[(f"binance_margin_isolated_asset_{suffix}", labels)] == float(
                raw[side][key])
    status = (("account", "cap"), ("status", raw["marginLevelStatus"]),
              ("symbol", raw["symbol"]))
    assert values[("binance_margin_isolated_status", status)] == 1.0


def test_a_ten_decimal_rate_parses_exactly():
    body = capture("next_hourly_home_fixture.json")["body"]
    assert parse_rates(body) == {"HOME": 0.0000994603}


def test_the_uni_mmr_placeholder_is_exported_as_sent():
    body = capture("papi_account_no_positions_sentinel.json")["body"]
    account = parse_portfolio_account(body)
    assert account.uni_mmr == 99999999.0 and account.maint_margin == 0.0
    assert account.status is None and account.actual_equity is None
    source = PortfolioSource("pm", Key(), Cached(
        "pm", lambda d: Portfolio(account, ()), EXECUTOR, ttl=10))
    values = sample_values(Scraper(PortfolioCollector([source])).text())
    acc = (("account", "pm"),)
    assert values[("binance_margin_portfolio_uni_mmr", acc)] == 99999999.0
    for attr, key in ACCOUNT_FIELDS:
        if key in body:
            assert getattr(account, attr) == float(body[key]), key


def test_a_recorded_portfolio_balance_parses_exactly():
    body = capture("papi_balance_ccxt_static_1.json")["body"]
    balances = parse_portfolio_balances(body)
    assert [b.asset for b in balances] == [entry["asset"] for entry in body]
    for balance, entry in zip(balances, body, strict=True):
        assert balance.values == tuple(float(entry[key]) for _, key in BALANCE_FIELDS)


def test_a_recorded_ticker_parses_exactly_and_a_zero_price_is_no_route():
    body = capture("ticker_price_mql5_2024.json")["body"]
    prices = parse_prices(body)
    assert prices.by_symbol["BTCUSDT"] == 95566.46 and prices.by_symbol["ETHBTC"] == 0.03313
    assert "BCCBTC" not in prices.by_symbol  # delisted, priced 0
    assert prices.usdt("BCC") is None
    assert len(prices.by_symbol) == len(body) - 1
