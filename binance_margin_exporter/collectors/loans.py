"""Crypto loans (``loans: [flexible, vip]`` on an account): two products, ``loans`` (flexible
rate) and ``vip_loans``, their orders in, every loan's LTV against its bars out.

Example output::

    binance_margin_loans_up{account="main",loan="flexible"} 1.0
    binance_margin_loan_debt{account="main",loan="flexible",loan_asset="BUSD",...} 10000.0
    binance_margin_loan_ltv{account="main",loan="flexible",loan_asset="BUSD",...} 0.57
    binance_margin_loan_ltv_threshold{...,threshold="margin_call"} 0.75
    binance_margin_loan_ltv_live{...} 0.5712

Every loan family has the labels ``account``, ``loan`` (``flexible`` | ``vip``),
``loan_asset``, ``collateral_asset`` and ``order_id`` (:mod:`.loan_families` makes them).
Values are Binance's, exactly;
``binance_margin_loan_ltv_live`` is this exporter's: debt x price(loan asset) / (collateral x
price(collateral asset)) at this scrape's prices, absent where a price route is missing.

The orders weigh 300 (flexible) and 400 (VIP) a page: they are fetched at most every
``loans_interval_seconds``, and at once when a flexible loan's live LTV rises past one of its
bars (by 0.005: a hysteresis band) above the zone Binance's last answer showed, at most once
every ``loans_interval_seconds`` / 2 (so at most three times the orders' declared weight).
``binance_margin_loans_up{account, loan}`` and ``binance_margin_loans_scrape_errors`` are each
fetch's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

from binance_margin_exporter.binance.loans import (
    FLEXIBLE_COLLATERAL,
    FLEXIBLE_ORDERS,
    THRESHOLDS,
    VIP_ORDERS,
    Bars,
    FlexibleLoans,
    FlexibleReader,
    VipLoans,
    fetch_vip_loans,
)
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.account_fetch import FetchProduct, noting
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.fetch_families import Fetches
from binance_margin_exporter.collectors.invalid_fields import InvalidFields
from binance_margin_exporter.collectors.loan_families import (
    Crossings,
    FlexibleFamilies,
    LoanFamilies,
    LoanPart,
    VipFamilies,
    loan_fetches,
)
from binance_margin_exporter.collectors.product import Build
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.weights import Costs
from binance_margin_exporter.config import (
    AccountConfig,
    ChecksAccount,
    ConfigError,
    Configured,
    Setting,
    Settings,
)
from binance_margin_exporter.config.schema import check_keys, names, number

T = TypeVar("T")
KINDS = ("flexible", "vip")
LOAN_TYPES = ("cross", "portfolio_margin_pro")  # accounts whose key reads the api host
# a failed fetch is tried again after a minute, not every scrape: 300 or 400 weight a page
RETRY_SECONDS = 60.0
BAR_NAMES = tuple(name for name, _ in THRESHOLDS)


def ltv_bars(value: Any, key: str) -> tuple[tuple[str, float], ...]:
    """``{initial, margin_call, liquidation}`` (decimals, any of them), in rising order."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{key}: expected a mapping of initial, margin_call, liquidation")
    check_keys(value, BAR_NAMES, key)
    bars = tuple((name, number(0.0, 10.0)(value[name], f"{key}.{name}"))
                 for name in BAR_NAMES if name in value)
    for (low, a), (high, b) in itertools.pairwise(bars):
        if a > b:
            raise ConfigError(f"{key}.{high}: must not be below {low} ({b:g} < {a:g})")
    return bars


LOANS_SETTING = Setting(
    "loans", names("a loan kind", "loan kinds (flexible, vip)", among=KINDS), (),
    "The crypto loans to read for this account (type cross or portfolio_margin_pro): "
    f"flexible (GET {FLEXIBLE_ORDERS.path}, {FLEXIBLE_ORDERS.weight} weight a page of 100, "
    f"and its collateral data, {FLEXIBLE_COLLATERAL.weight}, hourly), vip (GET "
    f"{VIP_ORDERS.path}, {VIP_ORDERS.weight} a page). Default: none.")
INTERVAL_SETTING = Setting(
    "loans_interval_seconds", number(30.0, 86400.0), 300.0,
    "The longest time between two fetches of an account's loan orders (a flexible loan whose "
    "live LTV rises 0.005 past a bar Binance's last answer showed it under is fetched at once, at "
    "most once every half interval).")
