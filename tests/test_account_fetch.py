"""collectors/account_fetch.py: the families every account fetch has (up, errors by reason,
duration, last success, back-off, invalid fields) are made once, by shared code, from each
fetch's result; a product gets only the parsed values. And product.py's check_series: two
products making one series for an account fail the build, naming both and the family."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import pytest
from prometheus_client.core import GaugeMetricFamily

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.collectors import futures
from binance_margin_exporter.collectors.account_fetch import (
    Account,
    AccountCollector,
    Families,
    Fetched,
    FetchProduct,
    account_families,
    account_part,
    family_names,
    noting,
)
from binance_margin_exporter.collectors.cache import ERROR_REASONS, Cached, Result
from binance_margin_exporter.collectors.fetch_families import Fetches, account_fetches
from binance_margin_exporter.collectors.invalid_fields import InvalidFields
from binance_margin_exporter.collectors.product import Describes, check_series
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.tables import Memo
from binance_margin_exporter.config import ConfigError, Options
from binance_margin_exporter.products import PRODUCTS
from binance_margin_exporter.web.exposition import as_sample
from binance_margin_exporter.wiring import account_config, build_exporter
from tests.support.clocks import WALL, StepClock
from tests.support.exporters import settings_for
from tests.support.keys import API_KEY, SECRET
from tests.support.pool import EXECUTOR
from tests.support.waiting import wait_for

ACCOUNT = (("account", "a"),)


class Key:
    """An account's key: its back-off and its request timeout."""

    def __init__(self, backoff: float = 0.0, timeout: float = 5.0) -> None:
        self.backoff = backoff
        self.timeout = timeout

    def auth_backoff_until(self) -> float:
        return self.backoff


@dataclass(frozen=True)
class Answer:
    value: float
    invalid: tuple[str, ...] = ()


class Values(Families[Account[Answer], Answer]):
    """A product's families: one gauge of the answer's value; what it was shown, in order."""

    def __init__(self, scrape: Scrape | None = None) -> None:
        self.gauge = GaugeMetricFamily("test_value", "The value.", labels=["account"])
        self.seen_parts: list[str] = []
        self.added: list[tuple[str, tuple[str, ...], float]] = []

    def seen(self, part: Account[Answer]) -> None:
        self.seen_parts.append(part.name)

    def add(self, part: Account[Answer], key: tuple[str, ...], value: Answer) -> None:
        self.added.append((part.name, key, value.value))
        self.gauge.add_metric(list(key), value.value)

    def families(self) -> list:
        return [self.gauge]


class Trailing(Values):
    def __init__(self, scrape: Scrape | None = None) -> None:
        super().__init__(scrape)
        self.last = GaugeMetricFamily("test_last", "After the invalid fields.",
                                      labels=["account"])

    def add(self, part, key, value):
        super().add(part, key, value)
        self.last.add_metric(list(key), 1.0)

    def after(self) -> list:
        return [self.last]


def answers(*outcomes):
    """A fetch that returns (or raises) each outcome in turn."""
    left = list(outcomes)

    def fetch(deadline: float) -> Answer:
        outcome = left.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
    return fetch


def part(name: str = "a", *outcomes, key: Key | None = None, memo: Memo | None = None,
         clock=None) -> Account[Answer]:
    invalid = InvalidFields(f"test account {name}")
    cached = Cached(f"test account {name}", noting(answers(*outcomes), invalid), EXECUTOR,
                    ttl=0, monotonic=clock or StepClock(), wall=lambda: WALL)
    return Account(name, key or Key(), cached, invalid, memo)


def scrape(parts, families=Values, kind=account_fetches):
    """One scrape through the collector: (families by name, the product's families)."""
    made: list[Values] = []

    def make(scrape: Scrape) -> Values:
        made.append(families(scrape))
        return made[-1]

    out = list(AccountCollector(parts, make, kind).collect(time.monotonic() + 5))
    return out, made[0]


def values(out) -> dict:
    samples = [as_sample(s) for family in out for s in family.samples]  # kept ones too
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


