"""The cases of funds and sub-accounts: 200 configured accounts (``--compare``: other
checkouts side by side), one master with 200 sub-accounts beside the naive peer, every detail on
every scrape, and 2,000 sub-accounts in two tiers on a simulated clock (``--tiers``).
Run by bench.py."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from bench_memory import RELOADS, proc_rss_mib, reloaded_rss
from bench_one import spread
from benchlib import (
    API_KEY,
    SECRET,
    Exporter,
    NaivePeer,
    SimulatorProcess,
    median_ms,
    profiled,
)

from binance_margin_exporter.binance.signing import HmacSigner

FUND_ACCOUNTS, FUND_LISTED, FUND_HELD, FUND_LATENCY = 200, 40, 10, 0.05


def module_of(root: Path) -> str:
    """The exporter's package in a checkout (older ones called it ``exporter``)."""
    return "binance_margin_exporter" if (root / "binance_margin_exporter").is_dir() else "exporter"


def fund_scale(rounds: int, roots: list[Path]) -> list[list[object]]:
    """200 accounts x 40 listed assets (10 held), Binance 50 ms away per request, cache off:
    one scrape's wall time, the exporter's CPU per scrape and its RSS, for each checkout in
    ``roots``, interleaved round by round so that both see the same machine."""
    sim = SimulatorProcess(FUND_LISTED, FUND_HELD, latency=FUND_LATENCY)
    exporters = [Exporter(sim.base_url, accounts=FUND_ACCOUNTS, root=root,
                          module=module_of(root)) for root in roots]
    walls: list[list[float]] = [[] for _ in roots]
    cpus: list[list[float]] = [[] for _ in roots]
    ups = []
    for exporter in exporters:
        for _ in range(3):  # warm up: connections to Binance, clock sync, margin bars
            exporter.scrape()
    for _ in range(rounds):
        for i, exporter in enumerate(exporters):
            cpu = exporter.cpu_seconds()
            t = time.perf_counter()
            body = exporter.scrape()
            walls[i].append(time.perf_counter() - t)
            cpus[i].append(exporter.cpu_seconds() - cpu)
            if i == 0:
                ups.append(body.count(b"binance_margin_up{") - body.count(b"} 0.0\nbinance_"))
    rows = []
    for i, (root, exporter) in enumerate(zip(roots, exporters, strict=True)):
        ws, cs = sorted(walls[i]), sorted(cpus[i])
        rss = exporter.rss_mib()
        rows.append([root.name or str(root), f"{median_ms(ws):.0f}",
                     f"{ws[0] * 1000:.0f} to {ws[-1] * 1000:.0f}",
                     f"{median_ms(cs):.0f}", f"{cs[0] * 1000:.0f} to {cs[-1] * 1000:.0f}",
                     f"{rss:.1f}", f"{reloaded_rss(exporter, RELOADS):.1f}"])
        exporter.stop()
    sim.stop()
    return rows



def fund_sub_accounts(rounds: int, naive_rounds: int, *, detail_max_age: float | None = None,
                      ) -> tuple[list[list[object]], float]:
    """One master key with 200 sub-accounts of 40 listed assets (10 held), Binance 50 ms away
    per request, cache off: this exporter and the naive peer, side by side in one run.
    Returns the rows and the ratio of the medians (naive / this). ``detail_max_age``: the
    setting ``detail_max_age_seconds`` (None: its default)."""
    sim = SimulatorProcess(FUND_LISTED, FUND_HELD, latency=FUND_LATENCY,
                           sub_accounts=FUND_ACCOUNTS)
    setting = "" if detail_max_age is None else f"detail_max_age_seconds: {detail_max_age}\n"
    exporter = Exporter(sim.base_url, accounts=0, extra=(
        f"{setting}accounts:\n  - {{name: fund, api_key: {API_KEY}, api_secret: {SECRET}, "
        f"sub_accounts: all, master: false}}"))
    naive = NaivePeer(sim.base_url)
    for _ in range(3):  # warm up: discovery, connections, clock
        exporter.scrape()
    naive.scrape()
    runs: dict[str, tuple[list[float], list[float]]] = {"exporter": ([], []), "naive": ([], [])}
    ups = set()
    case = "fund, 200 sub-accounts" + ("" if detail_max_age is None else
                                       f", detail_max_age_seconds: {detail_max_age:g}")
    with profiled(case, exporter.proc.pid):
        _fund_rounds(rounds, naive_rounds, exporter, naive, runs, ups)
    rows = []
    for name, target in (("binance-margin-exporter", exporter), ("naive peer", naive)):
        walls, cpus = (sorted(v) for v in runs["exporter" if target is exporter else "naive"])
        rows.append([name, len(walls), f"{median_ms(walls):.0f}",
                     f"{walls[0] * 1000:.0f} to {walls[-1] * 1000:.0f}",
                     f"{median_ms(cpus):.0f}", f"{cpus[0] * 1000:.0f} to {cpus[-1] * 1000:.0f}",
                     f"{target.rss_mib():.1f}",
                     f"{min(ups)} of {FUND_ACCOUNTS}" if target is exporter else ""])
    ratio = median_ms(sorted(runs["naive"][0])) / median_ms(sorted(runs["exporter"][0]))
    exporter.stop()
    naive.stop()
    sim.stop()
    return rows, ratio


