"""Command line: flags in Prometheus spelling -> settings -> wiring -> serve until SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from prometheus_client import ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter import __version__
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.prices import Prices, fetch_prices
from binance_margin_exporter.binance.signing import make_signer
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.collectors.cross import CrossAccount, CrossCollector
from binance_margin_exporter.collectors.exporter import Exporter, Product
from binance_margin_exporter.collectors.hosts import HostsCollector
from binance_margin_exporter.collectors.isolated import IsolatedCollector, IsolatedSource
from binance_margin_exporter.collectors.portfolio import PortfolioCollector, PortfolioSource
from binance_margin_exporter.collectors.prices import PricesCollector
from binance_margin_exporter.collectors.sub_accounts import SubAccounts
from binance_margin_exporter.config import (
    AccountConfig,
    ConfigError,
    Settings,
    WebConfig,
    environ,
    load_settings,
    load_web_config,
)
from binance_margin_exporter.web.server import (
    make_server,
    parse_listen_address,
    tls_context,
    url_host,
)

log = logging.getLogger("binance_margin_exporter")

PROG = "binance-margin-exporter"
SECRET_FLAG = re.compile(r"^--?[\w.-]*(secret|api[-_.]?key|private[-_.]?key|passphrase|password)",
                         re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse repeats unknown arguments verbatim; they may hold a secret. Keep option
        # names only.
        message = re.sub(r"=\S+", "=…", message)
        message = re.sub(r"(unrecognized arguments:).*",
                         lambda m: m.group(1) + " " + " ".join(
                             w for w in m.group(0).split()[2:] if w.startswith("-")),
                         message)
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description="Prometheus exporter for the Binance Cross Margin "
                     "account. Credentials come from the environment or the --config file.")
    parser.add_argument("--web.listen-address", dest="listen", default="127.0.0.1:9944",
                        help="host:port to serve on; ':9944' or '0.0.0.0:9944' for all "
                        "interfaces (default: %(default)s)")
    parser.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics",
                        metavar="PATH", help="path of the metrics (default: %(default)s)")
    parser.add_argument("--web.config.file", dest="web_config", metavar="FILE",
                        help="TLS and basic auth settings (exporter-toolkit format)")
    parser.add_argument("--config", "--config.file", dest="config", metavar="FILE",
                        help="YAML configuration (accounts, cache, assets)")
    parser.add_argument("--config.check", dest="check", action="store_true",
                        help="validate the configuration and exit")
    parser.add_argument("--demo", action="store_true",
                        help="serve a simulated account: no keys, no network")
    parser.add_argument("--log.level", dest="log_level", default="info",
                        choices=["debug", "info", "warn", "error"])
    parser.add_argument("--log.format", dest="log_format", default="logfmt",
                        choices=["logfmt", "json"])
    parser.add_argument("--healthcheck", action="store_true",
                        help="ask a running exporter's /healthz and exit 0 if it answers; with "
                        "no --web.* flags, those of process 1 (the exporter, in a container)")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser.parse_args(argv)


LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error",
          "CRITICAL": "error"}


class LogfmtFormatter(logging.Formatter):
    """``ts=2026-11-25T02:47:00.123Z level=warn source=... msg="..."``: Prometheus' own log
    format (RFC 3339 UTC timestamps, the flag's lower-case level names, quoted values)."""

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return {"ts": f"{ts}.{int(record.msecs):03d}Z",
                "level": LEVELS.get(record.levelname, record.levelname.lower()),
                "source": record.name, "msg": record.getMessage()}

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={self.quote(value)}"
                        for key, value in self.fields(record).items())

    @staticmethod
    def quote(value: str) -> str:
        if value and not any(c in value for c in ' "=\n\t\\'):
            return value
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'


