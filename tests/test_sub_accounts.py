"""Sub-accounts behind one master key: parsing, discovery, paging, failures apart, over real
HTTP against the simulator."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.sub_accounts import (
    SUB_ACCOUNT_STATUS_PATH,
    SUB_MARGIN_ACCOUNT_PATH,
    SubAccount,
    fetch_sub_account_emails,
    parse_sub_margin_account,
    parse_sub_margin_summary,
)
from binance_margin_exporter.collectors.cache import Result
from binance_margin_exporter.collectors.cross import CrossAccount, CrossCollector
from binance_margin_exporter.collectors.sub_accounts import SubAccountsCollector
from binance_margin_exporter.collectors.sub_accounts.group import SubAccounts
from binance_margin_exporter.collectors.sub_accounts.roster import DISCOVERY_SECONDS
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.demo.sub_accounts import SimulatedSubAccounts
from binance_margin_exporter.products import SIMULATED
from binance_margin_exporter.wiring import account_config, build_exporter
from tests.support.clocks import StepClock
from tests.support.exporters import (
    Scraper,
    built_exporter,
    master_client,
    sample_values,
    scrape_built,
    settings_for,
)
from tests.support.fakes import StubClient
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json
from tests.support.pool import EXECUTOR
from tests.support.tools import promtool_check_metrics
from tests.support.waiting import wait_idle

DOCS = fixture_json("sub_margin_account_docs_example.json")
TOTALS = ("totalAssetOfBtc", "totalLiabilityOfBtc", "totalNetAssetOfBtc")


def test_docs_example_parses_exactly_with_its_own_bars():
    account = parse_sub_margin_account(DOCS)
    assert (account.margin_level, account.total_asset_btc, account.total_liability_btc,
            account.total_net_asset_btc) == (1.23, 10.0, 1.0, 9.0)
    assert [a.asset for a in account.assets] == ["BTC", "BNB", "ETH", "USDT"]
    assert (account.bars.normal_bar, account.bars.margin_call_bar,
            account.bars.force_liquidation_bar) == (1.5, 1.3, 1.1)


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.pop("marginLevel"), "marginLevel: missing"),
    (lambda r: r["marginTradeCoeffVo"].update(marginCallBar="x"), "marginCallBar: not a decimal"),
    (lambda r: r["marginUserAssetVoList"][0].update(free=None),
     "marginUserAssetVoList[0].free: missing"),
])
def test_a_bad_answer_names_the_field(change, message):
    raw = fixture_json("sub_margin_account_docs_example.json")
    change(raw)
    with pytest.raises(UpstreamError) as info:
        parse_sub_margin_account(raw)
    assert message in str(info.value)


def exporter_for(group: SubAccounts, *masters: CrossAccount) -> Scraper:
    return Scraper(CrossCollector(masters), SubAccountsCollector([group]))


def render(scraper: Scraper) -> str:
    return scraper.text()


class Docs:
    """The documented answer for every e-mail, and a recorded list of sub-accounts."""

    def __init__(self, emails, margin=None):
        self.emails = list(emails)
        self.margin = margin or {}
        self.list_calls = 0

    def list_subs(self, deadline):
        self.list_calls += 1
        return tuple(SubAccount(e) for e in self.emails)

    def status(self, deadline):
        return dict(self.margin)

    def fetch(self, client, email, deadline):
        return parse_sub_margin_account(DOCS)

    def summary(self, deadline):
        """The documented detail's totals, for every sub-account listed."""
        return parse_sub_margin_summary({"subAccountList": [
            {"email": e, **{k: DOCS[k] for k in TOTALS}} for e in self.emails]})


def test_golden_sub_account_from_the_documented_example(golden):
    docs = Docs(["123@test.com"])
    group = SubAccounts("master", StubClient(), EXECUTOR, ttl=0, list_subs=docs.list_subs,
                        status=docs.status,
                        fetch=docs.fetch, summary=docs.summary, monotonic=StepClock(),
                        wall=lambda: 1_700_000_000.0)
    body = exporter_for(group).render()
    golden("sub_account_docs_example.prom", body)
    promtool_check_metrics(body)


