"""The cost ledger: Binance's documented examples parsed; against the simulator, with records
added while the exporter runs (on page boundaries, inside overlapping windows), every counter
is the exact sum of the records after start, none counted twice; a restart counts only what
comes after it; a failing history keeps its counters; 10,000 records in one window are read
page by page within the weight budget; a clock stepped back never counts again."""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal

from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.ledger import (
    Read,
    parse_income,
    parse_interest,
    parse_liquidations,
)
from binance_margin_exporter.collectors.invalid_fields import InvalidFields
from binance_margin_exporter.collectors.ledger import (
    INTEREST,
    LIQUIDATIONS,
    MARGIN_PRODUCT,
    OVERLAP_MS,
    Ledger,
    Stream,
)
from binance_margin_exporter.demo.simulator import Fault
from binance_margin_exporter.wiring import account_config
from tests.support.exporters import built_exporter, scrape_built, settings_for
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import fixture_json

INTEREST_PATH = "/sapi/v1/margin/interestHistory"
LIQUIDATION_PATH = "/sapi/v1/margin/forceLiquidationRec"


def test_documented_examples_parse():
    interest = parse_interest(fixture_json("margin_interest_history_docs_example.json"))
    assert [(r.id, r.time_ms, r.labels, r.amount) for r in interest.records] == [
        (":1352286576452864727", 1672160400000, ("USDT", ""), Decimal("0.00024995")),
        ("BNBUSDT:1352286576452864728", 1672160400000, ("USDT", "BNBUSDT"),
         Decimal("0.00024995"))]
    assert interest.total == 2
    liquidations = parse_liquidations(fixture_json("margin_force_liquidation_docs_example.json"))
    assert [(r.id, r.time_ms, r.labels) for r in liquidations.records] == [
        ("180015097", 1558941374745, ("BNBBTC", "SELL"))]
    papi = parse_liquidations(fixture_json("papi_margin_force_orders_docs_example.json"))
    assert papi.records == liquidations.records
    income = parse_income(fixture_json("futures_income_docs_example.json"), "um")
    # one tranId, two income types: two records (tranId is unique within a type)
    assert [(r.id, r.labels, r.amount) for r in income.records] == [
        ("TRANSFER:9689322392", ("um", "transfer", "USDT", "paid"), Decimal("0.375")),
        ("COMMISSION:9689322392", ("um", "commission", "USDT", "paid"), Decimal("0.01"))]


def test_malformed_amounts_are_named_not_counted():
    page = parse_income([{"incomeType": "FUNDING_FEE", "income": "1e400x", "asset": "USDT",
                          "time": 1, "tranId": 7}], "um")
    assert page.records[0].amount is None and page.records[0].bad == "income history income"
    page = parse_interest({"rows": [{"txId": 1, "interestAccuredTime": 1, "asset": "BTC",
                                     "interest": "-0.1"}], "total": 1})
    assert page.records[0].amount is None


class Book:
    """What the test added after the exporter started: the sums it expects."""

    def __init__(self) -> None:
        self.sums: dict[tuple, Decimal] = defaultdict(Decimal)

    def interest(self, sim, asset, amount, time_ms, symbol=None):
        sim.ledger.add_interest(asset, amount, time_ms, symbol=symbol)
        self.sums[("binance_margin_interest_paid_total",
                   (("account", "main"), ("asset", asset), ("symbol", symbol or "")))] += \
            Decimal(amount)

    def liquidation(self, sim, symbol, side, time_ms, isolated=False):
        sim.ledger.add_liquidation(symbol, side, time_ms, isolated=isolated)
        self.sums[("binance_margin_liquidations_total",
                   (("account", "main"), ("side", side), ("symbol", symbol)))] += 1

    def check(self, values):
        got = {k: v for k, v in values.items()
               if k[0] in ("binance_margin_interest_paid_total",
                           "binance_margin_liquidations_total")}
        assert got == {k: float(v) for k, v in self.sums.items()}


def fetch_now(built, account, product="margin_ledger"):
    """The next scrape reads the ledger (as it does every ledger_interval_seconds)."""
    cached = built.accounts[account].parts[product].cached
    cached.invalidate()
    cached.get(time.monotonic() + 120)  # its read done, however busy the machine
    return scrape_built(built)


