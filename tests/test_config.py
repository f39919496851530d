"""Configuration: every bad input stops the start with one line naming the key."""

from __future__ import annotations

import logging
import os
import textwrap

import pytest

from binance_margin_exporter.config import (
    ConfigError,
    TLSConfig,
    WebConfig,
    load_web_config,
)
from binance_margin_exporter.products import PRODUCTS
from binance_margin_exporter.wiring import load as load_settings
from tests.support.keys import SECRET


def write(tmp_path, text: str, name: str = "config.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def secret_file(tmp_path, name: str, content: str, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(content + "\n")
    os.chmod(path, mode)
    return str(path)


ACCOUNT = "accounts: [{name: main, api_key: k, api_secret: s}]\n"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("bogus: 1\n" + ACCOUNT, "bogus: unknown key"),
        ("recv_window_ms: 70000\n" + ACCOUNT, "recv_window_ms: must be between 1 and 60000"),
        ("recv_window_ms: '5000'\n" + ACCOUNT, "recv_window_ms: expected an integer"),
        ("request_timeout_seconds: 0\n" + ACCOUNT, "request_timeout_seconds: must be between"),
        ("request_timeout_seconds: fast\n" + ACCOUNT, "request_timeout_seconds: expected a number"),
        ("cache_ttl_seconds: -1\n" + ACCOUNT, "cache_ttl_seconds: must be between"),
        ("include_zero_assets: 'yes'\n" + ACCOUNT, "include_zero_assets: expected true or false"),
        ("assets: BTC\n" + ACCOUNT, "assets: expected a non-empty list"),
        ("assets: [BTC, BTC]\n" + ACCOUNT, "assets: lists an asset twice"),
        ("assets: [BTC, 3]\n" + ACCOUNT, "assets[1]: expected a non-empty string"),
        ("base_url: ftp://x\n" + ACCOUNT, "base_url: expected an http(s) URL"),
        ("ip_weight_soft_limit: 20000\n" + ACCOUNT, "ip_weight_soft_limit: must be between"),
        ("fetch_concurrency: 0\n" + ACCOUNT, "fetch_concurrency: must be between 1 and 256"),
        ("usdt_values: 1\n" + ACCOUNT, "usdt_values: expected true or false"),
        ("interest_rates: 'off'\n" + ACCOUNT, "interest_rates: expected true or false"),
        ("accounts: [{name: a, api_key: k, api_secret: s, isolated: 'no'}]\n",
         "accounts[0].isolated: expected true or false"),
        ("accounts: [{name: a, api_key: k, api_secret: s, type: options}]\n",
         "accounts[0].type: expected one of cross, portfolio_margin, "
         "portfolio_margin_pro, futures"),
        ("accounts: [{name: a, api_key: k, api_secret: s, sub_accounts: some}]\n",
         "accounts[0].sub_accounts: expected all or a non-empty list"),
        ("accounts: [{name: a, api_key: k, api_secret: s, sub_accounts: [x@y, x@y]}]\n",
         "accounts[0].sub_accounts: lists an e-mail twice"),
        ("accounts: [{name: a, api_key: k, api_secret: s, master: false}]\n",
         "accounts[0].master: false leaves nothing to read"),
        ("accounts: [{name: a, api_key: k, api_secret: s, type: portfolio_margin, "
         "sub_accounts: all}]\n", "accounts[0].sub_accounts: only for type cross"),
        ("papi_base_url: papi\n" + ACCOUNT, "papi_base_url: expected an http(s) URL"),
        ("accounts: main\n", "accounts: expected a non-empty list"),
        ("accounts: [main]\n", "accounts[0]: expected a mapping"),
        ("accounts: [{api_key: k, api_secret: s}]\n", "accounts[0].name: expected a non-empty"),
        ("accounts: [{name: a, api_secret: s}]\n", "accounts[0].api_key: missing"),
        ("accounts: [{name: a, api_key: k}]\n", "accounts[0].api_secret: missing"),
        ("accounts: [{name: a, api_key: k, api_secret: s, colour: red}]\n",
         "accounts[0].colour: unknown key"),
        ("accounts: [{name: a, api_key: k, api_secret: s, api_secret_file: /x}]\n",
         "accounts[0]: set only one of api_secret, api_secret_file"),
        ("accounts: [{name: a, api_key: k, api_secret_file: /nonexistent/s}]\n",
         "accounts[0].api_secret_file: cannot read '/nonexistent/s': No such file"),
        ("accounts: [{name: a, api_key: k, api_secret: s}, "
         "{name: a, api_key: k2, api_secret: t}]\n",
         "accounts[1].name: duplicate account name 'a'"),
        ("accounts: [{name: a, api_key: k, api_secret: s, private_key_passphrase_file: /p}]\n",
         "accounts[0].private_key_passphrase_file: only with private_key_file"),
        ("accounts: [{name: a, api_key: 'k k', api_secret: s}]\n",
         "accounts[0].api_key: must not contain white space"),
        ("- just\n- a list\n", "--config: the top level must be a mapping"),
        ("accounts: [{name: a\n", "--config:"),
    ],
)
def test_bad_config_names_the_key(tmp_path, yaml_text, message):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, yaml_text), {})
    text = str(info.value)
    assert text.startswith(message), text  # the key first, then what is wrong with it
    assert "\n" not in text


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_settings(write(tmp_path, "cache_ttl_seconds: 5\naccounts: [{name: a\n"), {})


