"""The transport against hostile or unusual upstreams: gzip, dripped heads, odd headers, encoded
queries, logged URLs. Real HTTP on 127.0.0.1 where the protocol matters; requests-mock where
only the client's reading of an answer does."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
import tracemalloc
from urllib.parse import urlsplit

import pytest
import requests
import urllib3
from packaging.version import Version

from binance_margin_exporter.binance.cross import ACCOUNT_PATH, fetch_account
from binance_margin_exporter.binance.deadline import DEADLINE_POOLS, DeadlineAdapter, _Watchdog
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.interest import fetch_next_hourly_rates
from binance_margin_exporter.binance.limits import SAPI_WEIGHT_HEADER, Upstream
from binance_margin_exporter.binance.redaction import RedactSignatures, install_redaction
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.streams import user_stream
from binance_margin_exporter.binance.sub_accounts import (
    fetch_sub_account_emails,
    fetch_sub_margin_account,
)
from binance_margin_exporter.binance.transport import TIME_PATH, BinanceClient
from binance_margin_exporter.binance.wire import encode_query, signed_query
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Fault, Simulator
from binance_margin_exporter.demo.sub_accounts import SimulatedSubAccounts
from binance_margin_exporter.products import SIMULATED
from tests.support.clocks import Clock
from tests.support.gzip_bomb import gzip_bomb
from tests.support.keys import API_KEY, SECRET
from tests.support.mocked import BASE, inline, make_client, mocked
from tests.support.net import raw_http_server
from tests.support.paths import FIXTURES, ROOT, fixture_json
from tests.support.waiting import wait_for


@pytest.fixture
def mock():
    with mocked() as m:
        yield m


def synced(base_url: str, **kw) -> BinanceClient:
    """A client whose clock needs no sync (servers without /api/v3/time)."""
    upstream = Upstream(base_url)
    upstream.clock.claim_sync()
    upstream.clock.sync_ended()
    return BinanceClient(upstream, API_KEY, HmacSigner(SECRET), **kw)


# -- gzip -----------------------------------------------------------------------------------

def test_the_simulator_gzips_as_binance_does_and_the_client_reads_it(simulator, client):
    raw = requests.get(simulator.base_url + TIME_PATH, timeout=5, stream=True,
                       headers={"Accept-Encoding": "gzip, deflate"})
    assert raw.headers["Content-Encoding"] == "gzip"
    assert b"serverTime" in gzip.decompress(raw.raw.read(decode_content=False))
    plain = requests.get(simulator.base_url + TIME_PATH, timeout=5,
                         headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    account = fetch_account(client)
    assert len(account.assets) == 300


def test_the_size_cap_counts_decoded_bytes(simulator):
    client = BinanceClient(Upstream(simulator.base_url), API_KEY, HmacSigner(SECRET),
                           max_response_bytes=100_000)
    simulator.set_fault(Fault(transform=lambda body: b" " * 150_000 + body, gzip=True))
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "invalid_response"
    assert "over 100000 bytes" in str(info.value)
    simulator.set_fault(Fault(transform=lambda body: b" " * 90_000 + body[:5000], gzip=True))
    with pytest.raises(UpstreamError) as info:  # under the cap: read whole, then not JSON
        fetch_account(client)
    assert "not valid JSON (95000 bytes)" in str(info.value)


def test_a_gzip_bomb_is_cut_off_with_bounded_memory(simulator):
    """256 MiB of zeros in 256 KiB: the client decodes no more than its cap (1 MiB) and a
    chunk. With urllib3 before 2.6 its read1 inflates all it has read at once (a peak of
    hundreds of MiB): this is the test of the floor declared in pyproject.toml."""
    bomb = gzip_bomb(256)
    simulator.set_fault(Fault(status=200, body=bomb, headers={"Content-Encoding": "gzip"},
                              paths=(TIME_PATH,)))
    client = BinanceClient(Upstream(simulator.base_url), API_KEY, HmacSigner(SECRET),
                           max_response_bytes=1 << 20, timeout=10)
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamError) as info:
            client.get(TIME_PATH)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.reason == "invalid_response" and "over 1048576 bytes" in str(info.value)
    assert peak < 8 * 1024 * 1024, peak  # 1.3 MB with urllib3 2.8; 22 MB with 2.5


def test_the_urllib3_floor_is_declared_and_installed():
    """The floor the bomb test relies on: declared, and met by what runs the tests."""
    text = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'"urllib3>=([0-9.]+)"', text)
    assert floor is not None
    assert Version(floor.group(1)) >= Version("2.6")
    assert Version(urllib3.__version__) >= Version(floor.group(1))


# -- the deadline covers the whole answer ----------------------------------------------------

def _drip_headers(conn) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(75):  # 15 s of header bytes, one every 0.2 s
        conn.sendall(b"X")
        time.sleep(0.2)


def test_dripped_headers_end_at_the_deadline():
    with raw_http_server(_drip_headers) as url:
        client = synced(url, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(UpstreamError) as info:
            client.get(TIME_PATH)
        took = time.monotonic() - started
    assert info.value.reason == "timeout"
    assert str(info.value) == f"GET /api/v3/time on {urlsplit(url).netloc}: " \
                              "no complete answer in time"
    assert took < 10, took  # not the 15 s the server would take


def test_a_dripped_gzip_body_ends_at_the_deadline(simulator, client):
    """urllib3 reads a gzip body until it decodes something: one read1 spans many socket
    reads, each with its own timeout. The deadline still holds."""
    fetch_account(client)
    # 50 bytes of JSON gzip to about 70: a 14 s drip, over the bound below
    simulator.set_fault(Fault(drip=0.2, gzip=True, transform=lambda body: body[:50]))
    started = time.monotonic()
    with pytest.raises(UpstreamError) as info:
        fetch_account(client, deadline=time.monotonic() + 1.0)
    assert info.value.reason == "timeout"
    assert time.monotonic() - started < 10
    simulator.clear_faults()
    assert len(fetch_account(client).assets) == 300  # no connection was left half-read


def test_a_connection_lost_before_the_deadline_is_a_connection_error():
    def hang_up(conn) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")

    with raw_http_server(hang_up) as url:
        client = synced(url, timeout=5.0)
        with pytest.raises(UpstreamError) as info:
            client.get(TIME_PATH)
    assert info.value.reason == "connection"
    assert str(info.value) == \
        f"GET /api/v3/time on {urlsplit(url).netloc}: connection failed (ProtocolError)"


def test_a_body_stalled_past_the_read_timeout_is_a_timeout():
    """The request timeout bounds each read, the deadline all of them: a stall longer than
    the first ends the fetch before the second."""
    def stall(conn) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(3)

    with raw_http_server(stall) as url:
        client = synced(url, timeout=0.5)
        with pytest.raises(UpstreamError) as info:
            client.get(TIME_PATH, deadline=time.monotonic() + 10)
    assert info.value.reason == "timeout"
    assert str(info.value) == f"GET /api/v3/time on {urlsplit(url).netloc}: " \
                              "no complete answer in time"


def test_every_timeout_is_counted_as_a_timeout(mock):
    mock.get(BASE + ACCOUNT_PATH, exc=requests.exceptions.ConnectTimeout)
    client = make_client()
    for _ in range(2):
        with pytest.raises(UpstreamError) as info:
            fetch_account(client)
        assert info.value.reason == "timeout"


def test_a_deadline_passed_already_sends_nothing(mock):
    client = make_client()
    client.sync_time()
    with pytest.raises(UpstreamError) as info:
        client.get(ACCOUNT_PATH, deadline=time.monotonic() - 0.001)
    assert info.value.reason == "timeout"
    assert str(info.value) == \
        "GET /sapi/v1/margin/account on api.binance.test: no complete answer in time"
    assert mock.request_history[-1].url == BASE + TIME_PATH  # no query: no "?"
    assert not [r for r in mock.request_history if r.path == ACCOUNT_PATH.lower()]


# -- odd numbers in headers -------------------------------------------------------------------

@pytest.mark.parametrize("weight", ["\u0661\u0662", "\u00b2", "12a", "", " 12", "-3"])
def test_a_weight_header_that_is_not_ascii_digits_is_ignored(mock, weight):
    mock.get(BASE + ACCOUNT_PATH, text="{}", headers={SAPI_WEIGHT_HEADER: weight})
    client = make_client()
    assert client.signed_get(ACCOUNT_PATH) == {}
    assert client.upstream.gate.last_used_weight is None


def test_an_ascii_weight_header_is_kept(mock):
    mock.get(BASE + ACCOUNT_PATH, text="{}", headers={SAPI_WEIGHT_HEADER: "0042"})
    client = make_client()
    client.signed_get(ACCOUNT_PATH)
    assert client.upstream.gate.last_used_weight == 42


def test_latin1_digits_in_real_headers_are_ignored():
    """Over HTTP a header is Latin-1: "²" passes str.isdigit() but not int()."""
    def answer(conn) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                     b"X-SAPI-USED-IP-WEIGHT-1M: \xb2\r\n\r\n{}")

    with raw_http_server(answer) as url:
        client = synced(url)
        assert client.signed_get(ACCOUNT_PATH) == {}
    assert client.upstream.gate.last_used_weight is None


def test_an_odd_content_length_is_left_to_the_read(mock):
    mock.get(BASE + ACCOUNT_PATH, text="{}", headers={"Content-Length": "\u00b2"})
    assert make_client().signed_get(ACCOUNT_PATH) == {}


def test_a_huge_json_integer_is_an_invalid_response(mock):
    mock.get(BASE + ACCOUNT_PATH,
             text='{"marginLevel": 1' + "0" * 500 + ', "totalAssetOfBtc": "1",'
                  '"totalLiabilityOfBtc": "0", "totalNetAssetOfBtc": "1", "userAssets": []}')
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert info.value.reason == "invalid_response" and "marginLevel" in str(info.value)


# -- the signed query: encoded once, signed as sent --------------------------------------------

def test_encode_query_percent_encodes_every_name_and_value():
    assert encode_query({"email": "a+b%c.d@x"}) == "email=a%2Bb%25c.d%40x"
    assert encode_query([("assets", "币安人生,BTC"), ("n", 2)]) == \
        "assets=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9F%2CBTC&n=2"
    assert encode_query("symbols=BTCUSDT,ETHUSDT&x=a+b&y=%41&&z") == \
        "symbols=BTCUSDT%2CETHUSDT&x=a%2Bb&y=A&z="
    assert encode_query("") == ""
    assert encode_query({"s": "a b"}) == "s=a%20b"


def test_signed_query_signs_exactly_the_query_it_returns():
    query = signed_query({"email": "a+b@x"}, 5000, 1_700_000_000_000, HmacSigner(SECRET))
    payload, _, signature = query.rpartition("&signature=")
    assert payload == "email=a%2Bb%40x&recvWindow=5000&timestamp=1700000000000"
    assert signature == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


def test_the_bytes_sent_are_the_bytes_signed(mock):
    mock.get(BASE + ACCOUNT_PATH, text="{}")
    make_client().signed_get(ACCOUNT_PATH, {"assets": "币安人生", "email": "x+y%z.w@a"})
    request = next(r for r in mock.request_history if r.path == ACCOUNT_PATH.lower())
    query = urlsplit(request.url).query
    payload, _, signature = query.rpartition("&signature=")
    assert payload.startswith("assets=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9F&email=x%2By%25z.w%40a&")
    assert signature == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


def test_a_request_carries_what_requests_would_prepare(mock):
    """The request is prepared by hand (the URL exactly as signed): still the session's
    headers, a Content-Length on a body-less POST, and the session's cookies."""
    mock.get(BASE + ACCOUNT_PATH, text="{}")
    mock.post(BASE + "/sapi/v1/userDataStream", text="{}")
    client = make_client()
    client._session.cookies.set("aws-alb", "sticky", domain="api.binance.test")
    client.signed_get(ACCOUNT_PATH)
    user_stream(client, "POST", "/sapi/v1/userDataStream")
    get, post = [r for r in mock.request_history if r.path != TIME_PATH.lower()]
    assert get.headers["X-MBX-APIKEY"] == API_KEY
    assert get.headers["User-Agent"].startswith("python-requests/")
    assert "gzip" in get.headers["Accept-Encoding"]
    assert get.headers["Cookie"] == "aws-alb=sticky"
    assert "Content-Length" not in get.headers
    assert post.method == "POST" and post.headers["Content-Length"] == "0"


