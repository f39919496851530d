"""What did not change is not done again: an unchanged answer is not parsed again, an
account's samples made from unchanged inputs are kept with their lines; a change shows at once.
"""

from __future__ import annotations

import gc
import json
import logging

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics import exposition as openmetrics

from binance_margin_exporter.binance import cross, fields
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.collectors.exporter import merged
from binance_margin_exporter.web import exposition
from binance_margin_exporter.wiring import account_config
from tests.support.exporters import built_exporter, sample_values, settings_for
from tests.support.keys import API_KEY, SECRET


def test_the_same_answer_gives_the_same_model_parsed_once():
    parsed = []
    unchanged = fields.Unchanged(lambda raw: parsed.append(raw) or {"n": raw["n"]})
    first = unchanged(b'{"n": 1}', json.loads)
    assert unchanged(b'{"n": 1}', json.loads) is first and len(parsed) == 1
    second = unchanged(b'{"n": 2}', json.loads)
    assert second == {"n": 2} and second is not first and len(parsed) == 2
    assert unchanged(b'{"n": 1}', json.loads) == first and len(parsed) == 3  # only the last


def test_an_answer_that_does_not_parse_raises_every_time_and_keeps_the_last_model():
    def parse(raw):
        return fields.number(raw, "n")

    unchanged = fields.Unchanged(parse)
    assert unchanged(b'{"n": "1.5"}', json.loads) == 1.5
    for _ in range(2):
        with pytest.raises(UpstreamError, match="n: not a decimal number"):
            unchanged(b'{"n": "inf"}', json.loads)
    assert unchanged(b'{"n": "1.5"}', json.loads) == 1.5


@pytest.fixture
def built(simulator, monkeypatch):
    parsed = []

    def counting(raw):
        parsed.append(1)
        return cross_parse(raw)

    cross_parse = cross.parse_account
    monkeypatch.setattr(cross, "parse_account", counting)
    settings = settings_for(simulator, account_config("main", API_KEY, SECRET, isolated=False))
    with built_exporter(settings) as exporter:
        exporter.parsed = parsed
        yield exporter


def families(built) -> dict[str, GaugeMetricFamily]:
    return {f.name: f for f in built.exporter.families(5.0)}


def test_an_unchanged_account_is_parsed_once_and_its_samples_are_kept(simulator, built):
    first = families(built)
    second = families(built)
    assert simulator.counts[cross.ACCOUNT_PATH] == 2 and len(built.parsed) == 1
    for name in ("binance_margin_asset_free", "binance_margin_asset_net_usdt",
                 "binance_margin_level", "binance_margin_scrape_errors"):
        assert first[name].samples and all(
            a is b for a, b in zip(first[name].samples, second[name].samples, strict=True))


def test_a_changed_answer_shows_at_once(simulator, built):
    level = ("binance_margin_level", (("account", "main"),))
    before = sample_values(exposition.render(families(built).values()).decode())
    simulator.account.set_margin_level(1.25)
    after = sample_values(exposition.render(families(built).values()).decode())
    assert len(built.parsed) == 2 and before[level] != 1.25 and after[level] == 1.25


def test_a_failed_fetch_after_kept_samples_is_up_0_and_counted(simulator, built):
    from binance_margin_exporter.demo.simulator import Fault

    families(built)
    simulator.set_fault(Fault(status=503, body=b"busy", paths=(cross.ACCOUNT_PATH,)))
    values = sample_values(exposition.render(families(built).values()).decode())
    acc = (("account", "main"),)
    assert values[("binance_margin_up", acc)] == 0.0
    assert values[("binance_margin_scrape_errors_total", (*acc, ("reason", "http")))] == 1.0
    assert not [k for k in values if k[0] == "binance_margin_asset_free"]


def test_a_kept_series_twice_is_dropped_like_any_other(caplog):
    first = GaugeMetricFamily("binance_margin_up", "h", labels=["account"])
    first.samples.append(exposition.lined("binance_margin_up", ("account",), ("a",), 1.0))
    second = GaugeMetricFamily("binance_margin_up", "h", labels=["account"])
    second.add_metric(["a"], 0.0)  # the same series, not kept: a bug somewhere
    second.samples.append(exposition.lined("binance_margin_up", ("account",), ("b",), 1.0))
    with caplog.at_level(logging.ERROR):
        (family,) = merged([first, second])
    assert [(s.labels, s.value) for s in map(exposition.as_sample, family.samples)] == [
        ({"account": "a"}, 1.0), ({"account": "b"}, 1.0)]
    assert "duplicate series binance_margin_up" in caplog.text
    assert exposition.render([family]) == b"# HELP binance_margin_up h\n# TYPE binance_margin_up " \
        b'gauge\nbinance_margin_up{account="a"} 1.0\nbinance_margin_up{account="b"} 1.0\n'


def test_kept_samples_are_left_alone_by_the_collector_of_cycles(built):
    """A full collection walks every object it tracks: at 2,000 sub-accounts a kept sample of
    a tuple subclass (76,000 of them) made it cost 250 ms. A plain tuple of strings and a
    float, and the tuples keeping them, are untracked at the first collection."""
    families(built)
    kept = [s for f in families(built).values() for s in f.samples
            if type(s) is exposition.LINED]
    for _ in range(3):  # a tuple is untracked at a collection after the tuples it holds are
        gc.collect()
    assert len(kept) > 20 and not [s for s in kept if gc.is_tracked(s)]


class _Registry:
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


@pytest.mark.parametrize("escaping", [openmetrics.DOTS, openmetrics.VALUES])
def test_kept_samples_under_another_escaping_are_written_as_the_library_writes_them(
        built, escaping):
    """Another escaping than the default two leaves every family to ``prometheus_client``,
    which reads a kept sample as one of its own."""
    shown = list(families(built).values())
    assert any(type(s) is exposition.LINED for f in shown for s in f.samples)
    plain = [GaugeMetricFamily(f.name, f.documentation) for f in shown]
    for mine, theirs in zip(shown, plain, strict=True):
        theirs.type = mine.type
        theirs.samples = list(map(exposition.as_sample, mine.samples))
    assert exposition.render(shown, escaping=escaping) == \
        generate_latest(_Registry(plain), escaping=escaping)
