"""TLS from the exporter-toolkit web config, with renewed certificate files picked up
without a restart."""

from __future__ import annotations

import logging
import os
import ssl
import threading

from binance_margin_exporter.config import TLSConfig

log = logging.getLogger(__name__)

MIN_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}

Stamp = tuple[tuple[int, int, int], ...]


def tls_context(tls: TLSConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSIONS[tls.min_version]
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        context.load_verify_locations(tls.client_ca_file)
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    return context


class TLSFiles:
    """The TLS context of the configured files, made again when one of them changes (as
    exporter-toolkit reads them for each connection): a certificate that cert-manager renews
    is served without a restart; renewed files that do not load leave the previous one."""

    def __init__(self, tls: TLSConfig) -> None:
        self.config = tls
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._context: ssl.SSLContext | None = None

    def _files_stamp(self) -> Stamp:
        paths = [self.config.cert_file, self.config.key_file, self.config.client_ca_file]
        stamps = []
        for path in paths:
            if path:
                info = os.stat(path)  # follows the symlink a Secret volume swaps
                stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    def context(self) -> ssl.SSLContext:
        with self._lock:
            try:
                stamp = self._files_stamp()
            except OSError:
                stamp = self._stamp  # mid-swap: keep the last good context
            if self._context is None or stamp != self._stamp:
                try:
                    self._context = tls_context(self.config)
                except (ssl.SSLError, OSError) as exc:
                    if self._context is None:
                        raise
                    log.error("TLS files changed but do not load (%s); serving the previous "
                              "certificate", type(exc).__name__)
                self._stamp = stamp  # not loaded again until they change again
            return self._context
