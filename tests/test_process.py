"""The exporter as a real process: demo, real protocol against the simulator, CLI behaviour."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time

import pytest
import requests

from tests.support.exporters import sample_values
from tests.support.keys import API_KEY, SECRET
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.processes import exporter_process, run_exporter
from tests.support.tools import promtool_check_metrics
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def credentials(simulator) -> dict[str, str]:
    return {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": SECRET,
            "BINANCE_BASE_URL": simulator.base_url}


def test_demo_needs_no_keys_and_shows_a_realistic_account():
    with exporter_process(["--demo"], {}) as exporter:
        body = exporter.metrics()
        values = sample_values(body)
        assert "simulated" in exporter.log
        promtool_check_metrics(body.encode())  # every product's families, as CI lints them
        # a clean demo is quiet: no invalid field, and the simulator's WebSocket server keeps
        # its routine lines to itself (the exporter's client still logs its own)
        wait_for(lambda: "stream" in exporter.log.lower() and "margin_risk" in exporter.log)
        assert "does not parse" not in exporter.log
        assert "websockets.server" not in exporter.log and "server listening" not in exporter.log
        assert "connection open" not in exporter.log
        assert values[("binance_margin_up", (("account", "demo"),))] == 1.0
        assets = {dict(k[1])["asset"] for k in values if k[0] == "binance_margin_asset_net"}
        assert len(assets) >= 10
        borrowed = [v for k, v in values.items() if k[0] == "binance_margin_asset_borrowed"
                    and v > 0]
        assert borrowed
        level = values[("binance_margin_level", (("account", "demo"),))]
        call = values[("binance_margin_level_threshold", (("account", "demo"),
                                                           ("threshold", "margin_call")))]
        assert 1.0 < call < level < 999
        # the standard process metrics follow, with this process's own figures
        assert values[("process_start_time_seconds", ())] > time.time() - 600
        assert values[("process_resident_memory_bytes", ())] > 10 * 2**20
        assert values[("process_open_fds", ())] >= 3
        # the whole margin picture: isolated pairs, values in USDT, the cost of borrowing
        pairs = {dict(k[1])["symbol"] for k in values if k[0] == "binance_margin_isolated_level"}
        assert pairs == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
        prices = {dict(k[1])["asset"]: v for k, v in values.items()
                  if k[0] == "binance_margin_asset_price_usdt"}
        assert prices["USDT"] == 1.0 and prices["BTC"] > 1000
        assert "AVAX" in prices and "TRY" in prices  # via BTC, and quoted as USDTTRY
        assert "XDEL" not in prices and "XDEL" in assets  # no route: no price, never 0
        assert values[("binance_margin_total_liability_usdt", (("account", "demo"),))] > 0
        rates = wait_for(lambda: [k for k in sample_values(exporter.metrics())
                                  if k[0] == "binance_margin_asset_interest_rate_hourly"])
        assert {dict(k[1])["asset"] for k in rates} == {"USDT", "ETH", "BNB", "SOL"}
        assert exporter.stop() == 0


def test_every_value_matches_the_upstream_json(simulator):
    with exporter_process([], credentials(simulator)) as exporter:
        values = sample_values(exporter.metrics())
        raw = json.loads(simulator.account.body())
        acc = (("account", "default"),)
        assert values[("binance_margin_level", acc)] == float(raw["marginLevel"])
        assert values[("binance_margin_total_net_asset_btc", acc)] == float(
            raw["totalNetAssetOfBtc"])
        nonzero = [a for a in raw["userAssets"]
                   if any(float(a[k]) for k in ("free", "locked", "borrowed", "interest",
                                                "netAsset"))]
        assert len(nonzero) == 12
        for asset in nonzero:
            labels = (("account", "default"), ("asset", asset["asset"]))
            assert values[("binance_margin_asset_net", labels)] == float(asset["netAsset"])
            assert values[("binance_margin_asset_interest", labels)] == float(asset["interest"])
        assert len([k for k in values if k[0] == "binance_margin_asset_free"]) == 12
        isolated = json.loads(simulator.isolated.body())
        for pair in isolated["assets"]:
            key = (("account", "default"), ("symbol", pair["symbol"]))
            assert values[("binance_margin_isolated_liquidation_price", key)] == float(
                pair["liquidatePrice"])
            assert values[("binance_margin_isolated_index_price", key)] == float(
                pair["indexPrice"])
            quote = pair["quoteAsset"]
            side = (("account", "default"), ("asset", "USDT"), ("symbol", pair["symbol"]))
            assert values[("binance_margin_isolated_asset_borrowed", side)] == float(
                quote["borrowed"])
        assert values[("binance_margin_isolated_total_liability_btc", acc)] == float(
            isolated["totalLiabilityOfBtc"])
        assert exporter.stop() == 0


def test_isolated_false_turns_the_isolated_fetch_off(simulator, tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(
        f"base_url: {simulator.base_url}\nusdt_values: false\n"
        f"accounts:\n  - {{name: a, api_key: {API_KEY}, api_secret: {SECRET}, isolated: false}}\n")
    with exporter_process(["--config", str(config)], {}) as exporter:
        text = exporter.metrics()
        assert 'binance_margin_up{account="a"} 1.0' in text
        # (Binance's delist schedule of isolated pairs is Binance-wide, not the account's)
        isolated = [line for line in text.splitlines() if "binance_margin_isolated_" in line
                    and "binance_margin_isolated_delist_timestamp_seconds" not in line]
        assert not isolated and "binance_margin_prices_up" not in text
        assert exporter.stop() == 0
    assert simulator.counts["/sapi/v1/margin/isolated/account"] == 0
    assert simulator.counts["/api/v3/ticker/price"] == 0


def test_two_accounts_from_a_config_file(simulator, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    config = tmp_path / "config.yml"
    config.write_text(
        f"base_url: {simulator.base_url}\ncache_ttl_seconds: 0\n"
        f"accounts:\n  - {{name: alpha, api_key: {API_KEY}, api_secret_file: {secret}}}\n"
        f"  - {{name: beta, api_key: {API_KEY}, api_secret_file: {secret}}}\n")
    with exporter_process(["--config", str(config)], {}) as exporter:
        values = sample_values(exporter.metrics())
        for name in ("alpha", "beta"):
            assert values[("binance_margin_up", (("account", name),))] == 1.0
        assert exporter.stop() == 0


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, "BINANCE_API_KEY"),
        ([], {"BINANCE_API_KEY": "k"}, "BINANCE_API_SECRET: missing"),
        ([], {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET_FILE": "/nonexistent"},
         "BINANCE_API_SECRET_FILE: cannot read"),
        (["--config", "/nonexistent.yml"], {}, "--config: cannot read"),
        ([], {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s", "BINANCE_BASE_URL": "nope"},
         "BINANCE_BASE_URL: expected an http(s) URL"),
        (["--web.listen-address", "nowhere"], {"BINANCE_API_KEY": "k",
                                               "BINANCE_API_SECRET": "s"},
         "--web.listen-address: expected host:port"),
        (["--web.config.file", "/nonexistent.yml"], {"BINANCE_API_KEY": "k",
                                                     "BINANCE_API_SECRET": "s"},
         "--web.config.file: cannot read '/nonexistent.yml'"),
    ],
)
def test_bad_configuration_is_one_line_without_traceback(args, env, expected):
    result = run_exporter(args, env)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["env", "config", "config-check"])
def test_bad_private_key_names_the_key(tmp_path, where):
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    if where == "env":
        args, env = [], {"BINANCE_API_KEY": "k", "BINANCE_PRIVATE_KEY_FILE": str(key)}
        expected = "BINANCE_PRIVATE_KEY_FILE: not a PEM private key"
    else:
        config = tmp_path / "c.yml"
        config.write_text(f"accounts: [{{name: a, api_key: k, private_key_file: {key}}}]\n")
        args, env = ["--config", str(config)], {}
        if where == "config-check":
            args.append("--config.check")
        expected = "accounts[0].private_key_file: not a PEM private key"
    result = run_exporter(args, env)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text("accounts: [{name: main, api_key: k, api_secret: s}]\n")
    ok = run_exporter(["--config", str(config), "--config.check"])
    assert ok.returncode == 0 and "configuration OK: accounts: main" in ok.stdout
    config.write_text("accounts: [{name: main, api_key: k}]\n")
    bad = run_exporter(["--config", str(config), "--config.check"])
    assert bad.returncode == 1 and "accounts[0].api_secret: missing" in bad.stderr


def test_version():
    from binance_margin_exporter import __version__

    result = run_exporter(["--version"])
    assert result.returncode == 0 and __version__ in result.stdout


@pytest.mark.parametrize("flag", [f"--api-secret={SECRET}", "--binance.api-secret", "--api_key",
                                  "--private-key-file"])
def test_secrets_on_the_command_line_are_refused_without_echo(flag):
    result = run_exporter([flag, SECRET] if "=" not in flag else [flag])
    assert result.returncode == 2
    assert "not accepted on the command line" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_unknown_flag_value_is_not_echoed():
    result = run_exporter(["--demo", f"--bogus={SECRET}", SECRET])
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr
    assert SECRET not in result.stderr


@pytest.mark.parametrize("args", [["--log.level", SECRET], [f"--log.format={SECRET}"],
                                  ["--log.format", SECRET]])
def test_an_invalid_choice_is_not_echoed(args):
    result = run_exporter(args)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert SECRET not in result.stderr


def test_starts_and_serves_up_0_when_binance_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    env = {"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s",
           "BINANCE_BASE_URL": f"http://127.0.0.1:{port}"}
    with exporter_process([], env) as exporter:
        values = sample_values(exporter.metrics())
        assert values[("binance_margin_up", (("account", "default"),))] == 0.0
        assert values[("binance_margin_scrape_errors_total",
                       (("account", "default"), ("reason", "connection")))] == 1.0
        assert exporter.proc.poll() is None
        assert "Traceback" not in exporter.log
        assert exporter.stop() == 0


def test_sigterm_finishes_the_scrape_in_flight_and_exits_0(simulator):
    simulator.latency = 1.5
    with exporter_process([], credentials(simulator)) as exporter:
        wait_for(lambda: simulator.counts["/sapi/v1/margin/tradeCoeff"] >= 1)  # warm-up done
        result: dict[str, object] = {}

        def scrape() -> None:
            try:
                result["response"] = requests.get(f"{exporter.url}/metrics", timeout=15)
            except requests.RequestException as exc:
                result["error"] = exc

        thread = threading.Thread(target=scrape)
        thread.start()
        wait_for(lambda: simulator.counts["/sapi/v1/margin/account"] >= 1)
        started = time.monotonic()
        exporter.proc.send_signal(signal.SIGTERM)
        thread.join(15)
        assert exporter.proc.wait(15) == 0
        assert time.monotonic() - started < 10
        response = result["response"]
        assert response.status_code == 200 and 'binance_margin_up{account="default"} 1.0' in \
            response.text
        # and it no longer accepts connections
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{exporter.url}/healthz", timeout=2)


def test_address_in_use_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_exporter(["--demo", "--web.listen-address", f"127.0.0.1:{port}"])
    assert result.returncode == 1
    assert "--web.listen-address" in result.stderr and "Traceback" not in result.stderr


def test_warning_when_listening_on_all_interfaces_without_protection():
    with exporter_process(["--demo", "--web.listen-address", "0.0.0.0:0"], {}) as exporter:
        assert exporter.stop() == 0
    assert "without TLS or basic auth" in exporter.log


def test_unloadable_tls_certificate_is_one_line(tmp_path):
    (tmp_path / "c.pem").write_text("not a certificate")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {cert_file: c.pem, key_file: c.pem}\n")
    for extra in ([], ["--config.check"]):
        result = run_exporter(["--demo", "--web.config.file", str(web), *extra])
        assert result.returncode == 1
        assert "--web.config.file: tls_server_config: cannot load" in result.stderr
        assert "Traceback" not in result.stderr


def test_console_script_is_installed():
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "binance-margin-exporter"
    if not script.exists():
        found = shutil.which("binance-margin-exporter")
        if found is None:
            if os.environ.get("CI") == "true":
                pytest.fail("the console script is not installed: pip install '.[test]'")
            pytest.skip("not installed with pip; running from the source tree")
        script = Path(found)
    from binance_margin_exporter import __version__

    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and __version__ in result.stdout


def write_config(path, simulator, names):
    path.write_text(f"base_url: {simulator.base_url}\ncache_ttl_seconds: 0\naccounts:\n" + "".join(
        f"  - {{name: {n}, api_key: {API_KEY}, api_secret: {SECRET}}}\n" for n in names))


def test_sighup_and_post_reload_keep_kept_accounts_and_refuse_a_broken_file(simulator,
                                                                            tmp_path):
    from binance_margin_exporter.demo.simulator import Fault

    config = tmp_path / "config.yml"
    write_config(config, simulator, ["alpha"])
    with exporter_process(["--config", str(config), "--web.enable-lifecycle"], {}) as exporter:
        simulator.set_fault(Fault(status=503, body=b"busy", times=1))
        values = sample_values(exporter.metrics())
        errors = ("binance_margin_scrape_errors_total", (("account", "alpha"),
                                                        ("reason", "http")))
        assert values[errors] == 1.0
        write_config(config, simulator, ["alpha", "beta"])
        exporter.proc.send_signal(signal.SIGHUP)
        values = wait_for(lambda: (lambda v: v if ("binance_margin_up", (("account", "beta"),))
                                   in v else None)(sample_values(exporter.metrics())))
        assert values[errors] == 1.0  # alpha kept its counters (and cache and back-off)
        assert values[("binance_margin_config_last_reload_successful", ())] == 1.0
        config.write_text(f"accounts: [{{name: alpha, api_secret: {SECRET}}}]\n")  # broken
        response = requests.post(f"{exporter.url}/-/reload", timeout=10)
        assert response.status_code == 500
        # the answer is generic: the file's text (a secret) and the detail stay in the log
        assert "refused" in response.text and "api_key" not in response.text
        assert SECRET not in response.text
        values = sample_values(exporter.metrics())
        assert values[("binance_margin_up", (("account", "beta"),))] == 1.0  # old one serves
        assert values[("binance_margin_config_last_reload_successful", ())] == 0.0
        refused = [line for line in exporter.lines if "reload" in line and "refused" in line]
        assert len(refused) == 1 and "accounts[0].api_key" in refused[0]
        write_config(config, simulator, ["beta"])
        response = requests.post(f"{exporter.url}/-/reload", timeout=10)
        assert response.status_code == 429 and "one reload every 5 s" in response.text
        assert 1 <= int(response.headers["Retry-After"]) <= 5
        assert 'account="alpha"' in exporter.metrics()  # not reloaded: rate-limited
        exporter.proc.send_signal(signal.SIGHUP)  # signals are not rate-limited
        wait_for(lambda: 'account="alpha"' not in exporter.metrics())
        assert 'binance_margin_up{account="beta"} 1.0' in exporter.metrics()
        assert requests.get(f"{exporter.url}/-/reload", timeout=10).status_code == 405
        assert exporter.stop() == 0


def test_post_reload_is_off_without_the_lifecycle_flag(simulator, tmp_path):
    config = tmp_path / "config.yml"
    write_config(config, simulator, ["alpha"])
    with exporter_process(["--config", str(config)], {}) as exporter:
        assert requests.post(f"{exporter.url}/-/reload", timeout=10).status_code == 405
        assert not [line for line in exporter.lines if "configuration reloaded" in line]
        assert exporter.stop() == 0


def test_a_rotated_key_is_in_use_within_the_watch_period(simulator, tmp_path):
    """A Kubernetes Secret volume swaps its files through a symlink, with no signal."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for version, key in (("v1", API_KEY), ("v2", "rotated-key-0123456789")):
        (secrets / version).mkdir()
        (secrets / version / "api_key").write_text(key)
        (secrets / version / "api_secret").write_text(SECRET)
    (secrets / "..data").symlink_to("v1")
    for name in ("api_key", "api_secret"):
        (secrets / name).symlink_to(f"..data/{name}")
        os.chmod(secrets / "v1" / name, 0o600)
        os.chmod(secrets / "v2" / name, 0o600)
    config = tmp_path / "config.yml"
    config.write_text(f"base_url: {simulator.base_url}\ncache_ttl_seconds: 0\naccounts:\n"
                      f"  - {{name: a, api_key_file: {secrets}/api_key, "
                      f"api_secret_file: {secrets}/api_secret}}\n")
    with exporter_process(["--config", str(config)], {}) as exporter:
        assert 'binance_margin_up{account="a"} 1.0' in exporter.metrics()
        # the old key is revoked, the new one registered, and the volume swapped
        simulator.add_hmac_key("rotated-key-0123456789", SECRET)
        simulator._keys.pop(API_KEY)
        assert 'binance_margin_up{account="a"} 0.0' in exporter.metrics()  # auth back-off
        swapped = time.monotonic()
        (secrets / "..data.new").symlink_to("v2")
        os.replace(secrets / "..data.new", secrets / "..data")
        wait_for(lambda: 'binance_margin_up{account="a"} 1.0' in exporter.metrics(),
                 timeout=40, interval=0.5)
        print(f"\nrotated key in use after {time.monotonic() - swapped:.1f} s")
        assert exporter.stop() == 0


