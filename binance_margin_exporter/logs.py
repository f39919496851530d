"""Logging: Prometheus' own log format (logfmt, or JSON), configured once, by the command line.

Values come from outside (sub-account e-mails, Binance's messages, asset names): every control
character, line or paragraph separator, invisible format character (a bidi override) and lone
surrogate is escaped, so that no value can forge a log line, move the cursor of a terminal, or
fail the write.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable

LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error",
          "CRITICAL": "error"}
SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # control, format, surrogate, separators
NON_ASCII = re.compile(r"[^\x20-\x7e]")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def escape(value: str) -> str:
    """``value`` with backslash, quote and every unsafe character escaped (``\\n``,
    ``\\u202e``)."""
    return "".join(SHORT_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if _unsafe(c) else c)
                   for c in value)


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
        escaped = escape(value)
        if escaped and escaped == value and not any(c in value for c in " ="):
            return value
        return f'"{escaped}"'


class JsonFormatter(LogfmtFormatter):
    """One JSON object a line, with the same fields."""

    def format(self, record: logging.LogRecord) -> str:
        text = json.dumps(self.fields(record), ensure_ascii=False)
        # json escapes what is below U+0020; the rest of the unsafe ones too, as \uXXXX
        return NON_ASCII.sub(lambda m: f"\\u{ord(m.group()):04x}" if _unsafe(m.group())
                             else m.group(), text)


WEBSOCKETS_LOGGERS = ("websockets.client", "websockets.server")


class RedactListenKeys(logging.Filter):
    """websockets logs the request path (the listen key: who has it reads the stream);
    :func:`setup_logging` puts this on the websockets loggers."""

    pattern = re.compile(r"/ws/[^\s'\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/ws/" in message:
            record.msg = self.pattern.sub("/ws/<listenKey>", message)
            record.args = ()
        return True



def setup_logging(level: str, fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": "WARNING"}.get(level, level.upper()))
    # urllib3 logs full request URLs at DEBUG: those carry signatures.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    redact_listen_keys()


def redact_listen_keys() -> None:
    """Put :class:`RedactListenKeys` on the websockets loggers (once)."""
    for name in WEBSOCKETS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactListenKeys) for f in logger.filters):
            logger.addFilter(RedactListenKeys())


SHORT = 200  # characters of an outside value a log line carries


def shorten(text: str, limit: int = SHORT) -> str:
    """``text`` cut to ``limit`` characters (and said so): a value from outside (a stream's
    status, an error message) cannot make a log line of megabytes."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class Throttled:
    """One line per kind (its format string, or a ``kind`` of a bounded set) every ``period``
    seconds; the next line says how many of its kind were left out meanwhile. 10,000 events a
    second make a line a minute, not 10,000."""

    def __init__(self, logger: logging.Logger, period: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.period = period
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (logged at, left out since)

    def log(self, level: int, msg: str, *args: object, kind: str = "") -> bool:
        """Log (True) or count it as left out (False)."""
        kind = kind or msg
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.period:
                self._kinds[kind] = (seen[0], seen[1] + 1)
                return False
            self._kinds[kind] = (now, 0)
        if seen is not None and seen[1]:
            msg += " (%d more like it left out in the last %.0f s)"
            args = (*args, seen[1], now - seen[0])
        self.logger.log(level, msg, *args)
        return True

    def info(self, msg: str, *args: object, kind: str = "") -> bool:
        return self.log(logging.INFO, msg, *args, kind=kind)

    def warning(self, msg: str, *args: object, kind: str = "") -> bool:
        return self.log(logging.WARNING, msg, *args, kind=kind)
