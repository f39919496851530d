"""Secrets from files: read once, here; never part of a ``repr`` or of an error message."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from binance_margin_exporter.config.schema import ConfigError, string

log = logging.getLogger(__name__)

REDACTED = "<redacted>"
MAX_SECRET_BYTES = 64 * 1024  # an RSA-4096 PEM is 3.3 KiB


def read_secret_file(path: Any, key: str, *, base: Path | None = None,
                     files: list[str] | None = None) -> bytes:
    """Read a secret from a file; warn when group or others may read it. ``files``: where
    the path of every file read is noted (the reloader watches them for change)."""
    name = string(path, key)
    target = Path(name) if base is None else base / name
    try:
        info = target.stat()  # follows the symlink a Kubernetes Secret volume swaps
        if not stat.S_ISREG(info.st_mode):
            # a device (/dev/zero) reads forever, a FIFO blocks the start
            raise ConfigError(f"{key}: {str(target)!r} is not a regular file")
        with target.open("rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {str(target)!r}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"{key}: {str(target)!r} is larger than {MAX_SECRET_BYTES // 1024} KiB: "
                          f"not a key")
    if files is not None:
        files.append(str(target))
    if _readable_by_others(target):
        # the one answer of the docs, the compose recipe and the Kubernetes Secret volumes:
        # the exporter's group, mode 0440 (in the container: group 10001)
        log.warning(
            "%s: secret file %s is readable by group or others (mode %s); make it readable "
            "by the exporter's group alone: chgrp %d it, chmod 0440 it",
            key,
            target,
            oct(stat.S_IMODE(target.stat().st_mode)),
            os.getgid(),
        )
    return data


def _readable_by_others(path: Path) -> bool:
    """Others may read it, or a group this process is not in (a Kubernetes secret volume with
    ``fsGroup`` is group-readable by the pod's own group: that is fine)."""
    info = path.stat()
    if info.st_mode & stat.S_IRWXO:
        return True
    if info.st_mode & stat.S_IRWXG:
        return info.st_gid not in {os.getgid(), *os.getgroups()}
    return False


def secret_text(data: bytes, key: str) -> str:
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: must be ASCII text") from None
    if not text:
        raise ConfigError(f"{key}: is empty")
    if any(c.isspace() for c in text):
        raise ConfigError(f"{key}: must not contain white space")
    if not text.isprintable():  # NUL and the other control characters (/proc/self/environ)
        raise ConfigError(f"{key}: must not contain control characters")
    return text