def test_a_good_fetch_is_up_with_its_values_duration_last_success_and_back_off():
    out, made = scrape([part("a", Answer(7.0), key=Key(backoff=123.0))])
    assert [f.name for f in out] == [
        "binance_margin_up", "test_value", "binance_margin_scrape_duration_seconds",
        "binance_margin_scrape_errors", "binance_margin_last_success_timestamp_seconds",
        "binance_margin_backoff_until_timestamp_seconds"]
    got = values(out)
    assert got[("binance_margin_up", ACCOUNT)] == 1.0
    assert got[("test_value", ACCOUNT)] == 7.0
    assert got[("binance_margin_scrape_duration_seconds", ACCOUNT)] == 0.25  # one clock step
    assert got[("binance_margin_last_success_timestamp_seconds", ACCOUNT)] == WALL
    assert got[("binance_margin_backoff_until_timestamp_seconds", ACCOUNT)] == 123.0
    for reason in ERROR_REASONS:
        assert got[("binance_margin_scrape_errors_total", (*ACCOUNT, ("reason", reason)))] == 0
    assert made.seen_parts == ["a"] and made.added == [("a", ("a",), 7.0)]


def test_a_failed_fetch_is_up_0_and_counted_and_the_product_never_sees_it():
    out, made = scrape([part("a", UpstreamError("http", "HTTP 503"))])
    got = values(out)
    assert got[("binance_margin_up", ACCOUNT)] == 0.0
    assert got[("binance_margin_scrape_errors_total", (*ACCOUNT, ("reason", "http")))] == 1.0
    assert ("binance_margin_last_success_timestamp_seconds", ACCOUNT) not in got
    assert "test_value" not in [f.name for f in out]  # an empty family is left out
    assert made.seen_parts == ["a"] and made.added == []


def test_accounts_in_order_each_its_own_result():
    parts = [part("a", Answer(1.0)), part("b", UpstreamError("timeout", "slow")),
             part("c", Answer(3.0))]
    out, made = scrape(parts)
    assert made.seen_parts == ["a", "b", "c"]
    assert made.added == [("a", ("a",), 1.0), ("c", ("c",), 3.0)]
    up = next(f for f in out if f.name == "binance_margin_up")
    assert [(s.labels["account"], s.value) for s in up.samples] == \
        [("a", 1.0), ("b", 0.0), ("c", 1.0)]


def test_invalid_fields_are_noted_once_a_fetch_and_shown_by_account_and_field(caplog):
    parts = [part("a", Answer(1.0, ("marginLevel",))), part("b", Answer(2.0, ("x", "y")))]
    with caplog.at_level(logging.WARNING):
        out, _ = scrape(parts)
    invalid = [f for f in out if f.name == "binance_margin_invalid_fields"]
    assert [f.name for f in out][-1] == "binance_margin_invalid_fields"
    assert [(s.labels["account"], s.labels["field"], s.value) for s in invalid[0].samples] == \
        [("a", "marginLevel", 1.0), ("b", "x", 1.0), ("b", "y", 1.0)]
    assert "test account a: Binance sent a marginLevel that does not parse" in caplog.text


def test_a_product_may_name_where_its_invalid_fields_are():
    invalid = InvalidFields("positions")
    fetch = noting(lambda deadline: Answer(1.0, ("notional",)), invalid,
                   lambda answer: (f"positionRisk.{f}" for f in answer.invalid))
    assert fetch(0.0) == Answer(1.0, ("notional",))
    assert dict(invalid.counts) == {"positionRisk.notional": 1}


def test_families_after_the_invalid_fields_come_last():
    out, _ = scrape([part("a", Answer(1.0, ("f",)))], families=Trailing)
    assert [f.name for f in out][-2:] == ["binance_margin_invalid_fields", "test_last"]


def test_a_fetch_shown_apart_has_its_own_up_and_errors_and_nothing_else():
    def kind() -> Fetches:
        return Fetches("test_thing", "Up.", "Errors.")

    out, _ = scrape([part("a", Answer(1.0))], kind=kind)
    assert [f.name for f in out] == ["test_thing_up", "test_value", "test_thing_scrape_errors"]


class Markets:
    """A part of several fetches (one per market), one set of invalid fields."""

    def __init__(self, name: str, **markets) -> None:
        self.name = name
        self.invalid = InvalidFields(name)
        self.memo = None
        self.fetched = tuple(
            Fetched((name, market), None, Cached(market, noting(answers(outcome), self.invalid),
                                                  EXECUTOR, ttl=0))
            for market, outcome in markets.items())