def test_discovery_every_ten_minutes_new_ones_appear_removed_ones_disappear():
    docs = Docs(["a@x.example", "b@x.example"])
    mono = StepClock(step=0.0)
    group = SubAccounts("master", StubClient(), EXECUTOR, ttl=0, list_subs=docs.list_subs,
                        status=docs.status,
                        fetch=docs.fetch, summary=docs.summary, monotonic=mono)
    exporter = exporter_for(group)
    text = render(exporter)
    assert 'account="a@x.example"' in text and 'account="b@x.example"' in text
    docs.emails = ["b@x.example", "c@x.example"]
    mono.now += DISCOVERY_SECONDS - 1
    assert 'account="a@x.example"' in render(exporter)  # not yet: the list is 10 min fresh
    assert docs.list_calls == 1
    mono.now += 2
    render(exporter)  # due: refreshed in the background ...
    wait_idle(group.discovery)
    text = render(exporter)  # ... and shown from the next scrape
    assert docs.list_calls == 2
    assert 'account="a@x.example"' not in text
    assert 'binance_margin_up{account="c@x.example"} 1.0' in text


@pytest.fixture
def fund():
    """A master with 450 sub-accounts (three pages of the list): one without margin, one
    frozen, and one whose status says margin while its margin account does not exist."""
    emails = [f"s{i:03d}@fund.example" for i in range(450)]
    subs = SimulatedSubAccounts(emails, no_margin=["s007@fund.example", "s009@fund.example"],
                                frozen=["s008@fund.example"],
                                stale_status=["s009@fund.example"], n_assets=8,
                                n_active=3, drift=False)
    sim = Simulator(SIMULATED, account=SimulatedAccount(50, 5, drift=False), subs=subs)
    sim.add_hmac_key(API_KEY, SECRET)
    with sim:
        yield sim


def test_the_list_is_read_200_a_page_until_a_short_page(fund):
    emails = fetch_sub_account_emails(master_client(fund))
    assert len(emails) == 450 and emails[0] == "s000@fund.example"
    assert fund.counts["/sapi/v1/sub-account/list"] == 3


def test_every_sub_account_exactly_and_one_without_margin_apart(fund, caplog):
    client = master_client(fund)
    group = SubAccounts("master", client, EXECUTOR, ttl=0, detail_max_age=0)
    master = CrossAccount.create("master", client, EXECUTOR, ttl=0, interest_rates=False)
    exporter = exporter_for(group, master)
    for _ in range(2):  # 2 x 451 x 10 weight: inside one minute's budget, under the soft limit
        values = sample_values(render(exporter))
    assert values[("binance_margin_up", (("account", "master"),))] == 1.0
    for email in ("s000@fund.example", "s449@fund.example"):
        acc = (("account", email),)
        raw = fund.subs.accounts[email].snapshot()
        assert values[("binance_margin_up", acc)] == 1.0
        assert values[("binance_margin_level", acc)] == float(raw["marginLevel"])
        assert values[("binance_margin_total_liability_btc", acc)] == float(
            raw["totalLiabilityOfBtc"])
        for asset in raw["userAssets"]:
            if float(asset["free"]) or float(asset["borrowed"]):
                key = ("binance_margin_asset_borrowed", (("account", email),
                                                         ("asset", asset["asset"])))
                assert values[key] == float(asset["borrowed"])
        assert values[("binance_margin_level_threshold", (("account", email),
                                                          ("threshold", "margin_call")))] == 1.3
        assert values[("binance_margin_sub_account_info", (("account", email),
                                                           ("master", "master")))] == 1.0
    # margin off (status), frozen (list), no margin account (status not caught up): no up, no
    # errors, nothing to fire on; shown by their own families
    for email in ("s007@fund.example", "s008@fund.example", "s009@fund.example"):
        assert not [k for k in values if dict(k[1]).get("account") == email
                    and k[0].startswith(("binance_margin_up", "binance_margin_scrape_errors"))]
    sub = {email: (("account", email), ("master", "master")) for email in
           ("s006@fund.example", "s007@fund.example", "s008@fund.example", "s009@fund.example")}
    enabled = {e: values[("binance_margin_sub_account_margin_enabled", k)] for e, k in sub.items()}
    frozen = {e: values[("binance_margin_sub_account_frozen", k)] for e, k in sub.items()}
    assert enabled == {"s006@fund.example": 1.0, "s007@fund.example": 0.0,
                       "s008@fund.example": 1.0, "s009@fund.example": 0.0}
    assert frozen == {"s006@fund.example": 0.0, "s007@fund.example": 0.0,
                      "s008@fund.example": 1.0, "s009@fund.example": 0.0}
    # s009 was asked once (the first scrape), s007 and s008 never
    asked = fund.subs.asked
    assert asked["s009@fund.example"] == 1
    assert asked["s007@fund.example"] == asked["s008@fund.example"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and "s007@fund.example" in r.getMessage()]
    assert sum(1 for k, v in values.items() if k[0] == "binance_margin_up" and v == 1.0) == 448
    assert values[("binance_margin_sub_account_discovery_up", (("master", "master"),))] == 1.0
    assert fund.counts[SUB_ACCOUNT_STATUS_PATH] == 1


