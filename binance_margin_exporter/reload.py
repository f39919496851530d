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
from binance_margin_exporter.web.routes import TooSoon
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
    REQUEST_SECONDS = 5.0  # POST /-/reload: at most one every this long
    # what POST /-/reload answers of a refused configuration: the reason is in the log only
    GENERIC_FAILURE = "the configuration was refused; the exporter's log says why"

    def __init__(self, args: argparse.Namespace, built: Built, web: WebConfig) -> None:
        self.args = args
        self.built = built
        self.web = web
        self.server: Any = None  # set once the server exists
        self._lock = threading.Lock()
        self.ok = True
        self.success_at = time.time()
        self._stamp = self._files_stamp()
        self._requested_at: float | None = None  # monotonic: the last POST /-/reload
        self._refused = 0  # POST /-/reload refused since the last one taken

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
                settings = load(self.args.config, environ(),
                                shard=getattr(self.args, "shard", None))
                web = load_web(self.args.web_config)
                if (web.tls is None) != (self.web.tls is None):
                    raise ConfigError("--web.config.file: turning TLS on or off needs a restart")
                built = build_exporter(settings, self.built)
            except (ConfigError, ValueError) as exc:
                self.ok = False
                log.error("reload (%s) refused, the running configuration stays: %s", why, exc)
                return str(exc)
            except Exception as exc:  # noqa: BLE001 - the watch thread must live on
                self.ok = False
                log.error("reload (%s) failed unexpectedly (%s), the running configuration "
                          "stays (please report this)", why, type(exc).__name__)
                return f"unexpected {type(exc).__name__}"
            old, self.built, self.web = self.built, built, web
            if self.server is not None:
                self.server.set_web(web)
            if old.executor is not built.executor:
                # scrapes that began before the swap still submit to it: it closes once they
                # are done (no scrape outlives the request timeout)
                timer = threading.Timer(old.settings.request_timeout_seconds + 5.0,
                                        old.executor.shutdown)
                timer.daemon = True
                timer.start()
            self.ok = True
            self.success_at = time.time()
            self._stamp = self._files_stamp()
        log.info("configuration reloaded (%s): %d account(s)", why, len(settings.accounts))
        threading.Thread(target=warm_up, args=(built,), name="warm-up",
                         daemon=True).start()
        return None

    def request(self) -> str | None:
        """``POST /-/reload`` (with ``--web.enable-lifecycle``): at most one every
        ``REQUEST_SECONDS`` (:class:`TooSoon` otherwise: a ``429``, logged once a period
        however many come); None on success, else a generic failure (the detail is logged:
        an HTTP answer must not echo what the files say)."""
        now = time.monotonic()
        with self._lock:
            if self._requested_at is not None and \
                    now - self._requested_at < self.REQUEST_SECONDS:
                self._refused += 1
                if self._refused == 1:
                    log.warning("POST /-/reload refused: one every %.0f s at most (more "
                                "refused within it are counted, not logged)",
                                self.REQUEST_SECONDS)
                raise TooSoon(f"one reload every {self.REQUEST_SECONDS:.0f} s at most",
                              self._requested_at + self.REQUEST_SECONDS - now)
            refused, self._refused = self._refused, 0
            self._requested_at = now
        if refused > 1:
            log.warning("%d POST /-/reload refused since the last one accepted (within "
                        "its %.0f s)", refused, self.REQUEST_SECONDS)
        return None if self.reload("POST /-/reload") is None else self.GENERIC_FAILURE

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
