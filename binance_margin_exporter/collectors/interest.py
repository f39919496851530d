"""Next hourly interest rates of the assets an account borrows, kept off the scrape's path.

The rates are a heavy call (20 assets a call: ``binance/interest.py`` declares its weight, W)
and Binance changes them hourly: they are fetched in the background once an hour, and between
those, when the account borrows an asset whose rate was not fetched, at most once every 10
minutes: every asset borrowed since is asked in that one call (the new assets show from the
scrape after). An account costs at most
7 x ceil(borrowed assets / 20) x W an hour, and W when its borrowed set holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor

from binance_margin_exporter.binance.interest import NEXT_HOURLY_RATE, fetch_next_hourly_rates
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.config import Setting
from binance_margin_exporter.config.schema import flag

RATES_REFRESH_SECONDS = 3600.0
RATES_RETRY_SECONDS = 300.0
NEW_ASSETS_SECONDS = 600.0  # the shortest time between two calls for newly borrowed assets

# a setting of the products that show rates (cross and isolated): declared once, here
INTEREST_RATES = Setting("interest_rates", flag, True,
                         f"Fetch the hourly interest rates of borrowed assets "
                         f"({NEXT_HOURLY_RATE.weight} weight a call, at most hourly).")

__all__ = ["INTEREST_RATES", "NEXT_HOURLY_RATE", "RATES_REFRESH_SECONDS", "HourlyRates"]

Covered = tuple[frozenset[str], dict[str, float]]  # (assets asked for, their rates)


class HourlyRates:
    def __init__(self, what: str, client: BinanceClient, executor: Executor, *,
                 isolated: bool, fetch: Callable[..., dict[str, float]] | None = None,
                 **clocks: Callable[[], float]) -> None:
        self._client = client
        self._isolated = isolated
        self._fetch_rates = fetch or fetch_next_hourly_rates
        self._lock = threading.Lock()
        self._wanted: frozenset[str] = frozenset()
        self._monotonic = clocks.get("monotonic", time.monotonic)
        self._asked_at: float | None = None  # monotonic time of the last call
        self.cached: Cached[Covered] = Cached(
            what, self._fetch, executor, ttl=RATES_REFRESH_SECONDS,
            error_ttl=RATES_RETRY_SECONDS, timeout=client.timeout, **clocks)

    def _fetch(self, deadline: float) -> Covered:
        with self._lock:
            wanted = self._wanted
        if not wanted:
            return wanted, {}
        with self._lock:
            self._asked_at = self._monotonic()
        return wanted, self._fetch_rates(self._client, sorted(wanted), isolated=self._isolated,
                                         deadline=deadline)

    def latest(self, borrowed: Iterable[str]) -> dict[str, float]:
        """The known rates of ``borrowed``; starts a background fetch when they are due."""
        wanted = frozenset(borrowed)
        if not wanted:
            return {}
        with self._lock:
            self._wanted = wanted
        good = self.cached.good
        if good is not None and not wanted <= good[0] and self._may_ask_again():
            self.cached.invalidate()  # a newly borrowed asset: ask now, not in an hour
        good = self.cached.latest()
        rates = {} if good is None else good[1]
        return {asset: rates[asset] for asset in sorted(wanted) if asset in rates}

    def _may_ask_again(self) -> bool:
        with self._lock:
            asked_at = self._asked_at
        return asked_at is None or self._monotonic() - asked_at >= NEW_ASSETS_SECONDS