@pytest.mark.parametrize("api_key", ["key\r\nX-Injected: 1", "key\n"])
def test_a_header_that_would_split_the_request_is_an_error_not_a_crash(mock, api_key):
    mock.get(BASE + ACCOUNT_PATH, text="{}")
    client = BinanceClient(Upstream(BASE, wall=Clock()), api_key, HmacSigner(SECRET),
                           wall=Clock(), background=inline)
    with pytest.raises(UpstreamError) as info:
        client.signed_get(ACCOUNT_PATH)
    assert info.value.reason == "connection" and "key" not in str(info.value)
    assert not [r for r in mock.request_history if r.path == ACCOUNT_PATH.lower()]


def test_non_ascii_assets_are_signed_as_binance_checks_them(simulator, client):
    rates = fetch_next_hourly_rates(client, ["币安人生", "BTC"], isolated=False)
    assert rates == {"币安人生": 0.000005, "BTC": 0.00000571}


EMAILS = ["ops+1%x.y@fund.example", "plain.name@fund.example"]


@pytest.fixture
def odd_subs():
    sim = Simulator(SIMULATED, account=SimulatedAccount(5, 2, drift=False),
                    subs=SimulatedSubAccounts(EMAILS, n_assets=4, n_active=2, drift=False))
    sim.add_hmac_key(API_KEY, SECRET)
    with sim:
        yield sim