def test_weight_a_scrape_leaves_out_who_cannot_answer(fund):
    """200 sub-accounts, 50 with margin off: 150 x 10 weight a scrape, not 200 x 10; the list
    and the status (1 + 10) once per 10 minutes."""
    emails = [f"s{i:03d}@fund.example" for i in range(200)]
    fund.subs.emails = emails
    fund.subs.no_margin = set(emails[::4])
    group = SubAccounts("master", master_client(fund), EXECUTOR, ttl=0, detail_max_age=0)
    exporter = Scraper(SubAccountsCollector([group]))
    exporter.render()
    before = fund.counts[SUB_MARGIN_ACCOUNT_PATH]
    for _ in range(3):
        exporter.render()
    assert before == 150
    assert (fund.counts[SUB_MARGIN_ACCOUNT_PATH] - before) / 3 == 150
    assert fund.counts[SUB_ACCOUNT_STATUS_PATH] == 1
    assert fund.counts["/sapi/v1/sub-account/list"] == 2  # 200 fill a page; an empty one ends


def test_a_sub_account_without_a_margin_account_is_asked_again_every_ten_minutes(fund):
    mono = StepClock(step=0.0)
    fund.subs.emails = ["s001@fund.example", "s009@fund.example"]
    group = SubAccounts("master", master_client(fund), EXECUTOR, ttl=0, monotonic=mono,
                        detail_max_age=0)
    exporter = Scraper(SubAccountsCollector([group]))
    text = exporter.text()
    assert 'binance_margin_up{account="s009@fund.example"}' not in text
    assert ('binance_margin_sub_account_margin_enabled{account="s009@fund.example",'
            'master="master"} 0.0') in text
    for _ in range(3):
        mono.now += 60
        exporter.render()
    assert fund.subs.asked["s009@fund.example"] == 1
    mono.now += DISCOVERY_SECONDS
    exporter.render()  # the roster is due (in the background), and s009 is asked again
    wait_idle(group.discovery)
    assert fund.subs.asked["s009@fund.example"] == 2
    fund.subs.no_margin.discard("s009@fund.example")  # margin enabled since
    mono.now += DISCOVERY_SECONDS
    exporter.render()
    wait_idle(group.discovery)
    assert 'binance_margin_up{account="s009@fund.example"} 1.0' in exporter.text()


def test_a_key_that_is_not_a_master_reads_its_own_account_still(fund):
    fund.subs.non_master_keys.add(API_KEY)
    client = master_client(fund)
    group = SubAccounts("master", client, EXECUTOR, ttl=0, detail_max_age=0)
    master = CrossAccount.create("master", client, EXECUTOR, ttl=0, interest_rates=False)
    values = sample_values(render(exporter_for(group, master)))
    assert values[("binance_margin_up", (("account", "master"),))] == 1.0
    assert values[("binance_margin_sub_account_discovery_up", (("master", "master"),))] == 0.0
    assert not [k for k in values if k[0] == "binance_margin_sub_account_info"]


def test_a_listed_set_of_emails_reads_exactly_those(fund):
    client = master_client(fund)
    group = SubAccounts("master", client, EXECUTOR, ttl=0, detail_max_age=0,
                        emails=["s001@fund.example", "s002@fund.example"])
    values = sample_values(render(exporter_for(group)))
    ups = {dict(k[1])["account"] for k in values if k[0] == "binance_margin_up"}
    assert ups == {"s001@fund.example", "s002@fund.example"}
    assert fund.counts["/sapi/v1/sub-account/list"] == 0


def test_a_discovered_sub_account_named_like_a_configured_account_is_not_read(caplog):
    docs = Docs(["a@x.example", "b@x.example"])
    group = SubAccounts("master", StubClient(), EXECUTOR, ttl=0, list_subs=docs.list_subs,
                        status=docs.status, fetch=docs.fetch, summary=docs.summary,
                        reserved=frozenset({"a@x.example", "master"}))
    scraper = exporter_for(group)
    for _ in range(2):
        text = scraper.text()
    assert 'account="a@x.example"' not in text
    assert 'binance_margin_up{account="b@x.example"} 1.0' in text
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "a@x.example of master has the name of a configured" in \
        errors[0]


