"""--config.plan against what Binance counts: every product on Binance's four hosts (a
simulator each, over real HTTP), the weight each host's simulator counted compared with the
plan's figure for that host.

The plan states averages a minute. A call every 5 minutes or every hour (the bars, the interest
rates, the risk lists, the roster, the clock, the listen keys) is due at once when the exporter
starts, and again only minutes to an hour later: the start-up is let pass first (each of those
calls seen by its simulator), then the scrapes are counted. The scrape interval is 2 s (and the
cache 0.5 s, so that every scrape fetches), and the plan is made at the same 2 s: 8 scrapes
stand for 8 at any interval, 2 minutes at the usual 15 s.
"""

from __future__ import annotations

import re
import time

import pytest

from binance_margin_exporter.binance import cross, interest, loans, risk_lists, sub_accounts
from binance_margin_exporter.binance.endpoints import TIME
from binance_margin_exporter.binance.streams import MARGIN_KEY, PAPI_KEY
from binance_margin_exporter.plan import plan, weights_by_host
from binance_margin_exporter.products import PRODUCTS
from binance_margin_exporter.wiring import account_config, build_exporter, warm_up
from tests.support.exporters import sample_values
from tests.support.keys import API_KEY, SECRET

INTERVAL = 2.0
SCRAPES = 8
SUBS = ("alice@fund.example", "bob@fund.example")  # margin on, not frozen: both are read
TOLERANCE = 0.20


def every_product(hosts):
    accounts = (
        # cross with isolated pairs, a master of two sub-accounts, its risk stream; the
        # prices, Binance's risk lists and the interest rates go through it
        account_config("main", API_KEY, SECRET, sub_accounts=SUBS, loans=("flexible", "vip")),
        # Portfolio Margin: its positions on both markets and its stream
        account_config("pm", API_KEY, SECRET, type="portfolio_margin"),
        account_config("fut", API_KEY, SECRET, type="futures", markets=("um", "cm")),
        account_config("pro", API_KEY, SECRET, type="portfolio_margin_pro",
                       markets=("um", "cm")),
    )
    return hosts.settings(*accounts, cache_ttl_seconds=0.5, request_timeout_seconds=5.0,
                          margin_stream_url=hosts.api.streams.url,
                          papi_stream_url=f"{hosts.papi.streams.url}/pm")


def spent(hosts) -> dict[str, int]:
    """What each host's simulator counted (every budget, every client address)."""
    return {key: sum(sim.spent.values()) for key, sim in hosts.by_setting.items()}


def started(hosts) -> bool:
    """Every call that is due at start and rare afterwards has reached its host."""
    api, papi = hosts.api.counts, hosts.papi.counts
    return all((api[TIME.path], api[cross.TRADE_COEFF.path],
                api[interest.NEXT_HOURLY_RATE.path],
                api[risk_lists.DELIST_SCHEDULE.path], api[risk_lists.RESTRICTED_ASSET.path],
                api[sub_accounts.SUB_ACCOUNT_STATUS.path],
                api[sub_accounts.SUB_MARGIN_ACCOUNT.path] >= len(SUBS),
                api[MARGIN_KEY["POST"].route], papi[PAPI_KEY["POST"].route],
                api[loans.FLEXIBLE_ORDERS.path], api[loans.FLEXIBLE_COLLATERAL.path],
                api[loans.VIP_ORDERS.path]))


RARE = (TIME.path, cross.TRADE_COEFF.path, interest.NEXT_HOURLY_RATE.path,
        risk_lists.DELIST_SCHEDULE.path, risk_lists.RESTRICTED_ASSET.path,
        sub_accounts.SUB_ACCOUNT_STATUS.path, MARGIN_KEY["POST"].route, MARGIN_KEY["PUT"].route,
        PAPI_KEY["POST"].route, PAPI_KEY["PUT"].route, loans.FLEXIBLE_ORDERS.path,
        loans.FLEXIBLE_COLLATERAL.path, loans.VIP_ORDERS.path)


def rare(hosts) -> dict[str, int]:
    """How often each call the plan spreads over minutes or hours was made (each host
    answers only its own)."""
    return {call: sum(sim.counts[call] for sim in hosts.by_setting.values()) for call in RARE}


def plan_figures(text: str) -> dict[str, float]:
    """The plan's total a minute of each host, as it prints them."""
    figures = {}
    for host, total in re.findall(r"egress default, host (\S+):\n(?:  .*\n)*?  total ([0-9.]+) ",
                                  text):
        figures[host] = float(total)
    return figures


def test_the_plan_is_within_20_percent_of_what_each_host_counts(hosts):
    settings = every_product(hosts)
    text, fits = plan(settings, PRODUCTS, INTERVAL)
    assert fits
    printed = plan_figures(text)
    urls = {key: sim.base_url for key, sim in hosts.by_setting.items()}
    # every host has its figure in the plan's text, and it is the plan's own sum
    assert set(printed) == set(urls.values())
    declared = weights_by_host(settings, PRODUCTS, INTERVAL)
    for url, figure in printed.items():
        assert figure == pytest.approx(declared[("default", url)][0], abs=0.05)

    built = build_exporter(settings)
    try:
        warm_up(built)
        deadline = time.monotonic() + 30
        while True:  # the start-up: every rare call made once
            list(built.exporter.collect(5.0))
            if started(hosts) or time.monotonic() > deadline:
                break
        assert started(hosts), {k: dict(s.counts) for k, s in hosts.by_setting.items()}
        begun = time.monotonic()
        list(built.exporter.collect(5.0))  # the sub-accounts' rotation at its pace
        before, rare_before = spent(hosts), rare(hosts)
        for _ in range(SCRAPES):
            # a scrape every INTERVAL (a slow one is followed at once): the pace of
            # Prometheus, not a wait for a result
            time.sleep(max(0.0, begun + INTERVAL - time.monotonic()))
            begun = time.monotonic()
            values = sample_values_of(built)
        after, rare_after = spent(hosts), rare(hosts)
    finally:
        built.exporter.close()
    for name in ("main", "pm", "fut", "pro", *SUBS):
        assert values[("binance_margin_up", (("account", name),))] == 1.0, name
    # the rare calls were made at start, none while counting (the plan spreads them over
    # their periods: 5 minutes to a day)
    assert rare_after == rare_before
    minutes = SCRAPES * INTERVAL / 60.0  # what the scrapes stand for
    rows = []
    for key, url in urls.items():
        sim = hosts.by_setting[key]
        counted = (after[key] - before[key]) / minutes
        # what the start-up paid for the rare calls, as the simulator weighs them
        paid = sum(sim.counts[call] * sim.weight_of(call) for call in RARE)
        rows.append((key, printed[url], counted, declared[("default", url)][1], paid))
    report = "\n".join(f"{key}: plan {plan_:.1f} a minute, counted {counted:.1f} "
                       f"({(plan_ - counted) / counted:+.1%}); at start plan {start:.0f}, "
                       f"paid {paid:.0f}" for key, plan_, counted, start, paid in rows)
    print(report)
    for _key, plan_, counted, start, paid in rows:
        assert abs(plan_ - counted) <= TOLERANCE * counted, report
        assert start == pytest.approx(paid), report

def sample_values_of(built) -> dict:
    from prometheus_client.exposition import generate_latest

    class Once:
        def collect(self):
            return built.exporter.collect(5.0)

    return sample_values(generate_latest(Once()).decode())