def _fund_rounds(rounds: int, naive_rounds: int, exporter: Exporter, naive: NaivePeer,
                 runs: dict[str, tuple[list[float], list[float]]], ups: set[int]) -> None:
    for i in range(rounds):
        for name, target in (("exporter", exporter), ("naive", naive)):
            if name == "naive" and i >= naive_rounds:
                continue
            cpu = target.cpu_seconds()
            t = time.perf_counter()
            body = target.scrape()
            runs[name][0].append(time.perf_counter() - t)
            runs[name][1].append(target.cpu_seconds() - cpu)
            if name == "exporter":
                ups.add(sum(1 for line in body.splitlines()
                            if line.startswith(b"binance_margin_up{") and line.endswith(b" 1.0")))


TIERS_SUBS = 2000
TIERS_INTERVAL = 30.0


class _TierRun:
    """One exporter (or shard) of the two-tier section, on a simulated clock: its group of
    sub-accounts, its requests by simulated minute, its CPU per scrape."""

    def __init__(self, base_url: str, clock: list[float], shard: object = None, *,
                 detail_max_age: float = 300.0) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from binance_margin_exporter.binance.limits import Upstream
        from binance_margin_exporter.binance.transport import BinanceClient
        from binance_margin_exporter.collectors.exporter import Exporter as Families
        from binance_margin_exporter.collectors.sub_accounts import (
            SubAccounts,
            SubAccountsCollector,
        )
        from binance_margin_exporter.config import Settings

        self.clock = clock
        self.weights: dict[int, float] = {}
        client = BinanceClient(Upstream(base_url, soft_limit=10**6), API_KEY,
                               HmacSigner(SECRET), pool_size=64)
        signed_get = client.signed_get
        costs = {"/sapi/v1/sub-account/list": 1.0}

        def counted(path: str, params: str = "", **kw: object) -> object:
            minute = int(self.clock[0] // 60)
            self.weights[minute] = self.weights.get(minute, 0.0) + costs.get(path, 10.0)
            return signed_get(path, params, **kw)  # type: ignore[arg-type]

        client.signed_get = counted  # type: ignore[method-assign]
        soft = Settings(()).ip_weight_soft_limit
        self.group = SubAccounts(
            "fund", client, ThreadPoolExecutor(64), ttl=0.0, detail_max_age=detail_max_age,
            budget=lambda interval: float(soft),  # the whole IP: nothing else on it
            serves=None if shard is None else shard.serves,  # type: ignore[attr-defined]
            monotonic=lambda: self.clock[0], wall=lambda: 1_700_000_000.0 + self.clock[0])
        self.families = Families([SubAccountsCollector([self.group])], version="bench")
        try:  # after each scrape, as the command line's /metrics does
            from binance_margin_exporter.memory import Settle
            self.settle: Callable[[object], None] = Settle()
        except ImportError:  # a checkout from before it
            self.settle = lambda configuration: None
        self.cpu: list[float] = []
        self.ages: list[float] = []
        self.levels: list[int] = []

    def scrape(self, measure: bool) -> None:
        try:
            from binance_margin_exporter.web.exposition import render  # what /metrics sends
        except ImportError:  # a checkout from before it: prometheus_client's encoder
            from prometheus_client import generate_latest

            def render(families: object) -> bytes:
                return generate_latest(type("Once", (), {"collect": lambda _: families})())

        cpu = time.process_time()
        families = getattr(self.families, "families", self.families.collect)  # as /metrics
        body = render(families(None))
        self.settle(self.families)
        spent = time.process_time() - cpu
        if not measure:
            return
        self.cpu.append(spent)
        now = 1_700_000_000.0 + self.clock[0]
        stamps = [float(line.rsplit(b" ", 1)[1]) for line in body.splitlines()
                  if line.startswith(b"binance_margin_detail_timestamp_seconds{")]
        self.ages.append(now - min(stamps))
        self.levels.append(sum(1 for line in body.splitlines()
                               if line.startswith(b"binance_margin_level{")))


def funds_past_one_ip(scrapes: int, with_shards: bool = True) -> list[list[object]]:
    """A master with 2,000 sub-accounts on one IP, Binance 50 ms away, scraped every 30 s on a
    simulated clock (the scrapes follow each other at once); then 3 shards side by side."""
    from binance_margin_exporter.config import Shard

    sim = SimulatorProcess(8, 3, latency=0.05, sub_accounts=TIERS_SUBS)
    rows: list[list[object]] = []
    try:
        cases = [("one exporter", [None]), ("3 shards", [Shard(i, 3) for i in range(3)])]
        for label, shards in cases[:2 if with_shards else 1]:
            clock = [0.0]
            runs = [_TierRun(sim.base_url, clock, shard) for shard in shards]
            warm = int(300 / TIERS_INTERVAL) + 1  # the first rotation: details arriving
            for _n in range(warm):
                for run in runs:
                    run.scrape(measure=False)
                clock[0] += TIERS_INTERVAL
            with profiled(f"2,000 sub-accounts ({label})", os.getpid()):
                for _n in range(scrapes):
                    for run in runs:
                        run.scrape(measure=True)
                    clock[0] += TIERS_INTERVAL
            for i, run in enumerate(runs):
                full = sorted(run.weights.values())[:-1] or sorted(run.weights.values())
                cpu = sorted(run.cpu)
                ages = sorted(run.ages)
                rows.append([label if len(runs) == 1 else f"{label}: shard {i}",
                             f"{min(run.levels)} to {max(run.levels)}",
                             f"{median_ms(full) / 1000:.0f} ({full[0]:.0f} to {full[-1]:.0f})",
                             f"{ages[len(ages) // 2]:.0f} ({ages[0]:.0f} to {ages[-1]:.0f})",
                             f"{median_ms(cpu):.0f} ({cpu[0] * 1000:.0f} to "
                             f"{cpu[-1] * 1000:.0f})",
                             f"{proc_rss_mib():.0f}"])
    finally:
        sim.stop()
    return rows


def fund_every_detail(scrapes: int) -> list[list[object]]:
    """200 sub-accounts of 40 listed assets (10 held), Binance 50 ms away,
    ``detail_max_age_seconds: 0``, scraped every 30 s on a simulated clock (so that the weight
    budget lets every detail be fetched on every scrape; back to back, it would not): the CPU
    of a scrape that fetches and shows every detail, in process."""
    sim = SimulatorProcess(FUND_LISTED, FUND_HELD, latency=FUND_LATENCY,
                           sub_accounts=FUND_ACCOUNTS)
    try:
        clock = [0.0]
        run = _TierRun(sim.base_url, clock, detail_max_age=0.0)
        for _ in range(3):  # warm up: discovery, connections, clock
            run.scrape(measure=False)
            clock[0] += TIERS_INTERVAL
        before = sum(run.weights.values())
        with profiled("fund, every detail every scrape", os.getpid()):
            for _ in range(scrapes):
                run.scrape(measure=True)
                clock[0] += TIERS_INTERVAL
        weight = (sum(run.weights.values()) - before) / scrapes
        return [["one exporter", f"{min(run.levels)} to {max(run.levels)}", f"{weight:.0f}",
                 spread(run.cpu)]]
    finally:
        sim.stop()
