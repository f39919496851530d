"""Command line: flags in Prometheus spelling -> settings -> wiring -> serve until SIGTERM."""

from __future__ import annotations

import argparse
import ctypes
import logging
import re
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from exporter import __version__
from exporter.binance import BinanceClient, Upstream, UpstreamError, make_signer
from exporter.collector import AccountScraper, MarginCollector
from exporter.config import (
    ConfigError,
    Settings,
    WebConfig,
    environ,
    load_settings,
    load_web_config,
)
from exporter.process import ProcessMetrics
from exporter.server import make_server, parse_listen_address, tls_context

log = logging.getLogger("exporter")

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
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser.parse_args(argv)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "ts=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": "WARNING"}.get(level, level.upper()))
    # urllib3 logs full request URLs at DEBUG: those carry signatures.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def keep_freed_memory() -> None:
    """Ask glibc to keep freed blocks instead of returning them to the kernel at once.

    Each scrape allocates and frees the same few megabytes (the upstream body, its parsed
    objects, the exposition); by default glibc unmaps the large ones and the next scrape faults
    them back in: about 450 page faults a scrape for an account of 5000 assets, a quarter of
    its time. Retaining up to 64 MiB costs nothing here (RSS stays near the peak of one scrape).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: leave the allocator alone
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 16 << 20)
    mallopt(m_trim_threshold, 64 << 20)


def build_collector(settings: Settings) -> MarginCollector:
    """Clients, scrapers and the collector for the settings; ``ConfigError`` for a bad key."""
    upstream = Upstream(settings.base_url, soft_limit=settings.ip_weight_soft_limit)
    scrapers = []
    for account in settings.accounts:
        try:
            signer = make_signer(account)
        except ValueError as exc:
            key = ("BINANCE_PRIVATE_KEY_FILE" if account.source == "env"
                   else f"{account.source}.private_key_file")
            raise ConfigError(f"{key}: {exc}") from None
        client = BinanceClient(
            upstream, account.api_key, signer,
            recv_window_ms=settings.recv_window_ms,
            timeout=settings.request_timeout_seconds,
            max_response_bytes=settings.max_response_bytes,
        )
        scrapers.append(AccountScraper(account.name, client, ttl=settings.cache_ttl_seconds))
    return MarginCollector(scrapers, include_zero_assets=settings.include_zero_assets,
                           assets=settings.assets)


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


def warm_up(collector: MarginCollector) -> None:
    """Sync the clock and fetch margin thresholds before the first scrape (best effort)."""
    for scraper in collector.scrapers:
        client = scraper.source
        try:
            if isinstance(client, BinanceClient) and client.upstream.clock.claim_sync():
                client.sync_time()
        except UpstreamError as exc:
            log.warning("start-up clock sync with Binance failed: %s", exc)
        scraper.refresh_thresholds()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for arg in argv:
        if SECRET_FLAG.match(arg):
            print(f"{PROG}: error: secrets are not accepted on the command line (anyone can "
                  f"read the process list); use BINANCE_API_SECRET_FILE, BINANCE_API_KEY_FILE "
                  f"or the --config file", file=sys.stderr)
            return 2
    args = parse_args(argv)
    setup_logging(args.log_level)
    keep_freed_memory()

    simulator = None
    try:
        settings = load_settings(args.config, environ(), require_accounts=not args.demo)
        web = load_web_config(args.web_config) if args.web_config else WebConfig()
        address = parse_listen_address(args.listen)
        if web.tls is not None:
            check_tls(web)
        if args.check:
            build_collector(settings).close()  # loads every private key: no network
            names = ", ".join(a.name for a in settings.accounts) or "none"
            print(f"configuration OK: accounts: {names}")
            return 0
        if args.demo:
            from exporter.demo import start_demo

            settings, simulator = start_demo(settings)
        collector = build_collector(settings)
    except (ConfigError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1

    process = ProcessMetrics()

    def render() -> bytes:
        return collector.render() + process.render()

    try:
        server = make_server(address, render, web)
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

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=warm_up, args=(collector,), name="warm-up", daemon=True).start()
    scheme = "https" if web.tls else "http"
    log.info("serving %d account(s) on %s://%s:%d/metrics (version %s)",
             len(settings.accounts), scheme, host, port, __version__)
    server.serve_forever()
    server.server_close()  # waits for scrapes in flight
    collector.close()
    if simulator is not None:
        simulator.stop()
    log.info("stopped")
    return 0
