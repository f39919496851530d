"""Portfolio Margin Pro accounts (``type: portfolio_margin_pro``): ``/sapi/v1/portfolio/account``
(or ``/sapi/v2/...`` for SPAN, ``PM_3``) in, the Portfolio Margin account families out.

Example output::

    binance_margin_up{account="pro"} 1.0
    binance_margin_portfolio_uni_mmr{account="pro"} 5167.92171923
    binance_margin_portfolio_status{account="pro",status="NORMAL"} 1.0
    binance_margin_portfolio_info{account="pro",account_type="PM_1"} 1.0

The families are the Portfolio Margin ones (:mod:`.portfolio`; the exporter merges them), so
the uniMMR alerts and panels cover PM Pro accounts too. Its futures positions are the positions
product's (:mod:`.positions`). A field that does not parse (Binance's own example sends
``"totalAvailableBalance": "122,559.90199491"``) drops only its metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.portfolio_pro import (
    PRO_ACCOUNT,
    PortfolioPro,
    PortfolioProReader,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached, Result, start_all
from binance_margin_exporter.collectors.families import (
    InvalidFields,
    account_fetches,
    invalid_fields,
    non_empty,
)
from binance_margin_exporter.collectors.futures import MARKETS_SETTING
from binance_margin_exporter.collectors.portfolio import AccountFamilies
from binance_margin_exporter.collectors.product import Build, ClientState, Product
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import AccountConfig, Settings


@dataclass(frozen=True)
class PortfolioProSource:
    name: str
    client: ClientState
    account: Cached[PortfolioPro]
    invalid: InvalidFields = field(
        default_factory=lambda: InvalidFields("a portfolio margin pro account"))

    @classmethod
    def create(cls, name: str, client: BinanceClient, executor: Executor, *,
               ttl: float) -> PortfolioProSource:
        invalid = InvalidFields(f"portfolio margin pro account {name}")
        read = PortfolioProReader(client)

        def fetch(deadline: float) -> PortfolioPro:
            answer = read(deadline)
            invalid.note(answer.invalid)
            return answer

        return cls(name, client, Cached(f"portfolio margin pro account {name}", fetch,
                                        executor, ttl=ttl, timeout=client.timeout), invalid)


class PortfolioProCollector:
    def __init__(self, sources: Sequence[PortfolioProSource]) -> None:
        self.sources = tuple(sources)

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        results = start_all([s.account for s in self.sources], scrape.deadline)
        return lambda: self._families(results())

    def _families(self, results: Sequence[Result[PortfolioPro]]) -> Iterator[Metric]:
        fetches = account_fetches()
        accounts = AccountFamilies()
        info = GaugeMetricFamily(
            "binance_margin_portfolio_info",
            "Portfolio Margin Pro account type (accountType: PM_1 PM Pro, PM_3 PM Pro SPAN); "
            "always 1.", labels=["account", "account_type"])
        invalid = invalid_fields()
        for source, result in zip(self.sources, results, strict=True):
            name = source.name
            fetches.add([name], source.account, result, source.client)
            source.invalid.add_to(invalid, name)
            if result.value is None:
                continue
            accounts.add(name, result.value.account)
            if result.value.account_type is not None:
                info.add_metric([name, result.value.account_type], 1.0)
        return non_empty((fetches.up, *accounts.families, info, *fetches.tail(),
                          invalid))


class PortfolioProProduct(Product):
    """Portfolio Margin Pro accounts (``type: portfolio_margin_pro``), on the api host."""

    name = "portfolio_pro"
    types = ("portfolio_margin_pro",)
    account_settings = (MARKETS_SETTING,)  # its futures positions' markets

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The account a fetch (v1, or v2 for a SPAN account: the same weight; the first
        fetch of a SPAN account asks both, once)."""
        if not self.reads(account, settings):
            return {}
        return Costs(settings, interval).each_fetch(PRO_ACCOUNT).by_host

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> PortfolioProSource:
        return PortfolioProSource.create(account.name, client, build.executor,
                                         ttl=build.settings.cache_ttl_seconds)

    def collector(self, parts: Sequence[PortfolioProSource],
                  build: Build) -> PortfolioProCollector | None:
        return PortfolioProCollector(parts) if parts else None


PRODUCT = PortfolioProProduct()
