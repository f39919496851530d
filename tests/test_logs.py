"""The command line's own pieces: the log formats."""

from __future__ import annotations

import json
import logging
import re

import pytest

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


FORGERIES = ["alice@x.example\rts=2026-01-01T00:00:00.000Z level=error msg=forged",
             "bob\x1b[2J\x1b[Hcleared", "nul\x00byte", "bidi \u202eexe.txt", "line\u2028sep",
             "lone \ud800 surrogate", "del\x7f and c1\x85", "tab\there \"quoted\" back\\slash"]


@pytest.mark.parametrize("value", FORGERIES)
def test_no_value_can_forge_a_logfmt_line_or_drive_a_terminal(value):
    line = LogfmtFormatter().format(with_value(value))
    assert "\n" not in line and "\r" not in line
    assert all(c.isprintable() or c == " " for c in line), repr(line)
    # one quoted msg: whatever the value says stays inside it
    assert re.fullmatch(r'ts=\S+ level=warn source=x msg="(?:[^"\\]|\\.)*"', line), line
    line.encode("utf-8")  # a lone surrogate must not fail the write


@pytest.mark.parametrize("value", FORGERIES)
def test_json_lines_escape_the_same_and_round_trip(value):
    line = JsonFormatter().format(with_value(value))
    assert all(c.isprintable() or c == " " for c in line), repr(line)
    line.encode("utf-8")
    assert json.loads(line)["msg"] == f"sub-account {value} failed"


def with_value(value: str) -> logging.LogRecord:
    return logging.LogRecord("x", logging.WARNING, __file__, 1, "sub-account %s failed",
                             (value,), None)
