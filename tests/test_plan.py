"""--config.plan: the weight the configuration costs, per egress and host, before any call."""

from __future__ import annotations

import pytest

from binance_margin_exporter import cli
from binance_margin_exporter.cli import main
from binance_margin_exporter.config import ConfigError
from binance_margin_exporter.plan import parse_duration

CONFIG = """
ip_weight_soft_limit: {soft}
egress:
  - {{name: b, source_address: 127.0.0.2}}
accounts:
  - {{name: main, api_key: k, api_secret: s, isolated: false}}
  - {{name: fund, api_key: k, api_secret: s, sub_accounts: all, master: false}}
  - {{name: listed, api_key: k, api_secret: s, egress: b, master: false,
      sub_accounts: [{emails}]}}
"""


@pytest.fixture(autouse=True)
def no_log_handler(monkeypatch):
    """main's log handler would outlive the test on a stream pytest closes: a thread logging
    later in the run (the simulator's WebSocket server) then prints a "Logging error"."""
    monkeypatch.setattr(cli, "setup_logging", lambda *args: None)


def run(tmp_path, capsys, soft=9600, emails=3, *flags):
    path = tmp_path / "c.yml"
    path.write_text(CONFIG.format(soft=soft, emails=", ".join(f"s{i}@x" for i in
                                                               range(emails))))
    code = main(["--config", str(path), "--config.plan", *flags])
    return code, capsys.readouterr().out


def test_the_plan_prints_each_egress_and_host_and_fits(tmp_path, capsys):
    code, out = run(tmp_path, capsys)
    assert code == 0
    # main: 10 a fetch at 30 s, and its bars every 5 minutes: 22; the master: its summary
    # every fetch (20) and its list and status every 10 minutes (1.1)
    assert "egress default, host https://api.binance.com:" in out
    assert "cross          main" in out and "22.0 a minute" in out
    assert "21.1 a minute" in out
    # Binance's risk lists through main, the first account: 100 hourly + 1 every 10 minutes
    assert "risk_lists     main" in out and "1.8 a minute" in out
    # sub_accounts: all: per sub-account 10 per 300 s = 2 a minute; (9600 - 44.87) / 2
    assert "fund: at most 4777 sub-accounts fit" in out
    assert "declare no weight (not counted): prices" in out
    assert "egress b, host https://api.binance.com:" in out
    assert "listed: 3 sub-accounts, one round every 300 s" in out
    assert out.rstrip().endswith("fits")


def test_a_plan_over_the_soft_limit_exits_1_and_says_the_rotation(tmp_path, capsys):
    code, out = run(tmp_path, capsys, 100, 60)  # 60 listed x 2 = 120 > 100 - 21.1
    assert code == 1
    assert "OVER the soft limit" in out and "does NOT fit" in out
    rotation = 300 * 120 / (100 - 21.1)
    assert f"one round every {rotation:g} s" in out


def test_a_shorter_interval_costs_more(tmp_path, capsys):
    _, out = run(tmp_path, capsys, 9600, 3, "--scrape-interval", "15s")
    assert "cross          main" in out and "42.0 a minute" in out  # 40 + 2


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("1m", 60.0), ("15", 15.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_refused():
    with pytest.raises(ConfigError, match="--scrape-interval"):
        parse_duration("soon")
