"""Reliability soak: a burst of concurrent scrapes, then 10,000 scrapes with faults switching.

    python scripts/soak.py              # 10,000 scrapes (about a minute)
    python scripts/soak.py --scrapes 2000

Prints figures; exits 1 if a scrape failed at the HTTP level, if the burst made more than one
upstream call, or if a healthy block did not start with ``up 1``. The exporter is a child
process (cache off, request timeout 1 s); the simulated Binance runs here and injects faults.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from benchlib import Exporter, concurrent_scrapes, simulator, table

from binance_margin_exporter.demo.simulator import Fault

UP = re.compile(rb'binance_margin_up\{account="acct000"\} (\S+)')
LEVEL = b"binance_margin_level{"

FAULTS: list[tuple[str, Fault | None]] = [
    ("healthy", None),
    ("HTTP 500 (HTML)", Fault(status=500, body=b"<html>Internal Server Error</html>")),
    ("truncated JSON", Fault(transform=lambda body: body[: len(body) // 3])),
    ("wrong shape", Fault(transform=lambda body: b'{"userAssets": 7}')),
    ("healthy", None),
    ("-3003 no margin account", Fault.binance_error(-3003, "Margin account does not exist.")),
    ("HTTP 503 -1007", Fault.binance_error(-1007, "Timeout waiting for backend.", status=503)),
    ("429 Retry-After 1", Fault.rate_limited(1)),
    ("hang (one scrape)", Fault(delay=1.5, times=1)),
]


def soak(total: int, block: int = 100) -> tuple[list[list[object]], bool, str]:
    sim = simulator(300, 12)
    exporter = Exporter(sim.base_url, extra="request_timeout_seconds: 1")
    for _ in range(500):
        exporter.scrape()
    start = (exporter.rss_mib(), exporter.threads(), exporter.fds(), exporter.sockets())
    ok = True
    done = 0
    cycle = 0
    body = b""
    while done < total:
        name, fault = FAULTS[cycle % len(FAULTS)]
        sim.set_fault(fault)
        for i in range(min(block, total - done)):
            body = exporter.scrape()
            done += 1
            up = UP.search(body).group(1)
            if fault is None and i == 0 and up != b"1.0":
                print(f"not up after the previous fault cleared ({name}, scrape {done})")
                ok = False
            if up == b"0.0" and LEVEL in body:
                print(f"stale values served while down (scrape {done})")
                ok = False
        sim.clear_faults()
        if name.startswith("429"):
            time.sleep(1.1)  # let Retry-After pass before the next block
        cycle += 1
    end = (exporter.rss_mib(), exporter.threads(), exporter.fds(), exporter.sockets())
    exporter.stop()
    sim.stop()
    rows = [
        ["RSS MiB", f"{start[0]:.1f}", f"{end[0]:.1f}", f"{end[0] - start[0]:+.2f}"],
        ["threads", start[1], end[1], f"{end[1] - start[1]:+d}"],
        ["open fds", start[2], end[2], f"{end[2] - start[2]:+d}"],
        ["sockets", start[3], end[3], f"{end[3] - start[3]:+d}"],
    ]
    errors = b"\n".join(line for line in body.splitlines()
                        if line.startswith(b"binance_margin_scrape_errors_total"))
    return rows, ok, errors.decode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=10000)
    args = parser.parse_args()
    calls = concurrent_scrapes(64, latency=0.5)
    print("## Burst\n")
    print(table(["case", "upstream calls"],
                [["64 concurrent scrapes, upstream 0.5 s, cache 10 s", calls]]))
    rows, ok, errors = soak(args.scrapes)
    print(f"\n## Soak: {args.scrapes} scrapes, faults switching every 100 "
          f"({', '.join(n for n, _ in FAULTS)})\n")
    print(table(["measure", "after 500 warm-up", f"after {args.scrapes}", "change"], rows))
    print("\nerror counters at the end:\n" + errors)
    if calls != 1 or not ok:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