def test_missing_config_file():
    with pytest.raises(ConfigError, match=r"--config: cannot read '/nonexistent\.yml'"):
        load_settings("/nonexistent.yml", {})


def test_no_credentials_names_the_variable_and_demo():
    with pytest.raises(ConfigError) as info:
        load_settings(None, {})
    assert "BINANCE_API_KEY" in str(info.value) and "--demo" in str(info.value)


def test_environment_account_and_defaults():
    settings = load_settings(None, {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"})
    (account,) = settings.accounts
    assert (account.name, account.api_key, account.api_secret) == ("default", "k", "s")
    assert settings.base_url == "https://api.binance.com"
    assert (settings.recv_window_ms, settings.request_timeout_seconds,
            settings.cache_ttl_seconds) == (5000, 5.0, 10.0)
    assert settings.option("include_zero_assets") is False
    assert settings.option("assets") is None


def test_environment_files(tmp_path):
    env = {"BINANCE_API_KEY_FILE": secret_file(tmp_path, "key", "the-key"),
           "BINANCE_API_SECRET_FILE": secret_file(tmp_path, "secret", SECRET)}
    (account,) = load_settings(None, env).accounts
    assert (account.api_key, account.api_secret) == ("the-key", SECRET)


def test_environment_error_names_the_variable():
    with pytest.raises(ConfigError, match="BINANCE_API_SECRET: missing"):
        load_settings(None, {"BINANCE_API_KEY": "k"})
    with pytest.raises(ConfigError, match="BINANCE_API_SECRET_FILE: cannot read"):
        load_settings(None, {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET_FILE": "/nope"})


def test_base_url_from_environment_overrides_everywhere(tmp_path):
    path = write(tmp_path, "base_url: https://api1.binance.com\n" + ACCOUNT)
    settings = load_settings(path, {"BINANCE_BASE_URL": "http://127.0.0.1:1234/"})
    assert settings.base_url == "http://127.0.0.1:1234"


def test_full_yaml(tmp_path):
    secret_file(tmp_path, "b.secret", "sb")
    path = write(tmp_path, """
        base_url: https://api1.binance.com
        recv_window_ms: 10000
        request_timeout_seconds: 3
        cache_ttl_seconds: 20
        include_zero_assets: true
        assets: [BTC, USDT]
        accounts:
          - {name: a, api_key: ka, api_secret: sa}
          - {name: b, api_key: kb, api_secret_file: b.secret}
    """)
    settings = load_settings(path, {})
    assert [a.name for a in settings.accounts] == ["a", "b"]
    assert settings.accounts[1].api_secret == "sb"  # relative to the config file
    assert settings.option("assets") == ("BTC", "USDT")
    assert (settings.recv_window_ms, settings.cache_ttl_seconds) == (10000, 20.0)


def test_repr_redacts_secrets(tmp_path):
    settings = load_settings(None, {"BINANCE_API_KEY": "KEYKEYKEY", "BINANCE_API_SECRET": SECRET})
    assert SECRET not in repr(settings) and "KEYKEYKEY" not in repr(settings)
    assert "<redacted>" in repr(settings)


def test_world_readable_secret_file_warns(tmp_path, caplog):
    env = {"BINANCE_API_KEY": "k",
           "BINANCE_API_SECRET_FILE": secret_file(tmp_path, "s", SECRET, mode=0o644)}
    with caplog.at_level(logging.WARNING):
        load_settings(None, env)
    assert any("readable by group or others" in r.getMessage() for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    # the advice the README and the compose recipe give (group 10001 in the container)
    assert any(r.getMessage().endswith(f"chgrp {os.getgid()} it, chmod 0440 it")
               for r in caplog.records)


def test_private_key_account(tmp_path):
    key = secret_file(tmp_path, "key.pem", "-----BEGIN PRIVATE KEY-----")
    path = write(tmp_path, f"accounts: [{{name: a, api_key: k, private_key_file: {key}}}]\n")
    (account,) = load_settings(path, {}).accounts
    assert account.private_key_pem.startswith(b"-----BEGIN") and account.api_secret is None


def test_relative_private_key_file_is_read_beside_the_config(tmp_path, monkeypatch):
    (tmp_path / "keys").mkdir()
    secret_file(tmp_path / "keys", "key.pem", "-----BEGIN PRIVATE KEY-----")
    path = write(tmp_path, "accounts: [{name: a, api_key: k, private_key_file: keys/key.pem}]\n")
    monkeypatch.chdir("/")  # not the config's directory
    (account,) = load_settings(path, {}).accounts
    assert account.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_private_key_and_passphrase_from_the_environment(tmp_path):
    env = {"BINANCE_API_KEY": "k",
           "BINANCE_PRIVATE_KEY_FILE": secret_file(tmp_path, "key.pem", "-----BEGIN"),
           "BINANCE_PRIVATE_KEY_PASSPHRASE_FILE": secret_file(tmp_path, "pass", "horse")}
    (account,) = load_settings(None, env).accounts
    assert account.private_key_pem.startswith(b"-----BEGIN")
    assert account.private_key_passphrase == b"horse"  # the file's final newline dropped


def test_account_kinds(tmp_path):
    path = write(tmp_path, """
        papi_base_url: https://papi.example
        accounts:
          - {name: fund, api_key: k, api_secret: s, sub_accounts: all, master: false}
          - {name: desk, api_key: k, api_secret: s, sub_accounts: [a@x.example, b@x.example]}
          - {name: pm, api_key: k, api_secret: s, type: portfolio_margin}
    """)
    settings = load_settings(path, {})
    fund, desk, pm = settings.accounts
    assert (fund.option("sub_accounts"), fund.option("master")) == ("all", False)
    assert (desk.option("sub_accounts"), desk.option("master"), desk.type) == (
        ("a@x.example", "b@x.example"), True, "cross")
    assert pm.type == "portfolio_margin"
    # which products read each account: the product list decides
    assert [reading(a, settings) for a in settings.accounts] == [
        ["sub_accounts", "risk_lists", "prices"],
        ["cross", "isolated", "sub_accounts", "risk_lists", "margin_ledger",
         "margin_risk_stream", "prices"],
        # its REST host is not Binance's: no stream to Binance's
        ["portfolio", "positions", "portfolio_ledger"]]
    assert settings.option("papi_base_url") == "https://papi.example"
    env = {"BINANCE_BASE_URL": "http://127.0.0.1:1"}
    assert load_settings(path, env).option("papi_base_url") == "http://127.0.0.1:1"  # one host


def reading(account, settings) -> list[str]:
    return [p.name for p in PRODUCTS if p.reads(account, settings)]


def test_fetch_concurrency(tmp_path):
    assert load_settings(write(tmp_path, ACCOUNT), {}).fetch_concurrency == 64
    path = write(tmp_path, "fetch_concurrency: 8\n" + ACCOUNT)
    assert load_settings(path, {}).fetch_concurrency == 8


def test_web_config(tmp_path):
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    path = write(tmp_path, """
        tls_server_config: {cert_file: c.pem, key_file: k.pem}
        basic_auth_users: {prom: $2b$10$abcdefghijklmnopqrstuuJ9Ob3nN5ZvJ.vCl0vC5f0GgGgGgGgGg}
    """, "web.yml")
    web = load_web_config(path)
    assert web.tls.cert_file == str(tmp_path / "c.pem")
    assert web.tls.min_version == "TLS12"
    assert list(web.basic_auth_users) == ["prom"]
    path = write(tmp_path, "tls_server_config: {cert_file: c.pem, key_file: k.pem, "
                           "min_version: TLS13}\n", "web13.yml")
    assert load_web_config(path).tls.min_version == "TLS13"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("tls_server_config: {cert_file: nope.pem, key_file: nope.pem}\n",
         "tls_server_config.cert_file: no such file"),
        ("tls_server_config: {key_file: k.pem}\n", "tls_server_config.cert_file: missing"),
        ("tls_server_config: {cert_file: c.pem, key_file: c.pem, client_auth_type: Maybe}\n",
         "tls_server_config.client_auth_type: expected one of"),
        ("tls_server_config: {cert_file: c.pem, key_file: c.pem, "
         "client_auth_type: RequireAndVerifyClientCert}\n",
         "tls_server_config.client_ca_file: required"),
        ("tls_server_config: {cert_file: c.pem, key_file: c.pem, min_version: TLS11}\n",
         "tls_server_config.min_version: expected TLS12 or TLS13"),
        ("basic_auth_users: {prom: plaintext}\n", "basic_auth_users.prom: expected a bcrypt"),
        ("basic_auth_users: {prom: $2b$10$short}\n", "basic_auth_users.prom: expected a bcrypt"),
        ("tls: {}\n", "tls: unknown key"),
        ("tls_server_config: {cert_file: c.pem, key_file: c.pem, cipher_suites: [x]}\n",
         "tls_server_config.cipher_suites: unknown key"),
    ],
)
def test_bad_web_config(tmp_path, yaml_text, message):
    (tmp_path / "c.pem").write_text("x")
    with pytest.raises(ConfigError) as info:
        load_web_config(write(tmp_path, yaml_text, "web.yml"))
    assert str(info.value).startswith(message), str(info.value)


def test_group_readable_secret_warns_only_for_a_foreign_group(tmp_path, caplog):
    path = secret_file(tmp_path, "s", SECRET, mode=0o640)
    env = {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET_FILE": path}
    with caplog.at_level(logging.WARNING):
        load_settings(None, env)  # our own group (a Kubernetes fsGroup): fine
    assert not any("readable" in r.getMessage() for r in caplog.records)
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another group")
    os.chown(path, -1, 54321)
    with caplog.at_level(logging.WARNING):
        load_settings(None, env)
    assert any("readable by group or others" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("key", "low", "high"), [
    ("recv_window_ms", 1, 60000), ("request_timeout_seconds", 0.1, 60),
    ("cache_ttl_seconds", 0, 3600), ("max_response_bytes", 4096, 1 << 30),
    ("ip_weight_soft_limit", 10, 12000), ("fetch_concurrency", 1, 256)])
def test_the_bounds_of_every_number_are_inclusive(tmp_path, key, low, high):
    for value in (low, high):
        settings = load_settings(write(tmp_path, f"{key}: {value}\n" + ACCOUNT), {})
        assert getattr(settings, key) == value
    small = low / 10 if isinstance(low, float) else low - 1
    for value in (small, high * 2):
        with pytest.raises(ConfigError) as info:
            load_settings(write(tmp_path, f"{key}: {value}\n" + ACCOUNT), {})
        assert str(info.value).startswith(f"{key}: must be between {low} and {high}, got")


def test_a_bad_base_url_from_the_environment_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"BINANCE_BASE_URL": "ftp://x", "BINANCE_API_KEY": "k",
                             "BINANCE_API_SECRET": "s"})
    assert str(info.value) == ("BINANCE_BASE_URL: expected an http(s) URL such as "
                               "https://api.binance.com")


def test_an_empty_config_file_is_the_environment_account(tmp_path):
    path = write(tmp_path, "")
    (account,) = load_settings(path, {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"}).accounts
    assert (account.name, account.api_key, account.api_secret) == ("default", "k", "s")


def test_account_repr_names_the_signing_kind_and_nothing_secret():
    from binance_margin_exporter.config import AccountConfig

    assert repr(AccountConfig("a", "KEY", api_secret="SECRET")) == \
        "AccountConfig(name='a', api_key=<redacted>, signing=hmac)"
    assert repr(AccountConfig("b", "KEY", private_key_pem=b"PEM")) == \
        "AccountConfig(name='b', api_key=<redacted>, signing=private_key)"


def test_a_full_web_config_is_loaded_exactly(tmp_path):
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    strong = "$2b$10$abcdefghijklmnopqrstuuJ9Ob3nN5ZvJ.vCl0vC5f0GgGgGgGgGg"
    path = write(tmp_path, f"""
        tls_server_config:
          cert_file: c.pem
          key_file: k.pem
          client_ca_file: ca.pem
          client_auth_type: VerifyClientCertIfGiven
          min_version: TLS13
        basic_auth_users: {{prom: "{strong}", grafana: "{strong}"}}
    """, "web.yml")
    web = load_web_config(path)
    assert web.tls == TLSConfig(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"),
                                str(tmp_path / "ca.pem"), "VerifyClientCertIfGiven", "TLS13")
    assert dict(web.basic_auth_users) == {"prom": strong, "grafana": strong}
    for prefix in ("$2a$", "$2y$"):  # every bcrypt spelling htpasswd writes
        other = write(tmp_path, f'basic_auth_users: {{u: "{prefix}{strong[4:]}"}}\n', "w2.yml")
        assert load_web_config(other).basic_auth_users["u"].startswith(prefix)


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("tls_server_config: 3\n", "tls_server_config: expected a mapping"),
    ("basic_auth_users: {}\n",
     "basic_auth_users: expected a mapping of user name to bcrypt hash"),
    ("tls_server_config: {cert_file: c.pem, key_file: nope.pem}\n",
     "tls_server_config.key_file: no such file '{dir}/nope.pem'"),
    ("tls_server_config: {cert_file: c.pem, key_file: c.pem, client_ca_file: no.pem, "
     "client_auth_type: VerifyClientCertIfGiven}\n",
     "tls_server_config.client_ca_file: no such file '{dir}/no.pem'"),
    ("tls_server_config: {cert_file: c.pem, key_file: c.pem, "
     "client_auth_type: VerifyClientCertIfGiven}\n",
     "tls_server_config.client_ca_file: required by VerifyClientCertIfGiven"),
    ("- a list\n", "--web.config.file: the top level must be a mapping of keys"),
])
def test_web_config_errors_are_exact(tmp_path, yaml_text, message):
    (tmp_path / "c.pem").write_text("x")
    with pytest.raises(ConfigError) as info:
        load_web_config(write(tmp_path, yaml_text, "web.yml"))
    assert str(info.value) == message.format(dir=tmp_path)


def test_http_server_config_is_ignored_with_a_warning(tmp_path, caplog):
    assert load_web_config(write(tmp_path, "http_server_config: {http2: false}\n",
                                 "web.yml")) == WebConfig()
    assert any("http_server_config is not supported" in r.getMessage() for r in caplog.records)
    caplog.clear()
    load_web_config(write(tmp_path, "basic_auth_users: null\n", "web2.yml"))
    assert not caplog.records


def test_a_yaml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, "accounts:\n  - {name: a\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(info.value).startswith(f"--config: {path}: ")
    assert str(info.value).endswith("at line 3, column 1")


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("accounts: [{name: a, api_key: k, api_key_file: /x, api_secret: s}]\n",
     "accounts[0]: set only one of api_key, api_key_file"),
    ("accounts: [{name: a, api_key: k, api_secret: 's s'}]\n",
     "accounts[0].api_secret: must not contain white space"),
    ("accounts: [{name: a, api_key_file: /nonexistent/k, api_secret: s}]\n",
     "accounts[0].api_key_file: cannot read '/nonexistent/k': No such file or directory"),
    ("accounts: [{name: a, api_key: k, api_secret: s, master: 1}]\n",
     "accounts[0].master: expected true or false, got int"),
    ("accounts: [{name: a, api_key: k, private_key_file: /nonexistent/p}]\n",
     "accounts[0].private_key_file: cannot read '/nonexistent/p': No such file or directory"),
])
def test_account_errors_are_exact(tmp_path, yaml_text, message):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, yaml_text), {})
    assert str(info.value) == message


