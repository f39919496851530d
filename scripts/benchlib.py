"""Shared by bench.py and soak.py: the simulator in this process, the exporter as a child."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from binance_margin_exporter.demo.cross import SimulatedAccount  # noqa: E402
from binance_margin_exporter.demo.simulator import Simulator  # noqa: E402
from binance_margin_exporter.products import SIMULATED  # noqa: E402

API_KEY = "bench-api-key"
SECRET = "bench-secret-0123456789abcdef"


def simulator(n_assets: int = 300, n_active: int = 12, *, latency: float = 0.0,
              drift: bool = False) -> Simulator:
    sim = Simulator(SIMULATED, account=SimulatedAccount(n_assets, n_active, drift=drift),
                    enforce_weight_limit=False)
    sim.add_hmac_key(API_KEY, SECRET)
    sim.latency = latency
    return sim.start()


class SimulatorProcess:
    """The simulator in a process of its own, like the remote Binance it stands for."""

    def __init__(self, n_assets: int, n_active: int, latency: float = 0.0,
                 sub_accounts: int = 0) -> None:
        env = dict(os.environ, SIM_API_KEY=API_KEY, SIM_API_SECRET=SECRET,
                   PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "binance_margin_exporter.demo", "--assets",
             str(n_assets), "--active", str(n_active), "--static", "--no-weight-limit",
             "--latency", str(latency), "--sub-accounts", str(sub_accounts)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Exporter:
    """The exporter with a generated config; its port is read from its start-up line."""

    def __init__(self, base_url: str | None, *, accounts: int = 1, cache_ttl: float = 0.0,
                 demo: bool = False, extra: str = "", root: Path = ROOT,
                 module: str = "binance_margin_exporter") -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-")
        config = Path(self.dir) / "config.yml"
        lines = [f"cache_ttl_seconds: {cache_ttl}", "ip_weight_soft_limit: 12000", extra]
        if base_url:
            lines.append(f"base_url: {base_url}")
        if not demo and accounts:
            lines.append("accounts:")
            lines += [f"  - {{name: acct{i:03d}, api_key: {API_KEY}, api_secret: {SECRET}}}"
                      for i in range(accounts)]
        config.write_text("\n".join(lines) + "\n")
        args = [sys.executable, "-m", module, "--web.listen-address", "127.0.0.1:0",
                "--config", str(config), "--log.level", os.environ.get("BENCH_LOG", "info")]
        if demo:
            args.append("--demo")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.port: int | None = None
        self.lines: list[str] = []
        self._local = threading.local()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if self.port is None and "/metrics (version" in line:
                    self.port = int(line.split("/metrics")[0].rsplit(":", 1)[1])

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + 30
        while self.port is None and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("exporter exited:\n" + "".join(self.lines))
            time.sleep(0.002)
        if self.port is None:
            raise RuntimeError("exporter did not start")

    def scrape(self) -> bytes:
        """GET /metrics on this thread's keep-alive connection, as Prometheus does."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                                 timeout=30)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            raise
        if response.status != 200:
            raise RuntimeError(f"scrape: HTTP {response.status}")
        return body

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_mib(self) -> float:
        return proc_status(self.proc.pid, "VmRSS") / 1024

    def threads(self) -> int:
        return proc_status(self.proc.pid, "Threads")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def sockets(self) -> int:
        count = 0
        for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
            try:
                if os.readlink(f"/proc/{self.proc.pid}/fd/{fd}").startswith("socket:"):
                    count += 1
            except OSError:
                pass
        return count

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(20)


class NaivePeer:
    """scripts/naive_peer.py as a process, scraped like the exporter."""

    def __init__(self, base_url: str, *, account: bool = False) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ, SIM_API_KEY=API_KEY, SIM_API_SECRET=SECRET)
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "naive_peer.py"), base_url, str(self.port),
             *(["--account"] if account else [])],
            env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()

    def scrape(self) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
        conn.close()
        return body

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_mib(self) -> float:
        return proc_status(self.proc.pid, "VmRSS") / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def run_threads(target, args_list: list[tuple]) -> None:
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def concurrent_scrapes(n: int = 64, latency: float = 0.3) -> int:
    """n scrapes released at once against a slow upstream (cache 10 s): upstream calls made."""
    from binance_margin_exporter.demo.cross import ACCOUNT_PATH

    sim = simulator(300, 12, latency=latency)
    exporter = Exporter(sim.base_url, cache_ttl=10)
    before = sim.counts[ACCOUNT_PATH]
    barrier = threading.Barrier(n)
    failures: list[Exception] = []

    def scrape() -> None:
        barrier.wait()
        try:
            if b'binance_margin_up{account="acct000"} 1.0' not in exporter.scrape():
                raise RuntimeError("scrape without up 1")
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(exc)

    run_threads(scrape, [()] * n)
    calls = sim.counts[ACCOUNT_PATH] - before
    exporter.stop()
    sim.stop()
    if failures:
        raise RuntimeError(f"{len(failures)} of {n} scrapes failed: {failures[0]!r}")
    return calls


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# bench.py --profile: case -> category -> samples (py-spy, every thread of the measured process)
PROFILE: dict[str, Counter[str]] = {}
_PROFILING = [False]

