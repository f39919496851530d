"""Shards: ``--shard=INDEX/COUNT`` serves exactly the accounts whose name hashes to INDEX,
sub-accounts discovered through a master included; the union of the shards is every account,
and no account is in two."""

from __future__ import annotations

import hashlib

import pytest

from binance_margin_exporter.config import ConfigError, Shard
from binance_margin_exporter.config.settings import shard_of
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.demo.sub_accounts import SimulatedSubAccounts
from binance_margin_exporter.products import SIMULATED
from binance_margin_exporter.wiring import load
from tests.support.exporters import built_exporter, sample_values, scrape_text
from tests.support.keys import API_KEY, SECRET


def test_the_hash_is_sha256_of_the_utf8_name_the_same_everywhere():
    """Pinned values: Python's hash() (salted per process) or another encoding would move
    them."""
    assert [i for i in range(3) if Shard(i, 3).serves("main")] == [0]
    assert [i for i in range(3) if Shard(i, 3).serves("alice@fund.example")] == [1]
    assert [i for i in range(3) if Shard(i, 3).serves("ü@x")] == [0]
    digest = hashlib.sha256(b"s000@fund.example").digest()
    assert Shard(int.from_bytes(digest[:8], "big") % 7, 7).serves("s000@fund.example")


@pytest.mark.parametrize(("value", "expected"), [
    ("2/3", Shard(2, 3)), ({"index": 0, "count": 1}, Shard(0, 1)),
])
def test_a_shard_is_read_from_the_flag_or_the_file(value, expected):
    assert shard_of(value, "--shard") == expected


@pytest.mark.parametrize(("value", "message"), [
    ("3/3", "--shard.index: must be between 0 and 2"), ("a/3", "expected INDEX/COUNT"),
    ("1", "expected INDEX/COUNT"), ({"index": 0}, "--shard.count: expected an integer"),
])
def test_a_bad_shard_names_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        shard_of(value, "--shard")


@pytest.mark.parametrize("value", ["\u0661/\u0663", "1/\u0663", "\u00b2/3", "1/3\u00b2",
                                   "9" * 5000 + "/3", "1/" + "9" * 5000, "+1/3", " 1/3",
                                   "1/3 ", "1_0/3", "0x1/3", "-1/3"])
def test_only_ascii_digits_make_a_shard_and_every_refusal_names_the_flag(tmp_path, capsys,
                                                                         value):
    """Arabic-Indic digits were read as 1/3; a superscript or 5,000 digits were refused by a
    bare int() message that named no flag."""
    from binance_margin_exporter.cli import main

    with pytest.raises(ConfigError, match=r"^--shard(\.index|\.count)?: "):
        shard_of(value, "--shard")
    path = tmp_path / "c.yml"
    path.write_text("accounts: [{name: a, api_key: k, api_secret: s}]\n")
    assert main(["--config", str(path), f"--shard={value}", "--config.check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("binance-margin-exporter: --shard") and len(err.splitlines()) == 1


def test_ordinal_is_the_host_names_trailing_number(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "bme-binance-margin-exporter-2")
    assert shard_of("ordinal/3", "--shard") == Shard(2, 3)
    monkeypatch.setattr("socket.gethostname", lambda: "laptop")
    with pytest.raises(ConfigError, match="does not end in -NUMBER"):
        shard_of("ordinal/3", "--shard")


@pytest.fixture
def fund():
    emails = [f"s{i:03d}@fund.example" for i in range(60)]
    subs = SimulatedSubAccounts(emails, n_assets=4, n_active=2, drift=False,
                                frozen=["s005@fund.example"])
    sim = Simulator(SIMULATED, account=SimulatedAccount(10, 2, drift=False), subs=subs)
    sim.add_hmac_key(API_KEY, SECRET)
    with sim:
        yield sim


def test_three_shards_split_every_account_and_sub_account_exactly(fund, tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(f"""
base_url: {fund.base_url}
usdt_values: false
interest_rates: false
risk_lists: false
detail_max_age_seconds: 0
accounts:
  - {{name: fund, api_key: {API_KEY}, api_secret: {SECRET}, sub_accounts: all,
      isolated: false}}
  - {{name: alpha, api_key: {API_KEY}, api_secret: {SECRET}, isolated: false}}
  - {{name: beta, api_key: {API_KEY}, api_secret: {SECRET}, isolated: false}}
  - {{name: gamma, api_key: {API_KEY}, api_secret: {SECRET}, isolated: false}}
""")
    served: list[set[str]] = []
    for index in range(3):
        with built_exporter(load(str(path), {}, shard=f"{index}/3")) as built:
            text = scrape_text(built, None)
        values = sample_values(text)
        labels = {dict(k[1])["account"] for k in values if "account" in dict(k[1])}
        served.append(labels)
        # what the down alert compares with the targets it scrapes
        assert values[("binance_margin_exporter_shards", ())] == 3
    everyone = {"fund", "alpha", "beta", "gamma", *fund.subs.emails}
    assert set().union(*served) == everyone
    assert sum(len(s) for s in served) == len(everyone)  # none in two shards
    assert all(served)  # each shard serves some
    for index, labels in enumerate(served):
        assert all(Shard(index, 3).serves(name) for name in labels)
    with built_exporter(load(str(path), {})) as built:
        text = scrape_text(built, None)
    assert "binance_margin_exporter_shards" not in text  # only with shards
