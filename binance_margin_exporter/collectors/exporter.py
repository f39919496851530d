"""One scrape: every product's families within one deadline, and the exporter's own metrics.

The deadline comes from Prometheus (``X-Prometheus-Scrape-Timeout-Seconds``, less a margin for
rendering and the network), capped by ``request_timeout_seconds``. What is not back from Binance
by then is ``up 0`` with ``reason="timeout"``, so ``/metrics`` always answers before Prometheus
gives up on it.

Products may share a family (every kind of account has its ``binance_margin_up``): families of
the same name are merged into one. Two products that would make one family for one account are
refused when the exporter is built (``product.check_series``); as the last line of defence, a
second series with the same name and labels is still dropped here with an error in the log
(Prometheus would keep one of the two silently, and which one could change from scrape to
scrape).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter import __version__
from binance_margin_exporter.collectors.product import Collector
from binance_margin_exporter.collectors.scrape import PricesSource, Scrape
from binance_margin_exporter.web.exposition import (
    KEY,
    LINED,
    ONLY_LINED,
    as_library,
    as_sample,
)

log = logging.getLogger(__name__)

SCRAPE_MARGIN_SECONDS = 0.5  # kept back from Prometheus' timeout for rendering and the network


def scrape_budget(request_timeout: float, scrape_timeout: float | None) -> float:
    """Seconds a scrape may spend on Binance: Prometheus' timeout less a margin (never more
    than half of it), capped by ``request_timeout``."""
    if scrape_timeout is None or not scrape_timeout > 0:
        return request_timeout
    return min(request_timeout,
               max(scrape_timeout - SCRAPE_MARGIN_SECONDS, scrape_timeout / 2))


class Exporter:
    """Every product's collector; also a ``prometheus_client`` collector (``collect()``)."""

    def __init__(self, collectors: Sequence[Collector], *, request_timeout: float = 5.0,
                 executor: Executor | None = None, version: str = __version__,
                 on_close: Callable[[], None] | None = None, shards: int | None = None) -> None:
        """``on_close``: stops what the products run in the background (their streams);
        ``shards``: the COUNT of ``--shard`` (None: not sharded)."""
        self.collectors = tuple(collectors)
        self.prices = next((c for c in self.collectors if isinstance(c, PricesSource)), None)
        self.shards = shards
        self.on_close = on_close
        self.request_timeout = request_timeout
        self.executor = executor
        self.version = version

    def collect(self, scrape_timeout: float | None = None) -> Iterator[Metric]:
        """The families of one scrape as ``prometheus_client`` reads them."""
        return map(as_library, self.families(scrape_timeout))

    def families(self, scrape_timeout: float | None = None) -> Iterator[Metric]:
        """The families of one scrape as ``/metrics`` writes them (``web.exposition.render``):
        kept samples stay in their own form (see ``web.exposition.LINED``)."""
        deadline = time.monotonic() + scrape_budget(self.request_timeout, scrape_timeout)
        # the prices first: every product that shows values in USDT waits for them
        scrape = Scrape(deadline, None if self.prices is None else self.prices.snapshot(deadline))
        pending = [collector.start(scrape) for collector in self.collectors]
        yield from merged(family for finish in pending for family in finish())
        build = GaugeMetricFamily("binance_margin_exporter_build_info",
                                  "Version of binance-margin-exporter; always 1.",
                                  labels=["version"])
        build.add_metric([self.version], 1.0)
        yield build
        if self.shards is not None:
            # what the down alert compares with the targets scraped: a shard whose pod is gone
            # has no target, and so no `up` of 0
            yield GaugeMetricFamily("binance_margin_exporter_shards",
                                    "Number of shards the accounts are split between "
                                    "(--shard's COUNT); only with shards.", value=self.shards)

    def describe(self) -> list[Metric]:
        return []  # no fetch at registration time

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()
        if isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=False, cancel_futures=True)


def merged(families: Iterable[Metric]) -> list[Metric]:
    """One family per name (the first's HELP and type), each series once."""
    by_name: dict[str, Metric] = {}
    # A series is its name and its label values: every family of one name is built with the
    # same label names in the same order here. (The values alone: a third of the cost of a
    # frozenset of the label pairs, 8 against 22 ms at 14,000 samples.)
    seen: set[tuple[str, ...]] = set()
    for family in families:
        kept = by_name.get(family.name)
        if kept is not None and kept.type != family.type:
            log.error("two families named %s of different types; the second is dropped "
                      "(please report this)", family.name)
            continue
        # a kept sample carries its key (see web.exposition.LINED)
        if set(map(type, family.samples)) == ONLY_LINED:
            keys = list(map(KEY, family.samples))
        else:
            keys = [sample[2] if type(sample) is LINED else (sample.name,
                                                              *sample.labels.values())
                    for sample in family.samples]
        new = set(keys)  # each key hashed once: the sets below reuse the hashes
        if len(new) == len(keys) and seen.isdisjoint(new):  # the rule: all new
            seen |= new
            samples = family.samples
        else:
            samples = []
            for key, sample in zip(keys, family.samples, strict=True):
                if key in seen:
                    shown = as_sample(sample)
                    log.error("duplicate series %s%s dropped (please report this)",
                              shown.name, dict(sorted(shown.labels.items())))
                    continue
                seen.add(key)
                samples.append(sample)
        if kept is None:
            family.samples = samples
            by_name[family.name] = family
        else:
            kept.samples.extend(samples)
    return list(by_name.values())
