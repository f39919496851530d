"""reload.py: a reload never fails a scrape, never forgets a ban, and never lets a broken file
take the watch thread or the running configuration down."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from binance_margin_exporter.config import WebConfig
from binance_margin_exporter.reload import Reloader
from binance_margin_exporter.web.routes import TooSoon
from binance_margin_exporter.wiring import build_exporter, load, warm_up
from tests.support.keys import API_KEY, SECRET


def config_text(simulator, **extra) -> str:
    lines = [f"base_url: {simulator.base_url}", "usdt_values: false", "interest_rates: false",
             *(f"{k}: {v}" for k, v in extra.items()),
             f"accounts: [{{name: main, api_key: {API_KEY}, api_secret: {SECRET}, "
             f"isolated: false}}]"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def reloader_for() -> Iterator[Callable[[Path], Reloader]]:
    """``reloader_for(path)``: a reloader of the configuration at ``path``; the exporter it
    holds at the test's end (the last reload's) is closed then."""
    made: list[Reloader] = []

    def make(path: Path) -> Reloader:
        args = argparse.Namespace(config=str(path), web_config=None, demo=False)
        made.append(Reloader(args, build_exporter(load(str(path), {})), WebConfig()))
        return made[-1]

    yield make
    for reloader in made:
        reloader.built.exporter.close()

def test_a_ban_outlives_a_reload_that_changes_global_settings(simulator, tmp_path,
                                                              reloader_for):
    path = tmp_path / "config.yml"
    path.write_text(config_text(simulator))
    reloader = reloader_for(path)
    first = reloader.built
    url = ("default", simulator.base_url)
    first.upstreams[url].ban(600)
    path.write_text(config_text(simulator, cache_ttl_seconds=3, ip_weight_soft_limit=6000))
    times = simulator.counts["/api/v3/time"]
    assert reloader.reload("test") is None
    after = reloader.built
    assert after.upstreams[url] is first.upstreams[url]
    assert after.upstreams[url].backoff_until() > time.time() + 500
    assert after.upstreams[url].gate.soft_limit == 6000
    warm_up(after)
    assert simulator.counts["/api/v3/time"] == times  # nothing sent while banned


def test_no_scrape_fails_during_a_burst_of_reloads(simulator, tmp_path, reloader_for):
    """Reloads that change the fetch pool (fetch_concurrency) while scrapes run: the pool a
    scrape began on stays open until it is done."""
    path = tmp_path / "config.yml"
    path.write_text(config_text(simulator, cache_ttl_seconds=0, fetch_concurrency=4))
    reloader = reloader_for(path)
    failures: list[BaseException] = []
    scrapes = [0]
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            try:
                families = list(reloader.built.exporter.collect(2.0))
                assert any(f.name == "binance_margin_up" for f in families)
                scrapes[0] += 1
            except BaseException as exc:  # noqa: BLE001 - what a scrape would answer 500 with
                failures.append(exc)

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(20):
            path.write_text(config_text(simulator, cache_ttl_seconds=0,
                                        fetch_concurrency=4 + i % 2 * 4))
            assert reloader.reload("burst") is None
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not failures, repr(failures[:3])
    assert scrapes[0] > 20


def test_an_unexpected_error_in_a_reload_is_a_refusal_not_a_dead_thread(simulator, tmp_path,
                                                                       monkeypatch, reloader_for):
    path = tmp_path / "config.yml"
    path.write_text(config_text(simulator))
    reloader = reloader_for(path)

    def boom(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr("binance_margin_exporter.reload.build_exporter", boom)
    assert reloader.reload("test") == "unexpected KeyError"
    assert reloader.ok is False


def test_post_reload_is_rate_limited_and_answers_generically(simulator, tmp_path,
                                                             reloader_for):
    path = tmp_path / "config.yml"
    path.write_text(config_text(simulator))
    reloader = reloader_for(path)
    path.write_text(f"accounts: [{{name: x, api_secret: {SECRET}}}]\n")
    answer = reloader.request()
    assert answer == Reloader.GENERIC_FAILURE and SECRET not in answer
    path.write_text(config_text(simulator))
    with pytest.raises(TooSoon, match="one reload every 5 s at most") as info:
        reloader.request()
    assert 0 < info.value.retry_after <= Reloader.REQUEST_SECONDS
    reloader._requested_at -= Reloader.REQUEST_SECONDS
    assert reloader.request() is None


def test_a_scrape_that_began_before_a_reload_finishes_on_its_own_pool(simulator, tmp_path,
                                                                      reloader_for):
    path = tmp_path / "config.yml"
    path.write_text(config_text(simulator, cache_ttl_seconds=0, fetch_concurrency=4))
    reloader = reloader_for(path)
    began = reloader.built.exporter  # what a scrape in flight holds
    path.write_text(config_text(simulator, cache_ttl_seconds=0, fetch_concurrency=8))
    assert reloader.reload("test") is None
    assert reloader.built.executor is not began.executor
    families = {f.name: f for f in began.collect(2.0)}
    assert families["binance_margin_up"].samples[0].value == 1.0


def test_a_flood_of_post_reload_answers_429_and_logs_once_a_period(simulator, tmp_path,
                                                                   caplog, reloader_for):
    """2,000 POSTs in 1.6 s answered 500 and logged 2,000 warnings."""
    from tests.support.web import running

    path = tmp_path / "config.yml"
    path.write_text(config_text(simulator))
    reloader = reloader_for(path)
    with running(WebConfig(), reload=reloader.request) as (_, url), \
            requests.Session() as session:
        assert session.post(url + "/-/reload", timeout=10).status_code == 200
        answers = [session.post(url + "/-/reload", timeout=10) for _ in range(300)]
        assert {a.status_code for a in answers} == {429}
        assert all(1 <= int(a.headers["Retry-After"]) <= 5 for a in answers)
        assert answers[0].text == "one reload every 5 s at most\n"
        refused = [r for r in caplog.records if "POST /-/reload refused" in r.getMessage()]
        assert len(refused) == 1
        reloader._requested_at -= Reloader.REQUEST_SECONDS  # the period is over
        assert session.post(url + "/-/reload", timeout=10).status_code == 200
    assert ("300 POST /-/reload refused since the last one accepted (within its 5 s)"
            in caplog.messages)


def test_a_reload_moving_an_account_to_an_unused_egress_keeps_the_hosts_and_builds(tmp_path):
    """The global settings unchanged, an account moved to an egress no account used yet:
    its hosts are made for that egress, the others kept (was a KeyError, "please report
    this", and the reload refused)."""
    egress = ('egress:\n  - {name: b, proxy: "http://127.0.0.1:3128"}\n')
    first, second = tmp_path / "first.yml", tmp_path / "second.yml"
    stays = "  - {name: c, api_key: k, api_secret: s}\n"
    first.write_text(f"base_url: http://127.0.0.1:9\n{egress}accounts:\n{stays}"
                     "  - {name: a, api_key: k, api_secret: s}\n")
    second.write_text(f"base_url: http://127.0.0.1:9\n{egress}accounts:\n{stays}"
                      "  - {name: a, api_key: k, api_secret: s, egress: b}\n")
    before = build_exporter(load(str(first), {}))
    try:
        after = build_exporter(load(str(second), {}), before)
        try:
            assert ("b", "http://127.0.0.1:9") in after.upstreams
            assert after.upstreams[("default", "http://127.0.0.1:9")] is \
                before.upstreams[("default", "http://127.0.0.1:9")]
        finally:
            after.exporter.close()
    finally:
        before.exporter.close()
