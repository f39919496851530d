"""--config.plan: the weight the configuration costs, per egress and host, before any call."""

from __future__ import annotations

import logging

import pytest

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
def _root_logger_put_back():
    """main() sets the root logger's handler to this test's captured stderr: took away after
    the test, or a later test's thread logging to it meets a closed file ("Logging error")."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def run(tmp_path, capsys, soft=9600, emails=3, *flags):
    path = tmp_path / "c.yml"
    path.write_text(CONFIG.format(soft=soft, emails=", ".join(f"s{i}@x" for i in
                                                               range(emails))))
    code = main(["--config", str(path), "--config.plan", *flags])
    return code, capsys.readouterr().out


def test_the_plan_prints_each_egress_and_host_and_fits(tmp_path, capsys):
    code, out = run(tmp_path, capsys)
    assert code == 0
    assert "egress default, host https://api.binance.com:" in out
    # main: its account (10) a fetch at 30 s, its bars (10) every 5 minutes, the interest
    # rates (100) hourly: 20 + 2 + 1.67
    assert "cross          main                          23.7 a minute" in out
    # the master with all: its summary every fetch (20), its status and list every 10
    # minutes (1.1), and the rotation's rounding: at most one detail a fetch more (20)
    assert "sub_accounts   fund                          41.1 a minute" in out
    # Binance's risk lists through main, the first account: 100 hourly + 1 every 10 minutes
    assert "risk_lists     main                           1.8 a minute" in out
    # the prices: 4 a fetch, once for all the accounts (on the first)
    assert "prices         main                           8.0 a minute" in out
    # the clock of each egress: 1 every 5 minutes
    assert "clock          (every host)                   0.2 a minute" in out
    # its ledger: interest and liquidations (1 each) every 5 minutes
    assert "margin_ledger  main                           0.4 a minute" in out
    assert "total 75.1 of 9600 a minute (fits)" in out
    # at start, at once: main's bars (10), its rates (100), the risk lists (100 + 1), the
    # master's status (10) and list (1), the clock (1)
    assert "at start 223.0 more: the calls of every 5 minutes to every day are all due at " \
        "once (the first minute at most 298.1)" in out
    # sub_accounts: all: per sub-account 10 per 300 s = 2 a minute; (9600 - 75.07) / 2
    assert "fund: at most 4762 sub-accounts fit" in out
    assert "declare no weight" not in out  # every product declares its weight
    assert "egress b, host https://api.binance.com:" in out
    # 3 listed: ceil(3 x 30 / 300) = 1 detail a fetch, 20 a minute: 6 at the even pace and
    # 14 of rounding, with the summary (20) and the status (1)
    assert "sub_accounts   listed                        35.0 a minute" in out
    assert "2.00 a minute a sub-account x 3 = 6.0 a minute" in out
    assert "total 41.2 of 9600 a minute (fits)" in out
    assert "listed: 3 sub-accounts, one round every 300 s" in out
    assert out.rstrip().endswith("fits")


def test_a_plan_over_the_soft_limit_exits_1_and_says_the_rotation(tmp_path, capsys):
    code, out = run(tmp_path, capsys, 100, 60)  # 60 listed x 2 = 120 > 100 - 21.2
    assert code == 1
    assert "OVER the soft limit" in out and "does NOT fit" in out
    rotation = 300 * 120 / (100 - 21.2)
    assert f"one round every {rotation:g} s" in out


def test_a_first_minute_over_the_soft_limit_is_said(tmp_path, capsys):
    code, out = run(tmp_path, capsys, 250, 3)  # 75.1 a minute, 298.1 in the first
    assert code == 0
    assert "(the first minute at most 298.1: OVER the soft limit, the requests pause until " \
        "the next minute)" in out


def test_a_shorter_interval_costs_more(tmp_path, capsys):
    _, out = run(tmp_path, capsys, 9600, 3, "--scrape-interval", "15s")
    assert "cross          main                          43.7 a minute" in out  # 40 + 2 + 1.67


FUTURES_AND_PM = """
accounts:
  - {name: fut, api_key: k, api_secret: s, type: futures, markets: [um, cm]}
  - {name: pm, api_key: k, api_secret: s, type: portfolio_margin}
  - {name: pro, api_key: k, api_secret: s, type: portfolio_margin_pro, markets: [um]}
