"""Logging: Prometheus' own log format (logfmt, or JSON), configured once, by the command line."""

from __future__ import annotations

import json
import logging
import sys
import time

LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error",
          "CRITICAL": "error"}


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
        if value and not any(c in value for c in ' "=\n\t\\'):
            return value
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'


class JsonFormatter(LogfmtFormatter):
    """One JSON object a line, with the same fields."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), ensure_ascii=False)


def setup_logging(level: str, fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": "WARNING"}.get(level, level.upper()))
    # urllib3 logs full request URLs at DEBUG: those carry signatures.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
