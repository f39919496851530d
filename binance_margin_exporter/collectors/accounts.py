"""The families every kind of account shares (cross, sub-account, Portfolio Margin): whether
its last fetch worked, how long it took, its errors by reason, its last success, and its
key's back-off. One place, so that the kinds cannot drift apart (the exporter merges them into
one family each)."""

from __future__ import annotations

from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.collectors.cache import ERROR_REASONS, Cached, Result


class KeyState(Protocol):
    def auth_backoff_until(self) -> float: ...


class AccountFetches:
    def __init__(self) -> None:
        acc = ["account"]
        self.up = GaugeMetricFamily(
            "binance_margin_up",
            "1 if the last fetch of the account from Binance succeeded, else 0.", labels=acc)
        self.duration = GaugeMetricFamily(
            "binance_margin_scrape_duration_seconds",
            "Duration of the last account fetch from Binance.", labels=acc)
        self.errors = CounterMetricFamily(
            "binance_margin_scrape_errors", "Failed account fetches, by reason.",
            labels=["account", "reason"])
        self.last_ok = GaugeMetricFamily(
            "binance_margin_last_success_timestamp_seconds",
            "Unix time of the last successful account fetch.", labels=acc)
        self.backoff = GaugeMetricFamily(
            "binance_margin_backoff_until_timestamp_seconds",
            "Unix time until which no request is sent for this account because Binance "
            "rejected its key; 0 when none (the IP's back-off is per host).", labels=acc)

    def add(self, name: str, cached: Cached[Any], result: Result[Any],
            client: KeyState) -> None:
        self.up.add_metric([name], 0.0 if result.value is None else 1.0)
        self.duration.add_metric([name], result.duration)
        for reason in ERROR_REASONS:
            self.errors.add_metric([name, reason], float(cached.errors[reason]))
        if cached.last_success is not None:
            self.last_ok.add_metric([name], cached.last_success)
        self.backoff.add_metric([name], client.auth_backoff_until())

    def tail(self) -> list[Metric]:
        """The families after the account's own values, in exposition order."""
        return [self.duration, self.errors, self.last_ok, self.backoff]