def test_sub_account_emails_with_plus_and_percent_reach_binance_intact(odd_subs):
    client = BinanceClient(Upstream(odd_subs.base_url), API_KEY, HmacSigner(SECRET))
    assert fetch_sub_account_emails(client) == tuple(EMAILS)
    account = fetch_sub_margin_account(client, EMAILS[0])
    assert account.total_asset_btc > 0


def test_the_simulator_reads_a_plus_as_a_space_and_checks_the_query_as_sent(odd_subs):
    """Binance decodes ``+`` as a space, so a client must send ``%2B``; and it verifies the
    signature over the query as received."""
    client = BinanceClient(Upstream(odd_subs.base_url), API_KEY, HmacSigner(SECRET))
    client.sync_time()
    path = "/sapi/v1/sub-account/margin/account"

    def sign(query: str) -> str:
        query += f"&recvWindow=5000&timestamp={client.upstream.clock.now_ms()}"
        return f"{query}&signature={HmacSigner(SECRET).sign(query)}"

    headers = {"X-MBX-APIKEY": API_KEY}
    with pytest.raises(UpstreamError) as info:  # "ops 1%x.y@..." is no sub-account
        client.get(path, headers, sign("email=ops+1%25x.y%40fund.example"))
    assert info.value.code == -1102
    encoded = sign("email=ops%2B1%25x.y%40fund.example")
    assert client.get(path, headers, encoded)["email"] == EMAILS[0]
    # the same parameters, signed with "%40" but sent with "@": not the query signed
    with pytest.raises(UpstreamError) as info:
        client.get(path, headers, encoded.replace("%40", "@"))
    assert info.value.code == -1022


