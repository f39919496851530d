"""What the products of one scrape share: its deadline and one snapshot of market prices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from binance_margin_exporter.binance.prices import Prices


def _no_prices() -> Prices | None:
    return None


@dataclass
class Scrape:
    deadline: float  # time.monotonic() by which every fetch of this scrape ends
    # set by the prices product when it starts: waits (until the deadline) for this scrape's
    # prices; None when they failed or are turned off
    prices: Callable[[], Prices | None] = _no_prices
    # asset -> USDT price, of every asset valued in this scrape (the price family shows these)
    priced: dict[str, float] = field(default_factory=dict)

    def usdt(self, asset: str) -> float | None:
        """The asset's USDT price in this scrape's snapshot, noted for the price family."""
        prices = self.prices()
        price = None if prices is None else prices.usdt(asset)
        if price is not None:
            self.priced[asset] = price
        return price
