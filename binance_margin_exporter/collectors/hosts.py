"""What Binance allows this IP, per upstream host: the request weight used this minute (each
budget: ``sapi`` from ``X-SAPI-USED-IP-WEIGHT-1M``, ``api`` from ``X-MBX-USED-WEIGHT-1M``) and
the IP's back-off. These are the IP's, not an account's: one series per host, however many
accounts share it. (An account's own back-off, after its key was rejected, is
``binance_margin_backoff_until_timestamp_seconds{account}``.)

Example output::

    binance_margin_api_ip_weight_used_1m{budget="sapi",host="api.binance.com"} 120.0
    binance_margin_ip_backoff_until_timestamp_seconds{host="api.binance.com"} 0.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.collectors.scrape import Scrape

BUDGETS = {"X-SAPI-USED-IP-WEIGHT-1M": "sapi", "X-MBX-USED-WEIGHT-1M": "api"}


class GateState(Protocol):
    last_used_weight: int | None


class HostState(Protocol):
    host: str

    @property
    def gates(self) -> Mapping[str, GateState]: ...

    def backoff_until(self) -> float: ...


class HostsCollector:
    def __init__(self, hosts: Sequence[HostState]) -> None:
        # one entry per host, however many accounts (or kinds of account) share it
        self.hosts = tuple({id(h): h for h in hosts}.values())

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        return self._families

    def _families(self) -> Iterator[Metric]:
        weight = GaugeMetricFamily(
            "binance_margin_api_ip_weight_used_1m",
            "Request weight this IP used this minute on the host, as Binance last reported it "
            "(budget sapi: X-SAPI-USED-IP-WEIGHT-1M, limit 12000; api: X-MBX-USED-WEIGHT-1M, "
            "limit 6000).", labels=["budget", "host"])
        backoff = GaugeMetricFamily(
            "binance_margin_ip_backoff_until_timestamp_seconds",
            "Unix time until which nothing is sent to the host from this IP (429 or 418 "
            "Retry-After, or weight at the soft limit); 0 when none.", labels=["host"])
        for host in self.hosts:
            for header, gate in host.gates.items():
                if gate.last_used_weight is not None:
                    weight.add_metric([BUDGETS.get(header, header), host.host],
                                      float(gate.last_used_weight))
            backoff.add_metric([host.host], host.backoff_until())
        if weight.samples:
            yield weight
        yield backoff