def test_2000_half_requests_cost_no_threads_and_lock_no_one_out():
    """Half a request each, then silence: a port scanner, a broken client, or slowloris."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    with exporter_process(["--demo"], {}) as exporter:
        exporter.metrics()
        pid = exporter.proc.pid

        def status(key: str) -> int:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1])
            raise KeyError(key)

        rss_before = status("VmRSS")
        flood = []
        for _ in range(2000):
            sock = socket.create_connection(("127.0.0.1", exporter.port), timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no end of headers
            flood.append(sock)
        time.sleep(1)
        threads, rss = status("Threads"), status("VmRSS")
        started = time.monotonic()
        assert "binance_margin_up" in exporter.metrics()  # a real scrape gets through
        took = time.monotonic() - started
        print(f"\n2000 half requests: {threads} threads, RSS {rss_before / 1024:.1f} -> "
              f"{rss / 1024:.1f} MiB, a real scrape in {took * 1000:.0f} ms")
        assert threads < 300 and rss - rss_before < 30 * 1024 and took < 1.0
        for sock in flood:  # closing them must not turn half requests into scrapes
            sock.close()
        stopped = time.monotonic()
        assert exporter.stop() == 0
        assert time.monotonic() - stopped < 5


def test_healthcheck_follows_the_port_and_tls_of_the_exporter(tmp_path):
    from tests.support.web import make_cert

    ca_cert, ca_key, _, _ = make_cert(tmp_path, "ca", is_ca=True)
    _, _, crt, key = make_cert(tmp_path, "server", ca_key, ca_cert)
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config: {{cert_file: {crt}, key_file: {key}}}\n")
    port = free_port()
    flags = ["--web.listen-address", f"127.0.0.1:{port}", "--web.config.file", str(web)]
    assert run_exporter(["--healthcheck", *flags]).returncode == 1  # nothing listens yet
    with exporter_process(["--demo", *flags], {}) as exporter:
        assert exporter.port == port
        wait_for(lambda: run_exporter(["--healthcheck", *flags]).returncode == 0, timeout=30,
                 interval=0.3)
        # without the web config it would speak plain HTTP to a TLS port: not healthy
        assert run_exporter(["--healthcheck", "--web.listen-address",
                             f"127.0.0.1:{port}"]).returncode == 1


def test_demo_with_a_config_says_its_accounts_are_ignored(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("accounts: [{name: real, api_key: k, api_secret: s}]\n")
    with exporter_process(["--demo", "--config", str(config)], {}) as exporter:
        assert 'account="real"' not in exporter.metrics()
        assert any("the 1 account(s) of the configuration are ignored" in line
                   for line in exporter.lines)
        assert exporter.stop() == 0


def test_help_names_every_product_and_explains_every_flag(capsys):
    """--help and the package's description: futures, PM Pro and positions too, and a help
    text for every flag (--log.level and --log.format had none)."""
    from binance_margin_exporter.cli import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    description = re.search(r'\ndescription = "([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert description is not None
    for words in ("margin accounts", "cross", "isolated", "sub- accounts|sub-accounts",
                  "Portfolio Margin", "Portfolio Margin Pro|PM Pro", "USD-M", "COIN-M",
                  "futures", "position"):
        assert re.search(words, text), words
        assert re.search(words.replace("sub- accounts|", ""), description.group(1)), words
    for flag in ("--log.level", "--log.format"):
        assert re.search(re.escape(flag) + r" \{[^}]+\} \w+", text), f"{flag} has no help"