class JsonFormatter(LogfmtFormatter):
    """One JSON object a line, with the same fields."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), ensure_ascii=False)


def setup_logging(level: str, fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": "WARNING"}.get(level, level.upper()))
    # urllib3 logs full request URLs at DEBUG: those carry signatures.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


@dataclass
class AccountParts:
    """What one configured account is made of; kept across reloads while its configuration
    is unchanged, with its caches, counters and back-off."""

    client: BinanceClient
    cross: CrossAccount | None = None
    isolated: IsolatedSource | None = None
    portfolio: PortfolioSource | None = None
    subs: SubAccounts | None = None


@dataclass
class Built:
    """An exporter and the parts it was built from (for the next reload to reuse)."""

    exporter: Exporter
    settings: Settings
    upstream: Upstream
    papi: Upstream
    executor: ThreadPoolExecutor
    accounts: dict[AccountConfig, AccountParts] = field(default_factory=dict)
    prices: tuple[BinanceClient, Cached[Prices]] | None = None


def _globals(settings: Settings) -> Settings:
    return dataclasses.replace(settings, accounts=())


def _account_parts(account: AccountConfig, settings: Settings, upstream: Upstream,
                   papi: Upstream, executor: Executor) -> AccountParts:
    try:
        signer = make_signer(account.api_secret, account.private_key_pem,
                             account.private_key_passphrase)
    except ValueError as exc:
        key = ("BINANCE_PRIVATE_KEY_FILE" if account.source == "env"
               else f"{account.source}.private_key_file")
        raise ConfigError(f"{key}: {exc}") from None
    client = BinanceClient(
        papi if account.type == "portfolio_margin" else upstream, account.api_key, signer,
        recv_window_ms=settings.recv_window_ms,
        timeout=settings.request_timeout_seconds,
        max_response_bytes=settings.max_response_bytes,
        pool_size=settings.fetch_concurrency if account.sub_accounts else 10,
    )
    ttl = settings.cache_ttl_seconds
    if account.type == "portfolio_margin":
        return AccountParts(client, portfolio=PortfolioSource.create(account.name, client,
                                                                     executor, ttl=ttl))
    parts = AccountParts(client)
    if account.master:
        parts.cross = CrossAccount.create(account.name, client, executor, ttl=ttl,
                                          interest_rates=settings.interest_rates)
    if account.isolated:
        parts.isolated = IsolatedSource.create(account.name, client, executor, ttl=ttl,
                                               interest_rates=settings.interest_rates)
    if account.sub_accounts is not None:
        emails = None if account.sub_accounts == "all" else account.sub_accounts
        parts.subs = SubAccounts(account.name, client, executor, ttl=ttl, emails=emails)
    return parts


def build_exporter(settings: Settings, previous: Built | None = None) -> Built:
    """Clients, caches and collectors for the settings; ``ConfigError`` for an unusable key.

    With ``previous`` (a reload) and the same global settings, every account whose
    configuration is unchanged keeps its parts, and the hosts keep their clocks and rate
    gates; a changed account (a rotated key) starts afresh, with no back-off."""
    same = previous is not None and _globals(previous.settings) == _globals(settings)
    kept = previous.accounts if same and previous is not None else {}
    if same and previous is not None:
        upstream, papi, executor = previous.upstream, previous.papi, previous.executor
    else:
        upstream = Upstream(settings.base_url, soft_limit=settings.ip_weight_soft_limit)
        # Portfolio Margin's own host keeps time with the api host; one host is one budget
        papi = upstream if settings.papi_base_url == settings.base_url else Upstream(
            settings.papi_base_url, soft_limit=settings.ip_weight_soft_limit,
            clock_of=upstream)
        executor = ThreadPoolExecutor(max_workers=settings.fetch_concurrency,
                                      thread_name_prefix="fetch")
    accounts: dict[AccountConfig, AccountParts] = {}
    try:
        for account in settings.accounts:
            accounts[account] = kept.get(account) or _account_parts(account, settings,
                                                                    upstream, papi, executor)
    except ConfigError:
        if not same:
            executor.shutdown()
        raise
    parts = list(accounts.values())
    products: list[Product] = [
        CrossCollector([p.cross for p in parts if p.cross],
                       include_zero_assets=settings.include_zero_assets,
                       assets=settings.assets, groups=[p.subs for p in parts if p.subs]),
    ]
    isolated = [p.isolated for p in parts if p.isolated]
    if isolated:
        products.append(IsolatedCollector(isolated))
    portfolios = [p.portfolio for p in parts if p.portfolio]
    if portfolios:
        products.append(PortfolioCollector(portfolios))
    clients = [p.client for p in parts if p.portfolio is None]
    prices = None
    if settings.usdt_values and clients:
        # public data, one fetch for every account on the host (unsigned: any client will do)
        if same and previous is not None and previous.prices and \
                previous.prices[0] is clients[0]:
            prices = previous.prices
        else:
            client = clients[0]
            prices = (client, Cached("prices",
                                     lambda deadline: fetch_prices(client, deadline), executor,
                                     ttl=settings.cache_ttl_seconds,
                                     timeout=settings.request_timeout_seconds))
        products.append(PricesCollector(prices[1]))
    products.append(HostsCollector([upstream, papi]))
    exporter = Exporter(products, request_timeout=settings.request_timeout_seconds,
                        executor=executor)
    return Built(exporter, settings, upstream, papi, executor, accounts, prices)


def check_tls(web: WebConfig) -> None:
    """Load the certificate and key now, so that a bad one is a config error, not a crash."""
    assert web.tls is not None
    try:
        tls_context(web.tls)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or "invalid"
        raise ConfigError(
            f"--web.config.file: tls_server_config: cannot load the certificate, key or CA: "
            f"{reason}"
        ) from None


def warm_up(exporter: Exporter) -> None:
    """Sync the clock and start fetching the margin bars before the first scrape."""
    synced: set[int] = set()
    for product in exporter.products:
        for account in getattr(product, "accounts", ()):
            client = account.client
            if id(client.upstream) not in synced and client.upstream.clock.claim_sync():
                synced.add(id(client.upstream))
                try:
                    client.sync_time()
                except UpstreamError as exc:
                    log.warning("start-up clock sync with Binance failed: %s", exc)
            if account.thresholds is not None:
                account.thresholds.latest()


class Reloader:
    """Keeps the running configuration and replaces it, all or nothing: on SIGHUP, on
    ``POST /-/reload``, and when a file it was read from changes (a rotated key: a Kubernetes
    Secret volume swaps its files with no signal). A broken configuration is refused with one
    log line naming the key, and the running one keeps serving."""

    WATCH_SECONDS = 15.0

    def __init__(self, args: argparse.Namespace, built: Built, web: WebConfig) -> None:
        self.args = args
        self.built = built
        self.web = web
        self.server: Any = None  # set once the server exists
        self._lock = threading.Lock()
        self.ok = True
        self.success_at = time.time()
        self._stamp = self._files_stamp()

    def _files(self) -> list[str]:
        files = list(self.built.settings.files)
        if self.args.web_config:
            files.append(self.args.web_config)
        return files

    def _files_stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self._files():
            try:
                info = os.stat(path)
                stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def reload(self, why: str = "requested") -> str | None:
        """None when the new configuration is in use, else the one-line reason it is not."""
        with self._lock:
            if self.args.demo:
                log.info("reload (%s): nothing to reload in --demo", why)
                return None
            try:
                settings = load_settings(self.args.config, environ())
                web = load_web_config(self.args.web_config) if self.args.web_config \
                    else WebConfig()
                if (web.tls is None) != (self.web.tls is None):
                    raise ConfigError("--web.config.file: turning TLS on or off needs a restart")
                if web.tls is not None:
                    check_tls(web)
                built = build_exporter(settings, self.built)
            except (ConfigError, ValueError) as exc:
                self.ok = False
                log.error("reload (%s) refused, the running configuration stays: %s", why, exc)
                return str(exc)
            old, self.built, self.web = self.built, built, web
            if self.server is not None:
                self.server.set_web(web)
            if old.executor is not built.executor:
                old.executor.shutdown(wait=False)
            self.ok = True
            self.success_at = time.time()
            self._stamp = self._files_stamp()
        log.info("configuration reloaded (%s): %d account(s)", why, len(settings.accounts))
        threading.Thread(target=warm_up, args=(built.exporter,), name="warm-up",
                         daemon=True).start()
        return None

    def watch(self, stopping: threading.Event) -> None:
        while not stopping.wait(self.WATCH_SECONDS):
            if self._files_stamp() != self._stamp:
                self.reload("a configuration or secret file changed")
                with self._lock:
                    self._stamp = self._files_stamp()  # a refused file is not retried

    def families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("binance_margin_config_last_reload_successful",
                                "1 if the last configuration reload succeeded, else 0.",
                                value=1.0 if self.ok else 0.0)
        yield GaugeMetricFamily("binance_margin_config_last_reload_success_timestamp_seconds",
                                "Unix time of the last successful configuration reload "
                                "(or of the start).", value=self.success_at)


def healthcheck(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """0 if the exporter that these flags describe answers /healthz, else 1: over TLS where
    its web config says so, to its port whatever it is. Without --web.* flags, process 1's
    own flags are used (in a container, the exporter is process 1)."""
    if not any(a.startswith("--web.") for a in argv):
        try:
            with open("/proc/1/cmdline", "rb") as handle:
                own = [a.decode() for a in handle.read().split(b"\0") if a]
            args = parse_args([a for a in own[1:] if a.startswith("--web.")])
        except (OSError, SystemExit, UnicodeDecodeError):
            pass  # not readable: the defaults
    host, port = parse_listen_address(args.listen)
    host = {"::": "::1", "0.0.0.0": "127.0.0.1"}.get(host, host)
    try:
        web = load_web_config(args.web_config) if args.web_config else WebConfig()
        with socket.create_connection((host, port), timeout=3) as sock:
            if web.tls is None:
                stream: socket.socket = sock
            elif web.tls.client_auth_type == "RequireAndVerifyClientCert":
                return 0  # it accepts connections; /healthz needs a client certificate
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # our own process, on this machine
                stream = context.wrap_socket(sock)
            stream.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            ok = stream.recv(64).startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    except (OSError, ssl.SSLError, ConfigError, ValueError):
        ok = False
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for arg in argv:
        if SECRET_FLAG.match(arg):
            print(f"{PROG}: error: secrets are not accepted on the command line (anyone can "
                  f"read the process list); use BINANCE_API_SECRET_FILE, BINANCE_API_KEY_FILE "
                  f"or the --config file", file=sys.stderr)
            return 2
    args = parse_args(argv)
    if args.healthcheck:
        return healthcheck(args, argv)
    if not args.telemetry_path.startswith("/") or args.telemetry_path in ("/", "/healthz"):
        print(f"{PROG}: --web.telemetry-path: expected a path such as /metrics, not the "
              f"landing page or /healthz", file=sys.stderr)
        return 1
    setup_logging(args.log_level, args.log_format)

    simulator = None
    try:
        settings = load_settings(args.config, environ(), require_accounts=not args.demo)
        web = load_web_config(args.web_config) if args.web_config else WebConfig()
        address = parse_listen_address(args.listen)
        if web.tls is not None:
            check_tls(web)
        if args.check:
            build_exporter(settings).exporter.close()  # loads every private key: no network
            names = ", ".join(a.name for a in settings.accounts) or "none"
            print(f"configuration OK: accounts: {names}")
            return 0
        if args.demo:
            from binance_margin_exporter.demo import start_demo

            settings, simulator = start_demo(settings)
        built = build_exporter(settings)
    except (ConfigError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1

    process = ProcessCollector(registry=None)
    reloader = Reloader(args, built, web)

    def scrape(scrape_timeout: float | None) -> Iterator[Metric]:
        yield from reloader.built.exporter.collect(scrape_timeout)
        yield from reloader.families()
        yield from process.collect()

    try:
        server = make_server(address, scrape, web, metrics_path=args.telemetry_path,
                             reload=lambda: reloader.reload("POST /-/reload"))
    except OSError as exc:
        print(f"{PROG}: --web.listen-address {args.listen}: {exc.strerror}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    if host in ("0.0.0.0", "::") and web.tls is None and not web.basic_auth_users:
        log.warning("listening on all interfaces without TLS or basic auth: anyone who can "
                    "reach port %d can read balances and debts (see --web.config.file)", port)

    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("received %s, shutting down", signal.Signals(signum).name)
            threading.Thread(target=server.shutdown, name="shutdown").start()

    reloader.server = server

    def hangup(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=reloader.reload, args=("SIGHUP",), name="reload",
                         daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)
    threading.Thread(target=reloader.watch, args=(stopping,), name="watch",
                     daemon=True).start()
    threading.Thread(target=warm_up, args=(built.exporter,), name="warm-up",
                     daemon=True).start()
    scheme = "https" if web.tls else "http"
    log.info("serving %d account(s) on %s://%s:%d%s (version %s)",
             len(settings.accounts), scheme, url_host(host), port, args.telemetry_path,
             __version__)
    server.serve_forever()
    server.server_close()  # waits for scrapes in flight
    reloader.built.exporter.close()
    if simulator is not None:
        simulator.stop()
    log.info("stopped")
    return 0
