"""Shared test helpers: fake clocks and sources, external tools, exporter processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import generate_latest

from binance_margin_exporter.binance.cross import (
    MarginAccount,
    TradeCoeff,
    parse_account,
    parse_trade_coeff,
)
from binance_margin_exporter.binance.isolated import parse_isolated_account
from binance_margin_exporter.binance.prices import parse_prices
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.cross import (
    THRESHOLDS_REFRESH_SECONDS,
    THRESHOLDS_RETRY_SECONDS,
    CrossAccount,
)
from binance_margin_exporter.collectors.exporter import Exporter
from binance_margin_exporter.collectors.interest import HourlyRates
from binance_margin_exporter.collectors.isolated import IsolatedSource, _recheck
from binance_margin_exporter.collectors.prices import PricesCollector
from binance_margin_exporter.collectors.product import Collector
from binance_margin_exporter.web import exposition

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = ROOT / "tests" / "golden"
K8S = ROOT / "deploy" / "kubernetes"
KUBECTL_HINT = "scripts/install-k8s-tools.sh installs kubectl and helm"
WALL = 1_700_000_000.0  # the fake wall clock of collector tests


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kustomize(directory) -> list[dict]:
    """The objects ``kubectl kustomize`` builds from ``directory`` (kubectl's own kustomize)."""
    kubectl = require_tool("kubectl", KUBECTL_HINT)
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(docs: list[dict], kind: str) -> dict:
    return next(d for d in docs if d["kind"] == kind)


class Scraper:
    """Collectors rendered as ``/metrics`` renders them: one :class:`Exporter`, its scrape
    given ``scrape_timeout`` seconds by Prometheus (None: the exporter's own budget)."""

    def __init__(self, *collectors: Collector) -> None:
        self.exporter = Exporter(collectors, version="0.0.0-test")

    def render(self, scrape_timeout: float | None = None) -> bytes:
        """The text /metrics sends (its encoder; byte for byte ``generate_latest``'s)."""
        return exposition.render(self.exporter.families(scrape_timeout))

    def text(self, scrape_timeout: float | None = None) -> str:
        return self.render(scrape_timeout).decode()


class _OneScrape:
    def __init__(self, exporter: Exporter, scrape_timeout: float | None) -> None:
        self.exporter, self.scrape_timeout = exporter, scrape_timeout

    def collect(self):
        return self.exporter.collect(self.scrape_timeout)


def require_tool(name: str, hint: str = "Debian: apt-get install prometheus") -> str:
    """Path of an external tool. Missing: a skip on a workstation, a failure under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({hint})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)
    return path


def promtool_check_metrics(body: bytes) -> None:
    """promtool's lint of an exposition, as exporters are linted in CI: no finding at all."""
    promtool = require_tool("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                            timeout=60)
    findings = (result.stdout + result.stderr).decode().strip()
    assert result.returncode == 0 and not findings, findings or "promtool failed"


class StepClock:
    """A clock that advances by ``step`` every time it is read."""

    def __init__(self, start: float = 1000.0, step: float = 0.25) -> None:
        self.now = start
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            value = self.now
            self.now += self.step
            return value


class _ForkSafeExecutor(Executor):
    """The tests' shared pool, made anew in a forked child (mutmut forks its workers from a
    process whose pool has threads; the child would keep the pool but not its threads, and
    every test using it would fail whatever the mutant: false kills)."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="test-fetch")

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        return self._pool.submit(fn, *args, **kwargs)


EXECUTOR = _ForkSafeExecutor()


class FakeSource:
    """Recorded answers (or errors) for one account, and the client state the collector reads:
    stands in for the client and for Binance in collector tests."""

    def __init__(self, account: MarginAccount | Exception | None = None,
                 coeff: TradeCoeff | Exception | None = None,
                 delay: float = 0.0) -> None:
        self.account = account if account is not None else parse_account(
            fixture_json("account_docs_example.json"))
        self.coeff = coeff if coeff is not None else parse_trade_coeff(
            fixture_json("trade_coeff_docs_example.json"))
        self.delay = delay
        self.calls = 0
        self.coeff_calls = 0
        self.timeout = 5.0
        self.backoff = 0.0
        self._lock = threading.Lock()

    def get_account(self, deadline: float) -> MarginAccount:
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if isinstance(self.account, Exception):
            raise self.account
        return self.account

    def get_trade_coeff(self, deadline: float) -> TradeCoeff:
        with self._lock:
            self.coeff_calls += 1
        if isinstance(self.coeff, Exception):
            raise self.coeff
        return self.coeff

    def auth_backoff_until(self) -> float:
        return self.backoff


def fake_account(name: str, source: FakeSource, *, ttl: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 warm: bool = True) -> CrossAccount:
    """A :class:`CrossAccount` on a :class:`FakeSource`; ``warm``: its bars fetched already, as
    the exporter's warm-up does at start."""
    account = CrossAccount(
        name, source,
        Cached(f"account {name}", source.get_account, EXECUTOR, ttl=ttl,
               monotonic=monotonic, wall=wall),
        Cached(f"margin bars of {name}", source.get_trade_coeff, EXECUTOR,
               ttl=THRESHOLDS_REFRESH_SECONDS, error_ttl=THRESHOLDS_RETRY_SECONDS,
               monotonic=monotonic, wall=wall),
    )
    if warm:
        account.thresholds.get(time.monotonic() + 5)
    return account


CRD_MODELS = os.environ.get("BME_CRD_MODELS", "/usr/local/lib/bme-crd-models")


def crd_problems(documents: list[dict]) -> list[str]:
    """What the prometheus-operator CRD schemas say of these ServiceMonitors and
    PrometheusRules (``[]``: valid), through @kubernetes-models/prometheus-operator."""
    node = require_tool("node", "Debian: apt-get install nodejs")
    if not os.path.isdir(os.path.join(CRD_MODELS, "node_modules", "@kubernetes-models")):
        message = f"the CRD validators are not installed in {CRD_MODELS} " \
                  f"(scripts/install-k8s-tools.sh installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must install them")
        pytest.skip(message)
    script = (ROOT / "tests" / "validate_crds.mjs").read_text()
    result = subprocess.run([node, "--input-type=module", "-e", script], cwd=CRD_MODELS,
                            input=json.dumps(documents), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(predicate: Callable[[], object], timeout: float = 20.0,
             interval: float = 0.05) -> object:
    """Poll until ``predicate()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class ExporterProcess:
    """The exporter as a real process; its port is read from its start-up log."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "binance_margin_exporter", "--web.listen-address",
             "127.0.0.1:0", *args],
            env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(lambda: self.port is not None or self.proc.poll() is not None, timeout=30)
        if self.port is None:
            self._reader.join(5)
            raise AssertionError("exporter did not start:\n" + self.log)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if self.port is None and "/metrics (version" in line:
                self.port = int(line.split("/metrics")[0].rsplit(":", 1)[1])

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        response = requests.get(f"{self.url}/metrics", timeout=15)
        response.raise_for_status()
        return response.text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


@contextmanager
def exporter_process(args: list[str], env: dict[str, str]) -> Iterator[ExporterProcess]:
    process = ExporterProcess(args, env)
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(10)


def run_exporter(args: list[str], env: dict[str, str] | None = None,
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the exporter to completion (config errors, --config.check, --version)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "binance_margin_exporter", *args],
                          env=full_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def sample_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse an exposition into {(name, sorted labels): value} with prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


# --------------------------------------------------------------------------------------------
# isolated pairs and prices, recorded


class FakeIsolated:
    """Recorded isolated answers (or an error) and rates, standing in for client and Binance."""

    def __init__(self, raw=None, rates=None) -> None:
        docs = fixture_json("isolated_account_docs_example.json")
        self.answer = parse_isolated_account(docs if raw is None else raw)
        self.rates = rates if rates is not None else {}
        self.calls = 0
        self.rate_calls: list[tuple[list[str], bool]] = []
        self.timeout = 5.0

    def get(self, deadline):
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def fetch_rates(self, client, assets, *, isolated, deadline):
        self.rate_calls.append((list(assets), isolated))
        return {a: self.rates[a] for a in assets if a in self.rates}

    def auth_backoff_until(self):
        return 0.0


def isolated_source(fake: FakeIsolated, *, ttl=10.0, monotonic=time.monotonic) -> IsolatedSource:
    return IsolatedSource(
        "main", fake,
        Cached("isolated pairs of main", fake.get, EXECUTOR, ttl=ttl, ttl_of=_recheck(ttl),
               monotonic=monotonic, wall=lambda: WALL),
        HourlyRates("isolated rates of main", fake, EXECUTOR, isolated=True,
                    fetch=fake.fetch_rates, monotonic=monotonic))


def prices_collector(raw=None) -> PricesCollector:
    prices = parse_prices(raw if raw is not None else
                          fixture_json("ticker_price_for_examples.json"))
    return PricesCollector(Cached("prices", lambda deadline: prices, EXECUTOR, ttl=10))


def wait_idle(cached: Cached) -> None:
    """Until the cache has no fetch under way (a background refresh has ended)."""
    deadline = time.monotonic() + 5
    while cached._flight is not None and time.monotonic() < deadline:
        time.sleep(0.002)


def cross_with_rates(source: FakeSource, rates: dict[str, float], *,
                     monotonic=time.monotonic, wall=time.time,
                     calls: list | None = None) -> CrossAccount:
    account = fake_account("main", source, ttl=0, monotonic=monotonic, wall=wall)

    def fetch(client, assets, *, isolated, deadline):
        if calls is not None:
            calls.append(list(assets))
        return {a: rates[a] for a in assets if a in rates}

    return CrossAccount(account.name, source, account.account, account.thresholds,
                        HourlyRates("rates of main", source, EXECUTOR, isolated=False,
                                    fetch=fetch, monotonic=monotonic))


@contextmanager
def socket_server(serve: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that hands each connection to ``serve`` on a thread of its own.
    Yields its base URL; stops accepting when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@contextmanager
def raw_http_server(respond: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that reads each request's head and leaves the answer, byte for
    byte, to ``respond(connection)``: for answers no well-behaved HTTP server sends (dripped
    headers, malformed header lines). Yields its base URL."""
    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            try:
                respond(conn)
            except OSError:
                pass  # the client hung up

    with socket_server(serve) as url:
        yield url


def gzip_bomb(decoded_mib: int) -> bytes:
    """A gzip body that decodes to ``decoded_mib`` MiB of zeros (about 1 KiB a MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(decoded_mib)]
    parts.append(compressor.flush())
    return b"".join(parts)


# --------------------------------------------------------------------------------------------
# a whole exporter, built in-process


def scrape_built(built) -> dict:
    """One scrape of a built exporter (``wiring.build_exporter``), as sample values."""
    class Once:
        def collect(self):
            return built.exporter.collect(2.0)

    return sample_values(generate_latest(Once()).decode())


def settings_for(simulator, *accounts):
    """Settings with every product's defaults and every host on the simulator."""
    from binance_margin_exporter.config import Options, Settings
    from binance_margin_exporter.products import PRODUCTS
    from binance_margin_exporter.wiring import host_keys

    options = {s.key: s.default for p in PRODUCTS for s in p.settings}
    options.update({k: simulator.base_url for p in PRODUCTS for k in host_keys(p)})
    return Settings(accounts=tuple(accounts), base_url=simulator.base_url,
                    options=Options.of(options), cache_ttl_seconds=0)


def master_client(sim, key: str | None = None):
    """A client of a master key on the simulator, with connections for its sub-accounts."""
    from binance_margin_exporter.binance.limits import Upstream
    from binance_margin_exporter.binance.signing import HmacSigner
    from binance_margin_exporter.binance.transport import BinanceClient
    from tests.conftest import API_KEY, SECRET

    return BinanceClient(Upstream(sim.base_url), key or API_KEY, HmacSigner(SECRET),
                         pool_size=16)
