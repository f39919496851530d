"""The server (web/server.py): listen addresses, dual stack, URL hosts."""

from __future__ import annotations

import socket

import pytest
import requests

from binance_margin_exporter.web.server import ExporterHTTPServer, parse_listen_address, url_host
from tests.support.web import running


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9944", ("127.0.0.1", 9944)),
    (":9944", ("::", 9944)),
    ("[::1]:9944", ("::1", 9944)),
    ("localhost:0", ("localhost", 0)),
    ("h:65535", ("h", 65535)),
    ("Xenon:9944", ("Xenon", 9944)),
])
def test_listen_address(text, expected):
    assert parse_listen_address(text) == expected


def test_listen_address_without_ipv6(monkeypatch):
    monkeypatch.setattr(socket, "has_ipv6", False)
    assert parse_listen_address(":9944") == ("0.0.0.0", 9944)


@pytest.mark.parametrize("text", ["9944", "host:", "host:http", "h:70000", "h:65536"])
def test_bad_listen_address(text):
    with pytest.raises(ValueError, match=r"--web\.listen-address: expected host:port"):
        parse_listen_address(text)


def test_all_interfaces_is_one_dual_stack_socket():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with running(address=("::", 0)) as (server, _):
        port = server.server_address[1]
        assert server.socket.family == socket.AF_INET6
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "ok\n"
        assert requests.get(f"http://[::1]:{port}/healthz", timeout=5).text == "ok\n"


def test_an_ipv6_address_listens_on_ipv6_only_that_address():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with running(address=("::1", 0)) as (server, _):
        assert server.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        port = server.server_address[1]
        assert requests.get(f"http://[::1]:{port}/healthz", timeout=5).text == "ok\n"


def test_an_ipv6_address_is_written_in_brackets_in_a_url():
    assert (url_host("::"), url_host("::1"), url_host("127.0.0.1")) == ("[::]", "[::1]",
                                                                       "127.0.0.1")


def test_shutdown_is_prompt():
    import time

    with running() as (server, _):
        started = time.monotonic()
        server.shutdown()
        assert time.monotonic() - started < 0.4  # the poll is short


def test_an_address_in_use_is_an_os_error():
    with running() as (server, _):
        with pytest.raises(OSError):
            ExporterHTTPServer(("127.0.0.1", server.server_address[1]), lambda t: [],
                               __import__("binance_margin_exporter.config").config.WebConfig())
