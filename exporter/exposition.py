"""Metric families and a fast renderer of the Prometheus text format (version 0.0.4).

``render`` writes the same bytes as ``prometheus_client.generate_latest`` would for the same
families (a test compares the two on random accounts), at a fraction of the cost: label sets are
escaped once per scrape instead of once per sample, and no intermediate objects are built.
``to_metric`` turns a family into a ``prometheus_client`` metric for registry users.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(slots=True)
class Family:
    """One metric family: ``name`` is the exposed name (``_total`` included for counters)."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    labelnames: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The text format lists labels sorted by name; keeping them sorted here lets the
        # renderer join them as they are.
        if list(self.labelnames) != sorted(self.labelnames):
            raise ValueError(f"{self.name}: label names must be sorted")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"{self.name}: a counter's name ends in _total")


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


_repr = float.__repr__


def go_float(value: float) -> str:
    """``prometheus_client.utils.floatToGoString``, without its extra checks."""
    if type(value) is not float:
        value = float(value)
    text = _repr(value)
    last = text[-1]
    if last == "f":
        return "+Inf" if value > 0 else "-Inf"
    if last == "n":
        return "NaN"
    dot = text.find(".")
    if dot > 6 and value > 0:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def render(families: list[Family]) -> bytes:
    out: list[str] = []
    append = out.append
    fmt = go_float
    labels_cache: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}
    for family in families:
        name = family.name
        append(f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} {family.kind}\n")
        names = family.labelnames
        if not names:
            for _, value in family.samples:
                append(f"{name} {fmt(value)}\n")
            continue
        for values, value in family.samples:
            key = (names, values)
            text = labels_cache.get(key)
            if text is None:
                text = ",".join(
                    f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True)
                )
                labels_cache[key] = text
            append(f"{name}{{{text}}} {fmt(value)}\n")
    return "".join(out).encode("utf-8")


def to_metric(family: Family) -> Metric:
    """The same family as a ``prometheus_client`` metric (for ``generate_latest`` and tests)."""
    if family.kind == "counter":
        metric = Metric(family.name[: -len("_total")], family.help, "counter")
    else:
        metric = Metric(family.name, family.help, family.kind)
    names = family.labelnames
    for values, value in family.samples:
        metric.samples.append(Sample(family.name, dict(zip(names, values, strict=True)), value))
    return metric
