"""collectors/interest.py and binance/interest.py: the hourly rates of borrowed assets, fetched
in the background at most hourly, and at once for a newly borrowed asset."""

from __future__ import annotations

import time

import requests_mock

from binance_margin_exporter.binance.interest import (
    NEXT_HOURLY_RATE_PATH,
    fetch_next_hourly_rates,
    parse_rates,
)
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cross import CrossCollector
from binance_margin_exporter.collectors.interest import (
    NEW_ASSETS_SECONDS,
    RATES_REFRESH_SECONDS,
    HourlyRates,
)
from tests.support.clocks import StepClock
from tests.support.exporters import Scraper, sample_values
from tests.support.fakes import FakeSource, cross_with_rates
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json
from tests.support.pool import EXECUTOR
from tests.support.waiting import wait_idle

RATES = parse_rates(fixture_json("next_hourly_interest_rate_docs_example.json"))


def test_rates_docs_example_parses_exactly():
    assert RATES == {"BTC": 0.00000571, "ETH": 0.00000578}


def test_rates_are_fetched_hourly_and_at_once_for_a_newly_borrowed_asset():
    calls: list[list[str]] = []
    source = FakeSource()
    mono = StepClock(step=0.0)
    account = cross_with_rates(source, {"BNB": 0.0000041, "BTC": 0.00000571}, monotonic=mono,
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
    # BTC is borrowed now (5 minutes after the last call): asked 10 minutes after it, not at
    # the next hour, and not at once either (100 weight a call)
    btc = source.account.assets[0]
    source.account = source.account.__class__(
        **{f: getattr(source.account, f) for f in source.account.__slots__} | {
            "assets": (btc.__class__(btc.asset, btc.free, 0.0, 0.5, 0.0, btc.net_asset - 0.5),
                       *source.account.assets[1:])})
    scraper.render()
    wait_idle(account.rates.cached)
    assert calls == [["BNB"]]
    mono.now = 1000.0 + NEW_ASSETS_SECONDS
    scraper.render()
    wait_idle(account.rates.cached)
    assert calls == [["BNB"], ["BNB", "BTC"]]
    text = scraper.render().decode()
    assert 'interest_rate_hourly{account="main",asset="BTC"} 5.71e-06' in text
    mono.now += RATES_REFRESH_SECONDS + 1
    scraper.render()
    wait_idle(account.rates.cached)
    assert len(calls) == 3  # and hourly after that


def test_assets_borrowed_one_after_another_are_asked_together_at_most_every_ten_minutes():
    """A borrowed set that changes every minute costs one 100-weight call per 10 minutes, for
    every asset borrowed since, not one per change."""
    calls: list[list[str]] = []
    mono = StepClock(step=0.0)
    rates = HourlyRates("rates of main", FakeSource(), EXECUTOR, isolated=False,
                        fetch=lambda client, assets, *, isolated, deadline:
                        calls.append(list(assets)) or dict.fromkeys(assets, 1e-6),
                        monotonic=mono)
    borrowed = ["A"]
    for minute in range(31):
        if minute and minute % 3 == 0:
            borrowed.append(f"N{minute}")
        rates.latest(borrowed)
        wait_idle(rates.cached)
        mono.now += 60
    assert len(calls) == 4  # at 0, 10, 20 and 30 minutes
    assert calls[1] == ["A", "N3", "N6", "N9"]
    assert rates.latest(borrowed) == dict.fromkeys(sorted(borrowed), 1e-6)


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
