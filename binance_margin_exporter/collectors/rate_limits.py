"""What Binance allows this IP, per upstream host and egress: the request weight used this
minute (each budget: ``sapi`` from ``X-SAPI-USED-IP-WEIGHT-1M``, ``api``, ``fapi`` and ``dapi``
from ``X-MBX-USED-WEIGHT-1M`` of /api and /papi, /fapi, /dapi calls) and the IP's back-off.
These are the IP's, not an account's: one series per (host, egress), however many accounts
share it; each egress (an address Binance sees) is a budget of its own. (An account's own
back-off, after its key was rejected, is ``binance_margin_backoff_until_timestamp_seconds``.)

Example output::

    binance_margin_api_ip_weight_used_1m{budget="sapi",egress="default",host="api.binance.com"} 1
    binance_margin_ip_backoff_until_timestamp_seconds{egress="default",host="api.binance.com"} 0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.collectors.scrape import Scrape


class GateState(Protocol):
    budget: str
    last_used_weight: int | None


class EgressState(Protocol):
    name: str


class HostState(Protocol):
    host: str
    egress: EgressState

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
            "(budget sapi: X-SAPI-USED-IP-WEIGHT-1M, limit 12000; api: X-MBX-USED-WEIGHT-1M "
            "of /api and /papi, limit 6000; fapi, dapi: X-MBX-USED-WEIGHT-1M of the futures hosts, "
            "limit 2400 each); egress: the address Binance sees (default: the host's route).",
            labels=["budget", "host", "egress"])
        backoff = GaugeMetricFamily(
            "binance_margin_ip_backoff_until_timestamp_seconds",
            "Unix time until which nothing is sent to the host from this IP (429 or 418 "
            "Retry-After, or weight at the soft limit); 0 when none.", labels=["host", "egress"])
        for host in self.hosts:
            for gate in host.gates.values():
                if gate.last_used_weight is not None:
                    weight.add_metric([gate.budget, host.host, host.egress.name],
                                      float(gate.last_used_weight))
            backoff.add_metric([host.host, host.egress.name], host.backoff_until())
        if weight.samples:
            yield weight
        yield backoff
