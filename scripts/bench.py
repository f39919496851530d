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
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import requests
from benchlib import (
    API_KEY,
    ROOT,
    SECRET,
    Exporter,
    NaivePeer,
    SimulatorProcess,
    concurrent_scrapes,
    median_ms,
    profile_on,
    profile_table,
    profiled,
    run_threads,
    simulator,
    table,
)

from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.demo.cross import ACCOUNT_PATH


def bare_fetch(session: requests.Session, base_url: str, signer: HmacSigner) -> object:
    """What any exporter must do at least: a signed GET and json.loads of the answer."""
    query = f"recvWindow=5000&timestamp={int(time.time() * 1000)}"
    response = session.get(f"{base_url}{ACCOUNT_PATH}?{query}&signature={signer.sign(query)}",
                           headers={"X-MBX-APIKEY": API_KEY}, timeout=10)
    return json.loads(response.content)


def minor_faults(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[7])


def scrape_cost(rounds: int) -> list[list[object]]:
    rows = []
    signer = HmacSigner(SECRET)
    previous: tuple[int, float] | None = None
    for n_assets in (10, 100, 1000, 5000):
        active = max(1, n_assets // 4)
        sim = SimulatorProcess(n_assets, active)
        exporter = Exporter(sim.base_url)
        session = requests.Session()
        for _ in range(20):  # warm up: connections, caches, imports
            bare_fetch(session, sim.base_url, signer)
            exporter.scrape()
        bare, scrape = [], []
        faults = minor_faults(exporter.proc.pid)
        for _ in range(rounds):
            t = time.perf_counter()
            bare_fetch(session, sim.base_url, signer)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            body = exporter.scrape()
            scrape.append(time.perf_counter() - t)
        faults = (minor_faults(exporter.proc.pid) - faults) / rounds
        samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        extra = median_ms(scrape) - median_ms(bare)
        slope = "" if previous is None else \
            f"{(extra - previous[1]) * 1000 / (active - previous[0]):.1f}"
        previous = (active, extra)
        rows.append([n_assets, active, samples, f"{median_ms(bare):.2f}",
                     f"{median_ms(scrape):.2f}", f"{median_ms(scrape) / median_ms(bare):.2f}",
                     f"{extra:.2f}", slope, f"{faults:.1f}"])
        exporter.stop()
        sim.stop()
    return rows


ONE_LISTED, ONE_HELD, ONE_LATENCY = 1000, 250, 0.02
CROSS_ONLY = (f"usdt_values: false\ninterest_rates: false\nrisk_lists: false\nstreams: false\n"
              f"accounts:\n"
              f"  - {{name: main, api_key: {API_KEY}, api_secret: {SECRET}, isolated: false}}")


def spread(values: list[float], scale: float = 1000.0, digits: int = 0) -> str:
    """A median and its range: ``12 (10 to 15)``."""
    ordered = sorted(values)
    mid = ordered[len(ordered) // 2] if len(ordered) % 2 else \
        (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
    return (f"{mid * scale:.{digits}f} ({ordered[0] * scale:.{digits}f} to "
            f"{ordered[-1] * scale:.{digits}f})")


def one_account(rounds: int) -> list[list[object]]:
    """One cross margin account listing 1,000 assets (250 held), Binance 20 ms away, cache off,
    like for like: the exporter reading the cross account alone, the naive peer (fetch,
    ``float()``, ``generate_latest``) and a bare signed fetch and ``json.loads``, interleaved
    round by round; each round's ratios, then their medians and ranges."""
    sim = SimulatorProcess(ONE_LISTED, ONE_HELD, latency=ONE_LATENCY)
    exporter = Exporter(sim.base_url, accounts=0, extra=CROSS_ONLY)
    naive = NaivePeer(sim.base_url, account=True)
    signer = HmacSigner(SECRET)
    session = requests.Session()
    for _ in range(10):  # warm up: connections, clock, margin bars
        exporter.scrape()
        naive.scrape()
        bare_fetch(session, sim.base_url, signer)
    walls: dict[str, list[float]] = {"exporter": [], "naive": [], "bare": []}
    cpus = {"exporter": exporter.cpu_seconds(), "naive": naive.cpu_seconds()}
    with profiled("one account, 1,000 assets", exporter.proc.pid):
        for _ in range(rounds):
            for name, target in (("exporter", exporter), ("naive", naive), ("bare", None)):
                t = time.perf_counter()
                if target is None:
                    bare_fetch(session, sim.base_url, signer)
                else:
                    target.scrape()
                walls[name].append(time.perf_counter() - t)
    # CPU in clock ticks (10 ms): the mean over the run, not each scrape's
    cpu_ms = {"exporter": (exporter.cpu_seconds() - cpus["exporter"]) * 1000 / rounds,
              "naive": (naive.cpu_seconds() - cpus["naive"]) * 1000 / rounds}
    naive_ratio = [e / n for e, n in zip(walls["exporter"], walls["naive"], strict=True)]
    bare_ratio = [e / b for e, b in zip(walls["exporter"], walls["bare"], strict=True)]
    rows = [["binance-margin-exporter", spread(walls["exporter"], digits=1),
             f"{cpu_ms['exporter']:.1f}", spread(naive_ratio, 1, 2), spread(bare_ratio, 1, 2),
             f"{exporter.rss_mib():.1f}"],
            ["naive peer", spread(walls["naive"], digits=1), f"{cpu_ms['naive']:.1f}", "", "",
             f"{naive.rss_mib():.1f}"],
            ["bare signed fetch + json.loads", spread(walls["bare"], digits=1), "", "", "", ""]]
    exporter.stop()
    naive.stop()
    sim.stop()
    return rows


def parse_and_render(rounds: int) -> list[list[object]]:
    """In process, one 1,000-asset answer (250 held): each step of a scrape that every answer
    pays, timed alone (CPU, median of ``rounds``); the old ways beside the new ones."""
    import statistics

    from prometheus_client import generate_latest

    from binance_margin_exporter.binance import cross, fields
    from binance_margin_exporter.demo.cross import SimulatedAccount
    from binance_margin_exporter.web.exposition import render

    body = SimulatedAccount(ONE_LISTED, ONE_HELD, drift=False).body()
    raw = json.loads(body)

    def strict(value: object, where: str, key: str = "") -> float:
        return fields._checked(value, where + key)  # every check, as before issue 28

    def cpu_ms(step: object) -> float:
        times = []
        for _ in range(rounds):
            t = time.process_time()
            step()  # type: ignore[operator]
            times.append(time.process_time() - t)
        return statistics.median(times) * 1000

    rows = [["json.loads of the answer", f"{len(body) / 1024:.0f} KiB",
             f"{cpu_ms(lambda: json.loads(body)):.2f}"]]
    try:
        import orjson  # not a dependency: measured to decide
        rows.append(["orjson.loads of the answer", "", f"{cpu_ms(lambda: orjson.loads(body)):.2f}"])
    except ImportError:
        pass
    quick = fields.to_number
    fields.to_number = strict  # type: ignore[assignment]
    try:
        rows.append(["parse, every check on every field (before)", "",
                     f"{cpu_ms(lambda: cross.parse_account(raw)):.2f}"])
    finally:
        fields.to_number = quick  # type: ignore[assignment]
    rows.append(["parse, checks only where float() is not enough (now)", "",
                 f"{cpu_ms(lambda: cross.parse_account(raw)):.2f}"])
    from prometheus_client.parser import text_string_to_metric_families

    account = cross.parse_account(raw)
    text = render(_account_families(account)).decode()
    plain = list(text_string_to_metric_families(text))  # prometheus_client's own samples
    samples = sum(len(f.samples) for f in plain)
    rows.append(["text of the families: prometheus_client's generate_latest",
                 f"{samples} samples", f"{cpu_ms(lambda: generate_latest(_Registry(plain))):.2f}"])
    rows.append(["text of the families: this exporter's encoder", "",
                 f"{cpu_ms(lambda: render(plain)):.2f}"])
    rows.append(["families and text of a new answer (lines made)", "",
                 f"{cpu_ms(lambda: render(_account_families(account))):.2f}"])
    entry = _entry(account)
    rows.append(["families and text of the same answer again (lines kept)", "",
                 f"{cpu_ms(lambda: render(_account_families(account, entry))):.2f}"])
    return rows


class _Registry:
    def __init__(self, families: list[object]) -> None:
        self.families = families

    def collect(self) -> list[object]:
        return self.families


def _entry(account: object) -> object:
    """A cross account whose answer is ``account``."""
    from concurrent.futures import ThreadPoolExecutor

    from binance_margin_exporter.collectors.cache import Cached
    from binance_margin_exporter.collectors.cross import CrossAccount

    class Client:
        timeout = 5.0

        def auth_backoff_until(self) -> float:
            return 0.0

    return CrossAccount("main", Client(), Cached(  # type: ignore[arg-type]
        "a", lambda d: account, ThreadPoolExecutor(1), ttl=0.0), None)


def _account_families(account: object, entry: object = None) -> object:
    """The cross account's families of one answer, as a scrape builds them (no prices);
    ``entry``: the account's, with what it kept from its last scrape (None: a new one)."""
    from binance_margin_exporter.collectors.cache import Result
    from binance_margin_exporter.collectors.cross import cross_families
    from binance_margin_exporter.collectors.scrape import Scrape

    return cross_families([entry or _entry(account)],  # type: ignore[list-item]
                          [Result(account, None, 0.0, 0.01)], Scrape(0.0), _SHOWN)


def _shown() -> object:
    from binance_margin_exporter.collectors.cross import AssetFilter

    return AssetFilter()


_SHOWN = _shown()


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


def _until(predicate, timeout: float = 10.0) -> float:
    """Seconds until ``predicate()`` holds (polled every 0.2 ms)."""
    begun = time.perf_counter()
    while not predicate():
        if time.perf_counter() - begun > timeout:
            raise RuntimeError("timed out")
        time.sleep(0.0002)
    return time.perf_counter() - begun


def _reconnects(sim, runs: int) -> list[float]:
    """Drops of a connection that had been stable (the back-off starts over after 60 s up;
    here after 0 s, so that each run is a first drop): the real stream thread, in process."""
    import copy
    import dataclasses
    import tempfile

    from binance_margin_exporter.collectors.streams import StreamProduct
    from binance_margin_exporter.products import PRODUCTS
    from binance_margin_exporter.wiring import build_exporter, load, warm_up

    products = []
    for product in PRODUCTS:
        if isinstance(product, StreamProduct):
            product = copy.copy(product)
            product.timing = dataclasses.replace(product.timing, stable=0.0)
        products.append(product)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yml"
        path.write_text(f"base_url: {sim.base_url}\nmargin_stream_url: {sim.streams.url}\n"
                        f"accounts: [{{name: a, api_key: {API_KEY}, api_secret: {SECRET}}}]\n")
        built = build_exporter(load(str(path), {}, products=products), products=products)
    try:
        warm_up(built)
        sim.streams.wait_connected("margin_risk", timeout=20)
        times = []
        for _ in range(runs):
            time.sleep(0.1)
            sim.streams.drop("margin_risk")
            _until(lambda: not sim.streams.connections("margin_risk"))
            times.append(_until(lambda: sim.streams.connections("margin_risk")))
        return times
    finally:
        built.exporter.close()


def stream_latency(runs: int) -> list[list[object]]:
    """The risk stream, real parts: the simulator's WebSocket server pushes MARGIN_CALL to the
    exporter (a child process); times from the push to (a) the counter on /metrics (scraped
    back to back), (b) the simulator receiving the account fetch the event starts (no scrape,
    cache 60 s), and (c) from a dropped connection to the next one (back-off: 1 s with jitter,
    then a POST of the key and the WebSocket handshake).
    """
    sim = simulator()
    exporter = Exporter(sim.base_url, cache_ttl=60.0, extra=(
        f"margin_stream_url: {sim.streams.url}\nusdt_values: false\ninterest_rates: false\n"
        f"risk_lists: false"))
    needle = b'event="margin_level_status_change",status="MARGIN_CALL"} '
    event = {"e": "MARGIN_LEVEL_STATUS_CHANGE", "l": "1.25", "s": "MARGIN_CALL"}

    def count() -> float:
        body = exporter.scrape()
        return float(body.split(needle, 1)[1].split(b"\n", 1)[0])

    to_metrics, to_fetch, reconnect = [], [], []
    try:
        sim.streams.wait_connected("margin_risk", timeout=20)
        for _ in range(runs):
            before = count()
            time.sleep(0.01)
            sim.streams.push(event, "margin_risk")
            to_metrics.append(_until(lambda before=before: count() > before))
        # An event refreshes the account at most once per 5 s (refresh_spacing; one within
        # it waits for its end): each run comes 5.1 s after the last event, and nothing
        # scrapes meanwhile (a scrape could start the fetch itself).
        time.sleep(5.1)  # phase A's trailing refresh came up to 5 s after its last event
        for _ in range(max(3, runs // 4)):
            time.sleep(5.1)
            fetches = sim.counts[ACCOUNT_PATH]
            sim.streams.push(event, "margin_risk")
            to_fetch.append(_until(lambda fetches=fetches: sim.counts[ACCOUNT_PATH] > fetches))
    finally:
        exporter.stop()
    try:
        reconnect = _reconnects(sim, max(5, runs // 3))
    finally:
        sim.stop()

    def row(what: str, values: list[float]) -> list[object]:
        return [what, len(values), f"{median_ms(values):.1f}",
                f"{min(values) * 1000:.1f} - {max(values) * 1000:.1f}"]

    return [row("event -> counter on /metrics", to_metrics),
            row("event -> account fetch at the simulator", to_fetch),
            row("dropped connection -> connected again", reconnect)]


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
        profile_on()
    if args.targets or args.profile:
        targets(args.quick)
        if args.profile:
            print("\n## Where the time goes (py-spy, every thread of the exporter)\n")
            print(profile_table())
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
