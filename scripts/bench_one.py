"""The cases of one account: scrape cost by size (against a bare signed fetch and
``json.loads``), one cross account beside the naive peer, and the steps of one answer in process.
Run by bench.py (``--targets`` and the full run)."""

from __future__ import annotations

import json
import time

import requests
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
