"""One scrape: every product's families within one deadline, and the exporter's own metrics.

The deadline comes from Prometheus (``X-Prometheus-Scrape-Timeout-Seconds``, less a margin for
rendering and the network), capped by ``request_timeout_seconds``. What is not back from Binance
by then is ``up 0`` with ``reason="timeout"``, so ``/metrics`` always answers before Prometheus
gives up on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter import __version__
from binance_margin_exporter.collectors.scrape import Scrape

SCRAPE_MARGIN_SECONDS = 0.5  # kept back from Prometheus' timeout for rendering and the network


class Product(Protocol):
    def start(self, scrape: Scrape) -> Callable[[], Iterable[Metric]]:
        """Start this scrape's fetches; return what waits for them (until the scrape's
        deadline) and builds the families. Every product starts before any is waited for, and
        the families are built in the order of the products."""
        ...


def scrape_budget(request_timeout: float, scrape_timeout: float | None) -> float:
    """Seconds a scrape may spend on Binance: Prometheus' timeout less a margin (never more
    than half of it), capped by ``request_timeout``."""
    if scrape_timeout is None or not scrape_timeout > 0:
        return request_timeout
    return min(request_timeout,
               max(scrape_timeout - SCRAPE_MARGIN_SECONDS, scrape_timeout / 2))


class Exporter:
    """All products of all accounts; also a ``prometheus_client`` collector (``collect()``)."""

    def __init__(self, products: Sequence[Product], *, request_timeout: float = 5.0,
                 executor: Executor | None = None, version: str = __version__) -> None:
        self.products = tuple(products)
        self.request_timeout = request_timeout
        self.executor = executor
        self.version = version

    def collect(self, scrape_timeout: float | None = None) -> Iterator[Metric]:
        scrape = Scrape(time.monotonic() + scrape_budget(self.request_timeout, scrape_timeout))
        pending = [product.start(scrape) for product in self.products]
        for finish in pending:
            yield from finish()
        build = GaugeMetricFamily("binance_margin_exporter_build_info",
                                  "Version of binance-margin-exporter; always 1.",
                                  labels=["version"])
        build.add_metric([self.version], 1.0)
        yield build

    def describe(self) -> list[Metric]:
        return []  # no fetch at registration time

    def close(self) -> None:
        if isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=False, cancel_futures=True)
