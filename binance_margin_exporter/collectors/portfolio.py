"""Portfolio Margin accounts (``type: portfolio_margin``): ``/papi/v1/account`` and
``/papi/v1/balance`` in, families out.

Example output::

    binance_margin_up{account="pm"} 1.0
    binance_margin_portfolio_uni_mmr{account="pm"} 5.167
    binance_margin_portfolio_status{account="pm",status="NORMAL"} 1.0
    binance_margin_portfolio_asset_cross_margin_borrowed{account="pm",asset="USDT"} 100.0

``binance_margin_up``, errors, duration, last success and back-off are the same families as the
cross accounts' (the exporter merges them). An empty string from Binance drops its metric.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.portfolio import (
    BALANCE_FIELDS,
    PAPI_ACCOUNT,
    PAPI_BALANCE,
    STATUSES,
    Portfolio,
    PortfolioAccount,
    fetch_portfolio,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.account_fetch import (
    Account,
    Families,
    FetchProduct,
    account_part,
)
from binance_margin_exporter.collectors.product import Build
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.tables import Table, states
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import AccountConfig, Configured, OwnHosts, Setting, Settings
from binance_margin_exporter.config.schema import url

DEFAULT_PAPI_BASE_URL = "https://papi.binance.com"

ACCOUNT_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("uni_mmr", "binance_margin_portfolio_uni_mmr",
     "Unified maintenance margin ratio (uniMMR): Binance liquidates at 1.05 and below; "
     "99999999 is Binance's placeholder for no maintenance margin, exported as sent."),
    ("account_equity", "binance_margin_portfolio_account_equity_usd",
     "Account equity in USD (accountEquity)."),
    ("actual_equity", "binance_margin_portfolio_actual_equity_usd",
     "Actual equity in USD, without collateral rates (actualEquity)."),
    ("initial_margin", "binance_margin_portfolio_initial_margin_usd",
     "Initial margin in USD (accountInitialMargin)."),
    ("maint_margin", "binance_margin_portfolio_maint_margin_usd",
     "Maintenance margin in USD (accountMaintMargin)."),
    ("virtual_max_withdraw", "binance_margin_portfolio_virtual_max_withdraw_usd",
     "Maximum virtual amount for transfer out in USD (virtualMaxWithdrawAmount)."),
    ("total_available_balance", "binance_margin_portfolio_available_balance_usd",
     "Total available balance in USD (totalAvailableBalance)."),
    ("total_margin_open_loss", "binance_margin_portfolio_margin_open_loss_usd",
     "Open loss of cross margin orders in USD (totalMarginOpenLoss)."),
)
# BALANCE_FIELDS attr -> metric name suffix and HELP
ASSET_NAMES: dict[str, str] = {
    "wallet_balance": "Wallet balance (totalWalletBalance).",
    "cross_margin_asset": "Cross margin asset (crossMarginAsset).",
    "cross_margin_borrowed": "Cross margin borrowed (crossMarginBorrowed).",
    "cross_margin_free": "Cross margin free (crossMarginFree).",
    "cross_margin_interest": "Cross margin interest (crossMarginInterest).",
    "cross_margin_locked": "Cross margin locked (crossMarginLocked).",
    "um_wallet_balance": "USDⓈ-M futures wallet balance (umWalletBalance).",
    "um_unrealized_pnl": "USDⓈ-M futures unrealized profit and loss (umUnrealizedPNL).",
    "cm_wallet_balance": "COIN-M futures wallet balance (cmWalletBalance).",
    "cm_unrealized_pnl": "COIN-M futures unrealized profit and loss (cmUnrealizedPNL).",
    "negative_balance": "Negative balance (negativeBalance).",
}


PortfolioSource = Account[Portfolio]  # an account's part: its fetch of both answers


class AccountFamilies:
    """The account-level families of a Portfolio Margin account (``/papi/v1/account``, and
    Portfolio Margin Pro's, which answers the same fields): its numbers and its status."""

    def __init__(self) -> None:
        self.gauges = Table(ACCOUNT_GAUGES, ["account"])
        self.status = GaugeMetricFamily(
            "binance_margin_portfolio_status",
            "Portfolio Margin account status (accountStatus): 1 for the current one.",
            labels=["account", "status"])

    def add(self, name: str, account: PortfolioAccount) -> None:
        self.gauges.add([name], account)
        if account.status is not None:
            for state, on in states(account.status, STATUSES):
                self.status.add_metric([name, state], on)

    @property
    def families(self) -> list[Metric]:
        return [*self.gauges.families, self.status]


class PortfolioFamilies(Families[PortfolioSource, Portfolio]):
    def __init__(self) -> None:
        self.accounts = AccountFamilies()
        self.assets = [GaugeMetricFamily(f"binance_margin_portfolio_asset_{attr}",
                                         ASSET_NAMES[attr], labels=["account", "asset"])
                       for attr, _ in BALANCE_FIELDS]

    def add(self, part: PortfolioSource, key: tuple[str, ...], value: Portfolio) -> None:
        self.accounts.add(part.name, value.account)
        for balance in value.balances:
            if not any(balance.values):
                continue  # an asset with nothing at all, as for cross accounts
            for number, family in zip(balance.values, self.assets, strict=True):
                if number is not None:
                    family.add_metric([part.name, balance.asset], number)

    def families(self) -> list[Metric]:
        return [*self.accounts.families, *self.assets]


class PortfolioProduct(FetchProduct[PortfolioSource, Portfolio], Configured, OwnHosts):
    """Portfolio Margin accounts (``type: portfolio_margin``), on their own host."""

    name = "portfolio"
    types = ("portfolio_margin",)
    settings = (
        Setting("papi_base_url", url, DEFAULT_PAPI_BASE_URL,
                "Portfolio Margin's REST host (it keeps time with base_url's)."),
    )
    host_setting = "papi_base_url"

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The account and the balances a fetch, on the papi host."""
        if not self.reads(account, settings):
            return {}
        return Costs(settings, interval).each_fetch(PAPI_ACCOUNT, PAPI_BALANCE).by_host

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> PortfolioSource:
        return account_part(f"portfolio margin account {account.name}", account.name, client,
                            lambda deadline: fetch_portfolio(client, deadline), build.executor,
                            ttl=build.settings.cache_ttl_seconds)

    def families(self, scrape: Scrape, build: Build) -> PortfolioFamilies:
        return PortfolioFamilies()


PRODUCT = PortfolioProduct()
