"""What the products of one scrape share: its deadline and one snapshot of market prices."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from binance_margin_exporter.binance.prices import Prices
from binance_margin_exporter.collectors.cache import Cached, Result


class PricesSnapshot:
    """One scrape's prices: their fetch (or the cache's) starts with the scrape, before any
    product's; :meth:`result` waits for it (until the scrape's deadline) once."""

    def __init__(self, cached: Cached[Prices], deadline: float) -> None:
        self._cached = cached
        self._deadline = deadline
        self._flight = cached.start(deadline)
        self._result: Result[Prices] | None = None

    def result(self) -> Result[Prices]:
        if self._result is None:
            self._result = self._cached.wait(self._flight, self._deadline)
        return self._result


@runtime_checkable
class PricesSource(Protocol):
    """A collector that gives a scrape its prices (the prices product's)."""

    def snapshot(self, deadline: float) -> PricesSnapshot:
        """Start this scrape's price fetch (the exporter does, before any product starts)."""
        ...


@dataclass
class Scrape:
    deadline: float  # time.monotonic() by which every fetch of this scrape ends
    # this scrape's prices, started by the exporter before the products; None: no prices
    # product (turned off)
    snapshot: PricesSnapshot | None = None
    # asset -> USDT price, of every asset valued in this scrape (the price family shows these)
    priced: dict[str, float] = field(default_factory=dict)

    def prices(self) -> Prices | None:
        """This scrape's price snapshot (waited for until the deadline); None when the fetch
        failed or there are no prices."""
        return None if self.snapshot is None else self.snapshot.result().value

    def usdt(self, asset: str) -> float | None:
        """The asset's USDT price in this scrape's snapshot, noted for the price family."""
        prices = self.prices()
        price = None if prices is None else prices.usdt(asset)
        if price is not None:
            self.priced[asset] = price
        return price
