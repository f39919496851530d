"""Leveraged positions of every market, one set of families: Portfolio Margin accounts'
(``/papi/v1/um/positionRisk`` and ``/papi/v1/cm/positionRisk`` on the papi host, both markets
always), futures accounts' and Portfolio Margin Pro accounts' (``/fapi/v3/positionRisk`` on the
fapi host, ``/dapi/v1/positionRisk`` on the dapi host, the markets of the account's
``markets``).

Example output::

    binance_margin_positions_up{account="pm",market="um"} 1.0
    binance_margin_position_amount{account="pm",market="um",side="BOTH",symbol="ETHUSDT"} 0.5
    binance_margin_position_mark_price{account="pm",market="um",side="BOTH",symbol="ETHUSDT"} 3100
    binance_margin_position_liquidation_price{account="pm",market="cm",side="LONG",...} 11667.6

Each market of an account is its own fetch, with its own ``binance_margin_positions_up`` and
errors (the account's ``binance_margin_up`` is its product's: a failing positions call does not
hide the account's margin). ``liquidation_price`` is 0 where Binance has none, as sent: the
recording rule ``binance_margin:position_liquidation_distance_ratio`` leaves those out.

At most ``max_positions`` positions of an account's market are shown, the largest notional
first: 85,000 positions (a 56 MB page) took 16 s to scrape against Prometheus' 10 s. The rest
are counted in ``binance_margin_positions_left_out`` and warned of once an hour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.positions import (
    FUTURES_POSITIONS,
    PAPI_POSITIONS,
    Position,
    Positions,
    fetch_positions,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.account_fetch import (
    AccountCollector,
    Families,
    Fetched,
    FetchProduct,
    noting,
)
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.fetch_families import Fetches
from binance_margin_exporter.collectors.futures import HOST_SETTINGS, market_clients
from binance_margin_exporter.collectors.invalid_fields import InvalidFields
from binance_margin_exporter.collectors.product import Build, ClientState
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.tables import Memo, Table
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import AccountConfig, Configured, OwnHosts, Setting, Settings
from binance_margin_exporter.config.schema import integer
from binance_margin_exporter.logs import Throttled

log = logging.getLogger(__name__)
MAX_POSITIONS = 5000  # per account and market (setting max_positions)

LABELS = ("account", "market", "symbol", "side")
POSITION_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("amount", "binance_margin_position_amount",
     "Position amount (positionAmt): signed, negative for a short; in contracts for cm."),
    ("entry_price", "binance_margin_position_entry_price", "Entry price (entryPrice)."),
    ("mark_price", "binance_margin_position_mark_price", "Mark price (markPrice)."),
    ("liquidation_price", "binance_margin_position_liquidation_price",
     "Liquidation price (liquidationPrice); 0 where Binance has none, as sent."),
    ("unrealized_pnl", "binance_margin_position_unrealized_pnl",
     "Unrealized profit and loss (unRealizedProfit), in the margin asset."),
    ("notional", "binance_margin_position_notional",
     "Notional value (notional; cm: notionalValue, in the base asset)."),
    ("leverage", "binance_margin_position_leverage",
     "Leverage (leverage), where the endpoint sends it (not /fapi/v3)."),
    ("maint_margin", "binance_margin_position_maint_margin",
     "Maintenance margin (maintMargin), where the endpoint sends it (/fapi/v3)."),
)


@dataclass(frozen=True)
class MarketPositions:
    """One market of one account: its fetch and its host's client."""

    account: str
    market: str
    client: ClientState
    positions: Cached[Positions]


@dataclass(frozen=True)
class PositionsSource:
    """An account's part: a fetch per market, each its own ``positions_up``."""

    name: str
    markets: tuple[MarketPositions, ...]
    invalid: InvalidFields = field(default_factory=lambda: InvalidFields("positions"))
    memo: Memo | None = field(default=None, compare=False)

    @property
    def fetched(self) -> tuple[Fetched[Positions], ...]:
        return tuple(Fetched((m.account, m.market), None, m.positions) for m in self.markets)

    @classmethod
    def create(cls, name: str, calls: dict[str, tuple[BinanceClient, str]],
               executor: Executor, *, ttl: float) -> PositionsSource:
        """``calls``: market -> (its host's client, its positionRisk path)."""
        invalid = InvalidFields(f"positions of {name}")

        def fetch(client: BinanceClient, path: str, market: str) -> Callable[[float], Positions]:
            return noting(lambda deadline: fetch_positions(client, path, market, deadline),
                          invalid, lambda positions: (f"positionRisk.{key}"
                                                      for key in positions.invalid))

        return cls(name, tuple(
            MarketPositions(name, market, client, Cached(
                f"{market} positions of {name}", fetch(client, path, market), executor,
                ttl=ttl, timeout=client.timeout))
            for market, (client, path) in calls.items()), invalid)