VIP_BARS_SETTING = Setting(
    "vip_loan_ltv_bars", ltv_bars, None,
    "The LTV bars of this account's VIP loans, which Binance does not publish: a mapping of "
    "initial, margin_call, liquidation (decimals: 0.8 is 80 %). Without it VIP loans show no "
    "threshold.")


SHARED = ("binance_margin_loans_up", "binance_margin_loans_scrape_errors",
          *(f.name for f in LoanFamilies().shared()))


class LoanProduct(FetchProduct[LoanPart[T], T], Configured):
    kind_name = ""
    endpoint = FLEXIBLE_ORDERS
    types = LOAN_TYPES
    settings = (INTERVAL_SETTING,)

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        return account.type in self.types and self.kind_name in account.option("loans")

    def kind(self) -> Fetches:
        return loan_fetches()

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """A page of orders every ``loans_interval_seconds`` (a page holds 100 orders: each
        100 more cost as much again)."""
        if not self.reads(account, settings):
            return {}
        return Costs(settings, interval).every(settings.option("loans_interval_seconds"),
                                               self.endpoint).by_host

    def loan_part(self, account: AccountConfig, client: BinanceClient, build: Build,
                  call: Callable[[float], T], bars: Bars | None = None) -> LoanPart[T]:
        what = f"{self.kind_name} loans of {account.name}"
        interval = build.settings.option("loans_interval_seconds")
        invalid = InvalidFields(what)
        return LoanPart(account.name, self.kind_name, client, Cached(
            what, noting(call, invalid), build.executor,
            ttl=interval, error_ttl=min(RETRY_SECONDS, interval), timeout=client.timeout),
            invalid, bars, Crossings(interval / 2))


class FlexibleLoansProduct(LoanProduct[FlexibleLoans], ChecksAccount):
    """Flexible-rate crypto loans, with their collateral coins' bars and a live LTV."""

    name = "loans"
    kind_name = "flexible"
    account_settings = (LOANS_SETTING, VIP_BARS_SETTING)

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """Its orders (:class:`LoanProduct`), and the collateral data hourly."""
        if not self.reads(account, settings):
            return {}
        costs = Costs(settings, interval)
        costs.every(settings.option("loans_interval_seconds"), FLEXIBLE_ORDERS)
        return costs.every(3600.0, FLEXIBLE_COLLATERAL).by_host

    def check(self, account: AccountConfig) -> None:
        if account.option("loans") and account.type not in LOAN_TYPES:
            raise ConfigError(f"{account.source}.loans: only for type cross or "
                              f"portfolio_margin_pro (the key that reads the api host)")
        if account.option("vip_loan_ltv_bars") is not None and \
                "vip" not in account.option("loans"):
            raise ConfigError(f"{account.source}.vip_loan_ltv_bars: only with vip in loans")

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> LoanPart[FlexibleLoans]:
        return self.loan_part(account, client, build, FlexibleReader(client))

    def families(self, scrape: Scrape, build: Build) -> FlexibleFamilies:
        return FlexibleFamilies(scrape)


class VipLoansProduct(LoanProduct[VipLoans]):
    """VIP loans; their bars only where the operator sets them (``vip_loan_ltv_bars``)."""

    name = "vip_loans"
    kind_name = "vip"
    endpoint = VIP_ORDERS
    account_settings = (LOANS_SETTING, VIP_BARS_SETTING)

    def part(self, account: AccountConfig, client: BinanceClient,
             build: Build) -> LoanPart[VipLoans]:
        bars = account.option("vip_loan_ltv_bars")
        return self.loan_part(account, client, build,
                              lambda deadline: fetch_vip_loans(client, deadline),
                              None if bars is None else Bars(**dict(bars)))

    def families(self, scrape: Scrape, build: Build) -> VipFamilies:
        return VipFamilies()

    def describe(self, build: Build) -> tuple[str, ...]:
        """Its own families: those it shares with the flexible loans carry ``loan="vip"``."""
        return tuple(name for name in super().describe(build) if name not in SHARED)


PRODUCT = FlexibleLoansProduct()
VIP_PRODUCT = VipLoansProduct()