def test_a_yaml_passphrase_loses_only_its_line_end(tmp_path):
    key = secret_file(tmp_path, "key.pem", "-----BEGIN")
    (tmp_path / "pass").write_bytes(b" horse \r\n")
    (tmp_path / "pass").chmod(0o600)
    path = write(tmp_path, f"accounts: [{{name: a, api_key: k, private_key_file: {key}, "
                           f"private_key_passphrase_file: pass}}]\n")
    assert load_settings(path, {}).accounts[0].private_key_passphrase == b" horse "


@pytest.mark.parametrize(("env", "message"), [
    ({"BINANCE_API_KEY": "k"},
     "BINANCE_API_SECRET: missing (set BINANCE_API_SECRET, BINANCE_API_SECRET_FILE or "
     "BINANCE_PRIVATE_KEY_FILE)"),
    ({"BINANCE_API_SECRET": "s"},
     "BINANCE_API_KEY: missing (set BINANCE_API_KEY or BINANCE_API_KEY_FILE)"),
    ({"BINANCE_API_KEY": "k", "BINANCE_API_SECRET_FILE": "/run/no/api_secret_file"},
     "BINANCE_API_SECRET_FILE: cannot read '/run/no/api_secret_file': No such file or "
     "directory"),
    ({"BINANCE_API_KEY": "k k", "BINANCE_API_SECRET": "s"},
     "BINANCE_API_KEY: must not contain white space"),
    ({"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s", "BINANCE_API_SECRET_FILE": "/x"},
     "BINANCE_*: set only one of BINANCE_API_SECRET, BINANCE_API_SECRET_FILE"),
])
def test_environment_errors_name_the_variable_exactly(env, message):
    with pytest.raises(ConfigError) as info:
        load_settings(None, env)
    assert str(info.value) == message