def test_the_simulator_refuses_an_unencoded_query(simulator):
    parts = urlsplit(simulator.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        conn.sendall(f"GET {ACCOUNT_PATH}?assets=币安人生&timestamp=1 HTTP/1.1\r\n"
                     "Host: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert b" 400 " in answer.split(b"\r\n")[0] and b"-1100" in answer


# -- no signature in any log --------------------------------------------------------------------

def _malformed_header(conn) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                 b"this line is no header\r\n\r\n{}")


def test_a_malformed_header_logs_no_signature(caplog):
    caplog.set_level(logging.DEBUG)
    with raw_http_server(_malformed_header) as url:
        client = synced(url)
        try:
            client.signed_get(ACCOUNT_PATH, {"email": "a@b"})
        except UpstreamError:
            pass  # what becomes of the answer is not the point: the log is
    records = [r for r in caplog.records if r.name == "urllib3.connection"]
    assert records and "Failed to parse headers" in records[0].getMessage()
    assert "signature=<redacted>" in records[0].getMessage()
    assert not re.search(r"signature=(?!<redacted>)", caplog.text)


def test_any_logger_is_redacted_in_message_traceback_and_stack(caplog):
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("some.library")
    log.warning("GET %s", "/x?a=1&signature=abc123def&b=2")
    try:
        raise ValueError("url=/x?signature=feedface")
    except ValueError:
        log.error("failed", exc_info=True)
    log.info("here signature=cafebabe", stack_info=True)
    assert "abc123def" not in caplog.text and "feedface" not in caplog.text
    assert "cafebabe" not in caplog.text
    assert caplog.records[0].getMessage() == "GET /x?a=1&signature=<redacted>&b=2"
    assert "signature=<redacted>" in caplog.text


def test_a_bad_format_call_is_left_to_the_handler():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "%d items", ("x",), None)
    assert RedactSignatures().filter(record)  # no raise: the handler reports it
    assert (record.msg, record.args) == ("%d items", ("x",))


# -- 429 and 418 whatever the body ---------------------------------------------------------------

@pytest.mark.parametrize("body", ["<html>Too Many Requests</html>", '{"code": -1015}', ""])
def test_a_429_without_a_1003_body_still_backs_off(mock, body):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=429, text=body)
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "rate_limited" and info.value.status == 429
    assert info.value.code == (-1015 if "1015" in body else None)
    assert "HTTP 429, retry after 120 s" in str(info.value)
    assert client.backoff_until() == clock.now + 120  # no Retry-After: 2 minutes
    sent = len(mock.request_history)
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.sent is False and len(mock.request_history) == sent


def test_a_418_without_a_body_bans_every_budget(mock):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=418, text="", headers={"Retry-After": "300"})
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "banned" and info.value.code is None
    assert all(g.reason == "banned" and g.blocked_until == clock.now + 300
               for g in client.upstream.gates.values())



# -- the adapter -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("pool_size", "maxsize"), [(3, 10), (10, 10), (50, 50)])
def test_every_client_reads_through_the_deadline_adapter(pool_size, maxsize):
    client = BinanceClient(Upstream(BASE), API_KEY, HmacSigner(SECRET), pool_size=pool_size)
    for scheme in ("https://x", "http://x"):
        adapter = client._session.get_adapter(scheme)
        assert isinstance(adapter, DeadlineAdapter) and adapter._pool_maxsize == maxsize


