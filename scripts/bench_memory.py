"""Memory, start-up and reloads; many accounts and shared fetches (the full run's last
sections). Run by bench.py; ``reloaded_rss`` also by the fund-scale case."""

from __future__ import annotations

import time

from benchlib import Exporter, median_ms, run_threads, simulator

from binance_margin_exporter.demo.cross import ACCOUNT_PATH

RELOADS = 10


def reloaded_rss(exporter: Exporter, reloads: int) -> float:
    """RSS after ``reloads`` SIGHUPs (the same configuration), each followed by a scrape."""
    import signal

    for _ in range(reloads):
        done = sum("configuration reloaded" in line for line in exporter.lines)
        exporter.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while sum("configuration reloaded" in line for line in exporter.lines) <= done:
            if time.monotonic() > deadline:
                raise RuntimeError("no reload logged")
            time.sleep(0.01)
        exporter.scrape()
    return exporter.rss_mib()


def proc_rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def two_prometheus(seconds: float, ttl: float = 1.0, interval: float = 1.5) -> tuple[int, int]:
    """Two scrapers every 1.5 s, cache 1 s: the default 15 s / 10 s, ten times faster."""
    sim = simulator(300, 12)
    exporter = Exporter(sim.base_url, cache_ttl=ttl)
    before = sim.counts[ACCOUNT_PATH]
    stop = time.monotonic() + seconds
    scrapes = [0]

    def prometheus(phase: float) -> None:
        time.sleep(phase)
        while time.monotonic() < stop:
            started = time.monotonic()
            exporter.scrape()
            scrapes[0] += 1
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    run_threads(prometheus, [(0.0,), (0.6,)])
    calls = sim.counts[ACCOUNT_PATH] - before
    exporter.stop()
    sim.stop()
    return calls, scrapes[0]


def many_accounts(count: int, latency: float = 0.4, rounds: int = 5) -> tuple[float, float]:
    sim = simulator(300, 12, latency=latency)
    exporter = Exporter(sim.base_url, accounts=count)
    exporter.scrape()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        body = exporter.scrape()
        times.append(time.perf_counter() - t)
        assert body.count(b"binance_margin_up{") == count
        assert b"} 0.0\n" not in body.split(b"binance_margin_level")[0]
    rss = exporter.rss_mib()
    exporter.stop()
    sim.stop()
    return median_ms(times), rss


def memory(scrapes: int) -> tuple[float, float, float, float]:
    demo = Exporter(None, demo=True, cache_ttl=10)
    demo.scrape()
    demo_rss = demo.rss_mib()
    demo.stop()
    sim = simulator(300, 12)
    exporter = Exporter(sim.base_url)
    for _ in range(500):
        exporter.scrape()
    start = exporter.rss_mib()
    for _ in range(scrapes):
        exporter.scrape()
    end = exporter.rss_mib()
    exporter.stop()
    sim.stop()
    return demo_rss, start, end, end - start


def startup(rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        exporter = Exporter(None, demo=True)
        while True:
            try:
                exporter.scrape()
                break
            except OSError:
                time.sleep(0.005)
        times.append(time.perf_counter() - t)
        exporter.stop()
    return median_ms(times)
