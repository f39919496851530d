"""The cross account in USDT and the cost of borrowing: golden exposition from the documented
examples, the shared price fetch, the hourly rate fetch."""

from __future__ import annotations

import time
from decimal import Decimal

import requests_mock

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.interest import (
    NEXT_HOURLY_RATE_PATH,
    fetch_next_hourly_rates,
    parse_rates,
)
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.prices import parse_prices
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.cross import CrossAccount, CrossCollector
from binance_margin_exporter.collectors.interest import RATES_REFRESH_SECONDS, HourlyRates
from binance_margin_exporter.collectors.isolated import IsolatedCollector
from binance_margin_exporter.collectors.prices import PricesCollector
from tests.conftest import API_KEY, SECRET
from tests.helpers import (
    EXECUTOR,
    FakeSource,
    StepClock,
    fake_account,
    fixture_json,
    promtool_check_metrics,
    sample_values,
)
from tests.test_collector import check_golden
from tests.test_isolated import FakeIsolated, Scraper, prices_product, source_for, wait_idle

RATES = parse_rates(fixture_json("next_hourly_interest_rate_docs_example.json"))


def with_rates(source: FakeSource, rates: dict[str, float], *, monotonic=time.monotonic,
               wall=time.time, calls: list | None = None) -> CrossAccount:
    account = fake_account("main", source, ttl=0, monotonic=monotonic, wall=wall)

    def fetch(client, assets, *, isolated, deadline):
        if calls is not None:
            calls.append(list(assets))
        return {a: rates[a] for a in assets if a in rates}

    return CrossAccount(account.name, source, account.account, account.thresholds,
                        HourlyRates("rates of main", source, EXECUTOR, isolated=False,
                                    fetch=fetch, monotonic=monotonic))


def test_rates_docs_example_parses_exactly():
    assert RATES == {"BTC": 0.00000571, "ETH": 0.00000578}


def test_golden_all_documented_examples_together():
    """Cross account, isolated account, prices and rates: Binance's documented examples (the
    prices in their documented shape, with the pairs these accounts need)."""
    cross = with_rates(FakeSource(), {"BNB": 0.0000041, **RATES}, monotonic=StepClock(),
                       wall=lambda: 1_700_000_000.0)
    scraper = Scraper(CrossCollector([cross]), IsolatedCollector([source_for(FakeIsolated())]),
                      prices_product())
    scraper.render()
    wait_idle(cross.rates.cached)  # the rates arrive in the background, for the next scrape
    body = scraper.render()
    check_golden("docs_examples_with_usdt_and_rates.prom", body)
    promtool_check_metrics(body)


def test_usdt_values_are_exact_products():
    values = sample_values(Scraper(CrossCollector([fake_account("main", FakeSource())]),
                                   prices_product()).render().decode())
    raw = fixture_json("account_docs_example.json")
    bnb = next(a for a in raw["userAssets"] if a["asset"] == "BNB")
    # decimal arithmetic on Binance's strings, rounded once: exact to the last digit
    price = Decimal("0.00950000") * Decimal("10000.00000000")
    key = (("account", "main"), ("asset", "BNB"))
    assert values[("binance_margin_asset_net_usdt", key)] == float(
        Decimal(bnb["netAsset"]) * price) == 203759.1666616
    assert values[("binance_margin_asset_liability_usdt", key)] == float(
        (Decimal(bnb["borrowed"]) + Decimal(bnb["interest"])) * price)
    acc = (("account", "main"),)
    assert values[("binance_margin_total_net_asset_usdt", acc)] == float(
        Decimal(raw["totalNetAssetOfBtc"]) * 10000)
    assert values[("binance_margin_total_liability_usdt", acc)] == 5863.3215
    assert values[("binance_margin_asset_price_usdt", (("asset", "BNB"),))] == float(price)
    assert values[("binance_margin_prices_up", ())] == 1.0


def test_an_asset_with_no_route_has_no_usdt_series_at_all():
    prices = [{"symbol": "BNBUSDT", "price": "600"}]  # no BTCUSDT: BTC has no price
    text = Scraper(CrossCollector([fake_account("main", FakeSource())]),
                   prices_product(prices)).render().decode()
    assert 'binance_margin_asset_net_usdt{account="main",asset="BNB"}' in text
    assert 'asset_net_usdt{account="main",asset="BTC"}' not in text
    assert 'binance_margin_asset_price_usdt{asset="BTC"}' not in text
    assert "binance_margin_total_net_asset_usdt" not in text