# Where a sample's time goes: the innermost frame of its stack that one of these names, in this
# order of the rules for that frame.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decimal arithmetic (USDT values)", ("times (binance_margin_exporter/binance/fields",
                                          "plus (binance_margin_exporter/binance/fields",
                                          "decimal (binance_margin_exporter/binance/fields",
                                          "_finite (binance_margin_exporter/binance/fields")),
    ("parse (fields, models)", ("binance_margin_exporter/binance/fields", *(
        f"binance_margin_exporter/binance/{m}.py" for m in (
            "cross", "isolated", "sub_accounts", "portfolio", "portfolio_pro", "futures",
            "prices", "interest", "risk_lists", "streams")))),
    ("JSON decode", ("json/", "orjson")),
    ("HTTP client (requests, urllib3, signing, limits)", (
        "requests/", "urllib3/", "http/client.py", "socket.py", "ssl.py", "hmac.py", "email/",
        "binance_margin_exporter/binance/")),
    ("render (exposition text)", ("prometheus_client/exposition.py", "prometheus_client/utils",
                                  "prometheus_client/openmetrics/",
                                  "binance_margin_exporter/web/exposition")),
    ("families (build, merge)", ("prometheus_client/metrics_core", "prometheus_client/samples",
                                 "binance_margin_exporter/collectors/")),
    ("web front, gzip", ("binance_margin_exporter/web/", "gzip")),
)


# a thread waiting (py-spy cannot always tell a blocking read from work): left out
WAITING = ("readinto (socket.py", "select (selectors.py", "wait (threading.py",
           "do_poll (urllib3/util/wait.py", "_worker (concurrent/futures/thread.py")


def category(stack: str) -> str:
    frames = stack.split(";")
    if any(frames[-1].startswith(mark) or f".{mark}" in frames[-1] for mark in WAITING):
        return "waiting"
    for frame in reversed(frames):
        for name, marks in CATEGORIES:
            if any(mark in frame for mark in marks):
                return name
    return "other (threads, locks, logging, GC)"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    return found


def profile_on() -> None:
    py_spy()
    _PROFILING[0] = True


@contextmanager
def profiled(case: str, pid: int) -> Iterator[None]:
    """With ``--profile``: py-spy samples every thread of ``pid`` (busy ones only) meanwhile,
    and the samples are counted by :func:`category` into ``PROFILE[case]``."""
    if not _PROFILING[0]:
        yield
        return
    out = Path(tempfile.mkdtemp(prefix="bench-profile-")) / "raw.txt"
    spy = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--format", "raw",
                            "--output", str(out), "--rate", "250", "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        counts: Counter[str] = Counter()
        for line in out.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():  # a garbled sample (py-spy reads without pausing): skipped
                continue
            kind = category(stack)
            if kind != "waiting":
                counts[kind] += int(n)
        PROFILE[case] = counts
        slug = "".join(c if c.isalnum() else "-" for c in case)
        (Path(tempfile.gettempdir()) / f"bench-profile-{slug}.txt").write_text(out.read_text())


def profile_table() -> str:
    cases = list(PROFILE)
    names = [name for name, _ in CATEGORIES] + ["other (threads, locks, logging, GC)"]
    rows = []
    for name in names:
        rows.append([name, *(f"{PROFILE[c][name] * 100 / max(1, sum(PROFILE[c].values())):.0f} %"
                             for c in cases)])
    rows.append(["samples (250 a second, threads at work)",
                 *(str(sum(PROFILE[c].values())) for c in cases)])
    return table(["where the time goes", *cases], rows)
