"""Crypto loans (flexible and VIP): Binance's documented examples shown exactly, the live LTV
against the formula at the scrape's prices, the bars (the collateral data's; the operator's for
VIP), bad input dropping only its series, the orders' cadence and pages over real HTTP against
the simulator, and the settings."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.loans import (
    FLEXIBLE_COLLATERAL,
    FLEXIBLE_ORDERS,
    VIP_ORDERS,
    Bars,
    FlexibleLoan,
    FlexibleLoans,
    FlexibleReader,
    fetch_vip_loans,
    parse_flexible_rows,
)
from binance_margin_exporter.binance.prices import parse_prices
from binance_margin_exporter.collectors.account_fetch import AccountCollector
from binance_margin_exporter.collectors.invalid_fields import InvalidFields
from binance_margin_exporter.collectors.loan_families import (
    Crossings,
    FlexibleFamilies,
    LoanPart,
    VipFamilies,
    loan_fetches,
    rising,
)
from binance_margin_exporter.collectors.loans import PRODUCT, VIP_PRODUCT
from binance_margin_exporter.collectors.prices import PricesCollector
from binance_margin_exporter.config import ConfigError
from binance_margin_exporter.demo.loans import VIP_ROW
from binance_margin_exporter.wiring import account_config
from tests.support.clocks import Clock
from tests.support.exporters import (
    Scraper,
    built_exporter,
    sample_values,
    scrape_built,
    settings_for,
)
from tests.support.fakes import StubClient, recorded
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json
from tests.support.tools import promtool_check_metrics

FLEXIBLE = fixture_json("loan_flexible_ongoing_orders_docs_example.json")
COLLATERAL = fixture_json("loan_flexible_collateral_data_docs_example.json")
VIP = fixture_json("loan_vip_ongoing_orders_docs_example.json")
PRICES = parse_prices(fixture_json("ticker_price_for_loans.json"))
FLEX = (("account", "main"), ("collateral_asset", "BNB"), ("loan", "flexible"),
        ("loan_asset", "BUSD"), ("order_id", ""))
VIPL = (("account", "main"), ("collateral_asset", "BNB,BTC,ETH"), ("loan", "vip"),
        ("loan_asset", "BUSD"), ("order_id", "100000001"))


class Answers:
    """A client whose signed GETs get recorded answers (a path -> a body or a list of pages)."""

    timeout = 5.0

    def __init__(self, answers: dict) -> None:
        self.answers = answers
        self.calls: list[tuple[str, object]] = []

    def signed_get(self, path, params="", *, deadline=None):
        self.calls.append((path, params))
        return self.answers[path]

    def auth_backoff_until(self) -> float:
        return 0.0


def flexible_part(answers=None, name="main") -> LoanPart:
    client = Answers(answers or {FLEXIBLE_ORDERS.path: FLEXIBLE,
                                 FLEXIBLE_COLLATERAL.path: COLLATERAL})
    answer = FlexibleReader(client)()
    part = LoanPart(name, "flexible", StubClient(), recorded(f"flexible loans of {name}", answer),
                    InvalidFields("flexible loans"))
    part.invalid.note(answer.invalid)
    return part


def vip_part(bars: Bars | None = None, raw=VIP) -> LoanPart:
    answer = fetch_vip_loans(Answers({VIP_ORDERS.path: raw}))
    part = LoanPart("main", "vip", StubClient(), recorded("vip loans of main", answer),
                    InvalidFields("vip loans"), bars)
    part.invalid.note(answer.invalid)
    return part


def scraper(flexible: LoanPart | None = None, vip: LoanPart | None = None,
            prices=PRICES) -> Scraper:
    collectors = [PricesCollector(recorded("prices", prices))]
    if flexible is not None:
        collectors.insert(0, AccountCollector([flexible], FlexibleFamilies, loan_fetches))
    if vip is not None:
        collectors.insert(-1, AccountCollector([vip], lambda scrape: VipFamilies(),
                                               loan_fetches))
    return Scraper(*collectors)


OPERATOR_BARS = Bars(0.6, 0.75, 0.85)


def test_golden_documented_examples(golden):
    body = scraper(flexible_part(), vip_part(OPERATOR_BARS)).render()
    golden("loans_docs_example.prom", body)
    promtool_check_metrics(body)


def test_every_documented_value_exactly_as_binance_sent_it():
    values = sample_values(scraper(flexible_part(), vip_part(OPERATOR_BARS)).text())
    row, vip = FLEXIBLE["rows"][0], VIP["rows"][0]
    assert values[("binance_margin_loan_debt", FLEX)] == float(row["totalDebt"])
    assert values[("binance_margin_loan_collateral", FLEX)] == float(row["collateralAmount"])
    assert values[("binance_margin_loan_ltv", FLEX)] == float(row["currentLTV"])
    for threshold, key in (("initial", "initialLTV"), ("margin_call", "marginCallLTV"),
                           ("liquidation", "liquidationLTV")):
        assert values[("binance_margin_loan_ltv_threshold",
                       (*FLEX, ("threshold", threshold)))] == float(COLLATERAL["rows"][0][key])
    assert values[("binance_margin_loan_debt", VIPL)] == float(vip["totalDebt"])
    assert values[("binance_margin_loan_ltv", VIPL)] == float(vip["currentLTV"])
    assert values[("binance_margin_loan_residual_interest", VIPL)] == \
        float(vip["residualInterest"])
    assert values[("binance_margin_loan_collateral_value", VIPL)] == \
        float(vip["totalCollateralValueAfterHaircut"])
    assert values[("binance_margin_loan_expiry_timestamp_seconds", VIPL)] == 1575018510.0
    assert ("binance_margin_loan_collateral", VIPL) not in values  # VIP: not sent
    assert ("binance_margin_loan_ltv_live", VIPL) not in values
    assert values[("binance_margin_loans_up", (("account", "main"), ("loan", "flexible")))] == 1
    assert values[("binance_margin_loans_up", (("account", "main"), ("loan", "vip")))] == 1


def test_the_live_ltv_is_the_formula_at_the_scrapes_prices():
    values = sample_values(scraper(flexible_part()).text())
    row = FLEXIBLE["rows"][0]
    busd, bnb = Decimal("1.0001"), Decimal("0.0095") * Decimal("10000")
    expected = Decimal(row["totalDebt"]) * busd / (Decimal(row["collateralAmount"]) * bnb)
    assert values[("binance_margin_loan_ltv_live", FLEX)] == float(expected)
    assert values[("binance_margin_asset_price_usdt", (("asset", "BUSD"),))] == 1.0001


def test_no_price_route_no_live_ltv_and_nothing_else_lost():
    without_busd = parse_prices([{"symbol": "BTCUSDT", "price": "10000"},
                                 {"symbol": "BNBBTC", "price": "0.0095"}])
    values = sample_values(scraper(flexible_part(), prices=without_busd).text())
    assert ("binance_margin_loan_ltv_live", FLEX) not in values
    assert values[("binance_margin_loan_ltv", FLEX)] == 0.57


@pytest.mark.parametrize("ltv", ["", None, "n/a"])
def test_an_empty_missing_or_odd_current_ltv_drops_that_series_only(ltv):
    rows = [dict(FLEXIBLE["rows"][0]), {**FLEXIBLE["rows"][0], "loanCoin": "USDT"}]
    if ltv is None:
        del rows[0]["currentLTV"]
    else:
        rows[0]["currentLTV"] = ltv
    part = flexible_part({FLEXIBLE_ORDERS.path: {"rows": rows, "total": 2},
                          FLEXIBLE_COLLATERAL.path: COLLATERAL})
    values = sample_values(scraper(part).text())
    assert ("binance_margin_loan_ltv", FLEX) not in values
    assert values[("binance_margin_loan_debt", FLEX)] == 10000.0  # the rest of the row stays
    usdt = tuple(("loan_asset", "USDT") if k == "loan_asset" else (k, v) for k, v in FLEX)
    assert values[("binance_margin_loan_ltv", usdt)] == 0.57
    assert values[("binance_margin_invalid_fields_total",
                   (("account", "main"), ("field", "flexible.currentLTV")))] == 1.0


def test_a_collateral_coin_without_collateral_data_shows_no_threshold():
    rows = [{**FLEXIBLE["rows"][0], "collateralCoin": "NEWCOIN"}]
    part = flexible_part({FLEXIBLE_ORDERS.path: {"rows": rows, "total": 1},
                          FLEXIBLE_COLLATERAL.path: COLLATERAL})
    values = sample_values(scraper(part).text())
    assert not [k for k in values if k[0] == "binance_margin_loan_ltv_threshold"]
    assert [k for k in values if k[0] == "binance_margin_loan_ltv"]


def test_vip_loans_show_no_threshold_unless_the_operator_sets_them():
    values = sample_values(scraper(vip=vip_part()).text())
    assert not [k for k in values if k[0] == "binance_margin_loan_ltv_threshold"]
    values = sample_values(scraper(vip=vip_part(Bars(margin_call=0.8))).text())
    assert [k for k in values if k[0] == "binance_margin_loan_ltv_threshold"] == [
        ("binance_margin_loan_ltv_threshold", (*VIPL, ("threshold", "margin_call")))]


def test_an_open_term_vip_loan_has_no_expiry():
    raw = {"rows": [{**VIP["rows"][0], "expirationTime": 0}], "total": 1}
    values = sample_values(scraper(vip=vip_part(raw=raw)).text())
    assert ("binance_margin_loan_expiry_timestamp_seconds", VIPL) not in values
    assert values[("binance_margin_loan_debt", VIPL)] == 10000.0


def test_a_row_without_its_coin_fails_the_answer_naming_the_field():
    with pytest.raises(fields.UpstreamError) as error:
        parse_flexible_rows([{"totalDebt": "1"}], fields.Lenient())
    assert "loanCoin: missing" in str(error.value)


def test_the_collateral_data_is_read_hourly_and_for_an_unlisted_coin_every_10_minutes():
    clock = Clock()
    pages = {FLEXIBLE_ORDERS.path: FLEXIBLE, FLEXIBLE_COLLATERAL.path: COLLATERAL}
    client = Answers(pages)
    reader = FlexibleReader(client, monotonic=clock)

    def reads() -> int:
        return sum(1 for path, _ in client.calls if path == FLEXIBLE_COLLATERAL.path)

    reader()
    reader()
    assert reads() == 1
    pages[FLEXIBLE_ORDERS.path] = {"rows": [{**FLEXIBLE["rows"][0], "collateralCoin": "ETH"}],
                                   "total": 1}
    clock.advance(599)
    reader()
    assert reads() == 1
    clock.advance(1)
    reader()
    assert reads() == 2
    pages[FLEXIBLE_ORDERS.path] = FLEXIBLE
    clock.advance(3599)
    reader()
    assert reads() == 2
    clock.advance(1)
    reader()
    assert reads() == 3


class Failing(Answers):
    """:class:`Answers`, but the collateral data fails while ``failing``."""

    failing = True

    def signed_get(self, path, params="", *, deadline=None):
        if path == FLEXIBLE_COLLATERAL.path and self.failing:
            self.calls.append((path, params))
            raise UpstreamError("http_error", "HTTP 500 from Binance", status=500)
        return super().signed_get(path, params, deadline=deadline)


def test_a_failed_collateral_data_read_keeps_the_orders_and_the_last_bars(caplog):
    clock = Clock()
    client = Failing({FLEXIBLE_ORDERS.path: FLEXIBLE, FLEXIBLE_COLLATERAL.path: COLLATERAL})
    reader = FlexibleReader(client, monotonic=clock)

    def reads() -> int:
        return sum(1 for path, _ in client.calls if path == FLEXIBLE_COLLATERAL.path)

    first = reader()  # no bars yet: the orders, none of the bars, the failure noted
    assert first.loans == parse_flexible_rows(FLEXIBLE["rows"], fields.Lenient())
    assert (first.bars, first.invalid) == ((), ("collateral.data",))
    assert "collateral data: HTTP 500 from Binance" in caplog.text
    clock.advance(599)
    assert reader().invalid == () and reads() == 1  # not tried again every fetch
    client.failing = False
    clock.advance(1)
    assert reader().bars_of("BNB") == Bars(0.65, 0.75, 0.83) and reads() == 2
    client.failing = True
    clock.advance(3600)
    kept = reader()  # the hourly read fails: the last bars stay
    assert (kept.bars_of("BNB"), kept.invalid, reads()) == (Bars(0.65, 0.75, 0.83),
                                                            ("collateral.data",), 3)


class Refreshes:
    """A part's cache whose refreshes (the fetches a crossing starts) are counted."""

    def __init__(self) -> None:
        self.count = 0

    def refresh(self) -> None:
        self.count += 1


