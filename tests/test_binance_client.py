"""The client against requests-mock: the request it sends and what it makes of each answer."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl

import pytest
import requests

from binance_margin_exporter.binance.cross import (
    ACCOUNT_PATH,
    TRADE_COEFF_PATH,
    fetch_account,
    fetch_trade_coeff,
    parse_account,
)
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.futures import FUTURES_ACCOUNT_PATHS
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import TIME_PATH, BinanceClient
from tests.support.clocks import Clock
from tests.support.keys import API_KEY, SECRET
from tests.support.mocked import BASE, inline, make_client, mocked
from tests.support.paths import fixture_json

FAPI = "https://fapi.binance.test"
ACCOUNT = fixture_json("account_docs_example.json")


@pytest.fixture
def mock():
    with mocked() as m:
        yield m


def account_requests(m):
    return [r for r in m.request_history if r.path == ACCOUNT_PATH.lower()]


def test_signed_request_has_key_header_query_and_signature(mock):
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT)
    fetch_account(make_client(recv_window_ms=7000))
    request = account_requests(mock)[0]
    assert request.headers["X-MBX-APIKEY"] == API_KEY
    query = request.url.split("?", 1)[1]
    payload, signature = query.rsplit("&signature=", 1)
    assert payload == "recvWindow=7000&timestamp=1700000000000"
    expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert signature == expected


def test_timestamp_uses_the_server_clock_offset(mock):
    clock = Clock(1_700_000_000.0 - 30)  # local clock 30 s behind
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT)
    fetch_account(make_client(clock))
    params = dict(parse_qsl(account_requests(mock)[0].url.split("?", 1)[1]))
    assert abs(int(params["timestamp"]) - 1_700_000_000_000) < 50


def test_values_match_the_json_exactly(mock):
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT)
    account = fetch_account(make_client())
    assert account.margin_level == float(ACCOUNT["marginLevel"])
    assert account.total_collateral_value_usdt == float(ACCOUNT["TotalCollateralValueInUSDT"])
    bnb = next(a for a in account.assets if a.asset == "BNB")
    assert (bnb.free, bnb.borrowed, bnb.net_asset) == (2346.5, 201.66666672, 2144.83333328)
    assert account.account_type == "MARGIN_1"
    assert account.transfer_out_enabled is True


@pytest.mark.parametrize("field", ["collateralMarginLevel", "TotalCollateralValueInUSDT",
                                   "totalOpenOrderLossInUSDT", "accountType",
                                   "transferInEnabled", "created"])
def test_missing_optional_field_is_none(field):
    raw = dict(ACCOUNT)
    del raw[field]
    account = parse_account(raw)
    assert account.margin_level == 11.64405625


def test_older_response_with_transfer_enabled():
    raw = {k: v for k, v in ACCOUNT.items() if not k.startswith("transfer")}
    raw["transferEnabled"] = True
    account = parse_account(raw)
    assert account.transfer_in_enabled is None and account.transfer_out_enabled is None
    assert account.transfer_enabled is True


def test_older_spellings_are_read():
    raw = {k: v for k, v in ACCOUNT.items() if k != "collateralMarginLevel"}
    raw["CollateralMarginLevel"] = "2.5"
    assert parse_account(raw).collateral_margin_level == 2.5


def test_a_hostile_deeply_nested_body_is_an_invalid_response(mock):
    mock.get(BASE + ACCOUNT_PATH, text="[" * 100_000 + "]" * 100_000)
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert info.value.reason == "invalid_response"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("marginLevel"), "marginLevel: missing"),
        (lambda r: r.update(marginLevel="abc"), "marginLevel: not a decimal number"),
        (lambda r: r.update(marginLevel="NaN"), "marginLevel: not a decimal number"),
        (lambda r: r.update(marginLevel="1e400"), "marginLevel: not a finite number"),
        (lambda r: r.update(totalAssetOfBtc=[1]), "totalAssetOfBtc: expected a number"),
        (lambda r: r.update(userAssets={}), "userAssets: expected a list"),
        (lambda r: r["userAssets"][1].update(free="1.2.3"),
         "userAssets[1].free: not a decimal number"),
        (lambda r: r["userAssets"][0].pop("netAsset"), "userAssets[0].netAsset: missing"),
        (lambda r: r["userAssets"][2].update(asset=7), "userAssets[2].asset: expected a string"),
    ],
)
def test_wrong_shape_is_a_typed_error(change, message):
    raw = json.loads(json.dumps(ACCOUNT))
    change(raw)
    with pytest.raises(UpstreamError) as info:
        parse_account(raw)
    assert info.value.reason == "invalid_response"
    assert message in str(info.value)


@pytest.mark.parametrize("value", [True, False, "1_0", " 1", "1 ", "\u0661", "+1", "0x10", "inf",
                                   "-Infinity", "", "1e", ".", None, [], {}])
def test_only_decimal_strings_and_json_numbers_are_numbers(value):
    raw = json.loads(json.dumps(ACCOUNT))
    raw["userAssets"][0]["free"] = value
    with pytest.raises(UpstreamError) as info:
        parse_account(raw)
    assert info.value.reason == "invalid_response"
    assert "userAssets[0].free" in str(info.value)


@pytest.mark.parametrize(("value", "number"), [("1.5", 1.5), (2, 2.0), (0.25, 0.25), ("1E-8", 1e-8),
                                               ("-3", -3.0), (".5", 0.5), ("7.", 7.0)])
def test_decimal_strings_and_json_numbers_parse_exactly(value, number):
    raw = json.loads(json.dumps(ACCOUNT))
    raw["userAssets"][0]["free"] = value
    assert parse_account(raw).assets[0].free == number


@pytest.mark.parametrize("zero", ["0", "0E-8", "-0.00000000", "0.00000000", 0, -0.0])
def test_zero_however_written_is_zero(zero):
    raw = json.loads(json.dumps(ACCOUNT))
    entry = raw["userAssets"][0]
    for key in ("free", "locked", "borrowed", "interest", "netAsset"):
        entry[key] = zero
    asset = parse_account(raw).assets[0]
    assert asset.is_zero
    assert str(asset.free) == "0.0"  # never "-0.0" in the exposition


def test_an_asset_listed_twice_keeps_its_first_entry(caplog):
    raw = json.loads(json.dumps(ACCOUNT))
    first = raw["userAssets"][1]
    raw["userAssets"].append(dict(first, free="12345"))
    assets = [a for a in parse_account(raw).assets if a.asset == first["asset"]]
    assert len(assets) == 1 and assets[0].free == float(first["free"])
    assert [r for r in caplog.records if r.levelname == "WARNING" and first["asset"] in
            r.getMessage()]


def test_empty_string_drops_an_optional_number():
    raw = dict(ACCOUNT, collateralMarginLevel="")
    assert parse_account(raw).collateral_margin_level is None


def test_not_json_is_invalid_response(mock):
    mock.get(BASE + ACCOUNT_PATH, text='{"marginLevel": "1.5", "userAss')
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert info.value.reason == "invalid_response"


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (401, -2015, "auth"),
        (400, -1002, "auth"),
        (400, -2014, "auth"),
        (400, -1022, "auth"),
        (400, -3003, "api_error"),
        (400, -1102, "api_error"),
        (500, -3000, "http"),
        (503, -1007, "http"),
    ],
)
def test_binance_error_codes_are_kept(mock, status, code, reason):
    mock.get(BASE + ACCOUNT_PATH, status_code=status, json={"code": code, "msg": "bad thing"})
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert (info.value.reason, info.value.code, info.value.status) == (reason, code, status)
    assert str(code) in str(info.value) and "bad thing" in str(info.value)


def test_html_error_page_is_http(mock):
    mock.get(BASE + ACCOUNT_PATH, status_code=502, text="<html>Bad Gateway</html>")
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert info.value.reason == "http" and info.value.status == 502


def test_timeout_and_connection_errors(mock):
    mock.get(BASE + ACCOUNT_PATH, exc=requests.exceptions.ReadTimeout("t " + BASE + "?sig=x"))
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert info.value.reason == "timeout" and "sig=" not in str(info.value)
    mock.get(BASE + ACCOUNT_PATH, exc=requests.exceptions.ConnectionError("refused ?sig=x"))
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert info.value.reason == "connection" and "sig=" not in str(info.value)


def test_request_timeout_is_passed_to_requests(mock):
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT)
    fetch_account(make_client(timeout=3.5))
    # the whole budget, less the few microseconds already spent
    assert 3.4 < account_requests(mock)[0].timeout <= 3.5


def test_1021_resyncs_once_and_retries(mock):
    mock.get(BASE + ACCOUNT_PATH, [
        {"status_code": 400, "json": {"code": -1021, "msg": "outside of the recvWindow"}},
        {"json": ACCOUNT},
    ])
    client = make_client()
    assert fetch_account(client).margin_level == 11.64405625
    times = [r for r in mock.request_history if r.path == TIME_PATH.lower()]
    assert len(times) == 2  # the first sync and the re-sync
    assert len(account_requests(mock)) == 2


def test_1021_twice_gives_up(mock):
    mock.get(BASE + ACCOUNT_PATH, status_code=400, json={"code": -1021, "msg": "outside"})
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert info.value.code == -1021
    assert len(account_requests(mock)) == 2


def test_clock_is_resynced_periodically(mock):
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT)
    mono = Clock(0.0)
    wall = Clock()
    upstream = Upstream(BASE, wall=wall, monotonic=mono)
    client = BinanceClient(upstream, API_KEY, HmacSigner(SECRET), wall=wall, background=inline)
    fetch_account(client)
    fetch_account(client)
    mono.now += 301
    fetch_account(client)
    assert len([r for r in mock.request_history if r.path == TIME_PATH.lower()]) == 2


def test_429_blocks_every_account_on_the_ip_until_retry_after(mock):
    clock = Clock()
    upstream = Upstream(BASE, wall=clock)
    first = BinanceClient(upstream, API_KEY, HmacSigner(SECRET), wall=clock, background=inline)
    second = BinanceClient(upstream, "other-key", HmacSigner("other"), wall=clock,
                           background=inline)
    mock.get(BASE + ACCOUNT_PATH, status_code=429, headers={"Retry-After": "30"},
             json={"code": -1003, "msg": "Too many requests"})
    with pytest.raises(UpstreamError) as info:
        fetch_account(first)
    assert info.value.reason == "rate_limited"
    sent = len(account_requests(mock))
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT)
    for client in (first, second):
        with pytest.raises(UpstreamError) as info:
            fetch_account(client)
        assert info.value.reason == "rate_limited" and not info.value.sent
    assert len(account_requests(mock)) == sent  # nothing sent during the back-off
    assert first.backoff_until() == pytest.approx(clock.now + 30)
    clock.now += 31
    assert fetch_account(second).margin_level == 11.64405625
    assert first.backoff_until() == 0.0


def test_418_is_banned(mock, caplog):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=418, headers={"Retry-After": "120"},
             json={"code": -1003, "msg": "IP banned until 1700000120000"})
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "banned"
    with pytest.raises(UpstreamError):
        fetch_account(client)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "banned" in errors[0].getMessage()


def test_weight_header_is_kept_and_soft_limit_pauses(mock):
    clock = Clock()
    upstream = Upstream(BASE, wall=clock, soft_limit=9600)
    client = BinanceClient(upstream, API_KEY, HmacSigner(SECRET), wall=clock, background=inline)
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT, headers={"x-sapi-used-ip-weight-1m": "120"})
    fetch_account(client)
    assert client.upstream.gate.last_used_weight == 120 and client.backoff_until() == 0.0
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT, headers={"x-sapi-used-ip-weight-1m": "9700"})
    fetch_account(client)  # this answer is still good ...
    with pytest.raises(UpstreamError) as info:  # ... but the next request waits
        fetch_account(client)
    assert info.value.reason == "throttled" and not info.value.sent
    assert 0 < client.backoff_until() - clock.now <= 61


@pytest.mark.parametrize(("status", "code", "message"), [
    (401, -2015, "Invalid key"),
    (400, -1002, "You are not authorized to execute this request."),
])
def test_auth_failure_backs_off_exponentially_up_to_five_minutes(mock, status, code, message):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=status, json={"code": code, "msg": message})
    delays = []
    for _ in range(8):
        with pytest.raises(UpstreamError) as info:
            fetch_account(client)
        assert info.value.reason == "auth" and info.value.sent
        assert "IP allow-list" in str(info.value)
        delays.append(client.backoff_until() - clock.now)
        with pytest.raises(UpstreamError) as info:  # inside the back-off: nothing is sent
            fetch_account(client)
        assert not info.value.sent
        clock.now = client.backoff_until() + 0.001
    assert delays == [15, 30, 60, 120, 240, 300, 300, 300]
    assert len(account_requests(mock)) == 8


def test_oversized_response_is_refused(mock):
    mock.get(BASE + ACCOUNT_PATH, content=b"x" * 200_000)
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client(max_response_bytes=100_000))
    assert info.value.reason == "invalid_response" and "over" in str(info.value)


def test_redirects_are_not_followed(mock):
    mock.get(BASE + ACCOUNT_PATH, status_code=302, headers={"Location": "https://evil.test/"})
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert info.value.reason == "http"
    assert not [r for r in mock.request_history if "evil" in r.url]


def test_trade_coeff(mock):
    mock.get(BASE + TRADE_COEFF_PATH, json=fixture_json("trade_coeff_docs_example.json"))
    coeff = fetch_trade_coeff(make_client())
    assert (coeff.normal_bar, coeff.margin_call_bar, coeff.force_liquidation_bar) == (1.5, 1.3,
                                                                                      1.1)


def test_repr_hides_credentials():
    assert SECRET not in repr(make_client()) and API_KEY not in repr(make_client())


def test_a_second_ban_after_the_first_expired_logs_again(mock, caplog):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=418, headers={"Retry-After": "60"},
             json={"code": -1003, "msg": "banned"})
    for _ in range(2):
        with pytest.raises(UpstreamError):
            fetch_account(client)
        clock.now += 61
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 2


@pytest.mark.parametrize(("header", "seconds"), [("0", 1), ("-5", 1), ("0.2", 1), ("30", 30),
                                                 ("inf", 259200), ("1e20", 259200),
                                                 # no stated end: 2 minutes (then doubling)
                                                 ("nan", 120), ("soon", 120), (None, 120)])
def test_retry_after_is_bounded_to_one_second_and_three_days(mock, header, seconds):
    clock = Clock()
    client = make_client(clock)
    headers = {} if header is None else {"Retry-After": header}
    mock.get(BASE + ACCOUNT_PATH, status_code=429, headers=headers,
             json={"code": -1003, "msg": "Too many requests"})
    with pytest.raises(UpstreamError):
        fetch_account(client)
    assert client.backoff_until() - clock.now == pytest.approx(seconds)


def test_1003_with_a_plain_4xx_blocks_every_account_on_the_ip(mock):
    clock = Clock()
    upstream = Upstream(BASE, wall=clock)
    first = BinanceClient(upstream, API_KEY, HmacSigner(SECRET), wall=clock, background=inline)
    second = BinanceClient(upstream, "k2", HmacSigner("s2"), wall=clock, background=inline)
    mock.get(BASE + ACCOUNT_PATH, status_code=400, headers={"Retry-After": "20"},
             json={"code": -1003, "msg": "Too much request weight used"})
    with pytest.raises(UpstreamError) as info:
        fetch_account(first)
    assert info.value.reason == "rate_limited" and info.value.sent
    with pytest.raises(UpstreamError) as info:
        fetch_account(second)
    assert info.value.reason == "rate_limited" and not info.value.sent
    assert second.backoff_until() == pytest.approx(clock.now + 20)


def test_a_success_resets_the_auth_back_off(mock):
    clock = Clock()
    client = make_client(clock)
    bad = {"status_code": 401, "json": {"code": -2015, "msg": "Invalid API-key"}}
    mock.get(BASE + ACCOUNT_PATH, [bad, bad, {"json": ACCOUNT}, bad])
    for delay in (15, 30):
        with pytest.raises(UpstreamError):
            fetch_account(client)
        assert client.backoff_until() - clock.now == delay
        clock.now += delay + 1
    fetch_account(client)
    assert client.backoff_until() == 0.0
    with pytest.raises(UpstreamError):
        fetch_account(client)
    assert client.backoff_until() - clock.now == 15  # from the start again, not 60


def test_a_failed_clock_sync_is_retried_at_the_next_request(mock):
    mock.get(BASE + TIME_PATH, [{"status_code": 503, "text": "busy"},
                                {"json": {"serverTime": 1_700_000_000_000}}])
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT)
    client = make_client()
    fetch_account(client)  # the sync fails; the request goes on with the local clock
    fetch_account(client)  # and the next one syncs again, not five minutes later
    assert len([r for r in mock.request_history if r.path == TIME_PATH.lower()]) == 2
    fetch_account(client)
    assert len([r for r in mock.request_history if r.path == TIME_PATH.lower()]) == 2


@pytest.mark.parametrize(("used", "throttled"), [(9599, False), (9600, True), (9601, True)])
def test_soft_limit_boundary_and_pause_until_the_next_minute(mock, used, throttled):
    clock = Clock(1_700_000_000.0)  # 1_700_000_000_000 ms: 20 s past a minute
    upstream = Upstream(BASE, wall=clock, soft_limit=9600)
    client = BinanceClient(upstream, API_KEY, HmacSigner(SECRET), wall=clock, background=inline)
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT,
             headers={"x-sapi-used-ip-weight-1m": str(used)})
    fetch_account(client)
    if not throttled:
        assert client.backoff_until() == 0.0
        fetch_account(client)
        return
    # until the next minute of Binance's clock (40 s away), plus a second for clock error
    assert client.backoff_until() == pytest.approx(clock.now + 41)
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "throttled" and not info.value.sent


def test_api_weight_is_kept_on_its_own_gate(mock):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + TIME_PATH, json={"serverTime": 1_700_000_000_000},
             headers={"x-mbx-used-weight-1m": "4800"})
    client.sync_time()  # /api: 4800 of 6000 is the /api soft limit (80 %)
    assert client.upstream.gates["api"].backoff_until() > 0
    assert client.upstream.gate.backoff_until() == 0.0  # /sapi is another budget
    mock.get(BASE + ACCOUNT_PATH, json=ACCOUNT)
    fetch_account(client)


def test_a_rate_limit_never_replaces_an_active_ban(mock):
    clock = Clock()
    client = make_client(clock)
    mock.get(BASE + ACCOUNT_PATH, status_code=418, headers={"Retry-After": "600"},
             json={"code": -1003, "msg": "banned"})
    with pytest.raises(UpstreamError):
        fetch_account(client)
    client.upstream.gate.block(30, "rate_limited")
    client.upstream.gate.note_weight(11000, 1_700_000_000_000)
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "banned"
    assert client.backoff_until() == pytest.approx(clock.now + 600)


@pytest.mark.parametrize(("body", "expected"), [
    ("<html>Bad Gateway</html>", "HTTP 502: non-JSON body"),
    ('["not", "an", "error"]', "HTTP 502: unexpected JSON body"),
    ('{"code": -1007, "msg": "Timeout\\nwaiting"}',
     "HTTP 502: Binance code -1007: Timeout waiting"),
    ('{"code": -1007}', "HTTP 502: Binance code -1007: "),
])
def test_error_bodies_are_described_exactly(mock, body, expected):
    mock.get(BASE + ACCOUNT_PATH, status_code=502, text=body)
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert str(info.value) == f"GET {ACCOUNT_PATH} on api.binance.test: {expected}"


def test_a_long_error_message_is_cut_at_200_characters(mock):
    mock.get(BASE + ACCOUNT_PATH, status_code=400, json={"code": -3003, "msg": "x" * 500})
    with pytest.raises(UpstreamError) as info:
        fetch_account(make_client())
    assert str(info.value).endswith(": " + "x" * 200)


def test_proxy_and_ca_bundle_from_the_environment_are_read_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/private-ca.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = make_client()
    assert client._session.proxies.get("https") == "http://proxy.test:3128"
    assert client._session.verify == "/etc/ssl/private-ca.pem"
    monkeypatch.setenv("NO_PROXY", "api.binance.test")
    assert "https" not in make_client()._session.proxies


def test_a_ban_replaces_an_active_rate_limit(mock):
    clock = Clock()
    client = make_client(clock)
    client.upstream.gate.block(30, "rate_limited")
    client.upstream.ban(600)
    with pytest.raises(UpstreamError) as info:
        fetch_account(client)
    assert info.value.reason == "banned"
    assert client.backoff_until() == pytest.approx(clock.now + 600)


def test_a_second_418_during_a_ban_logs_nothing_new(caplog):
    clock = Clock()
    upstream = Upstream(BASE, wall=clock)
    upstream.ban(120)
    clock.now += 10
    upstream.ban(120)  # another account's request, answered 418 too
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "for 120 s" in errors[0].getMessage()
    assert upstream.backoff_until() == pytest.approx(clock.now + 120)  # and it is extended


def test_a_client_on_another_host_is_the_configured_client_there(mock):
    """``BinanceClient.on`` (a futures account's fapi and dapi clients) keeps what was
    configured: its requests get the request timeout, not the 5 s default, the receive
    window and the response cap; and its back-off after a rejected key runs on the
    client's clock (here a fixed one), its own, apart from the api host's client."""
    clock = Clock()
    api = Upstream(BASE, wall=clock)
    client = BinanceClient(api, API_KEY, HmacSigner(SECRET), wall=clock, background=inline,
                           timeout=30.0, recv_window_ms=7000, max_response_bytes=100_000)
    assert client.on(api) is client
    fapi = client.on(Upstream(FAPI, wall=clock, clock_of=api))
    path = FUTURES_ACCOUNT_PATHS["um"]
    rejected = {"status_code": 401, "json": {"code": -2015, "msg": "Invalid API-key"}}
    mock.get(FAPI + path, [rejected, {"json": {"assets": []}}, {"content": b"x" * 200_000}])

    with pytest.raises(UpstreamError) as info:
        fapi.signed_get(path)
    assert info.value.reason == "auth"
    sent = [r for r in mock.request_history if r.path == path]
    assert 20 < sent[0].timeout <= 30  # the configured 30 s, less what was spent
    assert "recvWindow=7000&" in sent[0].url
    assert fapi.backoff_until() - clock.now == 15  # on the client's clock
    assert client.backoff_until() == 0.0
    with pytest.raises(UpstreamError) as info:  # inside the back-off: nothing is sent
        fapi.signed_get(path)
    assert not info.value.sent
    clock.now += 16
    assert fapi.signed_get(path) == {"assets": []}
    with pytest.raises(UpstreamError) as info:
        fapi.signed_get(path)
    assert info.value.reason == "invalid_response" and "over" in str(info.value)
