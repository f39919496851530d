"""Each product's declared weight is what its endpoints weigh (binance/'s declarations) times
how often it calls them; the simulator charges each route the same declaration."""

from __future__ import annotations

import math

import pytest

from binance_margin_exporter.binance import (
    cross,
    futures,
    interest,
    isolated,
    portfolio,
    portfolio_pro,
    positions,
    prices,
    risk_lists,
    sub_accounts,
)
from binance_margin_exporter.binance.endpoints import DECLARED, IP, TIME, UID, Endpoint
from binance_margin_exporter.binance.stream_connection import Timing
from binance_margin_exporter.binance.streams import MARGIN_KEY, PAPI_KEY
from binance_margin_exporter.collectors import cross as cross_product
from binance_margin_exporter.collectors import futures as futures_product
from binance_margin_exporter.collectors import isolated as isolated_product
from binance_margin_exporter.collectors import portfolio as portfolio_product
from binance_margin_exporter.collectors import portfolio_pro as pro_product
from binance_margin_exporter.collectors import positions as positions_product
from binance_margin_exporter.collectors import prices as prices_product
from binance_margin_exporter.collectors import risk_lists as risk_lists_product
from binance_margin_exporter.collectors import streams as streams_product
from binance_margin_exporter.collectors import sub_accounts as sub_accounts_product
from binance_margin_exporter.collectors.interest import RATES_REFRESH_SECONDS
from binance_margin_exporter.collectors.product import Product
from binance_margin_exporter.collectors.risk_lists import (
    DELIST_REFRESH_SECONDS,
    RESTRICTED_REFRESH_SECONDS,
)
from binance_margin_exporter.collectors.sub_accounts.roster import DISCOVERY_SECONDS
from binance_margin_exporter.config import Options, Settings
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.products import PRODUCTS, SIMULATED
from binance_margin_exporter.wiring import account_config, load

API, PAPI = "https://api.binance.com", "https://papi.binance.com"
FAPI, DAPI = "https://fapi.binance.com", "https://dapi.binance.com"
INTERVAL = 30.0  # a fetch every 30 s: 2 a minute
FETCHES = 2.0


def settings_of(*accounts, **options) -> Settings:
    defaults = load(None, {}, require_accounts=False)
    values = {**dict(defaults.options.items), **options}
    return Settings(tuple(accounts), options=Options.of(values), cache_ttl_seconds=10.0)


def a_minute(endpoint: Endpoint, seconds: float) -> float:
    """One call every ``seconds``: its weight a minute."""
    return endpoint.weight * 60.0 / seconds


MAIN = account_config("main", "k", "s")
PM = account_config("pm", "k", "s", type="portfolio_margin")
FUT = account_config("fut", "k", "s", type="futures", markets=("um", "cm"))
FUT_UM = account_config("fut_um", "k", "s", type="futures")
PRO = account_config("pro", "k", "s", type="portfolio_margin_pro", markets=("cm",))


def test_cross():
    settings = settings_of(MAIN)
    assert cross_product.PRODUCT.weight_per_minute(MAIN, settings, INTERVAL) == pytest.approx({
        API: cross.ACCOUNT.weight * FETCHES + a_minute(cross.TRADE_COEFF, 300)
        + a_minute(interest.NEXT_HOURLY_RATE, RATES_REFRESH_SECONDS)})
    off = settings_of(MAIN, interest_rates=False)
    assert cross_product.PRODUCT.weight_per_minute(MAIN, off, INTERVAL) == pytest.approx({
        API: cross.ACCOUNT.weight * FETCHES + a_minute(cross.TRADE_COEFF, 300)})


def test_isolated():
    settings = settings_of(MAIN)
    assert isolated_product.PRODUCT.weight_per_minute(MAIN, settings, INTERVAL) == \
        pytest.approx({API: isolated.ISOLATED_ACCOUNT.weight * FETCHES
                       + a_minute(interest.NEXT_HOURLY_RATE, RATES_REFRESH_SECONDS)})