class LoanPrice:
    """A scrape whose prices make a loan of debt 1 against collateral 1 a live LTV of
    ``live``."""

    def __init__(self) -> None:
        self.live = 0.0

    def usdt(self, asset: str) -> float:
        return self.live if asset == "USDT" else 1.0


def hour_of_scrapes(lives, shown_after_fetch) -> int:
    """The fetches a crossing starts over an hour of 30 s scrapes (loans_interval_seconds
    300): ``lives`` the live LTV at each scrape, Binance's answer showing
    ``shown_after_fetch(live)`` after each fetch."""
    clock, refreshes, prices = Clock(), Refreshes(), LoanPrice()
    part = LoanPart("main", "flexible", StubClient(), refreshes, InvalidFields("flexible"),
                    crossings=Crossings(150.0, monotonic=clock))
    shown = 0.7499
    for i in range(120):
        prices.live = lives(i)
        answer = FlexibleLoans((FlexibleLoan("USDT", "BNB", 1.0, 1.0, shown),),
                               (("BNB", Bars(0.65, 0.75, 0.83)),))
        before = refreshes.count
        FlexibleFamilies(prices).add(part, ("main", "flexible"), answer)
        if refreshes.count > before:
            shown = shown_after_fetch(prices.live)
        clock.advance(30)
    return refreshes.count


