"""The count of an account's optional fields that did not parse: a counter kept across
scrapes (one per account and product), shown in ``binance_margin_invalid_fields``."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily

log = logging.getLogger(__name__)


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
