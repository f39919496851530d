"""No logger of any library may print a signature: every log record is redacted as it is made.

urllib3 puts signed URLs in its DEBUG lines and in its warnings (``Failed to parse headers
(url=...&signature=...)``), and a traceback may carry one: :func:`install_redaction` sets a log
record factory that rewrites ``signature=...`` in every record's message, traceback and stack.
"""

from __future__ import annotations

import logging
import re
from typing import Any


class RedactSignatures(logging.Filter):
    """Replaces ``signature=...`` in a record's message, traceback and stack by
    ``signature=<redacted>``. :func:`install_redaction` applies it to every record of every
    logger (urllib3 puts signed URLs in its DEBUG lines and in its warnings)."""

    pattern = re.compile(r"signature=[^&\s\"')]+")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format call: the handler reports it
            return True
        if "signature=" in message:
            record.msg = self.pattern.sub("signature=<redacted>", message)
            record.args = ()
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if "signature=" in text:
                record.exc_text = self.pattern.sub("signature=<redacted>", text)
        if record.stack_info and "signature=" in record.stack_info:
            record.stack_info = self.pattern.sub("signature=<redacted>", record.stack_info)
        return True


def install_redaction() -> None:
    """Redact every log record as it is made, whichever logger makes it and whichever handlers
    there are (a filter on a logger misses the records of its children; one on a handler, the
    handlers added later). Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts_signatures", False):
        return
    redact = RedactSignatures()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact.filter(record)
        return record

    factory.redacts_signatures = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


install_redaction()
