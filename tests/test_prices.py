"""binance/prices.py and collectors/prices.py: the parser, the route to a USDT price, values in
USDT (exact products), the shared fetch and its failure."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests_mock

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.interest import parse_rates
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.prices import (
    TICKER_PRICE_PATH,
    Prices,
    fetch_prices,
    parse_prices,
)
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.cross import CrossCollector
from binance_margin_exporter.collectors.isolated import IsolatedCollector
from binance_margin_exporter.collectors.prices import PricesCollector
from tests.support.clocks import StepClock
from tests.support.exporters import Scraper, sample_values
from tests.support.fakes import (
    FakeIsolated,
    FakeSource,
    cross_with_rates,
    fake_account,
    isolated_source,
    prices_collector,
)
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json
from tests.support.pool import EXECUTOR
from tests.support.tools import promtool_check_metrics
from tests.support.waiting import wait_idle

BASE = "https://api.binance.test"
RATES = parse_rates(fixture_json("next_hourly_interest_rate_docs_example.json"))


def test_docs_example_parses_exactly():
    prices = parse_prices(fixture_json("ticker_price_docs_example.json"))
    assert prices.by_symbol == {"LTCBTC": 4.000002, "ETHBTC": 0.079466}


@pytest.mark.parametrize(("asset", "price"), [
    ("USDT", 1.0),                       # USDT is 1
    ("BTC", 10000.0),                    # ASSETUSDT
    ("TRY", 1 / 32.5),                   # 1 / USDTASSET: fiat quoted the other way
    ("BNB", 95.0),                       # ASSETBTC x BTCUSDT
    ("ETH", 794.66),                     # in decimal: 0.079466 x 10000 is 794.66 exactly
    ("DOGE", None),                      # no route: no price, never 0
    ("DELISTED", None),                  # a price of 0 is no price
])
def test_usdt_price_routes(asset, price):
    prices = parse_prices(fixture_json("ticker_price_for_examples.json"))
    assert prices.usdt(asset) == price


def test_a_direct_pair_wins_over_the_others():
    prices = Prices({"ABCUSDT": 2.0, "USDTABC": 4.0, "ABCBTC": 1.0, "BTCUSDT": 10.0})
    assert prices.usdt("ABC") == 2.0
    assert Prices({"USDTABC": 4.0, "ABCBTC": 1.0, "BTCUSDT": 10.0}).usdt("ABC") == 0.25


def test_without_btcusdt_nothing_is_priced_via_btc():
    assert Prices({"ABCBTC": 1.0}).usdt("ABC") is None


@pytest.mark.parametrize("raw", [{}, [{"symbol": "X"}], [{"symbol": "X", "price": "abc"}],
                                 [{"symbol": 7, "price": "1"}], ["x"]])
def test_a_bad_answer_is_invalid_response(raw):
    with pytest.raises(UpstreamError) as info:
        parse_prices(raw)
    assert info.value.reason == "invalid_response"


def test_ticker_is_unsigned_and_counts_on_the_api_weight():
    client = BinanceClient(Upstream(BASE), API_KEY, HmacSigner(SECRET), background=lambda f: f())
    with requests_mock.Mocker() as mock:
        mock.get(BASE + TICKER_PRICE_PATH, json=fixture_json("ticker_price_docs_example.json"),
                 headers={"x-mbx-used-weight-1m": "5000"})
        fetch_prices(client, time.monotonic() + 5)
        request = mock.request_history[0]
    assert "signature" not in request.url and "X-MBX-APIKEY" not in request.headers
    # every symbol that trades: no symbol parameter (requests_mock lower-cases the query)
    assert request.query == "symbolstatus=trading"
    assert client.upstream.gates["api"].last_used_weight == 5000
    assert client.upstream.gate.last_used_weight is None  # not the /sapi budget


def test_golden_all_documented_examples_together(golden):
    """Cross account, isolated account, prices and rates: Binance's documented examples (the
    prices in their documented shape, with the pairs these accounts need)."""
    cross = cross_with_rates(FakeSource(), {"BNB": 0.0000041, **RATES}, monotonic=StepClock(),
                       wall=lambda: 1_700_000_000.0)
    scraper = Scraper(CrossCollector([cross]), IsolatedCollector([isolated_source(FakeIsolated())]),
                      prices_collector())
    scraper.render()
    wait_idle(cross.rates.cached)  # the rates arrive in the background, for the next scrape
    body = scraper.render()
    golden("docs_examples_with_usdt_and_rates.prom", body)
    promtool_check_metrics(body)

def test_usdt_values_are_exact_products():
    values = sample_values(Scraper(CrossCollector([fake_account("main", FakeSource())]),
                                   prices_collector()).render().decode())
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
                   prices_collector(prices)).render().decode()
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


def test_a_halted_pair_never_prices_an_asset_over_http(simulator):
    """Binance's unfiltered ticker lists halted pairs at their last price: the simulator's AVAX
    has a halted AVAXUSDT at half today's price. The exporter asks for trading pairs only, so
    AVAX is priced through AVAXBTC x BTCUSDT."""
    client = BinanceClient(Upstream(simulator.base_url), API_KEY, HmacSigner(SECRET),
                           background=lambda f: f())
    prices = fetch_prices(client, time.monotonic() + 5)
    via_btc = prices.by_symbol["AVAXBTC"] * prices.by_symbol["BTCUSDT"]
    assert "AVAXUSDT" not in prices.by_symbol and "OLDUSDT" not in prices.by_symbol
    assert prices.usdt("AVAX") == pytest.approx(via_btc, rel=1e-12)
    unfiltered = parse_prices(client.get(TICKER_PRICE_PATH, deadline=time.monotonic() + 5))
    assert unfiltered.usdt("AVAX") == pytest.approx(via_btc / 2, rel=1e-6)  # what it was
    assert simulator.counts[TICKER_PRICE_PATH] == 2


def test_every_product_gets_the_scrapes_prices_whatever_its_place_in_the_list():
    """The exporter starts the prices before any product and hands them to every product in
    the scrape it passes (no product sets them for the others)."""
    seen = []

    class Before:
        def start(self, scrape):
            seen.append(scrape.prices())
            return lambda: iter(())

    prices = parse_prices([{"symbol": "BNBUSDT", "price": "600"}])
    collector = PricesCollector(Cached("prices", lambda deadline: prices, EXECUTOR, ttl=10))
    Scraper(Before(), collector).render()
    assert seen == [prices]
