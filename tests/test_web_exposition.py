"""The /metrics encoders write exactly what ``prometheus_client`` writes, in both formats."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from binance_margin_exporter.web import exposition
from tests.support.paths import GOLDEN

ODD_VALUES = [0.0, -0.0, 1.0, 1, 0.1, 1e-8, 123456.5, 999999.9, 1e6, 1234567.0, -1234567.0,
              1e15, 1e16, 1.5e300, -1e300, 5e-324, math.inf, -math.inf, math.nan, 2**60, True]
ODD_LABELS = ["main", "a@b.example", 'quo"te', "back\\slash", "new\nline", "ünï€ødé",
              "?", "", "x" * 300, "tab\tand\rcr"]


class Registry:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def both(families: list[Metric], **kw) -> None:
    """Our text and OpenMetrics against prometheus_client's, with the same escaping."""
    escaping = kw.get("escaping", openmetrics.UNDERSCORES)
    assert exposition.render(families, escaping=escaping) == \
        generate_latest(Registry(families), escaping=escaping)
    assert exposition.render(families, om=True, **kw) == \
        openmetrics.generate_latest(Registry(families), **kw)


def odd_families() -> list[Metric]:
    gauge = GaugeMetricFamily("odd_gauge", 'HELP with \\ and \n and "quotes"',
                              labels=["account", "asset", "a_b"])
    for i, value in enumerate(ODD_VALUES):
        gauge.add_metric([ODD_LABELS[i % len(ODD_LABELS)], f"A{i}", "z"], value)
    counter = CounterMetricFamily("odd_errors", "Errors.", labels=["reason"])
    for label in ODD_LABELS:
        counter.add_metric([label], 3.0)
    bare = GaugeMetricFamily("odd_bare", "No labels.", value=7.25)
    empty = GaugeMetricFamily("odd_empty", "No samples.", labels=["account"])
    return [gauge, counter, bare, empty]


def test_plain_families_with_odd_values_and_labels_are_written_as_the_library_writes_them():
    both(odd_families())


def test_plain_families_take_the_fast_path(monkeypatch):
    """Only a family that is not plain goes to the library (which costs five times as much)."""
    library = []
    monkeypatch.setattr(exposition, "_library", lambda family, *a: library.append(family))
    exposition.render(odd_families())
    exposition.render(odd_families(), om=True)
    assert library == []


@pytest.mark.parametrize("escaping", [openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8,
                                      openmetrics.DOTS, openmetrics.VALUES])
def test_every_escaping_gives_the_library_s_output(escaping):
    both(odd_families(), escaping=escaping)


def test_families_that_are_not_plain_are_left_to_the_library():
    created = CounterMetricFamily("odd_started", "With a created time.", labels=["a"],
                                  created=1_700_000_000.5)
    created.add_metric(["x"], 1.0, created=1_700_000_000.25)
    stamped = GaugeMetricFamily("odd_stamped", "A timestamp.", labels=["a"])
    stamped.add_metric(["x"], 1.0, timestamp=1_700_000_000.5)
    unit = GaugeMetricFamily("odd_size_bytes", "A unit.", unit="bytes", value=3.0)
    info = InfoMetricFamily("odd_build", "Info.", value={"version": "1"})
    states = StateSetMetricFamily("odd_state", "States.", value={"a": True, "b": False})
    histogram = HistogramMetricFamily("odd_latency", "A histogram.",
                                      buckets=[("1.0", 2.0), ("+Inf", 3.0)], sum_value=4.0)
    dotted = GaugeMetricFamily("odd.dotted", "A name outside the legacy set.", value=1.0)
    mixed = GaugeMetricFamily("odd_mixed", "Samples with different labels.", labels=["a"])
    mixed.add_metric(["x"], 1.0)
    mixed.samples.append(mixed.samples[0]._replace(labels={"b": "y"}))
    wider = GaugeMetricFamily("odd_wider", "A sample with one more label.", labels=["a"])
    wider.add_metric(["x"], 1.0)
    wider.samples.append(wider.samples[0]._replace(labels={"a": "y", "b": "z"}))
    renamed = GaugeMetricFamily("odd_renamed", "A sample of another name.", value=1.0)
    renamed.samples[0] = renamed.samples[0]._replace(name="odd_renamed_sum")
    odd_label = GaugeMetricFamily("odd_label", "A label name outside the legacy set.",
                                  labels=["a.b"])
    odd_label.add_metric(["x"], 1.0)
    for escaping in (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8):
        both([created, stamped, unit, info, states, histogram, dotted, mixed, wider, renamed,
              odd_label, *odd_families()], escaping=escaping)


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.prom")))
def test_every_golden_file_reads_back_into_the_same_text_in_both_encoders(name):
    text = (GOLDEN / name).read_text()
    families = list(text_string_to_metric_families(text))
    assert exposition.render(families).decode() == text
    both(families)


@pytest.mark.parametrize(("accept", "om", "content_type"), [
    ("", False, "text/plain; version=0.0.4; charset=utf-8"),
    ("text/plain", False, "text/plain; version=0.0.4; charset=utf-8"),
    ("application/openmetrics-text; version=1.0.0", True,
     "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"),
    ("application/openmetrics-text", True,
     "application/openmetrics-text; version=1.0.0; charset=utf-8"),
])
def test_the_format_is_negotiated_as_the_library_does(accept, om, content_type):
    encoder, chosen = exposition.choose(accept)
    assert chosen == content_type
    families = odd_families()
    expected = (openmetrics.generate_latest if om else generate_latest)(Registry(families))
    assert encoder(families) == expected
