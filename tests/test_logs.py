"""The command line's own pieces: the log formats."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest

from binance_margin_exporter.logs import JsonFormatter, LogfmtFormatter
from tests.support.paths import ROOT


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


def test_a_test_that_runs_the_command_line_leaves_no_handler_behind(tmp_path):
    """cli.main() in a test (test_plan.py) points the root logger at the test's captured
    stderr, which pytest closes: every later record of a background thread then printed
    "--- Logging error --- ... I/O operation on closed file" among the dots. The suite's
    conftest gives pytest's handlers back after each test."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import _debug_logging  # noqa\n")
    (tmp_path / "test_two.py").write_text(
        "import logging\n"
        "from binance_margin_exporter.logs import setup_logging\n\n"
        "def test_the_command_line_sets_up_its_logging(capsys):\n"
        "    setup_logging('info')\n\n"
        "def test_the_next_test_sees_no_handler_of_it():\n"
        "    root = logging.getLogger()\n"
        "    assert not [h for h in root.handlers if type(h) is logging.StreamHandler]\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_setup_logging_hides_listen_keys_in_the_websockets_lines_once_installed():
    """websockets logs a stream's request path, whose listen key reads the stream: the
    command line's logging set-up puts the filter on (no import does it), and only once."""
    code = (
        "import logging\n"
        "from binance_margin_exporter.logs import RedactListenKeys, setup_logging\n"
        "setup_logging('debug')\n"
        "setup_logging('debug')\n"
        "for name in ('websockets.client', 'websockets.server'):\n"
        "    logger = logging.getLogger(name)\n"
        "    assert sum(isinstance(f, RedactListenKeys) for f in logger.filters) == 1\n"
        "    logger.debug('> GET /ws/%s HTTP/1.1', 'SeCrEtKeY0123')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "SeCrEtKeY0123" not in result.stderr
    assert result.stderr.count("GET /ws/<listenKey> HTTP/1.1") == 2
