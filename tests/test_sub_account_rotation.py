"""Sub-accounts in two tiers: every level from the summary on every fetch, details for those
at risk and in rotation, inside the master's weight budget."""

from __future__ import annotations

import logging
import math
from collections import Counter
from decimal import Decimal

import pytest

from binance_margin_exporter.binance.sub_accounts import (
    NO_LIABILITY_LEVEL,
    SUB_MARGIN_ACCOUNT_PATH,
    derived_level,
    parse_sub_margin_summary,
)
from binance_margin_exporter.collectors.product import Build
from binance_margin_exporter.collectors.sub_accounts import SubAccountsCollector
from binance_margin_exporter.collectors.sub_accounts.group import SubAccounts
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.demo.sub_accounts import SimulatedSubAccounts
from binance_margin_exporter.products import PRODUCTS, SIMULATED
from binance_margin_exporter.wiring import load
from tests.support.clocks import StepClock
from tests.support.exporters import Scraper, master_client, sample_values, scrape_once
from tests.support.keys import API_KEY, SECRET
from tests.support.pool import EXECUTOR

EMAILS = [f"t{i:03d}@fund.example" for i in range(100)]


def test_the_documented_example_level_equals_marginlevel_within_binance_rounding():
    """6.82728457 / 0.58633215 = 11.64405630..., Binance's marginLevel 11.64405625: the two
    totals are rounded to 8 decimals (each off by at most 5e-9), so the quotient is off by at
    most 5e-9 x (1 + level) / liability; the difference is inside that."""
    asset, liability = Decimal("6.82728457"), Decimal("0.58633215")
    level = derived_level(asset, liability)
    bound = 5e-9 * (1 + level) / float(liability) + 5e-9  # and marginLevel's own rounding
    assert abs(level - 11.64405625) <= bound
    assert round(level, 7) == 11.6440563  # the docs' own figure
    parsed = parse_sub_margin_summary({"subAccountList": [
        {"email": "a@x", "totalAssetOfBtc": "6.82728457", "totalLiabilityOfBtc": "0.58633215",
         "totalNetAssetOfBtc": "6.24095242"},
        {"email": "b@x", "totalAssetOfBtc": "1.0", "totalLiabilityOfBtc": "0",
         "totalNetAssetOfBtc": "1.0"}]})
    assert parsed["a@x"].margin_level == level
    assert parsed["b@x"].margin_level == NO_LIABILITY_LEVEL == 999.0


def test_a_bad_summary_names_the_field():
    with pytest.raises(Exception, match=r"subAccountList\[0\]\.totalLiabilityOfBtc"):
        parse_sub_margin_summary({"subAccountList": [
            {"email": "a@x", "totalAssetOfBtc": "1", "totalLiabilityOfBtc": "x",
             "totalNetAssetOfBtc": "1"}]})


@pytest.fixture
def many():
    subs = SimulatedSubAccounts(EMAILS, n_assets=6, n_active=3, drift=False)
    for i, email in enumerate(EMAILS):  # levels from 2.0 to 5.7, every one above its bar
        subs.accounts[email].set_margin_level(1.6 + 0.03 * i)
    sim = Simulator(SIMULATED, account=SimulatedAccount(20, 3, drift=False), subs=subs)
    sim.add_hmac_key(API_KEY, SECRET)
    with sim:
        yield sim


def group_of(sim, mono, wall, **kw) -> SubAccounts:
    return SubAccounts("fund", master_client(sim), EXECUTOR, ttl=0, monotonic=mono, wall=wall,
                       **kw)


def scrape(scraper, mono, wall, seconds=30.0):
    mono.now += seconds
    wall.now += seconds
    text = scraper.text()
    return text, sample_values(text)


def test_every_level_every_scrape_from_the_summary_details_in_rotation(many):
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=300.0)
    scraper = Scraper(SubAccountsCollector([group]))
    ages: list[float] = []
    for n in range(25):
        before = many.counts[SUB_MARGIN_ACCOUNT_PATH]
        text, values = scrape(scraper, mono, wall)
        fetched = many.counts[SUB_MARGIN_ACCOUNT_PATH] - before
        # every first detail at once (the budget allows), then 100 x 30 s / 300 s a fetch
        assert fetched == (100 if n == 0 else 10)
        for email in EMAILS:
            raw = many.subs.accounts[email].snapshot()
            acc = (("account", email),)
            # the summary's level is the detail's marginLevel, to the 8 decimals Binance sends
            assert round(values[("binance_margin_level", acc)], 8) == float(raw["marginLevel"])
            assert values[("binance_margin_up", acc)] == 1.0
            stamp = values.get(("binance_margin_detail_timestamp_seconds", acc))
            if n >= 10:
                ages.append(wall.now - stamp)
        # never two series of one name and labels
        lines = [ln.rsplit(" ", 1)[0] for ln in text.splitlines() if not ln.startswith("#")]
        assert not [k for k, c in Counter(lines).items() if c > 1]
    assert max(ages) <= 300.0
    assert values[("binance_margin_detail_rotation_seconds", (("master", "fund"),))] == 300.0
    assert many.subs.summaries == 25