def test_a_live_ltv_hovering_at_a_bar_fetches_nothing_more():
    # 0.7499 / 0.7501 around the margin call bar of 0.75, Binance agreeing with the live LTV
    assert hour_of_scrapes(lambda i: 0.7499 if i % 2 else 0.7501, lambda live: live) == 0
    # a little past the band: one fetch, then Binance shows the higher zone
    assert hour_of_scrapes(lambda i: 0.7499 if i % 2 else 0.756, lambda live: live) == 1


def test_a_crossing_fetches_at_most_every_half_interval_when_binance_lags():
    # the live LTV over the bar, Binance's answer (index prices) still under it: 24 an hour
    assert hour_of_scrapes(lambda i: 0.80, lambda live: 0.7499) == 24


def test_only_a_rise_past_the_band_into_a_higher_zone_than_binance_showed_asks():
    bars = Bars(0.65, 0.75, 0.83)
    assert not rising(0.7549, 0.7499, bars)
    assert rising(0.755, 0.7499, bars)
    assert not rising(0.70, 0.80, bars)  # falling asks for nothing
    assert not rising(0.80, 0.76, bars)  # the zone Binance already showed
    clock = Clock()
    crossings = Crossings(150.0, monotonic=clock)
    assert not crossings.crossed(False)
    assert crossings.crossed(True)
    clock.advance(149)
    assert not crossings.crossed(True)
    clock.advance(1)
    assert crossings.crossed(True)