def test_margin_counters_are_exact_sums_counted_once(simulator):
    account = account_config("main", API_KEY, SECRET)
    before = simulator.ledger.now_ms() - 1000
    simulator.ledger.add_interest("USDT", "5.00000000", before)  # history: not counted
    simulator.ledger.add_liquidation("BTCUSDT", "SELL", before)
    book = Book()
    with built_exporter(settings_for(simulator, account)) as built:
        start = built.accounts[account].parts["margin_ledger"].ledger.tally.started_ms
        values = fetch_now(built, account)
        assert values[("binance_margin_ledger_up", (("account", "main"),))] == 1.0
        book.check(values)
        now = simulator.ledger.now_ms()  # records are of the past: between start and now

        def at(offset):
            return start + offset % (now - start + 1)
        # 250 records (pages of 100: two boundaries), some of one millisecond
        for i in range(250):
            book.interest(simulator, "USDT", f"0.0000{i % 7 + 1}123", at(i // 3))
        book.interest(simulator, "BTC", "0.00000001", at(5), symbol="BTCUSDT")
        book.liquidation(simulator, "ETHUSDT", "SELL", at(7), isolated=True)
        book.liquidation(simulator, "BNBBTC", "BUY", now)
        book.check(fetch_now(built, account))
        # read again and again: the windows overlap, nothing counts twice
        book.check(fetch_now(built, account))
        # late records inside the overlap, and new ones
        book.interest(simulator, "USDT", "0.12345678", at(2))
        book.liquidation(simulator, "ETHUSDT", "BUY", at(3), isolated=True)
        book.interest(simulator, "USDT", "1.00000001", simulator.ledger.now_ms())
        values = fetch_now(built, account)
        book.check(values)
        last = values[("binance_margin_liquidation_last_timestamp_seconds",
                       (("account", "main"),))]
        assert last == now / 1000.0


def test_a_restart_counts_only_what_comes_after_it(simulator):
    account = account_config("main", API_KEY, SECRET)
    with built_exporter(settings_for(simulator, account)) as built:
        simulator.ledger.add_interest("USDT", "1.00000000")
        first = fetch_now(built, account)
    key = ("binance_margin_interest_paid_total",
           (("account", "main"), ("asset", "USDT"), ("symbol", "")))
    assert first[key] == 1.0
    with built_exporter(settings_for(simulator, account)) as built:
        simulator.ledger.add_interest("USDT", "0.25000000")
        assert fetch_now(built, account)[key] == 0.25


def test_a_failing_history_keeps_its_counters_and_reads_again(simulator):
    account = account_config("main", API_KEY, SECRET, isolated=False)
    key = ("binance_margin_interest_paid_total",
           (("account", "main"), ("asset", "USDT"), ("symbol", "")))
    errors = ("binance_margin_ledger_scrape_errors_total",
              (("account", "main"), ("reason", "http")))
    with built_exporter(settings_for(simulator, account)) as built:
        simulator.ledger.add_interest("USDT", "1.00000000")
        assert fetch_now(built, account)[key] == 1.0
        simulator.set_fault(Fault(status=503, body=b"busy", paths=(INTEREST_PATH,)))
        simulator.ledger.add_interest("USDT", "2.00000000")
        values = fetch_now(built, account)
        assert values[("binance_margin_ledger_up", (("account", "main"),))] == 0.0
        assert values[key] == 1.0  # kept, not gone, not moved
        assert sum(v for k, v in values.items() if k[0] == errors[0]) == 1.0
        assert values[("binance_margin_up", (("account", "main"),))] == 1.0  # the account's
        simulator.clear_faults()
        values = fetch_now(built, account)
        assert values[("binance_margin_ledger_up", (("account", "main"),))] == 1.0
        assert values[key] == 3.0


def test_a_malformed_amount_is_skipped_and_counted_once(simulator):
    account = account_config("main", API_KEY, SECRET, isolated=False)
    with built_exporter(settings_for(simulator, account)) as built:
        simulator.ledger.add_interest("USDT", "not-a-number")
        simulator.ledger.add_interest("USDT", "0.50000000")
        fetch_now(built, account)
        values = fetch_now(built, account)  # read again in the overlap: noted once
    assert values[("binance_margin_interest_paid_total",
                   (("account", "main"), ("asset", "USDT"), ("symbol", "")))] == 0.5
    assert values[("binance_margin_invalid_fields_total",
                   (("account", "main"), ("field", "interest history interest")))] == 1.0


def test_ten_thousand_records_in_one_window_page_by_page_within_budget(simulator):
    account = account_config("main", API_KEY, SECRET, isolated=False)
    with built_exporter(settings_for(simulator, account)) as built:
        start = built.accounts[account].parts["margin_ledger"].ledger.tally.started_ms
        now = simulator.ledger.now_ms()
        for i in range(10_000):
            simulator.ledger.add_interest("USDT", "0.00000001", start + i % (now - start + 1))
        simulator.counts.clear()
        values = fetch_now(built, account)
    assert values[("binance_margin_interest_paid_total",
                   (("account", "main"), ("asset", "USDT"), ("symbol", "")))] == \
        float(Decimal("0.00000001") * 10_000)
    assert simulator.counts[INTEREST_PATH] == 100  # 100 pages of 100, weight 1 each
    used = max(v for k, v in values.items() if k[0] == "binance_margin_api_ip_weight_used_1m")
    assert used < 12_000 * 0.8  # the sapi budget's soft limit


def test_futures_income_straddling_pages_counted_once(hosts):
    account = account_config("fut", API_KEY, SECRET, type="futures", markets=("um", "cm"))
    with built_exporter(hosts.settings(account)) as built:
        tally = built.accounts[account].parts["futures_ledger"].ledger.tally
        tally.started_ms -= 10_000  # started 10 s ago: the records spread over 10 s
        start = tally.started_ms
        want: dict[tuple, Decimal] = defaultdict(Decimal)
        now = hosts.fapi.ledger.now_ms()
        for i in range(2_500):  # records 990..1010 share one millisecond: a page ends there
            at = start + (990 if 990 <= i <= 1010 else i) * (now - start) // 2_500
            amount = Decimal(f"{'-' if i % 3 else ''}0.{i + 1:08d}")
            hosts.fapi.ledger.add_income("um", "FUNDING_FEE", amount, "USDT", at)
            want[("um", "funding_fee", "USDT", "paid" if amount < 0 else "received")] += \
                abs(amount)
        hosts.dapi.ledger.add_income("cm", "INSURANCE_CLEAR", "-0.00100000", "BTC", now)
        want[("cm", "insurance_clear", "BTC", "paid")] += Decimal("0.001")
        for _ in range(2):
            values = fetch_now(built, account, "futures_ledger")
            got = {tuple(dict(k[1])[n] for n in ("market", "type", "asset", "direction")): v
                   for k, v in values.items() if k[0] == "binance_margin_futures_income_total"}
            assert got == {k: float(v) for k, v in want.items()}
    assert hosts.hosts_of("/fapi/v1/income") == ["fapi_base_url"]


def test_portfolio_margin_ledger(hosts):
    account = account_config("pm", API_KEY, SECRET, type="portfolio_margin")
    with built_exporter(hosts.settings(account)) as built:
        hosts.papi.ledger.add_interest("USDT", "0.04100000", where="papi")
        hosts.papi.ledger.add_liquidation("BNBBTC", "SELL", where="papi")
        hosts.papi.ledger.add_income("papi_um", "FUNDING_FEE", "0.20000000", "USDT")
        values = fetch_now(built, account, "portfolio_ledger")
    pm = ("account", "pm")
    assert values[("binance_margin_interest_paid_total",
                   (pm, ("asset", "USDT"), ("symbol", "")))] == 0.041
    assert values[("binance_margin_liquidations_total",
                   (pm, ("side", "SELL"), ("symbol", "BNBBTC")))] == 1.0
    assert values[("binance_margin_futures_income_total",
                   (pm, ("asset", "USDT"), ("direction", "received"), ("market", "um"),
                    ("type", "funding_fee")))] == 0.2


def test_ledger_false_turns_it_off(simulator):
    account = account_config("main", API_KEY, SECRET, ledger=False)
    with built_exporter(settings_for(simulator, account)) as built:
        assert "margin_ledger" not in built.accounts[account].parts
        values = scrape_built(built)
    assert not [k for k in values if k[0].startswith("binance_margin_ledger")]


def test_ledger_false_at_the_top_turns_every_ledger_off(simulator, tmp_path):
    from binance_margin_exporter.wiring import load

    path = tmp_path / "c.yml"
    path.write_text("ledger: false\naccounts:\n"
                    "  - {name: m, api_key: k, api_secret: s}\n"
                    "  - {name: f, api_key: k, api_secret: s, type: futures}\n"
                    "  - {name: p, api_key: k, api_secret: s, type: portfolio_margin}\n")
    settings = load(str(path), {})
    from binance_margin_exporter.collectors.ledger import FUTURES_PRODUCT, PORTFOLIO_PRODUCT
    assert not [(p.name, a.name) for p in (MARGIN_PRODUCT, FUTURES_PRODUCT, PORTFOLIO_PRODUCT)
                for a in settings.accounts if p.reads(a, settings)]
    path.write_text(path.read_text().replace("ledger: false", "ledger: true"))
    settings = load(str(path), {})
    assert [p.name for p in (MARGIN_PRODUCT, FUTURES_PRODUCT, PORTFOLIO_PRODUCT)
            for a in settings.accounts if p.reads(a, settings)] == [
        "margin_ledger", "futures_ledger", "portfolio_ledger"]


def test_weight_is_declared_for_the_plan(simulator):
    settings = settings_for(simulator, account_config("main", API_KEY, SECRET))
    account = settings.accounts[0]
    # interest (1), liquidations (1) and the isolated pairs (10) every 300 s
    assert MARGIN_PRODUCT.weight_per_minute(account, settings, 15.0) == {
        simulator.base_url: 12 * 60 / 300}


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000.0


def test_a_clock_stepped_back_never_counts_again():
    from binance_margin_exporter.binance.ledger import Record

    records = [Record(str(i), 1_000_000 + i * 1000, ("USDT", ""), Decimal(1)) for i in range(50)]
    asked = []

    def read(start, end, deadline):
        asked.append((start, end))
        return Read(tuple(r for r in records if start <= r.time_ms <= end), 1)

    clock = Clock(1_000_000)
    ledger = Ledger(lambda d: ([Stream("interest", INTEREST, read)], []),
                    InvalidFields("t"), wall=clock)
    clock.ms = 1_020_500
    ledger.fetch(0.0)
    assert ledger.tally.snapshot()[0][INTEREST] == [(("USDT", ""), Decimal(21))]
    clock.ms = 1_005_000  # stepped back 15 s
    ledger.fetch(0.0)
    clock.ms = 1_020_500
    ledger.fetch(0.0)
    assert ledger.tally.snapshot()[0][INTEREST] == [(("USDT", ""), Decimal(21))]
    assert asked[1] == (1_000_000, 1_005_000)  # read again, counted never
    clock.ms = 1_040_500
    ledger.fetch(0.0)
    assert ledger.tally.snapshot()[0][INTEREST] == [(("USDT", ""), Decimal(41))]
    assert len(ledger.tally.seen["interest"]) == 41  # all within the overlap still
    clock.ms = 1_040_500 + OVERLAP_MS + 20_000  # well past: only the overlap's ids are kept
    ledger.fetch(0.0)
    assert asked[-1] == (1_000_000, clock.ms)  # never before the start
    assert ledger.tally.snapshot()[0][INTEREST] == [(("USDT", ""), Decimal(50))]
    clock.ms += OVERLAP_MS
    ledger.fetch(0.0)
    assert asked[-1] == (1_040_500 + 20_000, clock.ms)
    assert ledger.tally.seen["interest"] == {}  # nothing of the window left: none kept
    assert ledger.tally.snapshot()[0][INTEREST] == [(("USDT", ""), Decimal(50))]


def test_a_failing_history_does_not_stop_the_others():
    def failing(start, end, deadline):
        raise UpstreamError("http", "busy")

    def one(start, end, deadline):
        from binance_margin_exporter.binance.ledger import Record
        return Read((Record("1", start, ("S", "SELL"), Decimal(1)),), 1)

    ledger = Ledger(lambda d: ([Stream("a", INTEREST, failing),
                                Stream("b", LIQUIDATIONS, one)], []), InvalidFields("t"))
    try:
        ledger.fetch(0.0)
    except UpstreamError:
        pass
    else:
        raise AssertionError("the failing history must fail the fetch")
    assert ledger.tally.snapshot()[0][LIQUIDATIONS] == [(("S", "SELL"), Decimal(1))]
    assert "a" not in ledger.tally.cursors and "b" in ledger.tally.cursors


def test_golden_documented_examples(golden):
    from binance_margin_exporter.collectors.account_fetch import AccountCollector
    from binance_margin_exporter.collectors.ledger import (
        INCOME,
        LedgerFamilies,
        LedgerPart,
        LedgerRead,
        ledger_fetches,
    )
    from tests.support.exporters import Scraper
    from tests.support.fakes import StubClient, recorded
    from tests.support.tools import promtool_check_metrics

    pages = [("interest", INTEREST, parse_interest(
                 fixture_json("margin_interest_history_docs_example.json"))),
             ("liquidations", LIQUIDATIONS, parse_liquidations(
                 fixture_json("margin_force_liquidation_docs_example.json"))),
             ("income:um", INCOME, parse_income(
                 fixture_json("futures_income_docs_example.json"), "um"))]

    def fed() -> Ledger:
        ledger = Ledger(lambda d: ([], []), InvalidFields("t"), wall=lambda: 0.0)
        for key, family, page in pages:
            ledger.tally.take(Stream(key, family, None), Read(page.records, 1),
                              0, 2_000_000_000_000)
        return ledger

    part = LedgerPart("main", StubClient(), recorded("ledger of main", LedgerRead(4)),
                      ledger=fed())
    collector = AccountCollector([part], lambda scrape: LedgerFamilies(), ledger_fetches)
    body = Scraper(collector).render()
    golden("ledger_docs_example.prom", body)
    promtool_check_metrics(body)


def test_a_long_step_back_never_counts_what_left_the_overlap():
    """The clock goes back by less than the overlap after the ids older than the overlap were
    let go: the next windows still start where the latest one ended, less the overlap."""
    from binance_margin_exporter.binance.ledger import Record

    start = 1_000_000
    records = [Record(str(i), start + i * 10_000, ("USDT", ""), Decimal(1))
               for i in range(3 * OVERLAP_MS // 10_000)]

    def read(first, last, deadline):
        return Read(tuple(r for r in records if first <= r.time_ms <= last), 1)

    clock = Clock(start)
    ledger = Ledger(lambda d: ([Stream("interest", INTEREST, read)], []),
                    InvalidFields("t"), wall=clock)
    clock.ms = start + 3 * OVERLAP_MS
    ledger.fetch(0.0)
    counted = ledger.tally.snapshot()[0][INTEREST]
    assert counted == [(("USDT", ""), Decimal(len(records)))]
    clock.ms -= OVERLAP_MS // 2  # stepped back, within the overlap
    ledger.fetch(0.0)
    ledger.fetch(0.0)
    clock.ms += OVERLAP_MS // 2
    ledger.fetch(0.0)
    assert ledger.tally.snapshot()[0][INTEREST] == counted


def test_records_outside_the_window_asked_are_not_counted():
    """An answer that ignores startTime (history from before the start) or sends a record
    from after the window's end: only the window's records count (the later one next time)."""
    from binance_margin_exporter.binance.ledger import Record

    records = [Record("old", 500_000, ("USDT", ""), Decimal(7)),
               Record("now", 1_010_000, ("USDT", ""), Decimal(1)),
               Record("later", 1_030_000, ("USDT", ""), Decimal(2))]
    clock = Clock(1_000_000)
    ledger = Ledger(lambda d: ([Stream("interest", INTEREST,
                                       lambda a, b, c: Read(tuple(records), 1))], []),
                    InvalidFields("t"), wall=clock)
    clock.ms = 1_020_000
    ledger.fetch(0.0)
    assert ledger.tally.snapshot()[0][INTEREST] == [(("USDT", ""), Decimal(1))]
    clock.ms = 1_040_000
    ledger.fetch(0.0)
    assert ledger.tally.snapshot()[0][INTEREST] == [(("USDT", ""), Decimal(3))]


def test_the_demo_makes_records_over_time():
    """--demo: hourly interest, funding every 5 minutes, a liquidation an hour on ETHUSDT."""
    import json

    from binance_margin_exporter.demo.ledger import SimulatedLedger

    clock = Clock(1_800_000_000_000 + 1)  # just past an hour
    demo = SimulatedLedger(clock, auto=True)
    clock.ms += 2 * 3600 * 1000
    window = {"startTime": "1800000000000", "endTime": str(clock.ms), "size": "100"}
    interest = json.loads(demo.interest_of("margin")(window))
    assert interest["total"] == 2 * 2  # USDT and BTC, each hour
    pair = json.loads(demo.interest_of("margin")({**window, "isolatedSymbol": "BTCUSDT"}))
    assert pair["total"] == 2
    liquidations = json.loads(demo.liquidations_of("margin")(
        {**window, "isolatedSymbol": "ETHUSDT"}))
    assert [r["symbol"] for r in liquidations["rows"]] == ["ETHUSDT", "ETHUSDT"]
    income = json.loads(demo.income_of("um")({"startTime": "1800000000000",
                                               "endTime": str(clock.ms), "limit": "1000"}))
    funding = [r for r in income if r["incomeType"] == "FUNDING_FEE"]
    assert len(funding) == 24 and {r["income"][0] == "-" for r in funding} == {True, False}
    assert [r["time"] for r in income] == sorted(r["time"] for r in income)  # oldest first


def test_the_demo_makes_a_first_round_of_every_kind_soon_after_its_start():
    """--demo: the ledger's families need not wait an hour for their first record."""
    import json

    from binance_margin_exporter.demo.ledger import FIRST_MS, SimulatedLedger

    clock = Clock(1_800_000_000_000 + 1)  # just past an hour: no hourly record for 59 min
    demo = SimulatedLedger(clock, auto=True)
    demo.first_round_at = clock.ms + FIRST_MS
    window = {"startTime": "1800000000000", "size": "100"}

    def counts() -> tuple[int, int, int]:
        ask = {**window, "endTime": str(clock.ms)}
        interest = json.loads(demo.interest_of("margin")(ask))["total"]
        liquidations = json.loads(demo.liquidations_of("margin")(
            {**ask, "isolatedSymbol": "ETHUSDT"}))["total"]
        income = json.loads(demo.income_of("um")({**ask, "limit": "1000"}))
        return interest, liquidations, len(income)

    clock.ms += FIRST_MS - 1
    assert counts() == (0, 0, 0)
    clock.ms += 1
    assert counts() == (2, 1, 2)  # USDT and BTC interest; the liquidation; funding, commission
    clock.ms += 1
    assert counts() == (2, 1, 2)  # once


def test_windows_longer_than_binance_allows_are_asked_in_30_day_pieces(simulator, client):
    from binance_margin_exporter.binance.ledger import (
        MARGIN_INTEREST,
        MAX_WINDOW_MS,
        read_margin,
        windows,
    )

    assert list(windows(0, 2 * MAX_WINDOW_MS)) == [
        (0, MAX_WINDOW_MS - 1), (MAX_WINDOW_MS, 2 * MAX_WINDOW_MS - 1),
        (2 * MAX_WINDOW_MS, 2 * MAX_WINDOW_MS)]
    now = simulator.ledger.now_ms()
    old = simulator.ledger.add_interest("USDT", "0.10000000", now - 40 * 24 * 3600 * 1000)
    new = simulator.ledger.add_interest("USDT", "0.20000000", now)
    read = read_margin(client, MARGIN_INTEREST, parse_interest, (), now - 45 * 86_400_000,
                       now)  # the simulator refuses a window over 30 days, as Binance does
    assert sorted(r.id for r in read.records) == sorted(
        f":{row['txId']}" for row in (old, new)) and read.pages == 2


def test_a_malformed_row_is_skipped_counted_once_and_the_read_goes_on(simulator):
    """An empty id, an empty asset or side: that row is skipped and its field counted once;
    the rest is counted and the history moves on (it used to fail every interval)."""
    account = account_config("main", API_KEY, SECRET, isolated=False)
    with built_exporter(settings_for(simulator, account)) as built:
        simulator.ledger.add_interest("USDT", "0.50000000")
        simulator.ledger.add_interest("USDT", "0.25000000")["txId"] = ""
        simulator.ledger.add_interest("USDT", "0.12500000")["asset"] = ""
        simulator.ledger.add_liquidation("BTCUSDT", "SELL")
        simulator.ledger.add_liquidation("BTCUSDT", "SELL")["side"] = ""
        fetch_now(built, account)
        values = fetch_now(built, account)  # read again in the overlap: noted once
        tally = built.accounts[account].parts["margin_ledger"].ledger.tally
        assert "interest" in tally.cursors and "liquidations" in tally.cursors
    assert values[("binance_margin_ledger_up", (("account", "main"),))] == 1.0
    assert values[("binance_margin_interest_paid_total",
                   (("account", "main"), ("asset", "USDT"), ("symbol", "")))] == 0.5
    assert values[("binance_margin_liquidations_total",
                   (("account", "main"), ("side", "SELL"), ("symbol", "BTCUSDT")))] == 1.0
    for field in ("interest history txId", "interest history asset",
                  "forced liquidations side"):
        assert values[("binance_margin_invalid_fields_total",
                       (("account", "main"), ("field", field)))] == 1.0


def test_a_row_without_a_usable_time_is_skipped_not_the_page():
    page = parse_income([{"incomeType": "FUNDING_FEE", "income": "1", "asset": "USDT",
                          "time": "soon", "tranId": 7},
                         {"incomeType": "FUNDING_FEE", "income": "2", "asset": "USDT",
                          "time": 5, "tranId": 8}, "not a row"], "um")
    assert [(r.bad, r.amount) for r in page.records] == [
        ("income history time", None), ("", Decimal(2)), ("income history row", None)]
    invalid = InvalidFields("t")
    clock = Clock(1_000)
    ledger = Ledger(lambda d: ([Stream("income:um", "income",
                                       lambda a, b, c: Read(page.records, 1))], []),
                    invalid, wall=clock)
    for ms in (2_000, 3_000):
        clock.ms = ms
        ledger.fetch(0.0)
    assert invalid.counts == {"income history time": 1, "income history row": 1}


def test_a_clock_stepped_forward_then_back_misses_nothing_and_counts_nothing_twice():
    """An hour ahead, then back: the records made between are counted, those counted
    before the jump are not counted again (their ids were let go in the jump's read)."""
    from binance_margin_exporter.binance.ledger import Record

    start = 10_000_000
    records: list[Record] = []

    def read(first, last, deadline):
        return Read(tuple(r for r in records if first <= r.time_ms <= last), 1)

    clock = Clock(start)
    ledger = Ledger(lambda d: ([Stream("interest", INTEREST, read)], []),
                    InvalidFields("t"), wall=clock)
    records += [Record(str(i), start + i * 60_000, ("USDT", ""), Decimal(1)) for i in range(10)]
    clock.ms = start + 10 * 60_000  # real time: records 0..9 made
    ledger.fetch(0.0)
    clock.ms += 3_600_000  # stepped an hour ahead: nothing more made
    ledger.fetch(0.0)
    clock.ms -= 3_600_000 - 5 * 60_000  # back: five minutes after the first read
    records += [Record(str(i), start + i * 60_000, ("USDT", ""), Decimal(1))
                for i in range(10, 15)]
    ledger.fetch(0.0)
    clock.ms += 10 * 60_000
    ledger.fetch(0.0)
    assert ledger.tally.snapshot()[0][INTEREST] == [(("USDT", ""), Decimal(15))]


def counted_until(built, account, product, key, want, fetches=40):
    """Fetch until the counter is ``want`` (never above it): each fetch reads what its
    page budget allows and carries the rest; the values of every fetch."""
    seen = []
    for _ in range(fetches):
        values = fetch_now(built, account, product)
        seen.append(values)
        assert values.get(key, 0.0) <= want  # never counted twice
        if values.get(key) == want:
            break
    return seen


def test_a_margin_window_beyond_the_page_budget_is_carried_not_lost(simulator, monkeypatch):
    monkeypatch.setattr("binance_margin_exporter.binance.ledger.MAX_PAGES", 3)
    account = account_config("main", API_KEY, SECRET, isolated=False)
    key = ("binance_margin_interest_paid_total",
           (("account", "main"), ("asset", "USDT"), ("symbol", "")))
    with built_exporter(settings_for(simulator, account)) as built:
        tally = built.accounts[account].parts["margin_ledger"].ledger.tally
        tally.started_ms -= 10_000
        start, now = tally.started_ms, simulator.ledger.now_ms()
        for i in range(1_000):
            simulator.ledger.add_interest("USDT", "1", start + i * (now - start) // 1_000)
        seen = counted_until(built, account, "margin_ledger", key, 1_000.0)
    assert 0 < seen[0][key] < 1_000.0  # the first fetch read part of it
    assert seen[-1][key] == 1_000.0
    assert all(v[("binance_margin_ledger_up", (("account", "main"),))] == 1.0 for v in seen)


def test_an_income_window_beyond_the_page_budget_is_carried_not_lost(hosts, monkeypatch):
    monkeypatch.setattr("binance_margin_exporter.binance.ledger.MAX_PAGES", 2)
    account = account_config("fut", API_KEY, SECRET, type="futures", markets=("um",))
    key = ("binance_margin_futures_income_total",
           (("account", "fut"), ("asset", "USDT"), ("direction", "received"), ("market", "um"),
            ("type", "funding_fee")))
    with built_exporter(hosts.settings(account)) as built:
        tally = built.accounts[account].parts["futures_ledger"].ledger.tally
        tally.started_ms -= 10_000
        start, now = tally.started_ms, hosts.fapi.ledger.now_ms()
        for i in range(5_000):
            hosts.fapi.ledger.add_income("um", "FUNDING_FEE", "1", "USDT",
                                         start + i * (now - start) // 5_000)
        seen = counted_until(built, account, "futures_ledger", key, 5_000.0)
    assert 0 < seen[0][key] < 5_000.0
    assert seen[-1][key] == 5_000.0


def test_a_large_income_window_spends_at_most_a_third_of_the_fapi_minute(hosts):
    """30,000 records at weight 30 a page: 30 pages (900) in one fetch would be more than a
    third of /fapi's 2,400 a minute; 26 are read, the rest at the next interval."""
    account = account_config("fut", API_KEY, SECRET, type="futures", markets=("um",))
    key = ("binance_margin_futures_income_total",
           (("account", "fut"), ("asset", "USDT"), ("direction", "received"), ("market", "um"),
            ("type", "funding_fee")))
    with built_exporter(hosts.settings(account)) as built:
        tally = built.accounts[account].parts["futures_ledger"].ledger.tally
        tally.started_ms -= 10_000
        start, now = tally.started_ms, hosts.fapi.ledger.now_ms()
        for i in range(30_000):
            hosts.fapi.ledger.add_income("um", "FUNDING_FEE", "1", "USDT",
                                         start + i * (now - start) // 30_000)
        hosts.fapi.counts.clear()
        first = fetch_now(built, account, "futures_ledger")
        assert hosts.fapi.counts["/fapi/v1/income"] == 2_400 // 3 // 30
        seen = counted_until(built, account, "futures_ledger", key, 30_000.0)
    assert first[("binance_margin_ledger_up", (("account", "fut"),))] == 1.0
    assert 0 < first[key] < 30_000.0
    assert seen[-1][key] == 30_000.0


def test_an_amount_too_large_for_a_float_is_skipped_and_counted():
    """1E+400 is a finite decimal, but the counter would show +Inf for good."""
    page = parse_income([{"incomeType": "FUNDING_FEE", "income": "1E+400", "asset": "USDT",
                          "time": 1, "tranId": 7},
                         {"incomeType": "FUNDING_FEE", "income": "-1E+400", "asset": "USDT",
                          "time": 1, "tranId": 8}], "um")
    assert [(r.amount, r.bad) for r in page.records] == [
        (None, "income history income"), (None, "income history income")]
    page = parse_interest({"rows": [{"txId": 1, "interestAccuredTime": 1, "asset": "BTC",
                                     "interest": "1E+400"}], "total": 1})
    assert page.records[0].amount is None
    assert page.records[0].bad == "interest history interest"


def test_a_reload_that_rebuilds_the_account_carries_its_tally(simulator):
    """A change of the global settings, then of the account's own config: each rebuilds the
    account, and the records between its last read and the reload are still counted (the
    liquidation's alert too), none twice."""
    import dataclasses

    from binance_margin_exporter.wiring import build_exporter

    account = account_config("main", API_KEY, SECRET, isolated=False)
    settings = settings_for(simulator, account)
    interest = ("binance_margin_interest_paid_total",
                (("account", "main"), ("asset", "USDT"), ("symbol", "")))
    builds = [build_exporter(settings)]
    try:
        tally = builds[0].accounts[account].parts["margin_ledger"].ledger.tally
        tally.started_ms -= 10_000
        fetch_now(builds[0], account)
        before = simulator.ledger.now_ms() - 5
        simulator.ledger.add_interest("USDT", "0.50000000", before)
        simulator.ledger.add_liquidation("BTCUSDT", "SELL", before)
        changed = dataclasses.replace(
            settings, request_timeout_seconds=settings.request_timeout_seconds + 1)
        builds.append(build_exporter(changed, builds[0]))
        values = fetch_now(builds[1], account)
        assert values[interest] == 0.5
        assert values[("binance_margin_liquidation_last_timestamp_seconds",
                       (("account", "main"),))] == before / 1000.0
        simulator.ledger.add_interest("USDT", "0.25000000", simulator.ledger.now_ms() - 5)
        moved = account_config("main", API_KEY, SECRET, isolated=True)
        builds.append(build_exporter(dataclasses.replace(changed, accounts=(moved,)),
                                     builds[1]))
        values = fetch_now(builds[2], moved)
        assert values[interest] == 0.75
        assert builds[2].accounts[moved].parts["margin_ledger"].ledger.tally is tally
    finally:
        for built in reversed(builds):
            built.exporter.close()
