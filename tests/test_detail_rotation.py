"""The detail rotation's plan on its own (``DetailRotation.plan``), with accounts whose levels,
bars and detail ages are set exactly: the minute's window, the order of those at risk, what a
fall is, the catch-up of old details and the rotation it shows. The same plan over HTTP is in
test_sub_account_rotation.py."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from binance_margin_exporter.collectors.cache import Result
from binance_margin_exporter.collectors.sub_accounts.rotation import DetailRotation
from tests.support.clocks import StepClock

WALL = 1_700_000_000.0


def sub(name: str, detail_age: float | None = None) -> SimpleNamespace:
    """A sub-account as the plan sees it: its name, and its last detail (a normal bar of 1.5,
    ``detail_age`` seconds old) or none."""
    if detail_age is None:
        return SimpleNamespace(name=name, account=SimpleNamespace(good=None, last_success=None))
    detail = SimpleNamespace(bars=SimpleNamespace(normal_bar=1.5))
    return SimpleNamespace(name=name, account=SimpleNamespace(good=detail,
                                                              last_success=WALL - detail_age))


def summary(started: float, levels: dict[str, float]) -> Result:
    totals = {name: SimpleNamespace(margin_level=level) for name, level in levels.items()}
    return Result(totals, None, started, 0.1)


def rotation_of(rotation: DetailRotation) -> float:
    families = list(rotation.detail_families([]))
    return families[0].samples[0].value


def names(chosen) -> list[str]:
    return [account.name for account in chosen]


def test_at_risk_lowest_first_the_missing_before_all_inside_the_minute(caplog):
    """100 a minute, 30 s: 90 left after the summary, 9 details, all for those at risk (the
    one the summary leaves out first, then the lowest levels); none for the new ones, and a
    rotation of +Inf. 30 s later the minute is spent: none. At 61 s the first fetch's weight
    has left the minute: 8."""
    mono = StepClock(0.0, step=0.0)
    rotation = DetailRotation("m", detail_max_age=300.0, budget=lambda interval: 100.0,
                              monotonic=mono, wall=lambda: WALL)
    risky = {f"r{i}": 1.49 - 0.01 * i for i in range(10)}  # listed highest first
    new = {f"n{i}": 3.0 for i in range(3)}
    accounts = [sub(name, 10.0) for name in risky] + [sub(n) for n in new] + [sub("gone", 10.0)]
    first = summary(0.0, {**risky, **new})
    assert names(rotation.plan(first, accounts)) == ["gone", *(f"r{i}" for i in range(9, 1, -1))]
    assert rotation.plan(first, accounts) == []  # planned already (another scrape's)
    assert rotation_of(rotation) == float("inf")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "sub-accounts of m: a weight budget of 100 a minute cannot give each of 14 "
        "sub-accounts a detail every 300 s at a 30 s scrape interval (9 details a fetch, 9 at "
        "risk): the rotation is stretched to inf s"]
    mono.now = 30.0
    assert rotation.plan(summary(30.0, {**risky, **new}), accounts) == []
    mono.now = 61.0
    assert len(rotation.plan(summary(61.0, {**risky, **new}), accounts)) == 8


def test_a_fall_is_more_than_the_fraction_of_the_last_level():
    """From 5.0: 4.4 (12 %) is at risk, 4.5 (exactly 10 %) and 4.8 are not; a level that was 0
    and is 2.0 now is no fall (and no division by zero)."""
    mono = StepClock(0.0, step=0.0)
    rotation = DetailRotation("m", detail_max_age=3600.0, monotonic=mono, wall=lambda: WALL)
    accounts = [sub("a", 20.0), sub("b", 20.0), sub("c", 20.0), sub("d", 50.0)]
    rotation.plan(summary(0.0, {"a": 5.0, "b": 5.0, "c": 0.0, "d": 5.0}), accounts)
    mono.now = 30.0
    chosen = rotation.plan(summary(30.0, {"a": 4.5, "b": 4.4, "c": 2.0, "d": 4.8}), accounts)
    assert names(chosen) == ["b", "d"]  # b at risk; then one in rotation, the oldest


def test_details_past_their_age_are_all_fetched_at_once():
    """Ten details 400 s old, 300 s allowed: all ten now, not one at the rotation's pace."""
    rotation = DetailRotation("m", detail_max_age=300.0, monotonic=StepClock(0.0, step=0.0),
                              wall=lambda: WALL)
    accounts = [sub(f"s{i}", 400.0) for i in range(10)]
    levels = {f"s{i}": 3.0 for i in range(10)}
    fetched = summary(0.0, levels)
    assert len(rotation.plan(fetched, accounts)) == 10
    assert rotation.plan(fetched, accounts) == []  # planned already (another scrape's)


def test_one_detail_a_fetch_rotates_in_as_many_fetches_as_sub_accounts():
    """40 a minute at 30 s: 20 a fetch, 10 of them the summary: one detail; five sub-accounts
    take five fetches, 150 s."""
    rotation = DetailRotation("m", detail_max_age=300.0, budget=lambda interval: 40.0,
                              monotonic=StepClock(0.0, step=0.0), wall=lambda: WALL)
    accounts = [sub(f"s{i}", 0.0) for i in range(5)]
    assert len(rotation.plan(summary(0.0, {f"s{i}": 3.0 for i in range(5)}), accounts)) == 1
    assert rotation_of(rotation) == 150.0


def test_every_detail_every_fetch_warns_of_nothing(caplog):
    """``detail_max_age`` 0: every detail on every fetch, which the budget allows: no warning."""
    rotation = DetailRotation("m", detail_max_age=0.0, monotonic=StepClock(0.0, step=0.0),
                              wall=lambda: WALL)
    accounts = [sub(f"s{i}", 30.0) for i in range(3)]
    assert len(rotation.plan(summary(0.0, {f"s{i}": 3.0 for i in range(3)}), accounts)) == 3
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_detail_that_never_comes_waits_its_turn_and_starves_no_other():
    """40 a minute at 30 s: one detail a fetch. One sub-account's detail fails every time
    (it never parses): it was asked for at every fetch ahead of the rotation, and the three
    others' details were never fetched again, with no warning. Now it is asked for first,
    then by when it was last asked, among the oldest details."""
    now = [0.0]
    rotation = DetailRotation("m", detail_max_age=300.0, budget=lambda interval: 40.0,
                              monotonic=lambda: now[0], wall=lambda: WALL + now[0])
    broken = sub("broken")  # its detail never comes
    others = [sub(f"s{i}", 200.0 + 10 * i) for i in range(3)]
    levels = {account.name: 3.0 for account in [broken, *others]}
    fetched = []
    for i in range(20):  # 10 minutes of scrapes
        now[0] = 30.0 * i
        chosen = rotation.plan(summary(now[0], levels), [broken, *others])
        for account in chosen:
            if account is not broken:  # the others' details come
                account.account.last_success = WALL + now[0]
        fetched += names(chosen)
    assert fetched == ["broken", "s2", "s1", "s0"] * 5  # each in its turn, every 120 s
