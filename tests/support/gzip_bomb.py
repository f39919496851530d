"""A gzip bomb: a small body that decodes to many MiB."""

from __future__ import annotations

import zlib


def gzip_bomb(decoded_mib: int) -> bytes:
    """A gzip body that decodes to ``decoded_mib`` MiB of zeros (about 1 KiB a MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(decoded_mib)]
    parts.append(compressor.flush())
    return b"".join(parts)