# --------------------------------------------------------------------------------------------
# over HTTP, against the simulator


def loans_settings(simulator, **options):
    return settings_for(simulator, account_config("main", API_KEY, SECRET,
                                                  loans=("flexible", "vip"), **options))


def test_both_kinds_over_http_the_orders_at_most_every_interval(simulator):
    counts = simulator.counts
    with built_exporter(loans_settings(simulator)) as built:
        values = scrape_built(built)
        scrape_built(built)
    assert (counts[FLEXIBLE_ORDERS.path], counts[FLEXIBLE_COLLATERAL.path],
            counts[VIP_ORDERS.path]) == (1, 1, 1)
    usdt = (("account", "main"), ("collateral_asset", "BNB"), ("loan", "flexible"),
            ("loan_asset", "USDT"), ("order_id", ""))
    assert values[("binance_margin_loan_ltv", usdt)] == 0.57
    assert values[("binance_margin_loan_collateral", usdt)] == 25.0
    live = values[("binance_margin_loan_ltv_live", usdt)]
    bnb = values[("binance_margin_asset_price_usdt", (("asset", "BNB"),))]
    debt = values[("binance_margin_loan_debt", usdt)]
    assert live == float(fields.decimal(debt) / (Decimal(25) * fields.decimal(bnb)))
    assert ("binance_margin_loan_ltv_threshold", (*usdt, ("threshold", "margin_call"))) in values
    assert values[("binance_margin_loan_debt", (("account", "main"),
                                                ("collateral_asset", "BNB,BTC"), ("loan", "vip"),
                                                ("loan_asset", "USDT"),
                                                ("order_id", "100000001")))] == 10000.0


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.02)