def test_each_fetch_of_an_account_is_its_own_series_and_the_account_is_seen_once():
    def kind() -> Fetches:
        return Fetches("test_m", "Up.", "Errors.", ("account", "market"))

    parts = [Markets("p", um=Answer(1.0, ("u",)), cm=UpstreamError("http", "500")),
             Markets("q", um=Answer(2.0))]
    out, made = scrape(parts, kind=kind)
    assert made.seen_parts == ["p", "q"]
    assert made.added == [("p", ("p", "um"), 1.0), ("q", ("q", "um"), 2.0)]
    up = next(f for f in out if f.name == "test_m_up")
    assert [(tuple(s.labels.values()), s.value) for s in up.samples] == [
        (("p", "um"), 1.0), (("p", "cm"), 0.0), (("q", "um"), 1.0)]
    invalid = next(f for f in out if f.name == "binance_margin_invalid_fields")
    assert [(s.labels["account"], s.labels["field"]) for s in invalid.samples] == [("p", "u")]


def test_a_part_with_a_memo_keeps_its_fetch_samples():
    memo = Memo()
    clock = StepClock()
    account = part("a", Answer(1.0), Answer(1.0), memo=memo, clock=clock)
    first = values(scrape([account])[0])
    kept = memo._kept["fetch"][1]
    second = values(scrape([account])[0])
    assert memo._kept["fetch"][1] is kept  # the same up, errors and back-off: made once
    assert first == second


def test_the_shared_families_are_made_from_the_results_given():
    """What a master's sub-accounts use: results fetched elsewhere."""
    account = part("a")
    result = Result(Answer(5.0), None, 0.0, 0.5)
    made = Values()
    out = list(account_families(account_fetches(), made, [(account, [(account.fetched[0],
                                                                      result)])]))
    got = values(out)
    assert got[("binance_margin_up", ACCOUNT)] == 1.0
    assert got[("binance_margin_scrape_duration_seconds", ACCOUNT)] == 0.5
    assert got[("test_value", ACCOUNT)] == 5.0


def test_account_part_caches_the_call_with_the_clients_timeout_and_notes_fields():
    account = account_part("thing main", "main", Key(timeout=3.5),
                           lambda deadline: Answer(4.0, ("f",)), EXECUTOR, ttl=30.0,
                           error_ttl=2.0)
    assert account.name == "main" and account.cached.what == "thing main"
    assert account.cached.timeout == 3.5
    assert account.cached.ttl == 30.0 and account.cached.error_ttl == 2.0
    assert account.fetched == (Fetched(("main",), account.client, account.cached),)
    assert account.cached.get(time.monotonic() + 5).value == Answer(4.0, ("f",))
    assert dict(account.invalid.counts) == {"f": 1}
    assert account.invalid.what == "thing main"


def test_refresh_fetches_the_account_anew():
    account = account_part("thing main", "main", Key(), answers(Answer(1.0), Answer(2.0)),
                           EXECUTOR, ttl=3600.0)
    assert account.cached.get(time.monotonic() + 5).value == Answer(1.0)
    assert account.cached.get(time.monotonic() + 5).value == Answer(1.0)  # cached
    account.refresh()
    wait_for(lambda: account.cached.good == Answer(2.0), timeout=5, interval=0.01)
    assert account.cached.good == Answer(2.0)


def test_no_parts_no_collector_and_describe_names_every_family():
    class Product(FetchProduct[Account[Answer], Answer]):
        name = "test"

        def families(self, scrape, build):
            return Trailing(scrape)

    product = Product()
    assert product.collector([], None) is None
    assert isinstance(product.collector([part("a")], None), AccountCollector)
    assert isinstance(product, Describes)
    assert product.describe(None) == (
        "binance_margin_up", "test_value", "binance_margin_scrape_duration_seconds",
        "binance_margin_scrape_errors", "binance_margin_last_success_timestamp_seconds",
        "binance_margin_backoff_until_timestamp_seconds", "test_last")
    assert family_names(Fetches("x", "u", "e"), Values()) == (
        "x_up", "test_value", "x_scrape_errors")


# --------------------------------------------------------------------------------------------
# duplicate series: at build, not at scrape


def every_type(simulator):
    """An account of every type, read by every product (sub-accounts, isolated pairs,
    positions, both futures markets, streams)."""
    settings = settings_for(
        simulator,
        account_config("main", API_KEY, SECRET, sub_accounts="all",
                       loans=("flexible", "vip")),
        account_config("pm", API_KEY, SECRET, type="portfolio_margin"),
        account_config("fut", API_KEY, SECRET, type="futures", markets=("um", "cm")),
        account_config("pro", API_KEY, SECRET, type="portfolio_margin_pro",
                       markets=("um", "cm")))
    streams = {"margin_stream_url": simulator.streams.url,
               "papi_stream_url": f"{simulator.streams.url}/pm"}
    return dataclasses.replace(settings, options=Options.of(
        {**dict(settings.options.items), **streams}))


