"""The connections of the HTTP server, held by one thread and a selector, not a thread each.

A connection is in one of three states:

- waiting: it has not sent a whole request (new, or an idle keep-alive). Its bytes are read
  here until the request's headers are all in; then it goes to a worker.
- busy: a worker parses the request and renders the answer into memory.
- writing: the answer goes out here as fast as the client reads it. A slow reader holds a
  socket and its answer's memory, never a worker.

Deadlines: headers within ``header_seconds`` of their first byte (and a TLS handshake within
that of the connection), a keep-alive idle for ``idle_seconds`` is dropped, and so is a
reader that takes nothing for ``write_seconds``. At ``max_connections`` the oldest waiting
connection is dropped for a new one (a flood of half requests cannot lock Prometheus out).
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SEND_CHUNK = 1 << 18  # at most this much per send: a TLS retry resends the same slice


@dataclass(eq=False)
class Connection:
    """A client connection, what it has sent of its next request, what is left to send."""

    sock: socket.socket
    address: Any
    data: bytearray = field(default_factory=bytearray)
    handshaken: bool = False  # has sent something (through TLS: the handshake is done)
    since: float = 0.0  # monotonic: arrived, went idle, or last took some of its answer
    first_byte: float | None = None  # monotonic: when its next request began to arrive
    out: deque[memoryview] = field(default_factory=deque)
    keep: bool = False  # once its answer is out: wait for the next request (or close)


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    header_seconds: float = 10.0
    idle_seconds: float = 60.0
    write_seconds: float = 10.0
    max_header_bytes: int = 64 * 1024
    tick_seconds: float = 1.0  # how often deadlines are looked at


def complete(data: bytes | bytearray) -> bool:
    """Has a whole request arrived: its headers (a body is refused, never waited for), or
    the one line of an HTTP/0.9 request?"""
    if b"\r\n\r\n" in data or b"\n\n" in data:
        return True
    line, newline, _ = bytes(data).partition(b"\n")
    return bool(newline) and b" HTTP/" not in line


def close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


class Watcher:
    """Every connection that is not with a worker: waiting for a request, or taking its
    answer. ``dispatch(conn)`` hands a whole request to a worker."""

    def __init__(self, dispatch: Callable[[Connection], None], limits: Limits) -> None:
        self.dispatch = dispatch
        self.limits = limits
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.waiting: dict[socket.socket, Connection] = {}  # insertion order: oldest first
        self.writing: dict[socket.socket, Connection] = {}
        self.busy = 0  # connections with a worker
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.closing = False  # no new requests: waiting connections are closed
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="http-watcher", daemon=True)
        self.thread.start()

    def count(self) -> int:
        with self.lock:
            return len(self.waiting) + len(self.writing) + self.busy

    # ---- waiting for a request ----

    def add(self, conn: Connection) -> None:
        """A new connection, or one whose answer is out and that stays open."""
        conn.since = time.monotonic()
        conn.first_byte = conn.since if conn.data else None
        conn.sock.setblocking(False)
        whole = complete(conn.data)  # a pipelined request that came with the last one
        with self.lock:
            if self.closing:
                close(conn.sock)
                return
            if whole:
                self.busy += 1
            else:
                if len(self.waiting) + len(self.writing) + self.busy >= \
                        self.limits.max_connections:
                    if not self.waiting:
                        log.debug("connection cap reached: refusing %s", conn.address)
                        close(conn.sock)
                        return
                    self._drop(next(iter(self.waiting.values())))
                self.waiting[conn.sock] = conn
                self.selector.register(conn.sock, selectors.EVENT_READ, conn)
        if whole:
            self.dispatch(conn)  # straight to a worker
        else:
            self._wake()

    def _read(self, conn: Connection) -> None:
        try:
            chunk = conn.sock.recv(65536)  # a TLS handshake first, in steps, as data comes
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except OSError:
            chunk = b""
        conn.handshaken = True
        if not chunk:
            with self.lock:
                self._drop(conn)
            return
        if conn.first_byte is None:
            conn.first_byte = time.monotonic()
        conn.data += chunk
        if complete(conn.data):
            with self.lock:
                if self.waiting.pop(conn.sock, None) is None:
                    return
                self.selector.unregister(conn.sock)
                self.busy += 1
            self.dispatch(conn)
        elif len(conn.data) > self.limits.max_header_bytes:
            with self.lock:
                self._drop(conn)

    # ---- sending an answer ----

    def answer(self, conn: Connection, out: list[bytes], keep: bool) -> None:
        """From a worker: the answer to send, then (``keep``) the next request. What the
        client does not take at once is sent from here, as it reads."""
        conn.out = deque(memoryview(chunk) for chunk in out if chunk)
        conn.keep = keep
        conn.since = time.monotonic()
        try:
            conn.sock.setblocking(False)
            sent = self._send(conn)
        except OSError:
            sent, conn.keep = True, False
        with self.lock:
            self.busy -= 1
            if not sent:
                if self.closed:
                    close(conn.sock)
                    return
                self.writing[conn.sock] = conn
                self.selector.register(conn.sock, selectors.EVENT_WRITE, conn)
        if sent:
            self._finish(conn)
        else:
            self._wake()

    def _send(self, conn: Connection) -> bool:
        """Sends what the socket takes now; True once all of it is out."""
        while conn.out:
            view = conn.out[0]
            try:
                sent = conn.sock.send(view[:SEND_CHUNK])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return False
            conn.since = time.monotonic()
            if sent < len(view):
                conn.out[0] = view[sent:]
            else:
                conn.out.popleft()
        return True

    def _write(self, conn: Connection) -> None:
        try:
            sent = self._send(conn)
        except OSError:
            sent, conn.keep = True, False
        if sent:
            with self.lock:
                if self.writing.pop(conn.sock, None) is None:
                    return
                self.selector.unregister(conn.sock)
            self._finish(conn)

    def _finish(self, conn: Connection) -> None:
        if conn.keep:
            self.add(conn)
        else:
            close(conn.sock)

    # ---- the thread ----

    def _wake(self) -> None:
        try:
            self.wake_w.send(b"x")
        except OSError:  # closed, or its buffer full of wake-ups already: awake either way
            pass

    def _drop(self, conn: Connection) -> None:  # with the lock held
        self.waiting.pop(conn.sock, None)
        self.writing.pop(conn.sock, None)
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        close(conn.sock)

    def _run(self) -> None:
        while not self.closed:
            events = self.selector.select(timeout=self.limits.tick_seconds)
            for key, mask in events:
                if key.fileobj is self.wake_r:
                    try:
                        self.wake_r.recv(4096)
                    except OSError:
                        pass
                elif mask & selectors.EVENT_WRITE:
                    self._write(key.data)
                else:
                    self._read(key.data)
            self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        limits = self.limits
        with self.lock:
            for conn in list(self.waiting.values()):
                started = conn.first_byte
                if (started is not None and now - started > limits.header_seconds) or \
                        (started is None and now - conn.since > limits.idle_seconds) or \
                        (started is None and not conn.handshaken and
                         now - conn.since > limits.header_seconds):
                    self._drop(conn)
            for conn in list(self.writing.values()):
                if now - conn.since > limits.write_seconds:
                    self._drop(conn)

    def close_waiting(self) -> None:
        """No more requests: the connections waiting for one are closed."""
        with self.lock:
            self.closing = True
            for conn in list(self.waiting.values()):
                self._drop(conn)
        self._wake()

    def close(self) -> None:
        """Once the workers are done: the answers still going out get ``write_seconds`` to
        go, then the thread ends."""
        self.close_waiting()
        deadline = time.monotonic() + self.limits.write_seconds
        while time.monotonic() < deadline:
            with self.lock:
                if not self.writing:
                    break
            time.sleep(0.01)
        with self.lock:
            self.closed = True
            for conn in list(self.writing.values()):
                self._drop(conn)
        self._wake()
        self.thread.join(5)
        self.selector.close()
        self.wake_r.close()
        self.wake_w.close()