def test_a_live_ltv_crossing_its_margin_call_bar_fetches_the_orders_at_once(simulator):
    counts = simulator.counts
    with built_exporter(loans_settings(simulator)) as built:
        scrape_built(built)
        assert counts[FLEXIBLE_ORDERS.path] == 1
        # BNB falls by a third: the live LTV of 0.57 rises past 0.75 (the debt is unchanged)
        account = simulator.account
        account.assets[:] = [(n, p * Decimal("0.7") if n == "BNB" else p, f, lk)
                             for n, p, f, lk in account.assets]
        values = scrape_built(built)
        wait_for(lambda: counts[FLEXIBLE_ORDERS.path] == 2)
        scrape_built(built)
        assert counts[FLEXIBLE_ORDERS.path] == 2  # once: no crossing since
    usdt = (("account", "main"), ("collateral_asset", "BNB"), ("loan", "flexible"),
            ("loan_asset", "USDT"), ("order_id", ""))
    assert values[("binance_margin_loan_ltv_live", usdt)] > 0.75


def test_thousands_of_orders_are_read_page_by_page_within_the_budget(simulator):
    simulator.loans.extra = 1299  # 1,300 flexible orders: 13 pages of 100
    simulator.loans.vip_rows = [{**VIP_ROW, "orderId": i} for i in range(1000)]  # 10 pages
    with built_exporter(loans_settings(simulator)) as built:
        values = scrape_built(built, scrape_timeout=10.0)
    counts = simulator.counts
    assert (counts[FLEXIBLE_ORDERS.path], counts[VIP_ORDERS.path]) == (13, 10)
    assert len([k for k in values if k[0] == "binance_margin_loan_debt"]) == 2300
    loans = sum(counts[e.path] * e.weight for e in (FLEXIBLE_ORDERS, FLEXIBLE_COLLATERAL,
                                                    VIP_ORDERS))
    assert loans == 13 * 300 + 400 + 10 * 400  # the pages, the collateral data
    spent = sum(w for (_, budget), w in simulator.spent.items() if budget == "sapi")
    assert spent <= 9600  # under the /sapi budget's pause point (80 % of 12,000 a minute)
    assert not [k for k in values if k[0] == "binance_margin_loans_left_out"]


def test_orders_beyond_4000_weight_a_fetch_are_left_out_counted_and_warned_of(simulator,
                                                                            caplog):
    simulator.loans.extra = 1399  # 1,400 orders: 14 pages, one more than 4,000 weight
    simulator.loans.vip_rows = [{**VIP_ROW, "orderId": i} for i in range(1100)]  # 11 pages
    with built_exporter(loans_settings(simulator)) as built:
        values = scrape_built(built, scrape_timeout=10.0)
    assert simulator.counts[FLEXIBLE_ORDERS.path] == 13
    assert simulator.counts[VIP_ORDERS.path] == 10
    main = ("account", "main")
    assert values[("binance_margin_loans_left_out", (main, ("loan", "flexible")))] == 100.0
    assert values[("binance_margin_loans_left_out", (main, ("loan", "vip")))] == 100.0
    assert len([k for k in values if k[0] == "binance_margin_loan_debt"]) == 1300 + 1000
    assert "flexible loan orders: 1400 orders, of which the first 1300 are read" in caplog.text


def test_a_failed_fetch_is_up_0_and_counted_with_no_loan_series(simulator):
    from binance_margin_exporter.demo.simulator import Fault

    simulator.set_fault(Fault(status=500, body=b"{}", paths=(VIP_ORDERS.path,)))
    with built_exporter(loans_settings(simulator)) as built:
        values = scrape_built(built)
        scrape_built(built)  # the failure is not tried again every scrape
    assert simulator.counts[VIP_ORDERS.path] == 1
    vip = (("account", "main"), ("loan", "vip"))
    assert values[("binance_margin_loans_up", vip)] == 0.0
    assert sum(v for k, v in values.items()
               if k[0] == "binance_margin_loans_scrape_errors_total" and
               k[1][:2] == vip) == 1.0
    assert not [k for k in values if ("loan", "vip") in k[1] and k[0] != "binance_margin_loans_up"
                and not k[0].startswith("binance_margin_loans_scrape_errors")]
    assert values[("binance_margin_loans_up", (("account", "main"), ("loan", "flexible")))] == 1