# --------------------------------------------------------------------------------------------
# hostile configuration: one line naming the key, nothing secret repeated


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("accounts: [{name: a, api_key: k, api_secret: s}]\naccounts: [{name: b, api_key: k, "
     "api_secret: s}]\n", "a key is given twice at line 2, column 1"),
    ("accounts: [{name: a, api_key: k, api_secret: s, api_secret: t}]\n",
     "a key is given twice at line 1, column 49"),
    ("x: &anchor [1]\ny: *anchor\n", "aliases (*name) are not allowed at line 2"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 64 levels"),
    ("x: " + "{a: " * 200 + "1" + "}" * 200 + "\n", "nested deeper than 64 levels"),
])
def test_hostile_yaml_is_one_line(tmp_path, yaml_text, message):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, yaml_text), {})
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("yaml_text", [
    "accounts: [{name: a, api_key: k, api_secret: !SECRETxTAG s}]\n",
    "accounts: [{name: a, api_key: k, api_secret: *SECRETxALIAS}]\n",
    "accounts: [{name: a, api_key: k, api_secret: 'SECRETxQUOTE\n",
])
def test_yaml_errors_never_repeat_the_files_text(tmp_path, yaml_text):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, yaml_text), {})
    assert "SECRETx" not in str(info.value)


def test_deeply_nested_yaml_is_refused_on_reload_too(tmp_path):
    """Reload reads the file with the same loader: a RecursionError never reaches the
    reloader's thread."""
    from binance_margin_exporter.config import load_yaml

    path = write(tmp_path, "x: " + "[" * 100000 + "\n")
    with pytest.raises(ConfigError):
        load_yaml(path)


