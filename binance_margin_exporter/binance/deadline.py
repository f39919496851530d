"""Every fetch ends at its deadline: the status line, the headers and the body alike.

Socket timeouts bound each read, not their sum: a server dripping its answer a byte a second
would hold a fetch for ever. The client makes a :class:`Fetch` for each request and hands it
down as the request's timeout (:class:`Seconds`: requests gives it to urllib3, urllib3 to the
connection as its socket timeout). The connections of :class:`DeadlineAdapter` read their
fetch there: they start a watch when they open (a proxy's tunnel is under it) and again with
their answer's first read; one watchdog thread hangs up every connection still being read at
its fetch's deadline.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

import requests
import urllib3.connection
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool


class _Watch:
    """One answer being read: ``fired`` once the watchdog hung up its connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fired = False
        self.done = False  # read (or failed) in time: nothing to hang up

    def cancel(self) -> None:
        self.done = True


class _Watchdog:
    """One thread that hangs up each connection still being read at its fetch's deadline.
    (A ``threading.Timer`` per answer would start a thread per request: 90 us of CPU each,
    18 ms a scrape at 200 requests.)"""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the thread is not forked

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._watches: list[tuple[float, int, _Watch]] = []  # a heap by deadline
        self._count = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> _Watch:
        watch = _Watch(sock)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog",
                                                daemon=True)
                self._thread.start()
            if not self._watches or deadline < self._watches[0][0]:
                self._cond.notify()  # an earlier deadline than the one waited for
            heapq.heappush(self._watches, (deadline, next(self._count), watch))
        return watch

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._watches and (self._watches[0][2].done
                                         or self._watches[0][0] <= now):
                    watch = heapq.heappop(self._watches)[2]
                    if not watch.done:
                        watch.fired = True
                        try:
                            watch.sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass  # closed already
                self._cond.wait(self._watches[0][0] - now if self._watches else None)


WATCHDOG = _Watchdog()


class Fetch:
    """One request under its deadline (a ``time.monotonic()`` value): the watch on the
    connection it reads, which :meth:`end` stops."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._watch: _Watch | None = None

    def watch(self, sock: socket.socket) -> None:
        """Watch ``sock`` until the fetch is done (the watch of its connection's tunnel, if
        any, ends: the answer's socket may be another object, TLS's)."""
        earlier = self._watch
        if earlier is not None:
            if earlier.fired:
                return  # the read that follows fails: the fetch is a timeout
            earlier.cancel()
        self._watch = WATCHDOG.watch(sock, self.deadline)

    def end(self) -> bool:
        """Stop watching; True when the watchdog hung up first (whatever the read got was
        cut short: the fetch is a timeout)."""
        watch, self._watch = self._watch, None
        if watch is None:
            return False
        watch.cancel()
        return watch.fired


class Seconds(float):
    """A request's timeout (seconds a connect or a read may wait) that carries its
    :class:`Fetch`: requests and urllib3 pass a timeout on as it is, down to the connection
    (``conn.timeout``), whose opening and answer the fetch then watches."""

    fetch: Fetch

    def __new__(cls, seconds: float, fetch: Fetch) -> Seconds:
        value = super().__new__(cls, seconds)
        value.fetch = fetch
        return value


class _DeadlineConnection:
    """Ends the whole answer (status line, headers, body) at the fetch's deadline. Socket
    timeouts bound each read, not their sum: a server dripping its headers (or a gzip body,
    which urllib3 reads until it decodes something) a byte a second would hold the fetch for
    ever. A watchdog started with the answer's first read hangs up at the deadline, and
    the client makes whatever the cut-off read gave a timeout (:meth:`Fetch.end`)."""

    sock: socket.socket | None
    timeout: Any  # this request's: a Seconds when the client sent it

    def _new_conn(self) -> socket.socket:
        """A new connection is watched from the start: a proxy's ``CONNECT`` answer (read
        before the request is sent) dripped a byte a second ends at the deadline too."""
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        if isinstance(self.timeout, Seconds):
            self.timeout.fetch.watch(sock)
        return sock

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        if self.sock is not None and isinstance(self.timeout, Seconds):
            self.timeout.fetch.watch(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_DeadlineConnection, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnection, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


DEADLINE_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections end the headers' read at the fetch's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = DEADLINE_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has connection classes of its own
            manager.pool_classes_by_scheme = DEADLINE_POOLS
        return manager
