"""The idioms every product's families share: a metric table turned into families, a state
set, and the families of a fetch (``up``, errors by reason, duration, last success, back-off).

The fetch families are one place for every kind of account (cross, sub-account, Portfolio
Margin), so that the kinds cannot drift apart; the exporter merges families of one name.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.collectors.cache import ERROR_REASONS, Cached, Result
from binance_margin_exporter.collectors.product import KeyState
from binance_margin_exporter.web.exposition import Lined, lined

log = logging.getLogger(__name__)

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


class Fetches:
    """The families of one kind of fetch: ``{prefix}_up`` and ``{prefix}_scrape_errors`` by
    reason; with ``account_details``, also the fetch's duration, its last success and the
    key's back-off (the families every kind of account shares)."""

    def __init__(self, prefix: str, up_help: str, errors_help: str,
                 labels: Sequence[str] = ("account",), *, account_details: bool = False) -> None:
        self.labels = list(labels)
        self.up = GaugeMetricFamily(f"{prefix}_up", up_help, labels=self.labels)
        self.errors = CounterMetricFamily(f"{prefix}_scrape_errors", errors_help,
                                          labels=[*self.labels, "reason"])
        self.details = account_details
        self.duration = GaugeMetricFamily(
            "binance_margin_scrape_duration_seconds",
            "Duration of the last account fetch from Binance.", labels=self.labels)
        self.last_ok = GaugeMetricFamily(
            "binance_margin_last_success_timestamp_seconds",
            "Unix time of the last successful account fetch.", labels=self.labels)
        self.backoff = GaugeMetricFamily(
            "binance_margin_backoff_until_timestamp_seconds",
            "Unix time until which no request is sent for this account because Binance "
            "rejected its key (on some endpoint; the others go on); 0 when none (the IP's back-off "
            "is per host).", labels=self.labels)

    def add(self, key: Sequence[str], cached: Cached[Any], result: Result[Any],
            client: KeyState | None = None, memo: Memo | None = None) -> None:
        """``memo``: the account's, which keeps the samples made of what stayed the same."""
        up = 0.0 if result.value is None else 1.0
        if memo is not None:
            self._kept(key, cached, result, client, memo, up)
            return
        self.up.add_metric(key, up)
        for reason in ERROR_REASONS:
            self.errors.add_metric([*key, reason], float(cached.errors[reason]))
        if not self.details:
            return
        self.duration.add_metric(key, result.duration)
        if cached.last_success is not None:
            self.last_ok.add_metric(key, cached.last_success)
        if client is not None:
            self.backoff.add_metric(key, client.auth_backoff_until())

    def _kept(self, key: Sequence[str], cached: Cached[Any], result: Result[Any],
              client: KeyState | None, memo: Memo, up: float) -> None:
        """:meth:`add`, the samples kept while up, the error counts, the last success and
        the back-off stay the same (a sub-account's last success is its detail's, minutes
        old); the duration is new each fetch."""
        backoff = client.auth_backoff_until() if self.details and client is not None else None
        errors = cached.errors
        made = memo.get("fetch", (tuple(key), up, backoff, *errors.values()),
                        self._fetch_lines, key, up, errors, backoff)
        for family, samples in zip((self.up, self.errors, self.backoff), made, strict=True):
            family.samples.extend(samples)
        if self.details:
            memo.add(self.duration, self.labels, key, result.duration)
            if cached.last_success is not None:
                memo.add(self.last_ok, self.labels, key, cached.last_success)

    def _fetch_lines(self, key: Sequence[str], up: float, errors: dict[str, int],
                     backoff: float | None) -> Lines:
        labels = tuple(self.labels)
        return ((lined(self.up.name, labels, key, up),), self._error_lines(key, errors),
                () if backoff is None else (lined(self.backoff.name, labels, key, backoff),))

    def _error_lines(self, key: Sequence[str], errors: dict[str, int]) -> tuple[Lined, ...]:
        name, labels = f"{self.errors.name}_total", (*self.labels, "reason")
        return tuple(lined(name, labels, (*key, reason), float(errors[reason]))
                     for reason in ERROR_REASONS)

    def tail(self) -> list[Metric]:
        """The families after the fetched values, in exposition order."""
        if self.details:
            return [self.duration, self.errors, self.last_ok, self.backoff]
        return [self.errors]


def account_fetches() -> Fetches:
    """The fetch families of an account (cross, sub-account or Portfolio Margin)."""
    return Fetches("binance_margin",
                   "1 if the last fetch of the account from Binance succeeded, else 0.",
                   "Failed account fetches, by reason.", account_details=True)


def non_empty(families: Iterable[Metric]) -> Iterator[Metric]:
    """The families that have samples (an empty family is left out of the exposition)."""
    return (family for family in families if family.samples)


class InvalidFields:
    """Optional fields of one account's answers that did not parse: only their own metrics are
    left out (the account stays up), each is counted by field and warned of once an hour."""

    WARN_SECONDS = 3600.0

    def __init__(self, what: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.counts: Counter[str] = Counter()
        self._monotonic = monotonic
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()

    def note(self, fields: Iterable[str]) -> None:
        """Count the fields of one answer (called once per fetch, not per scrape)."""
        now = self._monotonic()
        with self._lock:
            for field in fields:
                self.counts[field] += 1
                last = self._warned.get(field)
                if last is None or now - last >= self.WARN_SECONDS:
                    self._warned[field] = now
                    log.warning("%s: Binance sent a %s that does not parse; only its metric is "
                                "left out (warned once an hour)", self.what, field)

    def add_to(self, family: CounterMetricFamily, account: str) -> None:
        with self._lock:
            counts = sorted(self.counts.items())
        for field, count in counts:
            family.add_metric([account, field], float(count))


def invalid_fields() -> CounterMetricFamily:
    """The family every product's :class:`InvalidFields` is shown in."""
    return CounterMetricFamily(
        "binance_margin_invalid_fields",
        "Optional fields of Binance's answers that did not parse, by account and field (only "
        "that field's metric is left out; the series appears at the first one).",
        labels=["account", "field"])
