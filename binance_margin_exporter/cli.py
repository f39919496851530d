"""Command line: flags in Prometheus spelling -> settings -> wiring -> serve until SIGTERM.

The rooms it calls on: :mod:`.wiring` (settings -> exporter), :mod:`.reload` (SIGHUP,
``/-/reload``, changed files), :mod:`.logs` (logfmt or JSON), :mod:`.health` (``--healthcheck``).
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric

from binance_margin_exporter import __version__
from binance_margin_exporter.config import ConfigError, environ
from binance_margin_exporter.health import healthcheck
from binance_margin_exporter.logs import setup_logging
from binance_margin_exporter.memory import Settle, release_promptly
from binance_margin_exporter.products import PRODUCTS
from binance_margin_exporter.reload import Reloader, load_web
from binance_margin_exporter.web.server import make_server, parse_listen_address, url_host
from binance_margin_exporter.wiring import build_exporter, load, warm_up

log = logging.getLogger("binance_margin_exporter")

PROG = "binance-margin-exporter"
SECRET_FLAG = re.compile(r"^--?[\w.-]*(secret|api[-_.]?key|private[-_.]?key|passphrase|password)",
                         re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse repeats unknown arguments and invalid values verbatim; they may hold a
        # secret. Keep option names only.
        message = re.sub(r"=\S+", "=…", message)
        message = re.sub(r"(invalid choice: )'[^']*'", r"\1…", message)
        message = re.sub(r"(unrecognized arguments:).*",
                         lambda m: m.group(1) + " " + " ".join(
                             w for w in m.group(0).split()[2:] if w.startswith("-")),
                         message)
        self.exit(2, f"{self.prog}: error: {message}\n")


def product_names() -> list[str]:
    """Every product of the product list, as --help and the landing page name them."""
    return [product.name.replace("_", " ") for product in PRODUCTS]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description="Prometheus exporter for Binance margin accounts "
                     "(cross, isolated pairs, sub-accounts), Portfolio Margin and Portfolio "
                     "Margin Pro accounts, USD-M and COIN-M futures accounts, and every "
                     "leveraged position's distance to its liquidation price. Products: "
                     f"{', '.join(product_names())}. Credentials come from the environment or "
                     "the --config file.")
    parser.add_argument("--web.listen-address", dest="listen", default="127.0.0.1:9944",
                        help="host:port to serve on; ':9944' or '0.0.0.0:9944' for all "
                        "interfaces (default: %(default)s)")
    parser.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics",
                        metavar="PATH", help="path of the metrics (default: %(default)s)")
    parser.add_argument("--web.config.file", dest="web_config", metavar="FILE",
                        help="TLS and basic auth settings (exporter-toolkit format)")
    parser.add_argument("--web.enable-lifecycle", dest="lifecycle", action="store_true",
                        help="accept POST /-/reload (as Prometheus does: off by default; "
                        "SIGHUP and changed files reload either way)")
    parser.add_argument("--config", "--config.file", dest="config", metavar="FILE",
                        help="YAML configuration (accounts, cache, assets)")
    parser.add_argument("--config.check", dest="check", action="store_true",
                        help="validate the configuration and exit")
    parser.add_argument("--config.plan", dest="plan", action="store_true",
                        help="print the request weight the configuration will cost per egress "
                             "and host, and exit (0: it fits the soft limit, 1: not); no "
                             "network")
    parser.add_argument("--scrape-interval", dest="scrape_interval", default="30s",
                        metavar="DURATION", help="Prometheus' scrape interval, for "
                                                 "--config.plan (default 30s)")
    parser.add_argument("--shard", dest="shard", metavar="INDEX/COUNT", default=None,
                        help="serve only the accounts whose name hashes to INDEX of COUNT "
                             "(INDEX ordinal: the host name's trailing -N, a StatefulSet pod's)")
    parser.add_argument("--demo", action="store_true",
                        help="serve simulated accounts of every product: no keys, no "
                             "network")
    parser.add_argument("--log.level", dest="log_level", default="info",
                        choices=["debug", "info", "warn", "error"],
                        help="the least severe level logged: debug, info, warn or error "
                             "(default: %(default)s)")
    parser.add_argument("--log.format", dest="log_format", default="logfmt",
                        choices=["logfmt", "json"],
                        help="logfmt (ts=... level=... source=... msg=\"...\") or json, the "
                             "same fields (default: %(default)s)")
    parser.add_argument("--healthcheck", action="store_true",
                        help="ask a running exporter's /healthz and exit 0 if it answers; with "
                        "no --web.* flags, those of process 1 (the exporter, in a container)")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser.parse_args(argv)


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
        return healthcheck(args, argv, parse_args)
    if not args.telemetry_path.startswith("/") or args.telemetry_path in ("/", "/healthz"):
        print(f"{PROG}: --web.telemetry-path: expected a path such as /metrics, not the "
              f"landing page or /healthz", file=sys.stderr)
        return 1
    setup_logging(args.log_level, args.log_format)
    release_promptly()  # before any thread: memory back to the system after each scrape

    simulator = None
    try:
        settings = load(args.config, environ(), require_accounts=not args.demo,
                        shard=args.shard)
        web = load_web(args.web_config)
        address = parse_listen_address(args.listen)
        if args.plan:
            from binance_margin_exporter.plan import parse_duration, plan

            text, fits = plan(settings, PRODUCTS, parse_duration(args.scrape_interval))
            print(text)
            return 0 if fits else 1
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

    settle = Settle()

    def scrape(scrape_timeout: float | None) -> Iterator[Metric]:
        built = reloader.built
        yield from built.exporter.families(scrape_timeout)
        yield from reloader.families()
        yield from process.collect()
        settle(built)  # what the scrape left for good leaves the collector of cycles

    try:
        server = make_server(address, scrape, web, metrics_path=args.telemetry_path,
                             reload=reloader.request if args.lifecycle else None,
                             products=product_names())
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
    threading.Thread(target=warm_up, args=(built,), name="warm-up",
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