def test_every_product_for_every_account_type_makes_each_series_once(simulator, caplog):
    settings = every_type(simulator)
    built = build_exporter(settings)  # the build-time check passes
    try:
        read = {p.name for parts in built.accounts.values() for p in PRODUCTS
                if p.name in parts.parts}
        assert read == {p.name for p in PRODUCTS}  # every product took part
        with caplog.at_level(logging.ERROR):
            text = list(built.exporter.collect(5.0))
        assert "duplicate series" not in caplog.text  # merged()'s guard had nothing to drop
        names = {f.name for f in text}
        assert {"binance_margin_up", "binance_margin_futures_asset_wallet_balance",
                "binance_margin_positions_up", "binance_margin_isolated_up",
                "binance_margin_portfolio_uni_mmr"} <= names
    finally:
        built.exporter.close()


def test_a_copy_of_futures_families_fails_at_build_naming_both_products_and_the_family(
        simulator):
    class FuturesCopy(futures.FuturesProduct):
        name = "futures_copy"

    products = (*PRODUCTS, FuturesCopy())
    with pytest.raises(ConfigError) as error:
        build_exporter(every_type(simulator), products=products)
    assert str(error.value) == (
        "code: the products futures and futures_copy would both make binance_margin_up for "
        "account 'fut' (a series must come from one product)")


def test_check_series_names_the_first_family_two_products_share():
    class One(FetchProduct[Account[Answer], Answer]):
        name = "one"

        def families(self, scrape, build):
            return Values(scrape)

    class Other(One):
        name = "other"

        def kind(self) -> Fetches:
            return Fetches("other", "Up.", "Errors.")

    account = account_config("a", API_KEY, SECRET)
    check_series({account: [Other(), futures.PRODUCT]}, lambda p: None)  # none shared
    other = account_config("b", API_KEY, SECRET)
    check_series({account: [One()], other: [Other()]}, lambda p: None)  # apart: allowed
    with pytest.raises(ConfigError) as error:
        check_series({account: [One()], other: [One(), Other()]}, lambda p: None)
    assert str(error.value).startswith(
        "code: the products one and other would both make test_value for account 'b' ")


def test_products_that_name_nothing_are_not_checked():
    class Silent:
        name = "silent"

    account = account_config("a", API_KEY, SECRET)
    check_series({account: [Silent(), Silent()]}, lambda p: None)


def test_each_product_has_the_capabilities_it_declares_and_no_other():
    from binance_margin_exporter.collectors import product as contract
    from binance_margin_exporter.config import (
        ChecksAccount,
        ChecksAccounts,
        Configured,
        OwnHosts,
    )

    capabilities = {"Configured": Configured, "OwnHosts": OwnHosts,
                    "ChecksAccount": ChecksAccount, "ChecksAccounts": ChecksAccounts,
                    "ScaledWeight": contract.ScaledWeight, "AcrossShards": contract.AcrossShards,
                    "Joins": contract.Joins, "WarmsUp": contract.WarmsUp,
                    "Closes": contract.Closes, "Describes": Describes}
    has = {p.name: {n for n, c in capabilities.items() if isinstance(p, c)} for p in PRODUCTS}
    account = {"Configured", "Describes"}
    assert has == {
        "cross": account | {"ChecksAccount", "WarmsUp"},
        "isolated": account,
        "sub_accounts": {"Configured", "ChecksAccount", "ChecksAccounts", "ScaledWeight",
                         "AcrossShards"},
        "portfolio": account | {"OwnHosts"},
        "portfolio_pro": account,
        "futures": account | {"OwnHosts", "ChecksAccount"},
        "positions": account | {"OwnHosts"},
        "risk_lists": {"Configured", "WarmsUp"},
        "loans": account | {"ChecksAccount"},
        "vip_loans": account,
        "margin_ledger": account | {"Closes"},
        "futures_ledger": account | {"Closes"},
        "portfolio_ledger": account | {"Closes"},
        "margin_risk_stream": {"Configured", "Joins", "WarmsUp", "Closes"},
        "portfolio_stream": {"Configured", "Joins", "WarmsUp", "Closes"},
        "prices": {"Configured"},
    }
