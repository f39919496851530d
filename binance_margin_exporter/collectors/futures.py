"""Futures accounts (``type: futures``): ``/fapi/v3/account`` (um, on the fapi host) and
``/dapi/v1/account`` (cm, on the dapi host) in, families out. Their positions are the
positions product's (:mod:`.positions`).

Example output::

    binance_margin_up{account="fut"} 1.0
    binance_margin_futures_asset_margin_balance{account="fut",asset="USDT",market="um"} 23.7
    binance_margin_futures_total_margin_balance{account="fut"} 23.7
    binance_margin_futures_total_maint_margin{account="fut"} 0.08

Binance's margin ratio (maintenance margin / margin balance; it liquidates at 100 %) is the
recording rule ``binance_margin:futures_margin_ratio{account, market}``. An asset with nothing
at all (the fapi account lists every asset) is left out. ``binance_margin_up``, errors,
duration, last success and back-off are the shared account families: both markets' accounts
are one fetch, so either failing makes the account down.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.binance.futures import (
    ASSET_FIELDS,
    FUTURES_ACCOUNTS,
    MARKETS,
    Futures,
    fetch_futures,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.account_fetch import (
    Account,
    Families,
    FetchProduct,
    account_part,
)
from binance_margin_exporter.collectors.product import Build, KeyState
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.tables import Table
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import (
    AccountConfig,
    ChecksAccount,
    ConfigError,
    Configured,
    OwnHosts,
    Setting,
    Settings,
)
from binance_margin_exporter.config.schema import names, url

DEFAULT_FAPI_BASE_URL = "https://fapi.binance.com"
DEFAULT_DAPI_BASE_URL = "https://dapi.binance.com"
HOST_SETTINGS = {"um": "fapi_base_url", "cm": "dapi_base_url"}  # market -> its host's key


MARKETS_SETTING = Setting(
    "markets", names("a market", "markets (um, cm)", among=MARKETS), ("um",),
    "The futures markets of a futures or portfolio_margin_pro account: um (USDⓈ-M, on "
    "fapi_base_url), cm (COIN-M, on dapi_base_url).")

MARKETS_TYPES = ("futures", "portfolio_margin_pro")  # the account types that read ``markets``

ASSET_HELP = {
    "wallet_balance": "Futures wallet balance of the asset (walletBalance).",
    "margin_balance": "Futures margin balance of the asset (marginBalance).",
    "maint_margin": "Futures maintenance margin of the asset (maintMargin).",
    "unrealized_pnl": "Futures unrealized profit and loss of the asset (unrealizedProfit).",
    "available_balance": "Futures available balance of the asset (availableBalance).",
}
TOTAL_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("total_margin_balance", "binance_margin_futures_total_margin_balance",
     "USDⓈ-M futures total margin balance (totalMarginBalance; USDT in single-asset mode, "
     "USD in multi-assets mode)."),
    ("total_maint_margin", "binance_margin_futures_total_maint_margin",
     "USDⓈ-M futures total maintenance margin (totalMaintMargin)."),
)


def market_clients(account: AccountConfig, client: BinanceClient,
                   build: Build) -> dict[str, BinanceClient]:
    """The account's key on each of its markets' hosts."""
    return {market: build.client_on(client, HOST_SETTINGS[market])
            for market in account.option("markets")}


class Keys:
    """The back-off of an account's key over its hosts: the latest of them."""

    def __init__(self, clients: Sequence[KeyState]) -> None:
        self.clients = tuple(clients)
        self.timeout = max((getattr(c, "timeout", 5.0) for c in clients), default=5.0)

    def auth_backoff_until(self) -> float:
        return max((c.auth_backoff_until() for c in self.clients), default=0.0)


FuturesSource = Account[Futures]  # an account's part: its fetch of both markets


class FuturesFamilies(Families[FuturesSource, Futures]):
    def __init__(self) -> None:
        self.assets = [GaugeMetricFamily(f"binance_margin_futures_asset_{attr}",
                                         ASSET_HELP[attr], labels=["account", "market", "asset"])
                       for attr, _ in ASSET_FIELDS]
        self.totals = Table(TOTAL_GAUGES, ["account"])

    def add(self, part: FuturesSource, key: tuple[str, ...], value: Futures) -> None:
        for account in value.accounts:
            if account.market == "um":
                self.totals.add(key, account)
            for asset in account.assets:
                if not any(asset.values):
                    continue  # an asset with nothing at all
                for number, family in zip(asset.values, self.assets, strict=True):
                    if number is not None:
                        family.add_metric([part.name, account.market, asset.asset], number)

    def families(self) -> list[Metric]:
        return [*self.assets, *self.totals.families]


class FuturesProduct(FetchProduct[FuturesSource, Futures], Configured, OwnHosts, ChecksAccount):
    """Futures accounts (``type: futures``): USDⓈ-M on the fapi host, COIN-M on the dapi
    host, each host its own weight budget (2,400 a minute)."""

    name = "futures"
    types = ("futures",)
    settings = (
        Setting("fapi_base_url", url, DEFAULT_FAPI_BASE_URL,
                "USDⓈ-M futures' REST host (it keeps time with base_url's)."),
        Setting("dapi_base_url", url, DEFAULT_DAPI_BASE_URL,
                "COIN-M futures' REST host (it keeps time with base_url's)."),
    )
    account_settings = (MARKETS_SETTING,)
    host_settings = tuple(HOST_SETTINGS.values())

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The account of each of its markets a fetch: um on the fapi host, cm on dapi."""
        if not self.reads(account, settings):
            return {}
        return Costs(settings, interval).each_fetch(
            *(FUTURES_ACCOUNTS[market] for market in account.option("markets"))).by_host

    def check(self, account: AccountConfig) -> None:
        if account.type not in MARKETS_TYPES and \
                account.option("markets") != MARKETS_SETTING.default:
            raise ConfigError(f"{account.source}.markets: only for type futures or "
                              f"portfolio_margin_pro (a portfolio_margin account's positions "
                              f"are read on both markets)")

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> FuturesSource:
        """Both markets' accounts are one fetch: either failing makes the account down."""
        clients = market_clients(account, client, build)
        return account_part(f"futures account {account.name}", account.name,
                            Keys(list(clients.values())),
                            lambda deadline: fetch_futures(clients, deadline), build.executor,
                            ttl=build.settings.cache_ttl_seconds)

    def families(self, scrape: Scrape, build: Build) -> FuturesFamilies:
        return FuturesFamilies()


PRODUCT = FuturesProduct()
