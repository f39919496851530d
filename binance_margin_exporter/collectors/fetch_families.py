"""The families of a fetch (``up``, errors by reason, duration, last success, back-off): one
place for every kind of account (cross, sub-account, Portfolio Margin, ...), so that the kinds
cannot drift apart; the exporter merges families of one name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.collectors.cache import ERROR_REASONS, Cached, Result
from binance_margin_exporter.collectors.product import KeyState
from binance_margin_exporter.collectors.tables import Lines, Memo
from binance_margin_exporter.web.exposition import Lined, lined


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