def test_the_watchdog_hangs_up_at_the_deadline_only_what_is_still_read():
    dog = _Watchdog()
    late, late_peer = socket.socketpair()
    done, done_peer = socket.socketpair()
    later, later_peer = socket.socketpair()
    with late, late_peer, done, done_peer, later, later_peer:
        watches = [dog.watch(later, time.monotonic() + 60)]
        time.sleep(0.3)  # the watchdog sleeps now, until that deadline ...
        watches += [dog.watch(late, time.monotonic() + 0.3),  # ... this one wakes it
                    dog.watch(done, time.monotonic() + 0.2)]
        watches[2].cancel()  # read in time
        wait_for(lambda: watches[1].fired, timeout=10)
        assert late.recv(1) == b""  # hung up
        assert not watches[2].fired and not watches[0].fired
        done_peer.sendall(b"x")
        later_peer.sendall(b"y")
        assert done.recv(1) == b"x" and later.recv(1) == b"y"  # left alone
        assert dog._thread is not None and dog._thread.daemon  # never holds up an exit
        assert dog._thread.name == "fetch-watchdog"


def test_the_watchdog_tolerates_a_connection_closed_already():
    dog = _Watchdog()
    closed, peer = socket.socketpair()
    with peer:
        watch = dog.watch(closed, time.monotonic() + 0.1)
        closed.close()
        wait_for(lambda: watch.fired, timeout=10)
        second, second_peer = socket.socketpair()  # the watchdog lives on
        with second, second_peer:
            again = dog.watch(second, time.monotonic() + 0.1)
            wait_for(lambda: again.fired, timeout=10)


def test_dripped_headers_through_a_proxy_end_at_the_deadline(monkeypatch):
    """An HTTP proxy (from the environment) that drips: the proxy's connections have the
    watchdog too."""
    with raw_http_server(_drip_headers) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = synced("http://binance.test", timeout=1.0)
        started = time.monotonic()
        with pytest.raises(UpstreamError) as info:
            client.get(TIME_PATH)
        took = time.monotonic() - started
    assert info.value.reason == "timeout" and took < 10, took


def test_a_socks_proxy_keeps_its_own_connections():
    adapter = DeadlineAdapter()
    assert adapter.poolmanager.pool_classes_by_scheme is DEADLINE_POOLS
    assert adapter.proxy_manager_for("http://127.0.0.1:3128").pool_classes_by_scheme \
        is DEADLINE_POOLS
    assert adapter.proxy_manager_for("socks5://127.0.0.1:1080").pool_classes_by_scheme \
        is not DEADLINE_POOLS


def test_install_redaction_wraps_the_record_factory_once(caplog):
    original = logging.getLogRecordFactory()
    try:
        logging.setLogRecordFactory(logging.LogRecord)
        install_redaction()
        installed = logging.getLogRecordFactory()
        install_redaction()
        assert logging.getLogRecordFactory() is installed is not logging.LogRecord
        record = installed("x", logging.INFO, __file__, 1, "u=%s", ("/a?signature=ff",), None)
        assert record.getMessage() == "u=/a?signature=<redacted>"
    finally:
        logging.setLogRecordFactory(original)


# -- messages and the background clock sync ---------------------------------------------

def test_timeouts_and_connection_errors_say_what_failed_and_nothing_more(mock):
    client = make_client()
    client.sync_time()
    mock.get(BASE + ACCOUNT_PATH, exc=requests.exceptions.ReadTimeout("url?signature=x"))
    with pytest.raises(UpstreamError) as info:
        client.signed_get(ACCOUNT_PATH)
    assert str(info.value) == \
        "GET /sapi/v1/margin/account on api.binance.test: no complete answer in time"
    mock.get(BASE + ACCOUNT_PATH, exc=requests.exceptions.ConnectionError("url?signature=x"))
    with pytest.raises(UpstreamError) as info:
        client.signed_get(ACCOUNT_PATH)
    assert info.value.reason == "connection"
    assert str(info.value) == \
        "GET /sapi/v1/margin/account on api.binance.test: connection failed (ConnectionError)"


def test_the_clock_is_synced_on_a_daemon_thread_of_its_own(mock, caplog):
    seen = []

    def time_answer(request, context):
        thread = threading.current_thread()
        seen.append((thread.name, thread.daemon))
        context.status_code = 500
        return "{}"

    mock.get(BASE + TIME_PATH, text=time_answer)
    mock.get(BASE + ACCOUNT_PATH, text="{}")
    client = BinanceClient(Upstream(BASE), API_KEY, HmacSigner(SECRET))
    client.signed_get(ACCOUNT_PATH)
    wait_for(lambda: "clock sync with" in caplog.text)
    assert seen == [("clock-sync", True)]
    assert "clock sync with api.binance.test failed: GET /api/v3/time on api.binance.test: " \
           "HTTP 500: unexpected JSON body" in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("answer", [{"serverTime": "1700000000000"}, {"serverTime": 1.5e12},
                                    {}, [1700000000000], {"serverTime": True}])
def test_a_time_answer_without_an_integer_server_time_is_invalid(mock, answer):
    mock.get(BASE + TIME_PATH, json=answer)
    client = make_client()
    with pytest.raises(UpstreamError) as info:
        client.sync_time()
    assert info.value.reason == "invalid_response"
    assert str(info.value) == "serverTime: missing or not an integer"
    assert client.upstream.clock.claim_sync()  # failed: the next request tries again


