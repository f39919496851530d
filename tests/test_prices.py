"""Market prices: the parser, the route to a USDT price, the shared fetch and its failure."""

from __future__ import annotations

import time

import pytest
import requests_mock

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.prices import (
    TICKER_PRICE_PATH,
    Prices,
    fetch_prices,
    parse_prices,
)
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from tests.conftest import API_KEY, SECRET
from tests.helpers import fixture_json

BASE = "https://api.binance.test"


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
    assert request.query == ""  # every symbol: no symbol parameter
    assert client.upstream.gates["X-MBX-USED-WEIGHT-1M"].last_used_weight == 5000
    assert client.upstream.gate.last_used_weight is None  # not the /sapi budget
