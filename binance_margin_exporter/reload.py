"""Reloading the configuration without a restart: on SIGHUP, on ``POST /-/reload``, and when a
file it was read from changes; and the exporter's own metrics of it."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from binance_margin_exporter.config import ConfigError, WebConfig, environ, load_web_config
from binance_margin_exporter.web.server import tls_context
from binance_margin_exporter.wiring import Built, build_exporter, load, warm_up

log = logging.getLogger(__name__)


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


def load_web(path: str | None) -> WebConfig:
    """The web configuration of ``--web.config.file`` (none: plain HTTP, no auth), its TLS
    files loaded once to be sure they load."""
    web = load_web_config(path) if path else WebConfig()
    if web.tls is not None:
        check_tls(web)
    return web


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
                settings = load(self.args.config, environ())
                web = load_web(self.args.web_config)
                if (web.tls is None) != (self.web.tls is None):
                    raise ConfigError("--web.config.file: turning TLS on or off needs a restart")
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
        threading.Thread(target=warm_up, args=(built,), name="warm-up",
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