@pytest.mark.parametrize("url", ["https://user:pass@proxy.example", "http://pass@127.0.0.1:1"])
def test_credentials_in_a_url_are_refused_and_not_repeated(tmp_path, url):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, f"base_url: {url}\n" + ACCOUNT), {})
    assert str(info.value).startswith("base_url: a user or password in the URL")
    assert "pass" not in str(info.value).split("(")[0].replace("password", "")
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"BINANCE_BASE_URL": url, "BINANCE_API_KEY": "k",
                             "BINANCE_API_SECRET": "s"})
    assert str(info.value).startswith("BINANCE_BASE_URL: a user or password")


def test_a_secret_file_with_control_characters_is_refused(tmp_path):
    path = tmp_path / "environ"
    path.write_bytes(b"PATH=/usr/bin\0HOME=/root\0AWS_SECRET=abc\0")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"BINANCE_API_KEY_FILE": str(path), "BINANCE_API_SECRET": "s"})
    assert str(info.value) == "BINANCE_API_KEY_FILE: must not contain control characters"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_secret_file_that_is_not_a_regular_file_is_refused(device):
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET_FILE": device})
    assert str(info.value) == f"BINANCE_API_SECRET_FILE: {device!r} is not a regular file"


def test_a_huge_secret_file_is_refused(tmp_path):
    path = secret_file(tmp_path, "big", "x" * (100 * 1024))
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET_FILE": path})
    assert str(info.value).endswith("is larger than 64 KiB: not a key")


def test_an_account_named_like_a_listed_sub_account_is_refused(tmp_path):
    path = write(tmp_path, """
        accounts:
          - {name: fund, api_key: k, api_secret: s, sub_accounts: [a@x.example]}
          - {name: a@x.example, api_key: k2, api_secret: s2}
    """)
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(info.value) == (
        "accounts[0].sub_accounts: 'a@x.example' is also the name of accounts[1]; the two "
        "would share one account label (rename the account)")
    path = write(tmp_path, """
        accounts:
          - {name: one, api_key: k, api_secret: s, sub_accounts: [a@x.example]}
          - {name: two, api_key: k2, api_secret: s2, sub_accounts: [a@x.example]}
    """)
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(info.value) == ("accounts[1].sub_accounts: 'a@x.example' is listed by "
                               "accounts[0].sub_accounts too")


def test_a_name_that_no_page_could_carry_is_refused(tmp_path):
    path = write(tmp_path, 'accounts: [{name: "a\\ud800", api_key: k, api_secret: s}]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(info.value) == "accounts[0].name: not valid Unicode (a lone surrogate)"