def test_a_master_over_max_sub_accounts_reads_the_first_and_counts_the_rest(fund, caplog):
    """20,000 sub-accounts made 8.8-11.6 s scrapes against Prometheus' 10 s: a cap, one
    warning an hour, and a gauge of what was left out."""
    group = SubAccounts("master", master_client(fund), EXECUTOR, ttl=0, detail_max_age=0,
                        max_subs=100)
    scraper = exporter_for(group)
    for _ in range(3):
        values = sample_values(render(scraper))
    ups = sorted(dict(k[1])["account"] for k in values if k[0] == "binance_margin_up")
    # the first 100 of the list, less the two without margin and the frozen one
    assert len(ups) == 97 and ups[0] == "s000@fund.example" and ups[-1] == "s099@fund.example"
    assert values[("binance_margin_sub_accounts_left_out", (("master", "master"),))] == 350
    warned = [m for m in caplog.messages if "max_sub_accounts" in m]
    assert warned == ["master has 450 sub-accounts: only the first 100 are read "
                      "(max_sub_accounts), 350 left out"]


def test_within_max_sub_accounts_nothing_is_said(fund, caplog):
    group = SubAccounts("master", master_client(fund), EXECUTOR, ttl=0, detail_max_age=0)
    values = sample_values(render(exporter_for(group)))
    assert not [k for k in values if k[0] == "binance_margin_sub_accounts_left_out"]
    assert "max_sub_accounts" not in caplog.text


def test_a_list_whose_pages_never_end_is_warned_of(fund, caplog):
    """Every page full (the same 200): the list stops at 100 pages and says so, once."""
    from binance_margin_exporter.binance import sub_accounts
    from binance_margin_exporter.demo.simulator import Fault

    page = {"subAccounts": [{"email": f"p{i}@x.example", "isFreeze": False}
                            for i in range(200)]}
    import json

    fund.set_fault(Fault(status=200, body=json.dumps(page).encode(),
                         headers={"Content-Type": "application/json"},
                         paths=("/sapi/v1/sub-account/list",)))
    sub_accounts._truncated._kinds.clear()  # once an hour: a fresh hour
    client = master_client(fund)
    for _ in range(2):
        emails = fetch_sub_account_emails(client)
    assert len(emails) == 200
    assert fund.counts["/sapi/v1/sub-account/list"] == 2 * sub_accounts.MAX_PAGES
    warned = [m for m in caplog.messages if "did not end" in m]
    assert warned == [f"the sub-account list on {client.upstream.host} did not end after "
                      f"100 pages: the sub-accounts after the first 20000 are left out"]


def test_two_scrapes_at_once_neither_fails_on_the_kept_values():
    """An HA pair of Prometheus servers scrape at once: one scrape's ``_polled`` rebuilds the
    kept values while the other's results add to them (a "dictionary changed size during
    iteration" made the whole /metrics a 500)."""
    emails = [f"s{i}@x.example" for i in range(500)]
    docs = Docs(emails)
    group = SubAccounts("master", StubClient(), EXECUTOR, ttl=0, list_subs=docs.list_subs,
                        status=docs.status, fetch=docs.fetch, summary=docs.summary,
                        max_subs=len(emails))
    deadline = time.monotonic() + 30
    accounts = group._polled(deadline)
    while len(accounts) < len(emails) and time.monotonic() < deadline:  # discovery runs apart
        accounts = group._polled(deadline)
    summary = Result(docs.summary(0), None, 0.0, 0.0)
    errors: list[Exception] = []
    stop = threading.Event()

    def rebuild() -> None:
        try:
            while not stop.is_set():
                group._polled(time.monotonic() + 30)
        except RuntimeError as exc:
            errors.append(exc)

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as it can be
    thread = threading.Thread(target=rebuild)
    thread.start()
    try:
        for _ in range(40):
            group._made.clear()  # as at the first scrapes of new sub-accounts
            for account in accounts:
                group._result(account, summary, None)
            if errors:
                break
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(switching)
    assert errors == []


def test_a_reload_that_keeps_the_master_leaves_out_a_newly_configured_sub_account(
        simulator, caplog):
    """A kept master's part takes the new configuration's account names: a sub-account
    configured as an account of its own after a reload is read once, by its own key (before,
    the kept roster went on reading it too: two products' series under one label)."""
    main = account_config("main", API_KEY, SECRET, sub_accounts="all", isolated=False)
    alice = account_config("alice@fund.example", API_KEY, SECRET, isolated=False)
    up = ("binance_margin_up", (("account", "alice@fund.example"),))
    first = build_exporter(settings_for(simulator, main))
    try:
        scrape_built(first, 5.0)
        assert up in scrape_built(first, 5.0)  # the master's sub-account
        with built_exporter(settings_for(simulator, main, alice), first) as again:
            assert again.accounts[main] is first.accounts[main]  # kept
            scrape_built(again, 5.0)
            assert up in scrape_built(again, 5.0)  # the account's own
        assert "duplicate series" not in caplog.text
        assert "has the name of a configured account" in caplog.text
    finally:
        first.exporter.close()