"""


def test_futures_and_portfolio_margin_are_counted_on_their_own_hosts(tmp_path, capsys):
    """It printed "total 0.0 ... fits": positions, futures, Portfolio Margin and PM Pro
    declared nothing."""
    path = tmp_path / "c.yml"
    path.write_text(FUTURES_AND_PM)
    assert main(["--config", str(path), "--config.plan"]) == 0
    out = capsys.readouterr().out
    blocks = {block.split(":\n", 1)[0]: block for block in out.split("egress default, host ")}
    # fapi: the um account (5) and positions (5) of fut a fetch, pro's positions (5), fut's
    # um income (30) every 5 minutes
    assert "total 36.0 of 1920 a minute (fits)" in blocks["https://fapi.binance.com"]
    # dapi: the cm account (5) and positions (1) of fut, its cm income (20) every 5 minutes
    assert "total 16.0 of 1920 a minute (fits)" in blocks["https://dapi.binance.com"]
    # papi: account and balance (20 each) and both markets' positions (5 + 1) a fetch, the
    # stream's listen key (a PUT every 30 minutes, a POST a day)
    papi = blocks["https://papi.binance.com"]
    assert "portfolio      pm                            80.0 a minute" in papi
    assert "positions      pm                            12.0 a minute" in papi
    # its ledger: margin interest and liquidations (1 each), um and cm income (30 each)
    # every 5 minutes
    assert "portfolio_ledger pm" in papi and "12.4 a minute" in papi
    assert "portfolio_stream pm" in papi and "total 104.4 of 4800 a minute (fits)" in papi
    # api: PM Pro's account (5) a fetch, and the clock
    assert "portfolio_pro  pro                           10.0 a minute" in out
    assert "total 10.2 of 9600 a minute (fits)" in blocks["https://api.binance.com"]


def test_an_undeclared_product_fails_the_plan(tmp_path, capsys):
    """Declaring the weight is required: a product without it fails, it is not counted 0."""
    from binance_margin_exporter.collectors.product import Product
    from binance_margin_exporter.config import load_settings
    from binance_margin_exporter.plan import plan
    from binance_margin_exporter.products import PRODUCTS

    class Undeclared(Product):
        name = "undeclared"
        types = ("cross",)

    path = tmp_path / "c.yml"
    path.write_text(CONFIG.format(soft=9600, emails="s@x"))
    settings = load_settings(str(path), {}, PRODUCTS)
    with pytest.raises(NotImplementedError, match="undeclared"):
        plan(settings, (*PRODUCTS, Undeclared()), 30.0)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("1m", 60.0), ("15", 15.0),
                                               ("1s", 1.0), ("24h", 86400.0),
                                               ("1500ms", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_refused():
    with pytest.raises(ConfigError, match="--scrape-interval"):
        parse_duration("soon")


@pytest.mark.parametrize("text", ["9" * 400, "1" + "0" * 308 + "h", "1" + "0" * 5000, "0", "0.5s",
                                  "25h", "999ms", "\u0661\u0665s", "30 s", ""])
def test_an_absurd_interval_is_refused_in_one_line(tmp_path, capsys, text):
    """400 nines divided by an infinity (ZeroDivisionError), 1e308 hours overflowed: both
    tracebacks; now the flag's usual one-line refusal."""
    path = tmp_path / "c.yml"
    path.write_text(CONFIG.format(soft=9600, emails="s@x"))
    code = main(["--config", str(path), "--config.plan", "--scrape-interval", text])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("binance-margin-exporter: --scrape-interval: expected a duration")
    assert "Traceback" not in err and len(err.splitlines()) == 1
