"""Secret hygiene and hostile input, end to end."""

from __future__ import annotations

import re
import threading
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from binance_margin_exporter.binance.cross import fetch_account
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.config import ConfigError
from binance_margin_exporter.demo.simulator import Fault
from binance_margin_exporter.wiring import load as load_settings
from tests.support.keys import API_KEY, SECRET
from tests.support.processes import exporter_process
from tests.support.waiting import wait_for

SIGNED = re.compile(r"signature=(?!<redacted>)")


@pytest.mark.e2e
def test_no_secret_signature_or_signed_url_in_any_log_or_body(simulator, tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(f"cache_ttl_seconds: 0\nrequest_timeout_seconds: 1\n"
                      f"base_url: {simulator.base_url}\n")
    env = {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": SECRET}
    faults = [
        None,
        Fault(status=500, body=b"<html>oops</html>"),
        Fault(status=502, body=b'{"code": -1007, "msg": "backend"}'),
        Fault(transform=lambda body: body[:100]),
        Fault(transform=lambda body: b'{"marginLevel": "x"}'),
        Fault(delay=1.5),
        Fault.binance_error(-3003, "Margin account does not exist."),
        Fault.binance_error(-1021, "Timestamp for this request is outside of the recvWindow."),
        Fault.binance_error(-1022, "Signature for this request is not valid."),
        Fault.binance_error(-2015, "Invalid API-key, IP, or permissions for action.", status=401),
        Fault.rate_limited(1),
        Fault.rate_limited(1, status=418),
        None,
    ]
    bodies = []
    with exporter_process(["--config", str(config), "--log.level", "debug"], env) as exporter:
        for fault in faults:
            simulator.set_fault(fault)
            bodies.append(exporter.metrics())
        simulator.clear_faults()
        simulator.clock_skew_ms = 30_000
        bodies.append(exporter.metrics())
        assert exporter.stop() == 0
    log = exporter.log
    assert "level=debug" in log  # DEBUG lines were written, and checked
    assert "Traceback" not in log
    assert len(simulator.signatures) > 5
    for text in [log, *bodies]:
        assert SECRET not in text
        assert API_KEY not in text
        assert not SIGNED.search(text)
        for signature in simulator.signatures:
            assert signature not in text


def failed_fetch_peak(client: BinanceClient) -> tuple[UpstreamError, int]:
    """The error of a fetch that must fail, and the peak memory traced while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamError) as info:
            fetch_account(client)
        return info.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_oversized_response_with_content_length_is_refused(simulator, client):
    huge = b" " * (50 * 1024 * 1024)  # made before tracing starts: only the client is measured
    simulator.set_fault(Fault(transform=lambda body: huge))
    error, peak = failed_fetch_peak(client)
    assert error.reason == "invalid_response" and "over the limit" in str(error)
    assert peak < 8 * 1024 * 1024  # the 50 MB body was never read


class _Endless(BaseHTTPRequestHandler):
    """Answers 200 with no Content-Length and streams until the client hangs up."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        chunk = b'{"pad": "' + b"x" * 65536
        try:
            for _ in range(800):  # 50 MB at the most
                self.wfile.write(chunk)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


def test_endless_response_without_length_is_cut_off():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    upstream = Upstream(url)
    upstream.clock.update(0, 0, 0)  # no clock sync call for this test
    client = BinanceClient(upstream, API_KEY, HmacSigner(SECRET), max_response_bytes=1 << 20)
    try:
        error, peak = failed_fetch_peak(client)
    finally:
        server.shutdown()
        server.server_close()
    assert error.reason == "invalid_response"
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize("yaml_text", [
    f"accounts: [{{name: a, api_key: k, api_secret: '{SECRET} x'}}]\n",
    f"accounts: [{{name: a, api_key: k, api_secret: '{SECRET}', bogus: 1}}]\n",
    f"accounts: [{{name: a, api_key: k, api_secret: '{SECRET}', api_secret_file: /x}}]\n",
    f"accounts: [{{name: a, api_key: '{SECRET}', api_secret: s}}, "
    f"{{name: a, api_key: '{SECRET}', api_secret: s}}]\n",
    f"accounts: [{{name: a, api_key: k, api_secret: ['{SECRET}']}}]\n",
])
def test_config_errors_never_quote_a_secret(tmp_path, yaml_text):
    path = tmp_path / "c.yml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), {})
    assert SECRET not in str(info.value)


def test_settings_repr_and_str_hide_secrets():
    settings = load_settings(None, {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": SECRET})
    for text in (repr(settings), str(settings), repr(settings.accounts)):
        assert SECRET not in text and API_KEY not in text


@pytest.mark.e2e
def test_secret_file_readable_by_others_warns_at_start(simulator, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o644)
    env = {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET_FILE": str(secret),
           "BINANCE_BASE_URL": simulator.base_url}
    with exporter_process([], env) as exporter:
        wait_for(lambda: "readable by group or others" in exporter.log)
        assert exporter.stop() == 0
    assert SECRET not in exporter.log
