"""``--healthcheck``: ask a running exporter's ``/healthz`` (a container's HEALTHCHECK)."""

from __future__ import annotations

import argparse
import http.client
import ssl
from collections.abc import Callable, Sequence

from binance_margin_exporter.config import ConfigError, WebConfig, load_web_config
from binance_margin_exporter.web.server import parse_listen_address

TIMEOUT_SECONDS = 3.0


def healthcheck(args: argparse.Namespace, argv: Sequence[str],
                parse_args: Callable[[Sequence[str]], argparse.Namespace]) -> int:
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
        if web.tls is None:
            conn: http.client.HTTPConnection = http.client.HTTPConnection(
                host, port, timeout=TIMEOUT_SECONDS)
        elif web.tls.client_auth_type == "RequireAndVerifyClientCert":
            # it must accept connections; /healthz itself needs a client certificate
            http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS).connect()
            return 0
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # our own process, on this machine
            conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT_SECONDS,
                                               context=context)
        try:
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ConfigError, ValueError):
        ok = False
    return 0 if ok else 1
