"""Fakes that stand in for the client and for Binance in collector tests: the one client
stub, recorded answers behind a cache, and recorded sources for cross, isolated and prices."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from binance_margin_exporter.binance.cross import (
    MarginAccount,
    TradeCoeff,
    parse_account,
    parse_trade_coeff,
)
from binance_margin_exporter.binance.isolated import parse_isolated_account
from binance_margin_exporter.binance.prices import parse_prices
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.cross import (
    THRESHOLDS_REFRESH_SECONDS,
    THRESHOLDS_RETRY_SECONDS,
    CrossAccount,
)
from binance_margin_exporter.collectors.interest import HourlyRates
from binance_margin_exporter.collectors.isolated import IsolatedSource, _recheck
from binance_margin_exporter.collectors.prices import PricesCollector
from tests.support.clocks import WALL, StepClock
from tests.support.paths import fixture_json
from tests.support.pool import EXECUTOR


class StubClient:
    """What a collector reads of its account's client: the timeout and the auth back-off."""

    timeout = 5.0

    def auth_backoff_until(self) -> float:
        return 0.0


def recorded(what: str, answer: object) -> Cached:
    """A cache whose every fetch gives ``answer`` (a parsed documented example), on a
    :class:`StepClock` and the fake wall time."""
    return Cached(what, lambda deadline: answer, EXECUTOR, ttl=10, monotonic=StepClock(),
                  wall=lambda: WALL)


class FakeSource:
    """Recorded answers (or errors) for one account, and the client state the collector reads:
    stands in for the client and for Binance in collector tests."""

    def __init__(self, account: MarginAccount | Exception | None = None,
                 coeff: TradeCoeff | Exception | None = None,
                 delay: float = 0.0) -> None:
        self.account = account if account is not None else parse_account(
            fixture_json("account_docs_example.json"))
        self.coeff = coeff if coeff is not None else parse_trade_coeff(
            fixture_json("trade_coeff_docs_example.json"))
        self.delay = delay
        self.calls = 0
        self.coeff_calls = 0
        self.timeout = 5.0
        self.backoff = 0.0
        self._lock = threading.Lock()

    def get_account(self, deadline: float) -> MarginAccount:
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if isinstance(self.account, Exception):
            raise self.account
        return self.account

    def get_trade_coeff(self, deadline: float) -> TradeCoeff:
        with self._lock:
            self.coeff_calls += 1
        if isinstance(self.coeff, Exception):
            raise self.coeff
        return self.coeff

    def auth_backoff_until(self) -> float:
        return self.backoff


def fake_account(name: str, source: FakeSource, *, ttl: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 warm: bool = True) -> CrossAccount:
    """A :class:`CrossAccount` on a :class:`FakeSource`; ``warm``: its bars fetched already, as
    the exporter's warm-up does at start."""
    account = CrossAccount(
        name, source,
        Cached(f"account {name}", source.get_account, EXECUTOR, ttl=ttl,
               monotonic=monotonic, wall=wall),
        Cached(f"margin bars of {name}", source.get_trade_coeff, EXECUTOR,
               ttl=THRESHOLDS_REFRESH_SECONDS, error_ttl=THRESHOLDS_RETRY_SECONDS,
               monotonic=monotonic, wall=wall),
    )
    if warm:
        account.thresholds.get(time.monotonic() + 5)
    return account


def cross_with_rates(source: FakeSource, rates: dict[str, float], *,
                     monotonic=time.monotonic, wall=time.time,
                     calls: list | None = None) -> CrossAccount:
    account = fake_account("main", source, ttl=0, monotonic=monotonic, wall=wall)

    def fetch(client, assets, *, isolated, deadline):
        if calls is not None:
            calls.append(list(assets))
        return {a: rates[a] for a in assets if a in rates}

    return CrossAccount(account.name, source, account.account, account.thresholds,
                        HourlyRates("rates of main", source, EXECUTOR, isolated=False,
                                    fetch=fetch, monotonic=monotonic))


class FakeIsolated(StubClient):
    """Recorded isolated answers (or an error) and rates, standing in for client and Binance."""

    def __init__(self, raw=None, rates=None) -> None:
        docs = fixture_json("isolated_account_docs_example.json")
        self.answer = parse_isolated_account(docs if raw is None else raw)
        self.rates = rates if rates is not None else {}
        self.calls = 0
        self.rate_calls: list[tuple[list[str], bool]] = []

    def get(self, deadline):
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def fetch_rates(self, client, assets, *, isolated, deadline):
        self.rate_calls.append((list(assets), isolated))
        return {a: self.rates[a] for a in assets if a in self.rates}


def isolated_source(fake: FakeIsolated, *, ttl=10.0, monotonic=time.monotonic) -> IsolatedSource:
    return IsolatedSource(
        "main", fake,
        Cached("isolated pairs of main", fake.get, EXECUTOR, ttl=ttl, ttl_of=_recheck(ttl),
               monotonic=monotonic, wall=lambda: WALL),
        HourlyRates("isolated rates of main", fake, EXECUTOR, isolated=True,
                    fetch=fake.fetch_rates, monotonic=monotonic))


def prices_collector(raw=None) -> PricesCollector:
    prices = parse_prices(raw if raw is not None else
                          fixture_json("ticker_price_for_examples.json"))
    return PricesCollector(Cached("prices", lambda deadline: prices, EXECUTOR, ttl=10))
