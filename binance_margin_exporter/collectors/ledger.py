"""The cost ledger as counters: interest paid, forced liquidations and futures income, counted
from Binance's history records since the exporter started (three products: margin, futures
and Portfolio Margin accounts; ``ledger: false`` in an account turns its ledger off).

Example output::

    binance_margin_ledger_up{account="main"} 1.0
    binance_margin_interest_paid_total{account="main",asset="USDT",symbol=""} 0.00024995
    binance_margin_interest_paid_total{account="main",asset="USDT",symbol="BNBUSDT"} 0.001
    binance_margin_liquidations_total{account="main",side="SELL",symbol="BNBUSDT"} 1.0
    binance_margin_liquidation_last_timestamp_seconds{account="main"} 1.558941374745e+09
    binance_margin_futures_income_total{account="fut",asset="USDT",direction="paid",
                                        market="um",type="funding_fee"} 0.375

Every ``ledger_interval_seconds`` (on a scrape) each history is read from the end of the last
window read, less an overlap (:data:`OVERLAP_MS`), to now; a record counts once, by its id,
however windows overlap or pages fall. Only the ids of the overlap are kept. Records before
the exporter started are not counted (a counter that jumped by a year of interest at each
restart would make ``increase()`` lie). Sums are kept in decimal. A history that fails keeps
its counters and is read again from the same point at the next interval; the fetch is
``binance_margin_ledger_up 0`` and a counted error. Cross interest has ``symbol=""`` (the
same series as no ``symbol`` label in PromQL); isolated pairs' their pair.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.futures import MARKETS
from binance_margin_exporter.binance.isolated import ISOLATED_ACCOUNT, fetch_isolated_account
from binance_margin_exporter.binance.ledger import (
    FUTURES_INCOME,
    MARGIN_INTEREST,
    MARGIN_LIQUIDATIONS,
    PAPI_INCOME,
    PAPI_INTEREST,
    PAPI_LIQUIDATIONS,
    parse_interest,
    parse_liquidations,
    read_income,
    read_margin,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.account_fetch import Account, Families, FetchProduct
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.fetch_families import Fetches
from binance_margin_exporter.collectors.invalid_fields import InvalidFields
from binance_margin_exporter.collectors.ledger_tally import (
    INCOME,
    INTEREST,
    LIQUIDATIONS,
    OVERLAP_MS,
    Ledger,
    LedgerRead,
    Stream,
    Tally,
)
from binance_margin_exporter.collectors.product import Build, Closes
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import AccountConfig, Configured, Setting, Settings
from binance_margin_exporter.config.schema import flag, number

ACROSS_RELOADS = "across_globals"  # Build.kept's key of what outlives any reload
FETCH_SECONDS = 120.0  # the longest read of an account's histories (many pages)
INTERVAL_SETTING = Setting(
    "ledger_interval_seconds", number(10.0, 86400.0), 300.0,
    "How often the ledger (interest, liquidations, futures income) is read from Binance's "
    "histories.")
LEDGER = Setting(
    "ledger", flag, True,
    "Count interest paid, forced liquidations and futures income since the exporter started "
    "(the history endpoints every ledger_interval_seconds); false turns it off (also per "
    "account).")
LEDGER_SETTING = Setting(
    "ledger", flag, True,
    "Count the account's interest paid, forced liquidations and futures income since the "
    "exporter started (its history endpoints every ledger_interval_seconds).")

__all__ = ["FUTURES_PRODUCT", "INCOME", "INTEREST", "LIQUIDATIONS", "MARGIN_PRODUCT",
           "OVERLAP_MS", "PORTFOLIO_PRODUCT", "Ledger", "LedgerRead", "Stream", "Tally"]
Stopped = Callable[[], bool]  # has the exporter begun closing?

def ledger_fetches() -> Fetches:
    """Its fetch is shown apart from the account's: a failing history never makes the
    account ``up 0``."""
    return Fetches(
        "binance_margin_ledger",
        "1 if the last read of the account's histories (interest, liquidations, income) "
        "succeeded, else 0 (the counters keep their values).",
        "Failed reads of the account's histories, by reason.")


@dataclass(frozen=True)
class LedgerPart(Account[LedgerRead]):
    ledger: Ledger | None = field(default=None, compare=False)


class LedgerFamilies(Families[LedgerPart, LedgerRead]):
    def __init__(self) -> None:
        self.interest = CounterMetricFamily(
            "binance_margin_interest_paid",
            "Interest paid since the exporter started (interestHistory; symbol: the isolated "
            "pair, empty for cross margin), in the asset.", labels=["account", "asset", "symbol"])
        self.liquidations = CounterMetricFamily(
            "binance_margin_liquidations",
            "Forced-liquidation orders since the exporter started (forceLiquidationRec).",
            labels=["account", "symbol", "side"])
        self.last = GaugeMetricFamily(
            "binance_margin_liquidation_last_timestamp_seconds",
            "Unix time of the latest forced-liquidation order counted.", labels=["account"])
        self.income = CounterMetricFamily(
            "binance_margin_futures_income",
            "Futures income since the exporter started (income history), by type (the "
            "lower-case incomeType) and direction (received: positive, paid: negative; the "
            "absolute value).", labels=["account", "market", "type", "asset", "direction"])

    def seen(self, part: LedgerPart) -> None:
        """The counters, whether the last read succeeded or not: they stay what was counted."""
        if part.ledger is None:
            return
        sums, last = part.ledger.tally.snapshot()
        for family, name in ((self.interest, INTEREST), (self.liquidations, LIQUIDATIONS),
                             (self.income, INCOME)):
            for labels, total in sums[name]:
                family.add_metric([part.name, *labels], float(total))
        if last is not None:
            self.last.add_metric([part.name], last / 1000.0)

    def add(self, part: LedgerPart, key: tuple[str, ...], value: LedgerRead) -> None:
        pass  # the counters are the tally's (seen)

    def families(self) -> list[Metric]:
        return [self.interest, self.liquidations, self.last, self.income]


class LedgerProduct(FetchProduct[LedgerPart, LedgerRead], Configured, Closes[LedgerPart]):
    """One kind of account's ledger (``close``: a read under way asks no further page, so
    the exporter stops at once)."""

    settings = (LEDGER, INTERVAL_SETTING)
    account_settings = (LEDGER_SETTING,)

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        return account.type in self.types and bool(settings.option("ledger")) and \
            bool(account.option("ledger"))

    def kind(self) -> Fetches:
        return ledger_fetches()

    def families(self, scrape: Scrape, build: Build) -> LedgerFamilies:
        return LedgerFamilies()

    def streams(self, account: AccountConfig, client: BinanceClient, build: Build,
                stopped: Stopped,
                ) -> Callable[[float], tuple[list[Stream], list[UpstreamError]]]:
        raise NotImplementedError

    def close(self, part: LedgerPart) -> None:
        if part.ledger is not None:
            part.ledger.closed.set()

    def endpoints(self, account: AccountConfig) -> tuple[Any, ...]:
        raise NotImplementedError

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """One page of each history every ledger_interval_seconds (more pages when more than
        a page of records came in an interval)."""
        if not self.reads(account, settings):
            return {}
        return Costs(settings, interval).every(
            settings.option("ledger_interval_seconds"), *self.endpoints(account),
            at_start=False).by_host

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> LedgerPart:
        every = float(build.settings.option("ledger_interval_seconds"))
        invalid = InvalidFields(f"ledger of {account.name}")
        closed = threading.Event()
        # an account rebuilt on a reload (its own config or the global settings changed)
        # goes on with its tally and invalid-field counts: the records between its last read
        # and the reload are read then, not lost (a liquidation there still alerts)
        tallies = build.kept.setdefault(ACROSS_RELOADS, {})
        key = (account.name, account.type)
        carried = tallies.get(key)
        if carried is not None:
            invalid = carried[1]
        ledger = Ledger(self.streams(account, client, build, closed.is_set), invalid,
                        tally=None if carried is None else carried[0])
        tallies[key] = (ledger.tally, invalid)
        ledger.closed = closed
        # a read of many pages runs on past the scrape that started it (that scrape counts a
        # timeout), up to FETCH_SECONDS: the next scrape after it shows its counters
        cached = Cached(f"ledger of {account.name}", ledger.fetch, build.executor, ttl=every,
                        error_ttl=every, timeout=max(client.timeout, FETCH_SECONDS))
        return LedgerPart(account.name, client, cached, invalid, ledger=ledger)


def margin_stream(key: str, family: str, client: BinanceClient, endpoint: Any, parse: Any,
                  stopped: Stopped, params: Sequence[tuple[str, str]] = ()) -> Stream:
    return Stream(key, family, lambda start, end, deadline: read_margin(
        client, endpoint, parse, params, start, end, deadline, stopped))


def income_stream(market: str, client: BinanceClient, endpoint: Any,
                  stopped: Stopped) -> Stream:
    return Stream(f"income:{market}", INCOME, lambda start, end, deadline: read_income(
        client, endpoint, market, start, end, deadline, stopped))


class MarginLedger(LedgerProduct):
    """A cross margin account's interest and liquidations, and (with ``isolated``) those of
    each isolated pair (asked pair by pair: without ``isolatedSymbol`` Binance answers cross
    records only); the pairs are read from the isolated account each interval."""

    name = "margin_ledger"
    types = ("cross",)

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        # a master: false account is read for its sub-accounts only
        return super().reads(account, settings) and bool(account.option("master"))

    def endpoints(self, account: AccountConfig) -> tuple[Any, ...]:
        pairs = (ISOLATED_ACCOUNT,) if account.option("isolated") else ()
        return (MARGIN_INTEREST, MARGIN_LIQUIDATIONS, *pairs)

    def streams(self, account: AccountConfig, client: BinanceClient, build: Build,
                stopped: Stopped,
                ) -> Callable[[float], tuple[list[Stream], list[UpstreamError]]]:
        cross = [margin_stream("interest", INTEREST, client, MARGIN_INTEREST, parse_interest,
                               stopped),
                 margin_stream("liquidations", LIQUIDATIONS, client, MARGIN_LIQUIDATIONS,
                               parse_liquidations, stopped)]
        isolated = bool(account.option("isolated"))

        def of(deadline: float) -> tuple[list[Stream], list[UpstreamError]]:
            if not isolated:
                return list(cross), []
            try:
                pairs = fetch_isolated_account(client, deadline).pairs
            except UpstreamError as exc:
                return list(cross), [exc]
            streams = list(cross)
            for pair in pairs:
                params = (("isolatedSymbol", pair.symbol),)
                streams += [margin_stream(f"interest:{pair.symbol}", INTEREST, client,
                                          MARGIN_INTEREST, parse_interest, stopped, params),
                            margin_stream(f"liquidations:{pair.symbol}", LIQUIDATIONS, client,
                                          MARGIN_LIQUIDATIONS, parse_liquidations, stopped,
                                          params)]
            return streams, []
        return of


class FuturesLedger(LedgerProduct):
    """A futures account's income on each of its markets."""

    name = "futures_ledger"
    types = ("futures",)

    def endpoints(self, account: AccountConfig) -> tuple[Any, ...]:
        return tuple(FUTURES_INCOME[market] for market in account.option("markets"))

    def streams(self, account: AccountConfig, client: BinanceClient, build: Build,
                stopped: Stopped,
                ) -> Callable[[float], tuple[list[Stream], list[UpstreamError]]]:
        hosts = {"um": "fapi_base_url", "cm": "dapi_base_url"}
        streams = [income_stream(market, build.client_on(client, hosts[market]),
                                 FUTURES_INCOME[market], stopped)
                   for market in account.option("markets")]
        return lambda deadline: (list(streams), [])