def positions_fetches() -> Fetches:
    return Fetches("binance_margin_positions",
                   "1 if the last fetch of the account's positions in the market succeeded, "
                   "else 0.",
                   "Failed fetches of positions, by reason.", ("account", "market"))


class Capped:
    """At most ``max_positions`` of an account's market, the largest notional first; the rest
    counted, and warned of once an hour."""

    def __init__(self, max_positions: int = MAX_POSITIONS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_positions = max_positions
        self._warn = Throttled(log, 3600.0, monotonic)

    def __call__(self, key: tuple[str, ...], positions: Sequence[Position],
                 left_out: GaugeMetricFamily) -> Sequence[Position]:
        over = len(positions) - self.max_positions
        if over <= 0:
            return positions
        account, market = key
        left_out.add_metric([account, market], float(over))
        self._warn.warning("%s has %d %s positions: the %d of the largest notional are "
                           "shown (max_positions), %d left out", account, len(positions),
                           market, self.max_positions, over, kind=f"{account} {market}")
        return sorted(positions, key=lambda p: -abs(p.notional or 0.0))[:self.max_positions]


class PositionsFamilies(Families[PositionsSource, Positions]):
    def __init__(self, capped: Capped) -> None:
        self.capped = capped
        self.table = Table(POSITION_GAUGES, LABELS)
        self.left_out = GaugeMetricFamily(
            "binance_margin_positions_left_out",
            "Positions of the account's market not shown: over max_positions, the smallest "
            "notional (absent: none).", labels=["account", "market"])

    def add(self, part: PositionsSource, key: tuple[str, ...], value: Positions) -> None:
        for position in self.capped(key, value.positions, self.left_out):
            self.table.add([*key, position.symbol, position.side], position)

    def families(self) -> list[Metric]:
        return self.table.families

    def after(self) -> list[Metric]:
        return [self.left_out]


class PositionsCollector(AccountCollector[PositionsSource, Positions]):
    def __init__(self, sources: Sequence[PositionsSource], max_positions: int = MAX_POSITIONS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        capped = Capped(max_positions, monotonic)  # its warnings kept from scrape to scrape
        super().__init__(sources, lambda scrape: PositionsFamilies(capped), positions_fetches)


class PositionsProduct(FetchProduct[PositionsSource, Positions], Configured, OwnHosts):
    """Positions of Portfolio Margin, futures and Portfolio Margin Pro accounts.

    Portfolio Margin Pro keeps its futures in the ordinary futures endpoints (Binance's
    futures docs have "Classic Portfolio Margin" sections); they are read there with the
    account's key, on the markets of its ``markets``."""

    name = "positions"
    types = ("portfolio_margin", "futures", "portfolio_margin_pro")
    settings = (
        Setting("max_positions", integer(1, 1_000_000), MAX_POSITIONS,
                "The most positions shown per account and market, the largest notional "
                "first: 85,000 make a page that takes longer to render than a scrape may "
                "(binance_margin_positions_left_out counts the rest)."),
    )
    host_settings = tuple(HOST_SETTINGS.values())

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """Each market's positions a fetch: a Portfolio Margin account's both on the papi
        host; a futures or PM Pro account's the markets of its ``markets``, on fapi and dapi."""
        if not self.reads(account, settings):
            return {}
        return Costs(settings, interval).each_fetch(*self.endpoints(account).values()).by_host

    @staticmethod
    def endpoints(account: AccountConfig) -> dict[str, Endpoint]:
        """The account's positionRisk endpoint of each market it reads."""
        if account.type == "portfolio_margin":
            return dict(PAPI_POSITIONS)
        return {market: FUTURES_POSITIONS[market] for market in account.option("markets")}

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> PositionsSource:
        if account.type == "portfolio_margin":  # the account's client is on the papi host
            calls = {market: (client, e.path) for market, e in PAPI_POSITIONS.items()}
        else:
            calls = {market: (market_client, FUTURES_POSITIONS[market].path)
                     for market, market_client in market_clients(account, client,
                                                                 build).items()}
        return PositionsSource.create(account.name, calls, build.executor,
                                      ttl=build.settings.cache_ttl_seconds)

    def kind(self) -> Fetches:
        return positions_fetches()

    def families(self, scrape: Scrape, build: Build) -> PositionsFamilies:
        return PositionsFamilies(Capped(build.settings.option("max_positions")))

    def collector(self, parts: Sequence[PositionsSource],
                  build: Build) -> PositionsCollector | None:
        return PositionsCollector(parts, build.settings.option("max_positions")) \
            if parts else None


PRODUCT = PositionsProduct()