def test_a_sub_account_at_risk_has_its_detail_every_fetch(many):
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=300.0)
    scraper = Scraper(SubAccountsCollector([group]))
    for _ in range(11):  # one full rotation: every bar known
        scrape(scraper, mono, wall)
    low, falling = EMAILS[50], EMAILS[90]
    many.subs.accounts[low].set_margin_level(1.1)  # 1.375: under its normal bar (1.5)
    many.subs.accounts[falling].set_margin_level(3.0)  # 5.375 to 3.75: 30 % down
    asked = Counter(many.subs.asked)
    scrape(scraper, mono, wall)
    assert many.subs.asked[low] - asked[low] == 1
    assert many.subs.asked[falling] - asked[falling] == 1
    asked = Counter(many.subs.asked)
    for _ in range(3):
        scrape(scraper, mono, wall)
    assert many.subs.asked[low] - asked[low] == 3  # still under its bar: every fetch
    assert many.subs.asked[falling] - asked[falling] <= 1  # no longer falling: in rotation


def test_a_budget_too_small_stretches_the_rotation_and_says_so_once(many, caplog):
    """400 a minute at 30 s: 200 a fetch, 10 of them the summary: 19 details, 6 fetches a
    rotation (180 s) for 100 sub-accounts; asked for 60 s, it warns once and stretches."""
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=60.0, budget=lambda interval: 400.0)
    scraper = Scraper(SubAccountsCollector([group]))
    spent: list[int] = []
    for _ in range(8):
        before = many.counts[SUB_MARGIN_ACCOUNT_PATH]
        _, values = scrape(scraper, mono, wall)
        spent.append(10 * (many.counts[SUB_MARGIN_ACCOUNT_PATH] - before) + 10)
    assert all(w <= 200 for w in spent)
    assert max(sum(spent[i:i + 2]) for i in range(len(spent) - 1)) <= 400  # each minute
    assert values[("binance_margin_detail_rotation_seconds", (("master", "fund"),))] == 180.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "weight budget" in r.getMessage()]
    assert len(warnings) == 1
    assert "400 a minute" in warnings[0] and "100 sub-accounts" in warnings[0]
    assert "stretched to 180 s" in warnings[0]
    # a reload (which builds the collector again, keeping the group): said once more
    from binance_margin_exporter.collectors.sub_accounts import PRODUCT
    from binance_margin_exporter.config import Options, Settings
    from binance_margin_exporter.wiring import account_config

    options = dict(load(None, {}, require_accounts=False).options.items)
    options["weight_budget_per_minute"] = 400  # the same budget, from the configuration
    master = account_config("fund", "k", "s", sub_accounts="all")
    PRODUCT.collector([group], Build(Settings((master,), options=Options.of(options)),
                                     EXECUTOR))
    for _ in range(2):
        scrape(scraper, mono, wall)
    assert len([r for r in caplog.records if "weight budget" in r.getMessage()]) == 2


def test_the_interval_is_the_time_between_fetches(many):
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    intervals: list[float] = []
    group = group_of(many, mono, wall, detail_max_age=300.0,
                     budget=lambda interval: intervals.append(interval) or 1e12)
    scraper = Scraper(SubAccountsCollector([group]))
    counts = []
    for _ in range(5):
        before = many.counts[SUB_MARGIN_ACCOUNT_PATH]
        scrape(scraper, mono, wall, seconds=60.0)
        counts.append(many.counts[SUB_MARGIN_ACCOUNT_PATH] - before)
    assert counts[0] == 100  # every first detail at once
    assert counts[2:] == [20, 20, 20]  # 100 x 60 / 300
    assert intervals == [30.0, 60.0, 60.0, 60.0, 60.0]  # 30 s assumed until two were seen


def test_the_interval_is_the_median_of_the_last_six_gaps(many):
    """Prometheus' interval changes from 20 s to 60 s: the rotation follows at the third
    60-s gap (the median of the last six), not at the first, nor never."""
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    intervals: list[float] = []
    group = group_of(many, mono, wall, detail_max_age=300.0,
                     budget=lambda interval: intervals.append(interval) or 1e12)
    scraper = Scraper(SubAccountsCollector([group]))
    for seconds in [20.0] * 8 + [60.0] * 4:
        scrape(scraper, mono, wall, seconds=seconds)
    assert intervals == [30.0] + [20.0] * 9 + [60.0] * 2


