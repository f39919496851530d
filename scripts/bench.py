"""Performance of the exporter, measured side by side; prints tables (no pass/fail).

    python scripts/bench.py            # everything (about 3 minutes on 2 cores)
    python scripts/bench.py --quick    # fewer rounds

    python scripts/bench.py --streams  # only the risk streams' latencies
    python scripts/bench.py --targets  # only the figures issue 28 sets targets for
    python scripts/bench.py --profile  # where the time goes, per case (needs py-spy)

Sections: the risk streams' latencies (event to /metrics, to a fresh account fetch, a
reconnection); scrape cost against a bare signed fetch + JSON parse of the same account, at 10 to
5000 listed assets (25 % non-zero); shared fetches; many accounts; memory; start-up time.
The exporter runs as a child process (cache off unless said otherwise); the simulated Binance
runs in a process of its own for the scrape cost, in this process where requests are counted.
Each figure is a median of interleaved runs.
The cases live in modules by job: bench_one.py (one account: scrape cost, the naive peer, one
answer's steps), bench_funds.py (funds and sub-accounts, two tiers), bench_memory.py (memory,
start-up, reloads, many accounts, shared fetches), bench_streams.py (the risk streams) and
bench_targets.py (``--targets``, ``--profile``); this module keeps the command line, and its
names stay importable from here (``bench.funds_past_one_ip``, ``bench.reloaded_rss``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_funds import (
    FUND_ACCOUNTS,
    FUND_HELD,
    FUND_LATENCY,
    FUND_LISTED,
    TIERS_INTERVAL,
    TIERS_SUBS,
    _TierRun,
    fund_every_detail,
    fund_scale,
    fund_sub_accounts,
    funds_past_one_ip,
    module_of,
)
from bench_memory import (
    RELOADS,
    many_accounts,
    memory,
    proc_rss_mib,
    reloaded_rss,
    startup,
    two_prometheus,
)
from bench_one import (
    CROSS_ONLY,
    ONE_HELD,
    ONE_LATENCY,
    ONE_LISTED,
    bare_fetch,
    minor_faults,
    one_account,
    parse_and_render,
    scrape_cost,
    spread,
)
from bench_streams import stream_latency
from bench_targets import profile, targets
from benchlib import ROOT, concurrent_scrapes, table

# What scripts and docs/performance.md import from ``bench`` (``bench.funds_past_one_ip``,
# ``bench.reloaded_rss``, its ``_TierRun``), from before the cases had modules of their own.
__all__ = [
    "CROSS_ONLY", "FUND_ACCOUNTS", "FUND_HELD", "FUND_LATENCY", "FUND_LISTED", "ONE_HELD",
    "ONE_LATENCY", "ONE_LISTED", "RELOADS", "TIERS_INTERVAL", "TIERS_SUBS", "_TierRun",
    "bare_fetch", "fund_every_detail", "fund_scale", "fund_sub_accounts", "funds_past_one_ip",
    "main", "many_accounts", "memory", "minor_faults", "module_of", "one_account",
    "parse_and_render", "proc_rss_mib", "profile", "reloaded_rss", "scrape_cost", "spread",
    "startup", "stream_latency", "targets", "two_prometheus",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--fund", action="store_true", help="only the fund-scale section")
    parser.add_argument("--streams", action="store_true", help="only the risk streams")
    parser.add_argument("--tiers", action="store_true",
                        help="only the two-tier section (2,000 sub-accounts on one IP)")
    parser.add_argument("--compare", type=Path, action="append", default=[], metavar="DIR",
                        help="another checkout to measure side by side at fund scale")
    parser.add_argument("--targets", action="store_true",
                        help="only the figures issue 28 sets targets for")
    parser.add_argument("--profile", action="store_true",
                        help="the target cases under py-spy: where the time goes")
    args = parser.parse_args()
    rounds = 60 if args.quick else 200
    if args.profile:
        profile(args.quick)
        return
    if args.targets:
        targets(args.quick)
        return

    print("## Risk stream latency (exporter process, simulator WebSocket, 127.0.0.1)\n")
    print(table(["measure", "runs", "median ms", "range ms"],
                stream_latency(10 if args.quick else 30)))
    print()
    if args.streams:
        return

    print(f"## Funds past one IP: one master, {TIERS_SUBS} sub-accounts, Binance 50 ms away, "
          f"scraped every {TIERS_INTERVAL:.0f} s (simulated clock), soft limit 9600\n")
    print(table(["exporter", "levels a scrape", "weight a minute: median (range)",
                 "oldest detail s: median (range)", "CPU ms a scrape: median (range)",
                 "RSS MiB (bench process)"], funds_past_one_ip(10 if args.quick else 30)))
    print()
    if args.tiers:
        return

    rows, ratio = fund_sub_accounts(10 if args.quick else 30, 3 if args.quick else 6)
    print(f"## Fund scale: one master key, {FUND_ACCOUNTS} sub-accounts x {FUND_LISTED} listed "
          f"assets ({FUND_HELD} held), Binance {FUND_LATENCY * 1000:.0f} ms away, cache off\n")
    print(table(["exporter", "scrapes", "wall ms (median)", "range", "CPU ms per scrape",
                 "range", "RSS MiB", "sub-accounts up"], rows))
    print(f"\nthe naive peer takes {ratio:.1f} times as long per scrape\n")
    print(f"## Fund scale, configured accounts: {FUND_ACCOUNTS} accounts x {FUND_LISTED} listed "
          f"assets ({FUND_HELD} held), Binance {FUND_LATENCY * 1000:.0f} ms away, cache off\n")
    print(table(["build", "scrape wall ms (median)", "range", "exporter CPU ms per scrape",
                 "range", "RSS MiB", f"RSS MiB after {RELOADS} reloads"],
                fund_scale(10 if args.quick else 30, [ROOT, *args.compare])))
    if args.fund:
        return

    print("## Scrape cost (cache off): exporter scrape vs bare signed fetch + json.loads\n")
    print(table(["listed assets", "non-zero", "samples", "bare fetch ms", "scrape ms",
                 "ratio", "extra ms", "µs per added non-zero asset",
                 "page faults per scrape"], scrape_cost(rounds)))

    print("\n## Shared fetches\n")
    calls = concurrent_scrapes()
    fetches, scrapes = two_prometheus(8 if args.quick else 20)
    print(table(["case", "result"], [
        ["64 concurrent scrapes, upstream 0.3 s, cache 10 s", f"{calls} upstream call(s)"],
        ["2 scrapers every 15 s, cache 10 s (run 10x faster)",
         f"{fetches} upstream calls for {scrapes} scrapes"],
    ]))

    print("\n## Many accounts (upstream latency 0.4 s, cache off)\n")
    rows = []
    for count in (1, 8, 100):
        ms, rss = many_accounts(count, rounds=3 if args.quick else 5)
        rows.append([count, f"{ms:.0f}", f"{rss:.1f}"])
    print(table(["accounts", "scrape ms", "RSS MiB"], rows))

    print("\n## Memory and start-up\n")
    demo_rss, start, end, growth = memory(2000 if args.quick else 10000)
    n = 2000 if args.quick else 10000
    print(table(["measure", "value"], [
        ["RSS after start, demo, first scrape served", f"{demo_rss:.1f} MiB"],
        [f"RSS growth over {n} scrapes (after 500 warm-up)",
         f"{growth:+.2f} MiB ({start:.1f} -> {end:.1f})"],
        ["launch to first /metrics served (demo)", f"{startup(3 if args.quick else 5):.0f} ms"],
    ]))


if __name__ == "__main__":
    main()
