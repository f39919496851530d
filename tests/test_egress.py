"""Egresses: each a budget of its own at Binance. A client leaves by its upstream's egress (a
local source address, or a proxy); a 429 or 418 on one never holds another. Over real HTTP:
the simulator counts weight per client address, as Binance counts per IP."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from binance_margin_exporter.binance.cross import ACCOUNT_PATH
from binance_margin_exporter.binance.egress import Egress
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.rate_limits import HostsCollector
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.products import SIMULATED
from tests.support.exporters import Scraper, built_exporter, sample_values
from tests.support.keys import API_KEY, SECRET
from tests.support.net import raw_http_server, socket_server

A = Egress("a", source_address="127.0.0.1")
B = Egress("b", source_address="127.0.0.2")


@pytest.fixture
def sim():
    simulator = Simulator(SIMULATED)
    simulator.add_hmac_key(API_KEY, SECRET)
    with simulator:
        yield simulator


def client(url: str, egress: Egress) -> BinanceClient:
    upstream = Upstream(url, egress=egress)
    upstream.gate.soft_limit = 10**9  # let Binance (the simulator) say 429 and 418 itself
    # clock syncs inline, not racing the requests counted
    return BinanceClient(upstream, API_KEY, HmacSigner(SECRET), background=lambda task: task())


def test_each_egress_leaves_from_its_own_address(sim):
    a, b = client(sim.base_url, A), client(sim.base_url, B)
    b.signed_get(ACCOUNT_PATH)
    b.signed_get(ACCOUNT_PATH)
    a.signed_get(ACCOUNT_PATH)
    assert sim.sources[("127.0.0.2", ACCOUNT_PATH)] == 2
    assert sim.sources[("127.0.0.1", ACCOUNT_PATH)] == 1


@pytest.mark.parametrize("violations", [1, 4])  # 429; 418 after going on past 429s
def test_a_429_or_418_on_one_egress_never_holds_another(sim, violations):
    a, b = client(sim.base_url, A), client(sim.base_url, B)
    b.signed_get(ACCOUNT_PATH)  # with its clock sync: an answer resets the simulator's count
    sim.source_bonus["127.0.0.2"] = 11_995  # egress b's IP spent its minute
    for _ in range(violations):
        for gate in b.upstream.gates.values():  # go on regardless, as a careless client would
            gate.blocked_until = 0.0
        with pytest.raises(UpstreamError) as info:
            b.signed_get(ACCOUNT_PATH)
    assert info.value.reason == ("banned" if violations == 4 else "rate_limited")
    assert b.upstream.backoff_until() > 0
    sent_b = sim.sources[("127.0.0.2", ACCOUNT_PATH)]
    with pytest.raises(UpstreamError):
        b.signed_get(ACCOUNT_PATH)  # held by its own back-off, nothing sent
    assert sim.sources[("127.0.0.2", ACCOUNT_PATH)] == sent_b
    for _ in range(3):
        a.signed_get(ACCOUNT_PATH)  # egress a goes on, with its own weight
    assert a.upstream.backoff_until() == 0.0
    values = sample_values(Scraper(HostsCollector([a.upstream, b.upstream])).text())
    host = a.upstream.host
    backoff = "binance_margin_ip_backoff_until_timestamp_seconds"
    assert values[(backoff, (("egress", "a"), ("host", host)))] == 0.0
    assert values[(backoff, (("egress", "b"), ("host", host)))] > 0.0
    weight = "binance_margin_api_ip_weight_used_1m"
    assert values[(weight, (("budget", "sapi"), ("egress", "a"), ("host", host)))] < 100


def test_a_proxy_egress_sends_through_the_proxy(sim):
    """The second simulator stands in for the proxy: it answers the absolute-URI request
    itself, so the request reaching it (and not the first) shows the proxy was used."""
    proxy = Simulator(SIMULATED)
    proxy.add_hmac_key(API_KEY, SECRET)
    with proxy:
        via = client(sim.base_url, Egress("p", proxy=proxy.base_url))
        via.signed_get(ACCOUNT_PATH)
        assert proxy.counts[ACCOUNT_PATH] == 1
        assert sim.counts[ACCOUNT_PATH] == 0


def egress_config(sim, tmp_path, accounts: str, extra: str = "") -> str:
    path = tmp_path / "config.yml"
    path.write_text(f"""
