"""memory.py: malloc gives memory back after each scrape (glibc), set before any thread."""

from __future__ import annotations

import platform
import sys

from binance_margin_exporter import cli, memory


def test_the_thresholds_are_set_where_the_c_library_is_glibc():
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert memory.release_promptly() is glibc


def test_the_exporter_sets_them_before_it_starts(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "release_promptly", lambda: calls.append(True) or True)
    # its handler would outlive the test (on a stream pytest closes)
    monkeypatch.setattr(cli, "setup_logging", lambda *args: None)
    config = tmp_path / "config.yml"
    config.write_text("accounts: [{name: a, api_key: k, api_secret: s}]\n")
    assert cli.main(["--config", str(config), "--config.check"]) == 0
    assert calls == [True]
