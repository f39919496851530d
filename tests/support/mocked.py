"""The client's unit tests: Binance behind ``requests_mock`` at a base URL nothing resolves,
a client on it whose background work (the clock sync) runs at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests_mock

from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import TIME_PATH, BinanceClient
from tests.support.clocks import Clock
from tests.support.keys import API_KEY, SECRET

BASE = "https://api.binance.test"
SERVER_TIME_MS = 1_700_000_000_000


@contextmanager
def mocked() -> Iterator[requests_mock.Mocker]:
    """``requests_mock`` with Binance's clock at :data:`BASE` (``SERVER_TIME_MS``)."""
    with requests_mock.Mocker() as m:
        m.get(BASE + TIME_PATH, json={"serverTime": SERVER_TIME_MS})
        yield m


def inline(task: Callable[[], None]) -> None:
    """Run the client's background work (the clock sync) at once, for a fixed request order."""
    task()


def make_client(clock: Clock | None = None, **kw) -> BinanceClient:
    """A client of :data:`BASE`, its upstream and signature on ``clock``."""
    clock = clock or Clock()
    return BinanceClient(Upstream(BASE, wall=clock), API_KEY, HmacSigner(SECRET), wall=clock,
                         background=inline, **kw)