def test_a_clock_sync_keeps_the_caller_s_deadline(mock):
    client = make_client()
    with pytest.raises(UpstreamError) as info:
        client.sync_time(time.monotonic() - 1)
    assert info.value.reason == "timeout"
    assert not mock.request_history


# -- signed_get: back-offs and the -1021 retry ---------------------------------------------------

def test_the_auth_back_off_says_when_and_ends_on_the_second(mock):
    clock = Clock()
    client = make_client(clock)
    client.sync_time()
    mock.get(BASE + ACCOUNT_PATH, status_code=401, json={"code": -2015, "msg": "Invalid key"})
    with pytest.raises(UpstreamError):
        client.signed_get(ACCOUNT_PATH)
    clock.now += 5
    with pytest.raises(UpstreamError) as info:
        client.signed_get(ACCOUNT_PATH)
    assert info.value.sent is False and info.value.reason == "auth"
    assert str(info.value) == "backing off after rejected credentials; next try in 10 s"
    clock.now += 10  # the moment it ends, a request goes again
    assert client.auth_backoff_until() == 0.0
    mock.get(BASE + ACCOUNT_PATH, text="{}")
    assert client.signed_get(ACCOUNT_PATH) == {}


def test_a_1021_while_another_request_syncs_waits_for_that_sync(mock, caplog):
    """No deadline given: the default one bounds the wait for the other request's sync."""
    client = make_client(timeout=0.3)
    client.sync_time()
    mock.get(BASE + ACCOUNT_PATH, status_code=400,
             json={"code": -1021, "msg": "outside of the recvWindow"})
    assert client.upstream.clock.claim_sync(stale_before=time.monotonic() + 1)  # "another"
    with pytest.raises(UpstreamError) as info:  # the wait took the whole default deadline
        client.signed_get(ACCOUNT_PATH)
    assert info.value.reason == "timeout"
    assert "re-syncing" not in caplog.text  # the other request syncs, not this one


def test_a_1021_resync_is_logged(mock, caplog):
    client = make_client()
    client.sync_time()
    mock.get(BASE + ACCOUNT_PATH, [
        {"status_code": 400, "json": {"code": -1021, "msg": "outside of the recvWindow"}},
        {"text": "{}"},
    ])
    assert client.signed_get(ACCOUNT_PATH) == {}
    assert "Binance says the timestamp is outside recvWindow; re-syncing the clock" in \
        [r.getMessage() for r in caplog.records]


def test_a_1021_resync_keeps_the_caller_s_deadline(mock):
    """The re-sync after a -1021 is part of the call: past its deadline, it is not sent."""
    client = make_client()
    assert client.upstream.clock.claim_sync()  # as the warm-up does
    client.sync_time()
    deadline = time.monotonic() + 0.3

    def late_1021(request, context):
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)
        context.status_code = 400
        return {"code": -1021, "msg": "outside of the recvWindow"}

    mock.get(BASE + ACCOUNT_PATH, json=late_1021)
    with pytest.raises(UpstreamError) as info:
        client.signed_get(ACCOUNT_PATH, deadline=deadline)
    assert info.value.reason == "timeout"
    assert len([r for r in mock.request_history if r.path == TIME_PATH.lower()]) == 1


def test_the_adapter_outside_a_fetch_reads_as_requests_does(simulator):
    """A session with the adapter, used by a thread that never fetched: no deadline, no
    watch, an ordinary answer."""
    session = requests.Session()
    session.mount("http://", DeadlineAdapter())
    answers = []
    thread = threading.Thread(target=lambda: answers.append(
        session.get(simulator.base_url + TIME_PATH, timeout=5).json()))
    thread.start()
    thread.join(10)
    assert "serverTime" in answers[0]


@pytest.mark.parametrize(("size", "refused"), [(100, False), (101, True)])
def test_a_content_length_at_the_cap_is_read(mock, size, refused):
    body = '{"a": "' + "x" * (size - 9) + '"}'
    assert len(body) == size
    mock.get(BASE + ACCOUNT_PATH, text=body, headers={"Content-Length": str(size)})
    client = make_client(max_response_bytes=100)
    if not refused:
        assert client.signed_get(ACCOUNT_PATH) == {"a": "x" * (size - 9)}
        return
    with pytest.raises(UpstreamError) as info:
        client.signed_get(ACCOUNT_PATH)
    assert str(info.value) == \
        "GET /sapi/v1/margin/account on api.binance.test: response of 101 bytes is over the limit"


