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

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.portfolio_pro import (
    PRO_ACCOUNT,
    PortfolioPro,
    PortfolioProReader,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.account_fetch import (
    Account,
    Families,
    FetchProduct,
    account_part,
)
from binance_margin_exporter.collectors.futures import MARKETS_SETTING
from binance_margin_exporter.collectors.portfolio import AccountFamilies
from binance_margin_exporter.collectors.product import Build
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import AccountConfig, Configured, Settings

PortfolioProSource = Account[PortfolioPro]  # an account's part: its fetch


class PortfolioProFamilies(Families[PortfolioProSource, PortfolioPro]):
    def __init__(self) -> None:
        self.accounts = AccountFamilies()
        self.info = GaugeMetricFamily(
            "binance_margin_portfolio_info",
            "Portfolio Margin Pro account type (accountType: PM_1 PM Pro, PM_3 PM Pro SPAN); "
            "always 1.", labels=["account", "account_type"])

    def add(self, part: PortfolioProSource, key: tuple[str, ...], value: PortfolioPro) -> None:
        self.accounts.add(part.name, value.account)
        if value.account_type is not None:
            self.info.add_metric([part.name, value.account_type], 1.0)

    def families(self) -> list[Metric]:
        return [*self.accounts.families, self.info]


class PortfolioProProduct(FetchProduct[PortfolioProSource, PortfolioPro], Configured):
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
        return account_part(f"portfolio margin pro account {account.name}", account.name,
                            client, PortfolioProReader(client), build.executor,
                            ttl=build.settings.cache_ttl_seconds)

    def families(self, scrape: Scrape, build: Build) -> PortfolioProFamilies:
        return PortfolioProFamilies()


PRODUCT = PortfolioProProduct()