def test_a_small_fund_is_whole_from_its_first_scrape():
    """A master with three sub-accounts: every one's assets and bars on the first scrape
    (30 weight, well inside the budget), not one more a scrape at the rotation's pace."""
    from binance_margin_exporter.wiring import account_config
    from tests.support.exporters import settings_for

    emails = ["a@fund.example", "b@fund.example", "c@fund.example"]
    subs = SimulatedSubAccounts(emails, n_assets=6, n_active=3, drift=False)
    sim = Simulator(SIMULATED, account=SimulatedAccount(20, 3, drift=False), subs=subs)
    sim.add_hmac_key(API_KEY, SECRET)
    with sim:
        values = scrape_once(settings_for(sim, account_config(
            "fund", API_KEY, SECRET, sub_accounts="all", isolated=False)))
    assert dict(subs.asked) == dict.fromkeys(emails, 1)
    for email in emails:
        acc = (("account", email),)
        assert values[("binance_margin_up", acc)] == 1.0
        assert ("binance_margin_detail_timestamp_seconds", acc) in values
        assert values[("binance_margin_level_threshold",
                       (*acc, ("threshold", "margin_call")))] == 1.3
        assert [k for k in values if k[0] == "binance_margin_asset_free"
                and ("account", email) in k[1]]


def test_first_details_take_what_the_budget_leaves_the_next_fetch_the_rest(many):
    """150 a minute at 30 s: 75 a fetch, 10 of them the summary: 6 details; the first fetches
    go 6 at a time, never over the budget, then the rotation's pace."""
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=600.0, budget=lambda interval: 150.0)
    scraper = Scraper(SubAccountsCollector([group]))
    counts = []
    for _ in range(3):
        before = many.counts[SUB_MARGIN_ACCOUNT_PATH]
        scrape(scraper, mono, wall)
        counts.append(many.counts[SUB_MARGIN_ACCOUNT_PATH] - before)
    assert counts == [6, 6, 6]
    assert len([e for e in EMAILS if many.subs.asked[e]]) == 18  # each asked once


def test_a_detail_fetched_with_the_summary_shows_binance_s_own_margin_level(many):
    """Binance's marginLevel when the detail was fetched in the same fetch; the level derived
    from the summary's totals in between."""
    from binance_margin_exporter.demo.simulator import Fault

    def own_level(body: bytes) -> bytes:  # Binance's figure, not quite the totals' quotient
        import json

        raw = json.loads(body)
        raw["marginLevel"] = "1.98765432"
        return json.dumps(raw).encode()

    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=300.0)
    scraper = Scraper(SubAccountsCollector([group]))
    many.set_fault(Fault(transform=own_level, paths=(SUB_MARGIN_ACCOUNT_PATH,)))
    before = Counter(many.subs.asked)
    _, values = scrape(scraper, mono, wall)
    assert all(values[("binance_margin_level", (("account", e),))] == 1.98765432
               for e in EMAILS)  # every detail fetched by this fetch
    before = Counter(many.subs.asked)
    _, values = scrape(scraper, mono, wall)
    fresh = {e for e in EMAILS if many.subs.asked[e] > before[e]}
    assert len(fresh) == 10
    for email in EMAILS:
        level = values[("binance_margin_level", (("account", email),))]
        if email in fresh:
            assert level == 1.98765432
        else:  # the summary's, derived from its totals
            raw = many.subs.accounts[email].snapshot()
            assert level == derived_level(Decimal(raw["totalAssetOfBtc"]),
                                          Decimal(raw["totalLiabilityOfBtc"]))


def test_a_sub_account_s_own_normal_bar_says_when_it_is_at_risk(many):
    """A sub-account whose own normal bar is 6 is at risk at a level of 5 (above the 1.5
    assumed before its first detail): its detail every fetch."""
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=300.0)
    scraper = Scraper(SubAccountsCollector([group]))
    high = EMAILS[90]  # level about 4.3 to 5.3
    many.subs.accounts[high].coeff["normalBar"] = "6"
    asked = Counter(many.subs.asked)
    for _ in range(4):
        scrape(scraper, mono, wall)
    assert many.subs.asked[high] - asked[high] == 4
    assert many.subs.asked[EMAILS[91]] - asked[EMAILS[91]] <= 2  # in rotation: not every fetch