def test_the_defaults_of_a_client(mock):
    client = BinanceClient(Upstream(BASE), API_KEY, HmacSigner(SECRET),
                           background=lambda task: task())
    assert client.timeout == 5.0
    assert client._session.get_adapter(BASE)._pool_maxsize == 10
    mock.get(BASE + ACCOUNT_PATH, text="{}")
    client.signed_get(ACCOUNT_PATH)
    assert "recvWindow=5000&" in mock.request_history[-1].url


def test_the_environment_is_read_once_at_the_start(simulator, client, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert "serverTime" in client.get(TIME_PATH)


def test_curl_s_ca_bundle_is_read_too(monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl-ca.pem")
    assert make_client()._session.verify == "/etc/ssl/curl-ca.pem"


def test_a_1003_on_a_plain_4xx_says_so(mock):
    client = make_client()
    mock.get(BASE + ACCOUNT_PATH, status_code=403,
             json={"code": -1003, "msg": "Too much request weight used"})
    with pytest.raises(UpstreamError) as info:
        client.signed_get(ACCOUNT_PATH)
    assert (info.value.reason, info.value.code, info.value.status) == \
        ("rate_limited", -1003, 403)
    assert str(info.value) == "GET /sapi/v1/margin/account on api.binance.test: HTTP 403, " \
                              "retry after 120 s: Binance code -1003: Too much request weight used"



# -- what Binance does that the simulator once did not (issue: true to Binance as it is) ---------

def test_a_403_is_binance_s_firewall_backing_the_host_off_5_min_doubling_to_30_min(mock):
    """Binance's WAF block "usually lasts 5 minutes": no doomed try before then."""
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=403, text="<html>403 Forbidden</html>")
    waits = []
    for _ in range(6):
        with pytest.raises(UpstreamError) as info:
            fetch_account(client)
        assert info.value.reason == "waf" and info.value.status == 403
        waits.append(client.backoff_until() - clock.now)
        clock.now = client.backoff_until() + 1  # the next try, after the back-off
    assert waits == [300, 600, 1200, 1800, 1800, 1800]
    sent = len(mock.request_history)
    mock.get(BASE + ACCOUNT_PATH, json=fixture_json("account_docs_example.json"))
    fetch_account(client)  # a success resets the escalation
    mock.get(BASE + ACCOUNT_PATH, status_code=403, text="<html>403 Forbidden</html>")
    with pytest.raises(UpstreamError):
        fetch_account(client)
    assert client.backoff_until() - clock.now == 300
    assert len(mock.request_history) == sent + 2
    assert client.upstream.gates["api"].reason == "waf"  # the host, every budget


def test_a_ban_without_retry_after_honours_the_time_in_its_message(mock):
    clock = Clock()
    client = make_client(clock)
    until_ms = int((clock.now + 3600) * 1000)
    mock.get(BASE + ACCOUNT_PATH, status_code=418, json={
        "code": -1003, "msg": f"Way too much request weight used; IP banned until {until_ms}. "
                              f"Please use WebSocket Streams for live updates to avoid bans."})
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "banned"
    assert client.backoff_until() == pytest.approx(clock.now + 3600, abs=1)


@pytest.mark.parametrize("status", [418, 429])
def test_a_ban_that_states_no_end_is_2_minutes_doubling(mock, status):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=status,
             json={"code": -1003, "msg": "Way too many requests."})
    waits = []
    for _ in range(3):
        with pytest.raises(UpstreamError) as info:
            fetch_account(client)
        waits.append(client.backoff_until() - clock.now)
        clock.now = client.backoff_until() + 1
    assert waits == [120, 240, 480]
    assert info.value.reason == ("banned" if status == 418 else "rate_limited")


def test_an_error_body_without_a_code_is_an_api_error_with_its_message(mock):
    """An older error body (a recorded capture): {"success": false, "msg": ...}."""
    body = json.loads((FIXTURES / "captures" / "error_subaccount_disabled_legacy.json")
                      .read_text())["body"]
    client = make_client()
    mock.get(BASE + ACCOUNT_PATH, status_code=400, json=body)
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "api_error" and info.value.code is None
    assert str(info.value).endswith(": Sub-account function is not enabled.")


@pytest.mark.parametrize("name", ["error_pm_not_pm_account.json",
                                  "error_subaccount_list_broker.json"])
def test_recorded_error_bodies_keep_their_code(mock, name):
    body = json.loads((FIXTURES / "captures" / name).read_text())["body"]
    client = make_client()
    mock.get(BASE + ACCOUNT_PATH, status_code=400, json=body)
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert (info.value.reason, info.value.code) == ("api_error", body["code"])
    assert body["msg"] in str(info.value)