@pytest.mark.parametrize("count", [1, 3, 10, 25])
def test_listed_sub_accounts_at_the_rotation_s_pace(count):
    """The rotation asks ceil(n x 30 / 300) details a fetch: the fixed cost and the scaled
    part together are that, the summary a fetch and the status every 10 minutes."""
    master = account_config("m", "k", "s", sub_accounts=[f"s{i}@x" for i in range(count)])
    settings = settings_of(master)
    product = sub_accounts_product.PRODUCT
    fixed = product.weight_per_minute(master, settings, INTERVAL)[API]
    scaled = product.scaled_weight(master, settings, INTERVAL)
    assert scaled is not None and scaled.count == count and scaled.host == API
    assert scaled.per_unit == pytest.approx(a_minute(sub_accounts.SUB_MARGIN_ACCOUNT, 300))
    details = math.ceil(count * INTERVAL / 300) * FETCHES * sub_accounts.SUB_MARGIN_ACCOUNT.weight
    assert fixed + scaled.per_unit * count == pytest.approx(
        sub_accounts.SUB_MARGIN_SUMMARY.weight * FETCHES
        + a_minute(sub_accounts.SUB_ACCOUNT_STATUS, DISCOVERY_SECONDS) + details)


def test_discovered_sub_accounts_count_the_list_and_a_detail_a_fetch():
    master = account_config("m", "k", "s", sub_accounts="all")
    settings = settings_of(master)
    assert sub_accounts_product.PRODUCT.weight_per_minute(master, settings, INTERVAL) == \
        pytest.approx({API: sub_accounts.SUB_MARGIN_SUMMARY.weight * FETCHES
                       + a_minute(sub_accounts.SUB_ACCOUNT_STATUS, DISCOVERY_SECONDS)
                       + a_minute(sub_accounts.SUB_ACCOUNT_LIST, DISCOVERY_SECONDS)
                       + sub_accounts.SUB_MARGIN_ACCOUNT.weight * FETCHES})


def test_listed_sub_accounts_younger_than_a_round_of_fetches_are_each_asked_every_fetch():
    """3 listed, details at most 20 s old, a fetch every 30 s: the rotation asks all three
    every fetch, never more (the plan said 31 a minute more, +12 %)."""
    master = account_config("m", "k", "s", sub_accounts=["a@x", "b@x", "c@x"])
    settings = settings_of(master, detail_max_age_seconds=20.0)
    product = sub_accounts_product.PRODUCT
    fixed = product.weight_per_minute(master, settings, INTERVAL)[API]
    scaled = product.scaled_weight(master, settings, INTERVAL)
    assert scaled is not None
    assert fixed + scaled.per_unit * 3 == pytest.approx(
        sub_accounts.SUB_MARGIN_SUMMARY.weight * FETCHES
        + a_minute(sub_accounts.SUB_ACCOUNT_STATUS, DISCOVERY_SECONDS)
        + 3 * FETCHES * sub_accounts.SUB_MARGIN_ACCOUNT.weight)


def test_every_detail_every_fetch_is_all_scaled():
    master = account_config("m", "k", "s", sub_accounts=["a@x", "b@x"])
    settings = settings_of(master, detail_max_age_seconds=0.0)
    product = sub_accounts_product.PRODUCT
    scaled = product.scaled_weight(master, settings, INTERVAL)
    assert scaled is not None
    assert scaled.per_unit == sub_accounts.SUB_MARGIN_ACCOUNT.weight * FETCHES
    assert product.weight_per_minute(master, settings, INTERVAL) == pytest.approx(
        {API: sub_accounts.SUB_MARGIN_SUMMARY.weight * FETCHES
         + a_minute(sub_accounts.SUB_ACCOUNT_STATUS, DISCOVERY_SECONDS)})


def test_portfolio_margin_on_its_host():
    settings = settings_of(PM)
    assert portfolio_product.PRODUCT.weight_per_minute(PM, settings, INTERVAL) == {
        PAPI: (portfolio.PAPI_ACCOUNT.weight + portfolio.PAPI_BALANCE.weight) * FETCHES}


def test_portfolio_margin_pro():
    settings = settings_of(PRO)
    assert pro_product.PRODUCT.weight_per_minute(PRO, settings, INTERVAL) == {
        API: portfolio_pro.PRO_ACCOUNT.weight * FETCHES}


def test_futures_on_the_hosts_of_their_markets():
    settings = settings_of(FUT, FUT_UM)
    product = futures_product.PRODUCT
    assert product.weight_per_minute(FUT, settings, INTERVAL) == {
        FAPI: futures.FUTURES_ACCOUNTS["um"].weight * FETCHES,
        DAPI: futures.FUTURES_ACCOUNTS["cm"].weight * FETCHES}
    assert product.weight_per_minute(FUT_UM, settings, INTERVAL) == {
        FAPI: futures.FUTURES_ACCOUNTS["um"].weight * FETCHES}


