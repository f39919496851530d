"""The encoders of ``/metrics``: ``prometheus_client``'s text and OpenMetrics formats, byte for
byte, at a fraction of their cost.

``prometheus_client`` validates and escapes every name of every sample, and sorts its labels,
for each of the thousands of samples of a scrape. Here a family's names are checked once, its
label order is found once, a label value is escaped once a scrape, and a value is Python's
``repr`` (Go's spelling only where the two differ: from 1e6 up, infinities and NaN). A family
that is not plain (another type than gauge and counter, a unit, a timestamp, an exemplar, a
name outside the legacy character set, samples whose labels differ) and an escaping other than
the default two are left to ``prometheus_client`` itself, so the output stays its output.
``tests/test_web_exposition.py`` compares the two on every golden file and on odd families.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from operator import itemgetter
from typing import Any

from prometheus_client import exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

Encoder = Callable[[Iterable[Metric]], bytes]

LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# the escapings under which a legacy name is written as it is (the others rewrite "_")
PLAIN_ESCAPINGS = (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8)
EOF = "# EOF\n"


# A kept sample: a plain sample (a gauge's, or a counter's ``_total``) with its exposition line,
# the same in both formats, and its series key (its name and label values, for the exporter's
# duplicate check): made once from inputs that did not change, written as it is. It is a plain
# tuple (name, line, key, value, label names) of strings, tuples of strings and a float, which
# the collector of cycles stops tracking (it tracks a tuple subclass for good: 76,000 kept
# samples at 2,000 sub-accounts, walked by every full collection). ``prometheus_client``'s
# samples are named tuples, so ``type(sample) is LINED`` tells the two apart;
# :func:`as_sample` gives the library's form.
Lined = tuple[str, str, tuple[str, ...], float, tuple[str, ...]]
LINED = tuple
ONLY_LINED = {LINED}
NAME, LINE, KEY = itemgetter(0), itemgetter(1), itemgetter(2)


def as_sample(sample: Any) -> Sample:
    """A sample as ``prometheus_client`` reads it (a kept one made into one)."""
    if type(sample) is not LINED:
        return sample  # type: ignore[no-any-return]
    name, _, key, value, names = sample
    return Sample(name, dict(zip(names, key[1:], strict=True)), value)


def as_library(family: Metric) -> Metric:
    """The family as ``prometheus_client`` reads it: a copy with its kept samples made into
    the library's, or the family itself when it has none."""
    if LINED not in set(map(type, family.samples)):
        return family
    family = copy.copy(family)
    family.samples = list(map(as_sample, family.samples))
    return family


def lined(name: str, names: tuple[str, ...], values: Sequence[str], value: float) -> Lined:
    """The sample with its line, written as :func:`render` writes it; ``names``: its label
    names (one tuple shared by the samples of a family), ``values``: their values."""
    count = len(names)
    shown = repr(value) if type(value) is float and -1e6 < value < 1e6 else _value(value)
    if count == 1:
        line = f'{name}{{{names[0]}="{_escape(values[0])}"}} {shown}\n'
    elif count == 0:
        line = f"{name} {shown}\n"
    else:
        inner = ",".join(f'{label}="{_escape(text)}"'
                         for label, text in sorted(zip(names, values, strict=True)))
        line = f"{name}{{{inner}}} {shown}\n"
    if not LEGACY_METRIC_NAME.fullmatch(name) or \
            not all(LEGACY_LABEL_NAME.fullmatch(label) for label in names):
        line = ""  # not plain: the encoder renders it as prometheus_client does
    return (name, line, (name, *values), value, names)


class _One:
    """One family in the shape ``prometheus_client``'s encoders read."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [self.family]


def _escape(value: str) -> str:
    """A label value (or an OpenMetrics HELP) as both formats escape it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _value(value: float) -> str:
    if type(value) is not float:
        value = float(value)
    if -1e6 < value < 1e6:  # also False for NaN
        return repr(value)
    return floatToGoString(value)  # Go's exponents from 1e6 up, +Inf, -Inf, NaN