def test_sub_accounts_missing_from_the_summary_and_at_risk_are_planned_together(many):
    """Two sub-accounts the summary leaves out and two at risk at the same level: four
    details every fetch, the lowest first, and the plan never fails on the tie."""
    import json

    from binance_margin_exporter.demo.simulator import Fault

    missing = {EMAILS[10], EMAILS[20]}

    def leave_out(body: bytes) -> bytes:
        raw = json.loads(body)
        raw["subAccountList"] = [e for e in raw["subAccountList"] if e["email"] not in missing]
        return json.dumps(raw).encode()

    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=300.0)
    scraper = Scraper(SubAccountsCollector([group]))
    scrape(scraper, mono, wall)  # every first detail
    for email in (EMAILS[30], EMAILS[40]):
        many.subs.accounts[email].set_margin_level(1.2)
    many.set_fault(Fault(transform=leave_out, paths=("/sapi/v1/sub-account/margin/"
                                                     "accountSummary",)))
    risky = [*missing, EMAILS[30], EMAILS[40]]
    for _ in range(3):
        asked = Counter(many.subs.asked)
        _, values = scrape(scraper, mono, wall)
        assert all(many.subs.asked[e] - asked[e] == 1 for e in risky)
        for email in risky:  # their own detail stands in for the summary
            assert values[("binance_margin_up", (("account", email),))] == 1.0


def test_a_budget_that_fits_exactly_says_nothing(many, caplog):
    """100 sub-accounts every 300 s at 30 s: 10 details and the summary a fetch, 220 a
    minute. A budget of exactly that fits: no warning, a 300-s rotation."""
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=300.0, budget=lambda interval: 220.0)
    scraper = Scraper(SubAccountsCollector([group]))
    for _ in range(12):
        _, values = scrape(scraper, mono, wall)
    assert values[("binance_margin_detail_rotation_seconds", (("master", "fund"),))] == 300.0
    assert not [r for r in caplog.records if "weight budget" in r.getMessage()]
    assert max(wall.now - values[("binance_margin_detail_timestamp_seconds",
                                  (("account", e),))] for e in EMAILS) <= 300.0


def test_the_summary_failing_shows_no_level_and_no_old_values(many):
    mono, wall = StepClock(step=0.0), StepClock(1_700_000_000.0, step=0.0)
    group = group_of(many, mono, wall, detail_max_age=300.0)
    scraper = Scraper(SubAccountsCollector([group]))
    scrape(scraper, mono, wall)
    many.subs.non_master_keys.add(API_KEY)
    _, values = scrape(scraper, mono, wall)
    acc = (("account", EMAILS[0]),)
    assert values[("binance_margin_up", acc)] == 0.0
    assert ("binance_margin_level", acc) not in values
    assert not math.isnan(values[("binance_margin_detail_rotation_seconds",
                                  (("master", "fund"),))])


def test_the_default_budget_is_what_the_soft_limit_leaves_shared_by_the_masters():
    """Two masters at 30 s, one reading its own account too: 9,600 less that account (cross:
    10 a fetch, 2 a minute for its bars and 100 an hour for its interest rates, 23.7;
    isolated: 10 a fetch and 100 an hour for its pairs' rates, 21.7; Binance's risk lists
    through it, 100 an hour and 1 every 10 minutes; its ledger, 12 every 5 minutes; the
    prices through it, 4 a fetch; its
    risk stream's listen key weighs on the account, not the IP) and both masters' fixed
    costs (20 + 1.1, and the rotation's rounding: at most a detail a fetch, 20), halved,
    plus the master's own fixed cost."""
    from binance_margin_exporter.collectors.product import Build
    from binance_margin_exporter.collectors.sub_accounts import PRODUCT
    from binance_margin_exporter.config import Options, Settings
    from binance_margin_exporter.wiring import account_config, declared_weights, load

    settings = load(None, {}, require_accounts=False)
    accounts = (account_config("a", "k", "s", sub_accounts="all"),
                account_config("b", "k", "s", sub_accounts="all", master=False))
    settings = Settings(accounts, options=settings.options, cache_ttl_seconds=10.0)
    build = Build(settings, EXECUTOR,
                  weights=lambda interval: declared_weights(settings, PRODUCTS, interval))
    budget = PRODUCT.budget(accounts[1], build)
    risk_lists, rates, prices, master = 100 / 60 + 0.1, 100 / 60, 8, 41.1
    ledger = (1 + 1 + 10) * 60 / 300  # its interest, liquidations and pairs every 5 minutes
    assert budget(30.0) == pytest.approx(
        master + (9600 - (22 + rates) - (20 + rates) - ledger - risk_lists - prices
                  - 2 * master) / 2)
    fixed = {**dict(settings.options.items), "weight_budget_per_minute": 500.0}
    configured = Build(Settings(accounts, options=Options.of(fixed)), EXECUTOR)
    assert PRODUCT.budget(accounts[1], configured)(30.0) == 500.0

