"""Raw sockets on 127.0.0.1: a free port, a socket server, and a raw HTTP server for answers
no well-behaved HTTP server sends."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def socket_server(serve: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that hands each connection to ``serve`` on a thread of its own.
    Yields its base URL; stops accepting when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@contextmanager
def raw_http_server(respond: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that reads each request's head and leaves the answer, byte for
    byte, to ``respond(connection)``: for answers no well-behaved HTTP server sends (dripped
    headers, malformed header lines). Yields its base URL."""
    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            try:
                respond(conn)
            except OSError:
                pass  # the client hung up

    with socket_server(serve) as url:
        yield url