def test_positions_of_each_account_type():
    settings = settings_of(PM, FUT, PRO)
    product = positions_product.PRODUCT
    papi = positions.PAPI_POSITIONS
    assert product.weight_per_minute(PM, settings, INTERVAL) == {
        PAPI: (papi["um"].weight + papi["cm"].weight) * FETCHES}
    assert product.weight_per_minute(FUT, settings, INTERVAL) == {
        FAPI: positions.FUTURES_POSITIONS["um"].weight * FETCHES,
        DAPI: positions.FUTURES_POSITIONS["cm"].weight * FETCHES}
    assert product.weight_per_minute(PRO, settings, INTERVAL) == {
        DAPI: positions.FUTURES_POSITIONS["cm"].weight * FETCHES}


def test_prices_and_risk_lists_once_for_all_on_the_first_account():
    other = account_config("other", "k", "s")
    settings = settings_of(MAIN, other)
    assert prices_product.PRODUCT.weight_per_minute(MAIN, settings, INTERVAL) == {
        API: prices.TICKER_PRICE.weight * FETCHES}
    assert risk_lists_product.PRODUCT.weight_per_minute(MAIN, settings, INTERVAL) == \
        pytest.approx({API: a_minute(risk_lists.DELIST_SCHEDULE, DELIST_REFRESH_SECONDS)
                       + a_minute(risk_lists.RESTRICTED_ASSET, RESTRICTED_REFRESH_SECONDS)})
    for product in (prices_product.PRODUCT, risk_lists_product.PRODUCT):
        assert product.weight_per_minute(other, settings, INTERVAL) == {}


def test_the_streams_listen_keys():
    """Cross margin's listen key weighs on the account (UID): 0 on the IP, declared all the
    same; Portfolio Margin's a PUT every 30 minutes and a POST a day on the papi host."""
    settings = settings_of(MAIN, PM)
    timing = Timing()
    assert MARGIN_KEY["PUT"].budget == UID and PAPI_KEY["PUT"].budget == IP
    assert streams_product.MARGIN_RISK_PRODUCT.weight_per_minute(MAIN, settings,
                                                                 INTERVAL) == {API: 0.0}
    assert streams_product.PORTFOLIO_PRODUCT.weight_per_minute(PM, settings, INTERVAL) == \
        pytest.approx({PAPI: a_minute(PAPI_KEY["PUT"], timing.keep_alive)
                       + a_minute(PAPI_KEY["POST"], timing.connection_lifetime)})


def test_the_rare_calls_are_all_due_at_start():
    """What the first minute pays more: each call of every 5 minutes or less often, once."""
    master = account_config("m", "k", "s", sub_accounts="all")
    settings = settings_of(MAIN, master, PM)
    start = {
        cross_product.PRODUCT: cross.TRADE_COEFF.weight + interest.NEXT_HOURLY_RATE.weight,
        isolated_product.PRODUCT: interest.NEXT_HOURLY_RATE.weight,
        risk_lists_product.PRODUCT: risk_lists.DELIST_SCHEDULE.weight
        + risk_lists.RESTRICTED_ASSET.weight,
        streams_product.MARGIN_RISK_PRODUCT: 0.0,  # UID
        prices_product.PRODUCT: None,
    }
    for product, weight in start.items():
        declared = product.weight_per_minute(MAIN, settings, INTERVAL).at_start
        assert declared == ({} if weight is None else {API: weight}), product.name
    assert sub_accounts_product.PRODUCT.weight_per_minute(master, settings, INTERVAL).at_start \
        == {API: sub_accounts.SUB_ACCOUNT_STATUS.weight + sub_accounts.SUB_ACCOUNT_LIST.weight}
    # a new key at start; its keep-alive only after 30 minutes
    assert streams_product.PORTFOLIO_PRODUCT.weight_per_minute(PM, settings, INTERVAL) \
        .at_start == {PAPI: PAPI_KEY["POST"].weight}


def test_every_product_declares_for_every_account_it_reads():
    """Required: none falls back on declaring nothing (the base raises), and each names the
    host of a setting."""
    accounts = (MAIN, account_config("m", "k", "s", sub_accounts="all", loans=("flexible", "vip")),
                PM, FUT, PRO)
    settings = settings_of(*accounts)
    hosts = {API, PAPI, FAPI, DAPI}
    read, declared = set(), set()
    for product in PRODUCTS:
        for account in accounts:
            if product.reads(account, settings):
                read.add(product.name)
                weights = product.weight_per_minute(account, settings, INTERVAL)
                assert set(weights) <= hosts
                if weights:  # prices and risk lists: on the first account they read
                    declared.add(product.name)
    assert read == declared == {p.name for p in PRODUCTS}