class PortfolioLedger(LedgerProduct):
    """A Portfolio Margin account's margin interest and liquidations, and its um and cm
    income (papi host)."""

    name = "portfolio_ledger"
    types = ("portfolio_margin",)

    def endpoints(self, account: AccountConfig) -> tuple[Any, ...]:
        return (PAPI_INTEREST, PAPI_LIQUIDATIONS, *(PAPI_INCOME[m] for m in MARKETS))

    def streams(self, account: AccountConfig, client: BinanceClient, build: Build,
                stopped: Stopped,
                ) -> Callable[[float], tuple[list[Stream], list[UpstreamError]]]:
        papi = build.client_on(client, "papi_base_url")
        streams = [margin_stream("interest", INTEREST, papi, PAPI_INTEREST, parse_interest,
                                 stopped),
                   margin_stream("liquidations", LIQUIDATIONS, papi, PAPI_LIQUIDATIONS,
                                 parse_liquidations, stopped),
                   *(income_stream(market, papi, PAPI_INCOME[market], stopped)
                     for market in MARKETS)]
        return lambda deadline: (list(streams), [])


MARGIN_PRODUCT = MarginLedger()
FUTURES_PRODUCT = FuturesLedger()
PORTFOLIO_PRODUCT = PortfolioLedger()
