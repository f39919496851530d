"""The figures issue 28 sets targets for (``--targets``), and the same cases under py-spy
(``--profile``). Run by bench.py."""

from __future__ import annotations

from bench_funds import (
    FUND_ACCOUNTS,
    FUND_LATENCY,
    TIERS_INTERVAL,
    TIERS_SUBS,
    fund_every_detail,
    fund_scale,
    fund_sub_accounts,
    funds_past_one_ip,
)
from bench_memory import RELOADS
from bench_one import ONE_HELD, ONE_LATENCY, ONE_LISTED, one_account, parse_and_render
from benchlib import ROOT, profile_on, profile_table, table


def targets(quick: bool) -> None:
    """The figures issue 28 sets targets for, each case side by side in one run."""
    rounds = 10 if quick else 30
    print(f"## One account: {ONE_LISTED} listed assets ({ONE_HELD} held), Binance "
          f"{ONE_LATENCY * 1000:.0f} ms away, cache off, the cross account alone\n")
    print(table(["", "wall ms: median (range)", "CPU ms a scrape (mean)",
                 "exporter / naive: median (range)", "exporter / bare: median (range)",
                 "RSS MiB"], one_account(rounds * 2)))
    print(f"\n## One answer of {ONE_LISTED} assets ({ONE_HELD} held), in process: CPU ms, "
          f"median of {rounds * 10}\n")
    try:
        print(table(["step", "size", "CPU ms"], parse_and_render(rounds * 10)))
    except (ImportError, AttributeError) as exc:  # a checkout from before these steps
        print(f"(not measured in this checkout: {exc})")
    for age in (None,):  # back to back, the weight budget keeps most details for later
        rows, ratio = fund_sub_accounts(rounds, 3 if quick else 5, detail_max_age=age)
        print(f"\n## Fund scale: {FUND_ACCOUNTS} sub-accounts, Binance "
              f"{FUND_LATENCY * 1000:.0f} ms away, cache off, detail_max_age_seconds: "
              f"{'default' if age is None else f'{age:g}'}\n")
        print(table(["exporter", "scrapes", "wall ms (median)", "range", "CPU ms per scrape",
                     "range", "RSS MiB", "sub-accounts up"], rows))
        print(f"\nthis exporter takes {1 / ratio:.3f} of the naive peer's time per scrape")
    print(f"\n## Fund scale, every detail on every scrape: {FUND_ACCOUNTS} sub-accounts, "
          f"detail_max_age_seconds: 0, every {TIERS_INTERVAL:.0f} s (simulated clock), in "
          f"process\n")
    print(table(["exporter", "levels a scrape", "weight a scrape",
                 "CPU ms a scrape: median (range)"], fund_every_detail(rounds)))
    print(f"\n## {FUND_ACCOUNTS} configured accounts, Binance {FUND_LATENCY * 1000:.0f} ms "
          f"away, cache off\n")
    print(table(["build", "scrape wall ms (median)", "range", "exporter CPU ms per scrape",
                 "range", "RSS MiB", f"RSS MiB after {RELOADS} reloads"],
                fund_scale(rounds, [ROOT])))
    print(f"\n## {TIERS_SUBS} sub-accounts, two tiers, every {TIERS_INTERVAL:.0f} s "
          f"(simulated clock)\n")
    print(table(["exporter", "levels a scrape", "weight a minute: median (range)",
                 "oldest detail s: median (range)", "CPU ms a scrape: median (range)",
                 "RSS MiB (bench process)"], funds_past_one_ip(rounds, with_shards=False)))


def profile(quick: bool) -> None:
    """The target cases under py-spy, then where the time went."""
    profile_on()
    targets(quick)
    print("\n## Where the time goes (py-spy, every thread of the exporter)\n")
    print(profile_table())
