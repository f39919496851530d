"""The idioms every product's families share: a metric table turned into families (kept as
samples with their lines while the inputs stay the same: :class:`Memo`), and a state set."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.web.exposition import Lined, lined

Row = tuple[str, str, str]  # (the model's attribute, the metric's name, its HELP)
Lines = tuple[tuple[Lined, ...], ...]  # kept samples of several families, family by family


class Memo:
    """What one account's families got from inputs that did not change, kept with those
    inputs: between two fetches nothing changes, and a sub-account's detail is minutes old.
    Each part (a name) is made (and its lines written) once, then reused while its source is
    the same objects (or equal values); a changed source makes it anew. The samples are kept
    in tuples, not lists: the collector of cycles stops tracking a tuple of what it does not
    track, and walks every list at every full collection."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[Any, Any]] = {}

    def get(self, part: str, source: Any, make: Callable[..., Any], *args: Any) -> Any:
        """``make(*args)``, or what it made from the same ``source`` last time."""
        kept = self._kept.get(part)
        if kept is not None and (kept[0] is source or kept[0] == source):
            return kept[1]
        made = make(*args)
        self._kept[part] = (source, made)
        return made

    def add(self, family: Metric, names: Sequence[str], labels: Sequence[str],
            value: float) -> None:
        """``family.add_metric(labels, value)`` (``names``: its label names), the sample
        kept while the labels and the value stay the same."""
        family.samples.extend(self.get(
            family.name, (tuple(labels), value), _one_line, family, names, labels, value))


def _one_line(family: Metric, names: Sequence[str], labels: Sequence[str],
              value: float) -> tuple[Lined]:
    name = f"{family.name}_total" if family.type == "counter" else family.name
    return (lined(name, tuple(names), labels, float(value)),)


def gauge_lines(names: Sequence[str], labels: Sequence[str],
                rows: Iterable[tuple[Sequence[str], Sequence[float | None]]],
                ) -> Lines:
    """Samples of ``len(names)`` families, each row's label values and values (None: no
    sample) with their lines: what :meth:`Table.extend` takes (tuples, see :class:`Memo`)."""
    made: list[list[Lined]] = [[] for _ in names]
    label_names = tuple(labels)
    for values_of_labels, values in rows:
        for samples, name, value in zip(made, names, values, strict=True):
            if value is not None:
                samples.append(lined(name, label_names, values_of_labels, 1.0 * value))
    return tuple(map(tuple, made))


class Table:
    """One gauge family per row of a metric table, all with the same labels. A value of
    ``None`` (Binance did not send it) adds no sample; a flag is 1 or 0."""

    def __init__(self, rows: Sequence[Row], labels: Sequence[str]) -> None:
        self.rows = tuple(rows)
        self.labels = tuple(labels)
        self.families = [GaugeMetricFamily(name, help_, labels=list(labels))
                         for _, name, help_ in rows]

    def add(self, labels: Sequence[str], model: Any) -> None:
        for (attr, _, _), family in zip(self.rows, self.families, strict=True):
            value = getattr(model, attr)
            if value is None:
                continue
            if isinstance(value, bool):
                value = 1.0 if value else 0.0
            family.add_metric(labels, value)

    def lines(self, models: Iterable[tuple[Sequence[str], Any]]) -> Lines:
        """What :meth:`add` would add for each (labels, model), as kept samples."""
        attrs = [attr for attr, _, _ in self.rows]
        return gauge_lines([f.name for f in self.families], self.labels,
                           ((labels, [getattr(model, attr) for attr in attrs])
                            for labels, model in models))

    def extend(self, made: Sequence[Sequence[Lined]]) -> None:
        for family, samples in zip(self.families, made, strict=True):
            family.samples.extend(samples)


def states(current: str, known: Sequence[str]) -> Iterator[tuple[str, float]]:
    """A state set: every known state, and a new one Binance may add as it spells it; 1 for
    the current one."""
    for state in known if current in known else (*known, current):
        yield state, 1.0 if state == current else 0.0


def non_empty(families: Iterable[Metric]) -> Iterator[Metric]:
    """The families that have samples (an empty family is left out of the exposition)."""
    return (family for family in families if family.samples)