def test_a_rejected_key_backs_off_only_the_endpoint_that_rejected_it(mock):
    """-2015 on the sub-account endpoint (a key without that permission) must not stop the same
    key's own margin account, and the reverse."""
    clock = Clock()
    client = make_client(clock)
    sub = "/sapi/v1/sub-account/margin/account"
    mock.get(BASE + sub, status_code=401,
             json={"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    mock.get(BASE + ACCOUNT_PATH, json=fixture_json("account_docs_example.json"))
    with pytest.raises(UpstreamError) as info:
        client.signed_get(sub, {"email": "a@x.example"})
    assert info.value.reason == "auth"
    assert client.auth_backoff_until(sub) == clock.now + 15
    assert client.auth_backoff_until(ACCOUNT_PATH) == 0.0
    assert client.auth_backoff_until() == clock.now + 15  # the key, on some endpoint
    fetch_account(client)  # the account itself is still read
    sent = len(mock.request_history)
    with pytest.raises(UpstreamError) as info:
        client.signed_get(sub, {"email": "a@x.example"})
    assert info.value.sent is False and len(mock.request_history) == sent


@pytest.mark.parametrize("status", [429, 400])
def test_a_1003_that_states_a_ban_is_a_ban_whatever_the_status(mock, status):
    clock = Clock()
    client = make_client(clock)
    until_ms = int((clock.now + 3600) * 1000)
    mock.get(BASE + ACCOUNT_PATH, status_code=status, json={
        "code": -1003, "msg": f"Way too much request weight used; IP banned until {until_ms}."})
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "banned"
    assert client.upstream.gates["api"].reason == "banned"  # the IP, not /sapi only
    assert client.backoff_until() == pytest.approx(clock.now + 3600, abs=1)


def test_an_error_without_a_code_does_not_name_one(mock):
    client = make_client()
    mock.get(BASE + ACCOUNT_PATH, status_code=429, text="<html>Too Many Requests</html>")
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert str(info.value) == ("GET /sapi/v1/margin/account on api.binance.test: HTTP 429, "
                               "retry after 120 s: non-JSON body")
    client = make_client()
    mock.get(BASE + ACCOUNT_PATH, status_code=400,
             json={"success": False, "msg": "Sub-account function is not enabled."})
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert str(info.value) == ("GET /sapi/v1/margin/account on api.binance.test: "
                               "Sub-account function is not enabled.")


def test_json_that_is_not_binance_s_is_not_taken_for_binance_s(mock):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=403, json={"message": "Forbidden"})
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "waf"
    assert client.backoff_until() == clock.now + 300
    client = make_client()
    mock.get(BASE + ACCOUNT_PATH, status_code=400, json=["unexpected"])
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "http"
    assert str(info.value).endswith("HTTP 400: unexpected JSON body")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_user_stream_call_sends_its_method_and_key_without_a_signature(mock, method):
    client = make_client()
    path = "/sapi/v1/margin/listen-key"
    mock.register_uri(method, BASE + path, json={"listenKey": "k"})
    assert user_stream(client, method, path, "listenKey=k") == {"listenKey": "k"}
    request = mock.request_history[-1]
    assert request.method == method and request.headers["X-MBX-APIKEY"] == API_KEY
    assert "signature" not in request.url and request.query == "listenkey=k"


# -- a key on another host (issue: true to Binance, part two) ---------------------------------

def test_a_client_on_another_host_keeps_the_key_s_settings_and_has_the_host_s_gates(mock):
    """``on()``: a futures account's key on the fapi host: its own connections and back-off,
    the host's gates, and everything else of the account's client (timeout, recvWindow, size
    cap, clock, the background that syncs the clock)."""
    clock, ran = Clock(), []
    api = Upstream(BASE, wall=clock)
    fapi = Upstream("https://fapi.binance.test", wall=clock, clock_of=api)
    client = BinanceClient(api, API_KEY, HmacSigner(SECRET), timeout=2.5, wall=clock,
                           recv_window_ms=7000, max_response_bytes=200, background=ran.append)
    assert client.on(api) is client
    other = client.on(fapi)
    assert other is not client and other.upstream is fapi
    mock.get("https://fapi.binance.test/fapi/v3/account", json={"assets": []},
             headers={"X-MBX-USED-WEIGHT-1M": "7"})
    assert other.signed_get("/fapi/v3/account", deadline=time.monotonic() + 60) == \
        {"assets": []}
    sent = mock.request_history[-1]
    assert sent.timeout == 2.5 and "recvWindow=7000" in sent.url
    assert len(ran) == 1  # the clock's sync, off the request's path, as the client's
    assert fapi.gates["fapi"].last_used_weight == 7 and api.gates["fapi"].last_used_weight is None
    mock.get("https://fapi.binance.test/fapi/v3/account", text="x" * 300)
    with pytest.raises(UpstreamError, match="over 200 bytes"):
        other.signed_get("/fapi/v3/account")
    mock.get("https://fapi.binance.test/fapi/v3/account", status_code=401,
             json={"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    with pytest.raises(UpstreamError):
        other.signed_get("/fapi/v3/account")
    assert other.auth_backoff_until() == clock.now + 15  # on the client's wall clock
    assert client.auth_backoff_until() == 0.0  # the key may be fine on another host
