"""The command line's own pieces: the log formats."""

from __future__ import annotations

import json
import logging
import re

from binance_margin_exporter.logs import JsonFormatter, LogfmtFormatter


def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("binance_margin_exporter.x", level, __file__, 1, message, (), None)


def test_logfmt_is_rfc3339_lower_case_levels_and_quoted_values():
    line = LogfmtFormatter().format(record('account main: HTTP 503 "busy"\nagain'))
    assert re.fullmatch(
        r'ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warn source=binance_margin_exporter\.x '
        r'msg="account main: HTTP 503 \\"busy\\"\\nagain"', line), line
    assert "level=info msg=" not in LogfmtFormatter().format(record("plain", logging.INFO))
    assert LogfmtFormatter().format(record("plain", logging.INFO)).endswith(
        "level=info source=binance_margin_exporter.x msg=plain")
    for level, name in ((logging.DEBUG, "debug"), (logging.ERROR, "error")):
        assert f"level={name} " in LogfmtFormatter().format(record("x", level))


def test_json_logs_carry_the_same_fields():
    fields = json.loads(JsonFormatter().format(record("a = b")))
    assert fields["level"] == "warn" and fields["msg"] == "a = b"
    assert fields["source"] == "binance_margin_exporter.x" and fields["ts"].endswith("Z")