base_url: {sim.base_url}
usdt_values: false
interest_rates: false
egress:
  - {{name: a, source_address: 127.0.0.1}}
  - {{name: b, source_address: 127.0.0.2}}
{extra}accounts:
{accounts}""")
    return str(path)


def test_accounts_leave_by_their_egress_and_a_reload_keeps_each_ones_upstreams(sim, tmp_path):
    from binance_margin_exporter.wiring import build_exporter, load

    accounts = (f"  - {{name: one, api_key: {API_KEY}, api_secret: {SECRET}, egress: a, "
                f"isolated: false}}\n"
                f"  - {{name: two, api_key: {API_KEY}, api_secret: {SECRET}, egress: b, "
                f"isolated: false}}\n")
    settings = load(egress_config(sim, tmp_path, accounts), {})
    with built_exporter(settings) as built:
        one, two = (built.accounts[a].client for a in settings.accounts)
        assert one.upstream is built.upstreams[("a", sim.base_url)]
        assert two.upstream is built.upstreams[("b", sim.base_url)]
        assert one.upstream.gate is not two.upstream.gate
        list(built.exporter.collect(None))
        assert sim.sources[("127.0.0.1", ACCOUNT_PATH)] == 1
        assert sim.sources[("127.0.0.2", ACCOUNT_PATH)] == 1
        two.upstream.ban(600)
        again = build_exporter(load(egress_config(sim, tmp_path, accounts,
                                                  "cache_ttl_seconds: 3\n"), {}), built)
        assert again.upstreams[("b", sim.base_url)] is two.upstream  # its ban kept
        assert again.upstreams[("a", sim.base_url)] is one.upstream
        assert two.upstream.backoff_until() > 0 and one.upstream.backoff_until() == 0


def test_accounts_on_one_host_and_egress_share_one_pool_of_connections(sim, tmp_path):
    """200 accounts keep one pool (fetch_concurrency connections) per host and egress, not
    one each; an account on another egress still leaves by its own address."""
    from binance_margin_exporter.wiring import load

    accounts = "".join(f"  - {{name: {name}, api_key: {API_KEY}, api_secret: {SECRET}, "
                       f"egress: {egress}, isolated: false}}\n"
                       for name, egress in (("one", "a"), ("two", "a"), ("three", "b")))
    settings = load(egress_config(sim, tmp_path, accounts), {})
    with built_exporter(settings) as built:
        one, two, three = (built.accounts[a].client for a in settings.accounts)
        assert one._session is two._session
        assert three._session is not one._session
        list(built.exporter.collect(None))
        assert sim.sources[("127.0.0.1", ACCOUNT_PATH)] == 2
        assert sim.sources[("127.0.0.2", ACCOUNT_PATH)] == 1


@pytest.mark.parametrize(("egress", "message"), [
    ("  - {name: c, source_address: 127.0.0.1}\n", None),
    ("  - {name: default, proxy: http://127.0.0.1:3128}\n", "is taken"),
    ("  - {name: c, source_address: nowhere}\n", "expected an IP address"),
    ("  - {name: c, source_address: 127.0.0.1, proxy: http://p:1}\n", "set only one"),
    ("  - {name: c, source_address: 0.0.0.0}\n",
     r"^egress\[0\]\.source_address: 0\.0\.0\.0 is not one address of this host"),
    ("  - {name: c, source_address: '::'}\n", r"^egress\[0\]\.source_address: :: is not one"),
    ("  - {name: c, source_address: 224.0.0.1}\n", "is not one address"),
    ("  - {name: c, proxy: 'http://[::1'}\n", r"^egress\[0\]\.proxy: expected an http\(s\) URL"),
    ("  - {name: c, proxy: 'http://p:99999'}\n", r"^egress\[0\]\.proxy: expected an http"),
    ("  - {name: c, proxy: 'http://u:secret@p:3128'}\n",
     r"^egress\[0\]\.proxy: a proxy that needs a user and password is not supported"),
])
def test_egress_configuration_errors_name_the_key(tmp_path, egress, message):
    from binance_margin_exporter.config import ConfigError
    from binance_margin_exporter.wiring import load

    path = tmp_path / "c.yml"
    path.write_text(f"egress:\n{egress}accounts:\n"
                    f"  - {{name: x, api_key: k, api_secret: s, egress: c}}\n")
    if message is None:
        assert load(str(path), {}).accounts[0].egress == "c"
        return
    with pytest.raises(ConfigError, match=message) as info:
        load(str(path), {})
    assert "secret" not in str(info.value) and "Invalid IPv6" not in str(info.value)


def test_an_unknown_egress_or_an_address_this_host_lacks_is_refused(tmp_path):
    from binance_margin_exporter.config import ConfigError
    from binance_margin_exporter.wiring import build_exporter, load

    path = tmp_path / "c.yml"
    path.write_text("accounts:\n  - {name: x, api_key: k, api_secret: s, egress: nope}\n")
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.egress: no egress named 'nope'"):
        load(str(path), {})
    path.write_text("egress: [{name: far, source_address: 203.0.113.7}]\n"
                    "accounts:\n  - {name: x, api_key: k, api_secret: s, egress: far}\n")
    with pytest.raises(ConfigError, match="egress far: cannot bind source_address"):
        build_exporter(load(str(path), {}))


# -- every route keeps the fetch deadline -----------------------------------------------------


def _drip(conn) -> None:
    """An answer (or a proxy's CONNECT answer) a byte every 0.2 s: 15 s in all."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(75):
        conn.sendall(b"X")
        time.sleep(0.2)


def synced(base_url: str, egress: Egress) -> BinanceClient:
    upstream = Upstream(base_url, egress=egress)
    upstream.clock.claim_sync()  # no clock sync: the drip answers every request
    upstream.clock.sync_ended()
    return BinanceClient(upstream, API_KEY, HmacSigner(SECRET), timeout=1.0)


@pytest.mark.parametrize("route", ["default", "source_address", "proxy", "proxy_tunnel"])
def test_a_dripped_answer_ends_at_the_deadline_by_every_route(route):
    """The server (or the proxy, for a proxy egress) drips its answer; ``proxy_tunnel``: an
    https host through a proxy that drips its answer to CONNECT, read before any request."""
    from binance_margin_exporter.binance.transport import TIME_PATH

    with raw_http_server(_drip) as url:
        egress, base = {
            "default": (Egress(), url),
            "source_address": (Egress("s", source_address="127.0.0.1"), url),
            "proxy": (Egress("p", proxy=url), "http://binance.test"),
            "proxy_tunnel": (Egress("p", proxy=url), "https://binance.test"),
        }[route]
        client = synced(base, egress)
        started = time.monotonic()
        with pytest.raises(UpstreamError) as info:
            client.get(TIME_PATH)
        took = time.monotonic() - started
    assert info.value.reason == "timeout", info.value
    assert took < 10, took  # not the 15 s the drip takes


# -- the streams leave by the account's egress too ----------------------------------------------


@contextlib.contextmanager
def tunnel_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP proxy that tunnels (CONNECT: the targets it was asked for are listed) and
    forwards plain requests."""
    targets: list[str] = []

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # a client or a target that hangs up
            tunnel(conn)

    def tunnel(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                conn.close()
                return
            head += data
        method, target = head.split(b" ")[:2]
        if method == b"CONNECT":
            targets.append(target.decode())
            host, port = target.decode().rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:  # a plain request, forwarded as it came (the REST calls of an http host)
            host, port = urlsplit(target.decode()).netloc.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            upstream.sendall(head)
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)

    with socket_server(serve) as url:
        yield url, targets


@pytest.mark.parametrize("way", ["source_address", "proxy"])
def test_a_stream_leaves_by_the_account_s_egress(sim, tmp_path, way):
    from binance_margin_exporter.wiring import load, warm_up

    with tunnel_proxy() as (proxy, targets):
        egress = "source_address: 127.0.0.2" if way == "source_address" else f"proxy: {proxy}"
        path = tmp_path / "config.yml"
        path.write_text(f"""
base_url: {sim.base_url}
margin_stream_url: {sim.streams.url}
usdt_values: false
interest_rates: false
risk_lists: false
egress: [{{name: e, {egress}}}]
accounts: [{{name: one, api_key: {API_KEY}, api_secret: {SECRET}, egress: e, isolated: false}}]
""")
        with built_exporter(load(str(path), {})) as built:
            warm_up(built)
            sim.streams.wait_connected("margin_risk")
            (conn,) = sim.streams.connections("margin_risk")
            if way == "source_address":
                assert conn.remote_address[0] == "127.0.0.2"
                assert sim.sources[("127.0.0.2", "/sapi/v1/margin/listen-key")] == 1
            else:
                assert targets == [sim.streams.url.split("//", 1)[1]]