def test_the_base_product_refuses_to_declare_nothing():
    with pytest.raises(NotImplementedError, match="'nameless' declares no weight_per_minute"):
        type("Nameless", (Product,), {"name": "nameless"})().weight_per_minute(
            MAIN, settings_of(MAIN), INTERVAL)


def test_the_simulator_charges_each_route_its_declared_ip_weight():
    sim = Simulator(SIMULATED)
    try:
        declared = {e.route: e for e in DECLARED}
        assert set(sim.routes) <= set(declared)
        for route, served in sim.routes.items():
            assert served.weight == declared[route].ip_weight, route
        assert sim.weight_of(TIME.path) == TIME.weight
        assert sim.weight_of(MARGIN_KEY["DELETE"].route) == 0  # UID: not the IP's
    finally:
        sim._server.server_close()


def test_an_endpoint_refuses_a_budget_or_host_it_does_not_know():
    with pytest.raises(ValueError, match="IP or UID"):
        Endpoint("/sapi/v1/x", 1, budget="ip")
    with pytest.raises(ValueError, match="host setting"):
        Endpoint("/sapi/v1/x", 1, host_setting="spot_url")


# Binance's documented weights (../shared/BINANCE.md and Binance's API pages), written here
# apart from the declarations: the simulator charges and the plan counts the declarations,
# so a wrong declared weight would pass every other test. A new endpoint adds its row.
DOCUMENTED = {
    ("GET", "/api/v3/time"): (1, IP),
    ("GET", "/api/v3/ticker/price"): (4, IP),
    ("GET", "/sapi/v1/margin/account"): (10, IP),
    ("GET", "/sapi/v1/margin/tradeCoeff"): (10, IP),
    ("GET", "/sapi/v1/margin/next-hourly-interest-rate"): (100, IP),
    ("GET", "/sapi/v1/margin/isolated/account"): (10, IP),
    ("GET", "/sapi/v1/margin/delist-schedule"): (100, IP),
    ("GET", "/sapi/v1/margin/restricted-asset"): (1, IP),
    ("GET", "/sapi/v1/sub-account/list"): (1, IP),
    ("GET", "/sapi/v1/sub-account/status"): (10, IP),
    ("GET", "/sapi/v1/sub-account/margin/account"): (10, IP),
    ("GET", "/sapi/v1/sub-account/margin/accountSummary"): (10, IP),
    ("GET", "/sapi/v1/portfolio/account"): (5, IP),
    ("GET", "/sapi/v2/portfolio/account"): (5, IP),
    ("GET", "/papi/v1/account"): (20, IP),
    ("GET", "/papi/v1/balance"): (20, IP),
    ("GET", "/papi/v1/um/positionRisk"): (5, IP),
    ("GET", "/papi/v1/cm/positionRisk"): (1, IP),
    ("GET", "/fapi/v3/account"): (5, IP),
    ("GET", "/fapi/v3/positionRisk"): (5, IP),
    ("GET", "/dapi/v1/account"): (5, IP),
    ("GET", "/dapi/v1/positionRisk"): (1, IP),
    ("POST", "/sapi/v1/margin/listen-key"): (1, UID),
    ("PUT", "/sapi/v1/margin/listen-key"): (1, UID),
    ("DELETE", "/sapi/v1/margin/listen-key"): (3000, UID),
    ("POST", "/papi/v1/listenKey"): (1, IP),
    ("PUT", "/papi/v1/listenKey"): (1, IP),
    ("DELETE", "/papi/v1/listenKey"): (1, IP),
    ("GET", "/sapi/v2/loan/flexible/ongoing/orders"): (300, IP),
    ("GET", "/sapi/v2/loan/flexible/collateral/data"): (400, IP),
    ("GET", "/sapi/v1/loan/vip/ongoing/orders"): (400, IP),
    ("GET", "/sapi/v1/margin/interestHistory"): (1, IP),
    ("GET", "/sapi/v1/margin/forceLiquidationRec"): (1, IP),
    ("GET", "/papi/v1/margin/marginInterestHistory"): (1, IP),
    ("GET", "/papi/v1/margin/forceOrders"): (1, IP),
    ("GET", "/fapi/v1/income"): (30, IP),
    ("GET", "/dapi/v1/income"): (20, IP),
    ("GET", "/papi/v1/um/income"): (30, IP),
    ("GET", "/papi/v1/cm/income"): (30, IP),  # its own page not found: as um's
}


def test_every_declared_endpoint_weighs_what_binance_documents():
    declared = {(e.method, e.path): (e.weight, e.budget) for e in DECLARED}
    assert declared == DOCUMENTED