def test_a_failed_price_fetch_drops_only_the_usdt_series():
    prices = PricesCollector(Cached("prices", _raise(UpstreamError("http", "HTTP 502")),
                                    EXECUTOR, ttl=0))
    values = sample_values(Scraper(CrossCollector([fake_account("main", FakeSource())]), prices)
                           .render().decode())
    assert values[("binance_margin_up", (("account", "main"),))] == 1.0
    assert values[("binance_margin_prices_up", ())] == 0.0
    assert values[("binance_margin_prices_scrape_errors_total", (("reason", "http"),))] == 1.0
    assert not [k for k in values if "usdt" in k[0] and "collateral" not in k[0]
                and "open_order" not in k[0]]
    assert ("binance_margin_asset_free", (("account", "main"), ("asset", "BNB"))) in values


def _raise(error):
    def fetch(deadline):
        raise error
    return fetch


def test_one_price_fetch_per_interval_for_all_accounts():
    calls = []
    prices = parse_prices(fixture_json("ticker_price_for_examples.json"))

    def fetch(deadline):
        calls.append(1)
        return prices

    mono = StepClock(step=0.0)
    accounts = [fake_account(f"a{i}", FakeSource(), ttl=10, monotonic=mono) for i in range(5)]
    scraper = Scraper(CrossCollector(accounts),
                      PricesCollector(Cached("prices", fetch, EXECUTOR, ttl=10,
                                             monotonic=mono)))
    for _ in range(3):
        scraper.render()
        mono.now += 4
    assert len(calls) == 1  # 5 accounts, 3 scrapes inside 10 s: one call
    mono.now += 10
    scraper.render()
    assert len(calls) == 2


def test_rates_are_fetched_hourly_and_at_once_for_a_newly_borrowed_asset():
    calls: list[list[str]] = []
    source = FakeSource()
    mono = StepClock(step=0.0)
    account = with_rates(source, {"BNB": 0.0000041, "BTC": 0.00000571}, monotonic=mono,
                         calls=calls)
    scraper = Scraper(CrossCollector([account]))
    for _ in range(5):
        scraper.render()
        wait_idle(account.rates.cached)
        mono.now += 60
    assert calls == [["BNB"]]  # the docs account borrows BNB only; once, not every scrape
    values = sample_values(scraper.render().decode())
    key = ("binance_margin_asset_interest_rate_hourly", (("account", "main"), ("asset", "BNB")))
    assert values[key] == 0.0000041
    # BTC is borrowed now: its rate is asked for at once, not at the next hour
    btc = source.account.assets[0]
    source.account = source.account.__class__(
        **{f: getattr(source.account, f) for f in source.account.__slots__} | {
            "assets": (btc.__class__(btc.asset, btc.free, 0.0, 0.5, 0.0, btc.net_asset - 0.5),
                       *source.account.assets[1:])})
    scraper.render()
    wait_idle(account.rates.cached)
    assert calls == [["BNB"], ["BNB", "BTC"]]
    text = scraper.render().decode()
    assert 'interest_rate_hourly{account="main",asset="BTC"} 5.71e-06' in text
    mono.now += RATES_REFRESH_SECONDS + 1
    scraper.render()
    wait_idle(account.rates.cached)
    assert len(calls) == 3  # and hourly after that


def test_rates_are_asked_20_assets_a_call_with_is_isolated():
    client = BinanceClient(Upstream("https://api.binance.test"), API_KEY, HmacSigner(SECRET),
                           background=lambda f: f())
    assets = [f"A{i:02d}" for i in range(25)]
    with requests_mock.Mocker() as mock:
        mock.get("https://api.binance.test/api/v3/time", json={"serverTime": 1})
        mock.get("https://api.binance.test" + NEXT_HOURLY_RATE_PATH,
                 json=[{"asset": "A00", "nextHourlyInterestRate": "0.00000100"}])
        rates = fetch_next_hourly_rates(client, assets, isolated=True,
                                        deadline=time.monotonic() + 5)
        asked = [r for r in mock.request_history if r.path == NEXT_HOURLY_RATE_PATH.lower()]
    assert rates == {"A00": 0.000001}
    assert len(asked) == 2
    assert asked[0].qs["assets"][0].upper().split(",") == assets[:20]
    assert asked[1].qs["assets"][0].upper().split(",") == assets[20:]
    assert all(r.qs["isisolated"] == ["true"] for r in asked)
    assert all("signature" in r.qs for r in asked)