def _samples(family: Metric, names: tuple[str, ...],
             escaped: dict[str, str]) -> list[str] | None:
    """The sample lines of a plain family; None when one sample is not plain."""
    samples: Any = family.samples
    if not samples:
        return []
    if set(map(type, samples)) == ONLY_LINED:  # kept ones, their lines written
        lines = list(map(LINE, samples))
        if "" not in lines and set(map(NAME, samples)).issubset(names):
            return lines
        return None
    order = sorted(as_sample(samples[0]).labels)
    if not all(LEGACY_LABEL_NAME.fullmatch(name) for name in order):
        return None
    count = len(order)
    heads = [f'{name}="' for name in order]
    lines = []
    append = lines.append
    for sample in samples:
        if type(sample) is LINED:
            if sample[0] not in names or not sample[1]:
                return None
            append(sample[1])
            continue
        name, labels, value = sample[0], sample[1], sample[2]
        if name not in names or sample[3] is not None or sample[4] is not None or \
                (len(sample) > 5 and sample[5] is not None) or len(labels) != count:
            return None  # a timestamp, an exemplar, a native histogram, other labels
        if type(value) is float and -1e6 < value < 1e6:
            shown = repr(value)
        else:
            shown = _value(value)
        if count == 2:  # most families: account and one more
            first, second = labels.get(order[0]), labels.get(order[1])
            if first is None or second is None:
                return None
            one = escaped.get(first)
            if one is None:
                one = escaped[first] = _escape(first)
            two = escaped.get(second)
            if two is None:
                two = escaped[second] = _escape(second)
            append(f'{name}{{{heads[0]}{one}",{heads[1]}{two}"}} {shown}\n')
            continue
        if count == 0:
            append(f"{name} {shown}\n")
            continue
        parts = []
        for head, label in zip(heads, order):  # noqa: B905 - the same length
            raw = labels.get(label)
            if raw is None:
                return None
            text = escaped.get(raw)
            if text is None:
                text = escaped[raw] = _escape(raw)
            parts.append(head + text)
        append(name + "{" + '",'.join(parts) + '"} ' + shown + "\n")
    return lines


def _header(family: Metric, om: bool) -> tuple[str, tuple[str, ...]] | None:
    """A plain family's HELP and TYPE lines and the names its samples may have."""
    name, kind = family.name, family.type
    if kind not in ("gauge", "counter") or family.unit or \
            not LEGACY_METRIC_NAME.fullmatch(name):
        return None
    names = (name,) if kind == "gauge" else (f"{name}_total",)
    if om:
        return f"# HELP {name} {_escape(family.documentation)}\n# TYPE {name} {kind}\n", names
    shown = names[0]
    help_ = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {shown} {help_}\n# TYPE {shown} {kind}\n", names


def render(families: Iterable[Metric], *, om: bool = False,
           escaping: str = openmetrics.UNDERSCORES, version: str = "1.0.0") -> bytes:
    """The families in the text format (``om``: OpenMetrics), as ``prometheus_client``'s
    ``generate_latest`` writes them with this escaping (and OpenMetrics version)."""
    out: list[str] = []
    escaped: dict[str, str] = {}
    plain = escaping in PLAIN_ESCAPINGS
    for family in families:
        header = _header(family, om) if plain else None
        lines = None if header is None else _samples(family, header[1], escaped)
        if header is None or lines is None:
            out.append(_library(family, om, escaping, version))
            continue
        out.append(header[0])
        out.extend(lines)
    if om:
        out.append(EOF)
    return "".join(out).encode("utf-8")


def _library(family: Metric, om: bool, escaping: str, version: str) -> str:
    """One family as ``prometheus_client`` writes it (the formats are family by family)."""
    family = as_library(family)
    if om:
        text = openmetrics.generate_latest(_One(family), escaping=escaping, version=version)
        return text.decode("utf-8")[:-len(EOF)]
    return exposition.generate_latest(_One(family), escaping=escaping).decode("utf-8")


def choose(accept: str) -> tuple[Encoder, str]:
    """The encoder and Content-Type for an ``Accept`` header: ``prometheus_client``'s own
    negotiation, and this module's encoder for the format it chose."""
    encoder, content_type = exposition.choose_encoder(accept)
    func = getattr(encoder, "func", encoder)
    keywords = dict(getattr(encoder, "keywords", {}))
    om = func is openmetrics.generate_latest
    if not om and func is not exposition.generate_latest:
        return lambda families: encoder(_Many(families)), content_type  # pragma: no cover
    return partial(render, om=om, escaping=keywords.get("escaping", openmetrics.UNDERSCORES),
                   version=keywords.get("version", "1.0.0")), content_type


class _Many:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
