"""The connections (web/connections.py): keep-alive, deadlines, the connection cap, slow
readers, and many requests in a row."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
import requests

from binance_margin_exporter.web.connections import Limits, complete
from tests.support.waiting import wait_for
from tests.support.web import BODY, big_page, closed_by_server, raw_exchange, running

FAST = {"tick_seconds": 0.02}


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)


def test_many_requests_in_a_row_keep_being_served():
    """Each finished request gives its place back: with a cap of 4, the 40th connection is
    served like the first."""
    with running(limits=Limits(max_connections=4)) as (server, url):
        for _ in range(40):
            assert raw_exchange(url, b"GET /healthz HTTP/1.0\r\n\r\n").endswith(b"ok\n")
        for _ in range(10):  # and pipelined
            answer = raw_exchange(url, b"GET /healthz HTTP/1.1\r\n\r\n" * 2)
            assert answer.count(b"ok\n") == 2
        deadline = time.monotonic() + 5
        while server.watcher.count() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.watcher.count() == 0


def test_a_flood_of_idle_connections_drops_the_oldest_not_the_scrape():
    with running(limits=Limits(max_connections=4, **FAST)) as (server, url):
        idle = [connect(server) for _ in range(4)]
        wait_for(lambda: len(server.watcher.waiting) == 4, timeout=10)
        assert requests.get(url + "/metrics", timeout=5).content == BODY
        assert closed_by_server(idle[0], 2)  # the oldest made room
        assert not closed_by_server(idle[-1], 0.2)
        for sock in idle:
            sock.close()


def test_keep_alive_connections_are_kept_while_idle_then_dropped():
    # idle_seconds well above the pauses, so that a busy machine cannot stretch one past it
    limits = Limits(idle_seconds=2.0, **FAST)
    with running(limits=limits) as (server, _):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        for _ in range(3):
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == BODY
            time.sleep(0.3)  # idle, less than idle_seconds: the same connection serves on
        peer = conn.sock
        assert server.watcher.count() == 1
        started = time.monotonic()
        assert closed_by_server(peer, 10)
        assert time.monotonic() - started > 0.5  # idle since the last answer: 2 s
        conn.close()


def test_a_request_whose_headers_do_not_come_is_dropped_after_the_header_deadline():
    with running(limits=Limits(header_seconds=0.5, idle_seconds=30, **FAST)) as (server, _):
        half = connect(server)
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        pipelined = connect(server)  # a whole request, then half of the next
        pipelined.sendall(b"GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n")
        silent = connect(server)  # never says anything: the header deadline too
        kept = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() == b"ok\n"
        assert not closed_by_server(half, 0.2)
        assert closed_by_server(half, 3) and closed_by_server(silent, 3)
        assert closed_by_server(pipelined, 3)
        pipelined.close()
        # a keep-alive connection after its answer waits idle_seconds, not header_seconds
        assert not closed_by_server(kept.sock, 0.5)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() == b"ok\n"
        kept.close()
        half.close()
        silent.close()


def test_headers_larger_than_the_limit_close_the_connection():
    with running(limits=Limits(max_header_bytes=1000)) as (server, url):
        sock = connect(server)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * (1000 - 30))  # 1000 bytes
        assert not closed_by_server(sock, 0.3)
        sock.sendall(b"a")
        assert closed_by_server(sock, 3)
        sock.close()
        small = b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 900 + b"\r\n\r\n"
        assert raw_exchange(url, small).endswith(b"ok\n")


def test_a_client_closing_before_its_request_is_complete_frees_its_place():
    with running(limits=Limits(max_connections=2, **FAST)) as (server, url):
        for _ in range(5):
            sock = connect(server)
            sock.sendall(b"GET /metr")
            sock.close()
        wait_for(lambda: server.watcher.count() == 0, timeout=10)
        assert requests.get(url + "/healthz", timeout=5).ok


def test_the_documented_limits():
    assert Limits() == Limits(max_connections=256, header_seconds=10.0, idle_seconds=60.0,
                              write_seconds=10.0, max_header_bytes=65536, tick_seconds=1.0)


def test_an_idle_server_burns_no_cpu():
    with running():
        started = time.process_time()
        time.sleep(0.5)
        assert time.process_time() - started < 0.1


def test_connections_go_without_nagle_delay():
    with running(limits=Limits(**FAST)) as (server, _):
        sock = connect(server)
        wait_for(lambda: server.watcher.waiting, timeout=10)
        (conn,) = server.watcher.waiting.values()
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        sock.close()


def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused(caplog):
    with running(render=big_page(6_000_000), limits=Limits(max_connections=2)) as (server, _):
        readers = [connect(server) for _ in range(2)]
        for sock in readers:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n")
        deadline = time.monotonic() + 20
        while len(server.watcher.writing) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.watcher.count() == 2
        extra = connect(server)
        assert closed_by_server(extra, 3)
        assert any(r.getMessage().startswith("connection cap reached: refusing ('127.0.0.1', ")
                   for r in caplog.records)
        for sock in [*readers, extra]:
            sock.close()


def test_slow_readers_of_a_large_page_do_not_stall_healthz():
    """More clients than workers ask for a large page and read nothing: each holds a
    socket, not a worker, and /healthz answers at once."""
    with running(render=big_page(6_000_000)) as (server, url):
        readers = []
        for _ in range(server.WORKERS + 2):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.server_address[1]))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            readers.append(sock)
        try:
            deadline = time.monotonic() + 20
            while len(server.watcher.writing) < len(readers) and time.monotonic() < deadline:
                time.sleep(0.05)  # the pages rendered, and stuck in the sockets
            started = time.monotonic()
            assert requests.get(url + "/healthz", timeout=8).text == "ok\n"
            assert time.monotonic() - started < 4
            assert len(server.watcher.writing) == len(readers)
        finally:
            for sock in readers:
                sock.close()


def test_a_slow_reader_gets_its_whole_page_and_keeps_its_connection():
    page = big_page(6_000_000)
    with running(render=page) as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        # the rest of the answer waits in the watcher
        wait_for(lambda: len(server.watcher.writing) == 1, timeout=10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
    head, rest = answer.split(b"\r\n\r\n", 1)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length > 6_000_000 * 0.9 and rest[:length].startswith(b"# HELP big")
    assert rest[length:].startswith(b"HTTP/1.1 200 ") and rest.endswith(b"\r\n\r\nok\n")


def test_a_reader_that_hangs_up_mid_answer_frees_its_place_at_once():
    with running(render=big_page(6_000_000), limits=Limits(**FAST)) as (server, url):
        sock = connect(server)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n")
        deadline = time.monotonic() + 10
        while not server.watcher.writing and time.monotonic() < deadline:
            time.sleep(0.02)
        sock.recv(1000)
        sock.close()  # unread data: a reset
        deadline = time.monotonic() + 2
        while server.watcher.count() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.watcher.count() == 0
        assert requests.get(url + "/healthz", timeout=5).text == "ok\n"


def test_a_reader_that_takes_nothing_is_dropped_after_the_write_deadline():
    # polled, never a fixed sleep: on a busy machine the page may take longer to render than
    # any sleep (the write deadline counts from the last bytes the socket took)
    limits = Limits(write_seconds=1.0, **FAST)
    with running(render=big_page(6_000_000), limits=limits) as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n")
        wait_for(lambda: len(server.watcher.writing) == 1, timeout=20, interval=0.01)
        wait_for(lambda: server.watcher.writing == {}, timeout=20)
        received = 0
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                received += len(chunk)
        except ConnectionResetError:
            pass
        sock.close()
        assert received < 6_000_000 * 0.9


def test_shutdown_does_not_wait_for_idle_connections():
    with running() as (server, _):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        for _ in range(3):  # one connection, several scrapes
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == BODY
        server.shutdown()
        started = time.monotonic()
        server.server_close()
        assert time.monotonic() - started < 2, "server_close waited on the idle connection"
        assert closed_by_server(conn.sock, 1)
        conn.close()


def test_scrapes_in_flight_finish_on_shutdown_and_idle_connections_close_at_once():
    entered = threading.Event()

    def slow(scrape_timeout):
        entered.set()
        time.sleep(0.8)
        return big_page(6_000_000)(scrape_timeout)

    with running(render=slow) as (server, _):
        idle = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        idle.request("GET", "/healthz")
        assert idle.getresponse().read() == b"ok\n"
        sock = connect(server)  # reads its answer only once the server is closing
        sock.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n")
        assert entered.wait(5)
        assert server.watcher.count() == 2  # one idle, one with a worker
        server.shutdown()
        closer = threading.Thread(target=server.server_close)
        closer.start()
        assert closed_by_server(idle.sock, 0.5)  # at once, while the scrape still renders
        deadline = time.monotonic() + 10
        while not server.watcher.writing and time.monotonic() < deadline:
            time.sleep(0.02)
        closer.join(0.2)
        assert closer.is_alive()  # waiting for the slow reader to take its answer
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
        closer.join(5)
        assert not closer.is_alive()
        sock.close()
        idle.close()
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close" in head
    assert len(body) == int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) > 5_000_000


def test_a_reader_that_takes_nothing_does_not_hold_up_shutdown_past_the_write_deadline():
    with running(render=big_page(6_000_000), limits=Limits(write_seconds=0.3)) as (server, _):
        sock = connect(server)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n")
        deadline = time.monotonic() + 10
        while not server.watcher.writing and time.monotonic() < deadline:
            time.sleep(0.02)
        server.shutdown()
        started = time.monotonic()
        server.server_close()
        assert time.monotonic() - started < 3
        assert server.watcher.writing == {}
        assert closed_by_server(sock, 5)
        sock.close()


def test_a_client_that_resets_before_its_answer_frees_its_place():
    import struct

    def slow(scrape_timeout):
        time.sleep(0.3)
        return big_page(3_000_000)(scrape_timeout)

    with running(render=slow) as (server, url):
        sock = connect(server)
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        time.sleep(0.1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset
        deadline = time.monotonic() + 5
        while server.watcher.count() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.watcher.count() == 0
        assert requests.get(url + "/healthz", timeout=5).text == "ok\n"


@pytest.mark.parametrize(("data", "whole"), [
    (b"GET / HTTP/1.1\r\n\r\n", True), (b"GET / HTTP/1.1\n\n", True), (b"GET /\r\n", True),
    (b"GET / HTTP/1.1\r\n", False), (b"GET /", False), (b"", False),
    (b"GET /\nX: HTTP/1\n", True)])
def test_complete(data, whole):
    assert complete(data) is whole
    assert complete(bytearray(data)) is whole