# --------------------------------------------------------------------------------------------
# settings and weight


@pytest.mark.parametrize(("options", "message"), [
    ({"loans": ["flexible", "fixed"]}, "accounts[0].loans[1]: expected flexible or vip"),
    ({"loans": "flexible"}, "accounts[0].loans: expected a non-empty list of loan kinds"),
    ({"loans": ["flexible"], "vip_loan_ltv_bars": {"margin_call": 0.8}},
     "accounts[0].vip_loan_ltv_bars: only with vip in loans"),
    ({"loans": ["vip"], "vip_loan_ltv_bars": {"margin_call": 0.9, "liquidation": 0.8}},
     "accounts[0].vip_loan_ltv_bars.liquidation: must not be below margin_call"),
    ({"loans": ["vip"], "vip_loan_ltv_bars": {"call": 0.9}},
     "accounts[0].vip_loan_ltv_bars.call: unknown key"),
    ({"type": "futures", "loans": ["flexible"]},
     "accounts[0].loans: only for type cross or portfolio_margin_pro"),
])
def test_bad_loan_settings_name_the_key(tmp_path, options, message):
    import yaml

    from binance_margin_exporter.wiring import load

    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"accounts": [
        {"name": "a", "api_key": "k", "api_secret": SECRET, **options}]}))
    with pytest.raises(ConfigError) as error:
        load(str(path), {})
    assert str(error.value).startswith(message)


def test_weight_declared_for_the_plan(simulator):
    settings = loans_settings(simulator)
    account = settings.accounts[0]
    host = settings.base_url
    # orders every 300 s (300 a page), the collateral data hourly (400)
    assert PRODUCT.weight_per_minute(account, settings, 15.0)[host] == \
        pytest.approx(300 / 5 + 400 / 60)
    assert VIP_PRODUCT.weight_per_minute(account, settings, 15.0)[host] == pytest.approx(400 / 5)
    plain = settings_for(simulator, account_config("b", API_KEY, SECRET))
    assert PRODUCT.weight_per_minute(plain.accounts[0], plain, 15.0) == {}


def test_the_demo_loan_drifts_over_its_margin_call_bar_and_back_every_half_hour():
    from binance_margin_exporter.demo.cross import SimulatedAccount
    from binance_margin_exporter.demo.loans import SimulatedLoans

    wall = Clock(0.0)
    loans = SimulatedLoans(SimulatedAccount(300, 12, wall=wall), wall=wall)
    ltv = []
    for minute in range(0, 31, 5):
        wall.now = minute * 60.0
        ltv.append(float(loans.flexible()[0]["currentLTV"]))
    assert max(ltv) > 0.75 > 0.6 > min(ltv)  # over BNB's margin-call LTV, and back
    assert max(ltv) < 0.95 * 0.83  # never near liquidation
    assert abs(ltv[0] - ltv[-1]) < 0.05  # a half-hour cycle


def test_a_failed_collateral_data_read_leaves_the_flexible_loans_up(simulator):
    from binance_margin_exporter.demo.simulator import Fault

    simulator.set_fault(Fault(status=500, body=b"{}", paths=(FLEXIBLE_COLLATERAL.path,)))
    with built_exporter(loans_settings(simulator)) as built:
        values = scrape_built(built)
    flexible = (("account", "main"), ("loan", "flexible"))
    usdt = (("account", "main"), ("collateral_asset", "BNB"), ("loan", "flexible"),
            ("loan_asset", "USDT"), ("order_id", ""))
    assert values[("binance_margin_loans_up", flexible)] == 1.0
    assert values[("binance_margin_loan_ltv", usdt)] == 0.57
    assert ("binance_margin_loan_ltv_live", usdt) in values
    assert not any(k[0] == "binance_margin_loan_ltv_threshold" and k[1][:5] == usdt
                   for k in values)
    assert sum(v for k, v in values.items() if k[0] == "binance_margin_invalid_fields_total"
               and ("field", "collateral.data") in k[1]) == 1.0
