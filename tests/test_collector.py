"""The collector: golden expositions, exact values, caching and the fast renderer."""

from __future__ import annotations

import math
import os
import random
import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.binance import MarginAccount, UpstreamError, UserAsset, parse_account
from exporter.collector import ERROR_REASONS, AccountScraper, MarginCollector
from exporter.exposition import Family, go_float, render
from tests.helpers import (
    GOLDEN,
    FakeSource,
    StepClock,
    fixture_json,
    promtool_check_metrics,
    sample_values,
)

WALL = 1_700_000_000.0


def collector_for(source, *, name="main", ttl=10.0, **kw) -> MarginCollector:
    scraper = AccountScraper(name, source, ttl=ttl, monotonic=StepClock(), wall=lambda: WALL)
    return MarginCollector([scraper], version="0.0.0-test", **kw)


def check_golden(name: str, body: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(body)
    assert body.decode() == path.read_text(), f"{name} differs; UPDATE_GOLDEN=1 rewrites it"


def test_golden_docs_example():
    body = collector_for(FakeSource()).render()
    check_golden("docs_example.prom", body)
    promtool_check_metrics(body)


def test_golden_failed_fetch():
    source = FakeSource(UpstreamError("http", "GET /sapi/v1/margin/account: HTTP 503"))
    body = collector_for(source).render()
    check_golden("failed_fetch.prom", body)
    promtool_check_metrics(body)


def test_every_value_matches_the_upstream_json():
    raw = fixture_json("account_docs_example.json")
    values = sample_values(collector_for(FakeSource(), include_zero_assets=True).render().decode())
    acc = (("account", "main"),)
    for field, metric in [("marginLevel", "binance_margin_level"),
                          ("collateralMarginLevel", "binance_margin_collateral_level"),
                          ("totalAssetOfBtc", "binance_margin_total_asset_btc"),
                          ("totalLiabilityOfBtc", "binance_margin_total_liability_btc"),
                          ("totalNetAssetOfBtc", "binance_margin_total_net_asset_btc"),
                          ("TotalCollateralValueInUSDT",
                           "binance_margin_total_collateral_value_usdt"),
                          ("totalOpenOrderLossInUSDT",
                           "binance_margin_total_open_order_loss_usdt")]:
        assert values[(metric, acc)] == float(raw[field]), metric
    for asset in raw["userAssets"]:
        labels = (("account", "main"), ("asset", asset["asset"]))
        for field, suffix in [("free", "free"), ("locked", "locked"), ("borrowed", "borrowed"),
                              ("interest", "interest"), ("netAsset", "net")]:
            assert values[(f"binance_margin_asset_{suffix}", labels)] == float(asset[field])


def test_failed_fetch_shows_no_account_values_even_after_a_success():
    source = FakeSource()
    collector = collector_for(source, ttl=0)
    assert "binance_margin_level{" in collector.render().decode()
    source.account = UpstreamError("timeout", "no answer")
    text = collector.render().decode()
    assert 'binance_margin_up{account="main"} 0.0' in text
    assert "binance_margin_level{" not in text and "binance_margin_asset_" not in text
    assert 'binance_margin_scrape_errors_total{account="main",reason="timeout"} 1.0' in text
    # the time of the last good fetch stays, for staleness alerts
    assert f'binance_margin_last_success_timestamp_seconds{{account="main"}} {go_float(WALL)}' \
        in text


def test_error_reasons_start_at_zero():
    values = sample_values(collector_for(FakeSource()).render().decode())
    for reason in ERROR_REASONS:
        key = ("binance_margin_scrape_errors_total", (("account", "main"), ("reason", reason)))
        assert values[key] == 0.0


def test_unexpected_exception_is_counted_not_raised():
    source = FakeSource(KeyError("surprise"))
    text = collector_for(source).render().decode()
    assert 'binance_margin_up{account="main"} 0.0' in text
    assert 'reason="internal"} 1.0' in text


def test_zero_assets_are_left_out_by_default():
    text = collector_for(FakeSource()).render().decode()
    assert 'asset="BNB"' in text and 'asset="BTC"' in text
    assert 'asset="ETH"' not in text and 'asset="USDT"' not in text


def test_include_zero_assets():
    text = collector_for(FakeSource(), include_zero_assets=True).render().decode()
    assert 'asset="ETH"' in text and 'asset="USDT"' in text


def test_allow_list_shows_exactly_those_assets_zero_or_not():
    text = collector_for(FakeSource(), assets=["USDT", "BNB"]).render().decode()
    assert 'asset="USDT"' in text and 'asset="BNB"' in text
    assert 'asset="BTC"' not in text


def test_sold_asset_disappears():
    source = FakeSource()
    collector = collector_for(source, ttl=0)
    assert 'asset="BNB"' in collector.render().decode()
    account = source.account
    source.account = MarginAccount(**{**{f: getattr(account, f) for f in account.__slots__},
                                      "assets": account.assets[:1]})
    assert 'asset="BNB"' not in collector.render().decode()


def test_missing_optional_fields_drop_only_their_metric():
    raw = fixture_json("account_docs_example.json")
    for key in ("collateralMarginLevel", "accountType", "transferInEnabled"):
        del raw[key]
    text = collector_for(FakeSource(parse_account(raw))).render().decode()
    assert "binance_margin_collateral_level" not in text
    assert "binance_margin_account_info" not in text
    assert "binance_margin_transfer_in_enabled" not in text
    assert 'binance_margin_up{account="main"} 1.0' in text
    assert "binance_margin_transfer_out_enabled" in text


def test_account_type_pro():
    raw = fixture_json("account_docs_example.json") | {"accountType": "MARGIN_2"}
    text = collector_for(FakeSource(parse_account(raw))).render().decode()
    assert 'account_type="MARGIN_2",mode="pro"' in text


def test_no_liability_placeholder_is_exported_as_is():
    raw = fixture_json("account_docs_example.json") | {"marginLevel": "999.00000000"}
    text = collector_for(FakeSource(parse_account(raw))).render().decode()
    assert 'binance_margin_level{account="main"} 999.0' in text


def test_thresholds_failure_never_makes_the_account_down():
    source = FakeSource(coeff=UpstreamError("http", "HTTP 500"))
    text = collector_for(source).render().decode()
    assert 'binance_margin_up{account="main"} 1.0' in text
    assert "binance_margin_level_threshold" not in text


def test_thresholds_are_fetched_at_most_every_five_minutes():
    source = FakeSource()
    mono = StepClock(step=0.0)
    scraper = AccountScraper("main", source, ttl=0, monotonic=mono, wall=lambda: WALL)
    for _ in range(5):
        scraper.get()
    assert source.coeff_calls == 1
    mono.now += 301
    scraper.get()
    assert source.coeff_calls == 2


def test_cache_serves_within_ttl_then_fetches_again():
    source = FakeSource()
    mono = StepClock(step=0.0)
    scraper = AccountScraper("main", source, ttl=10, monotonic=mono, wall=lambda: WALL)
    scraper.get()
    mono.now += 9.9
    scraper.get()
    assert source.calls == 1
    mono.now += 0.2
    scraper.get()
    assert source.calls == 2


def test_concurrent_scrapes_share_one_fetch():
    source = FakeSource(delay=0.3)
    collector = MarginCollector([AccountScraper("main", source, ttl=0)])
    barrier = threading.Barrier(64)
    bodies = []

    def scrape():
        barrier.wait()
        bodies.append(collector.render())

    threads = [threading.Thread(target=scrape) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert source.calls == 1
    assert len(bodies) == 64 and all(b'binance_margin_up{account="main"} 1.0' in b for b in bodies)


def test_accounts_are_fetched_in_parallel():
    sources = [FakeSource(delay=0.4) for _ in range(8)]
    collector = MarginCollector([AccountScraper(f"a{i}", s, ttl=0) for i, s in enumerate(sources)])
    # Correctness, not timing: all eight fetches must be under way at the same moment.
    in_flight, peak, lock = [0], [0], threading.Lock()
    original = FakeSource.get_account

    def counting(self):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            return original(self)
        finally:
            with lock:
                in_flight[0] -= 1

    for s in sources:
        s.get_account = counting.__get__(s)
    text = collector.render().decode()
    assert peak[0] == 8
    assert text.count("binance_margin_up{") == 8
    collector.close()


def test_registry_collect_matches_fast_render():
    collector = collector_for(FakeSource())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    assert generate_latest(registry) == collector_for(FakeSource()).render()


HOSTILE = ['quote"d', "back\\slash", "new\nline", "Ünïcödé", "émoji🚀", "", "a\\\"b\\n"]


def random_account(rng: random.Random, n: int) -> MarginAccount:
    def value() -> float:
        return rng.choice([0.0, 1e-08, 123456789.12345678, -42.5, rng.uniform(-1e9, 1e9),
                           float(f"{rng.uniform(0, 100):.8f}"), 1e22, 999.0, 0.1 + 0.2])

    names = {rng.choice(HOSTILE) + str(i) for i in range(n)}
    assets = tuple(UserAsset(a, *(value() if rng.random() < 0.5 else 0.0 for _ in range(5)))
                   for a in names)
    return MarginAccount(value(), value(), value(), value(), assets, value(), None, value(),
                         True, False, None, True, rng.choice(["MARGIN_1", "MARGIN_2", "X\"Y"]))


@pytest.mark.parametrize("seed", range(20))
def test_fast_render_is_byte_identical_to_generate_latest(seed):
    rng = random.Random(seed)
    sources = [FakeSource(random_account(rng, rng.randint(0, 60))) for _ in range(3)]
    scrapers = [AccountScraper(rng.choice(HOSTILE) + str(i), s, monotonic=StepClock(),
                               wall=lambda: WALL) for i, s in enumerate(sources)]
    collector = MarginCollector(scrapers, include_zero_assets=rng.random() < 0.5)
    families = collector.families()
    registry = CollectorRegistry(auto_describe=False)

    class Fixed:
        def collect(self):
            from exporter.exposition import to_metric

            return [to_metric(f) for f in families]

    registry.register(Fixed())
    assert render(families) == generate_latest(registry)
    collector.close()


def test_hostile_names_are_escaped_and_parse_back():
    account = MarginAccount(1.5, 1.0, 1.0, 0.0, tuple(UserAsset(n, 1.0, 0, 0, 0, 1.0)
                                                      for n in HOSTILE))
    body = collector_for(FakeSource(account), name='acc"\\\nünï').render()
    values = sample_values(body.decode())
    for name in HOSTILE:
        key = ("binance_margin_asset_free", (("account", 'acc"\\\nünï'), ("asset", name)))
        assert values[key] == 1.0
    promtool_check_metrics(body)


@pytest.mark.parametrize("value", [0, 7, 0.0, -0.0, 1e-08, 1.5, 1234567.0, 12345678.9, 1e22, -1e22,
                                   math.inf, -math.inf, math.nan, 999.0, 0.30000000000000004])
def test_go_float_matches_prometheus_client(value):
    from prometheus_client.utils import floatToGoString

    assert go_float(value) == floatToGoString(value)


def test_family_rejects_unsorted_labels_and_bad_counter_names():
    with pytest.raises(ValueError):
        Family("x", "gauge", "h", ("b", "a"))
    with pytest.raises(ValueError):
        Family("x_errors", "counter", "h")


def test_unchanged_balances_reuse_text_and_changed_ones_do_not():
    source = FakeSource()
    collector = collector_for(source, ttl=0)
    first = collector.render()
    assert collector.render() == first
    account = source.account
    bnb = account.assets[1]._replace(interest=0.5)
    source.account = MarginAccount(**{**{f: getattr(account, f) for f in account.__slots__},
                                      "assets": (account.assets[0], bnb)})
    changed = collector.render().decode()
    assert 'binance_margin_asset_interest{account="main",asset="BNB"} 0.5' in changed
    other = collector_for(FakeSource(), name="other", ttl=0).render().decode()
    assert 'account="main"' not in other and 'account="other"' in other
