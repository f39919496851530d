from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.logs import JsonFormatter, LogfmtFormatter
from binance_margin_exporter.products import SIMULATED
from tests.support.exporters import Scraper
from tests.support.keys import API_KEY, SECRET
from tests.support.paths import GOLDEN

if TYPE_CHECKING:
    from tests.support.hosts import Hosts


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(SIMULATED, account=SimulatedAccount(300, 12, drift=False))
    sim.add_hmac_key(API_KEY, SECRET)
    with sim:
        yield sim


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Binance's api, papi, fapi and dapi hosts, each a simulator of its own
    (tests/support/hosts.py): ``hosts.settings(*accounts)`` points every host setting at its
    own."""
    from tests.support.hosts import running_hosts

    with running_hosts() as running:
        yield running


@pytest.fixture
def client(simulator: Simulator) -> BinanceClient:
    return BinanceClient(Upstream(simulator.base_url), API_KEY, HmacSigner(SECRET), timeout=2.0)


@pytest.fixture(autouse=True)
def _debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # Every test records logs at DEBUG, so leak checks see every level.
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    # A test that runs the command line in this process (cli.main) replaces the root logger's
    # handlers with one writing to the capture pytest closes after the test: every later
    # record of a background thread would print "--- Logging error --- ... I/O operation on
    # closed file". pytest's own handlers come back instead.
    root.handlers[:] = before


@pytest.fixture(autouse=True)
def _no_log_handler_outlives_its_test() -> Iterator[None]:
    """main() run in the process (the --config.* and --shard tests) points the root logger at
    the stderr pytest captured for that test; a later test's thread (a WebSocket server saying
    it listens) would log to that closed file: a "Logging error" in a passing run."""
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if isinstance(handler.formatter, (LogfmtFormatter, JsonFormatter)):
            root.removeHandler(handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/*.prom with what the code renders now (then "
                     "review the diff like code)")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, bytes], None]:
    """``golden(name, body)``: ``body`` must equal ``tests/golden/<name>`` (``--update-golden``
    or UPDATE_GOLDEN=1 rewrites it instead)."""
    update = request.config.getoption("--update-golden") or os.environ.get("UPDATE_GOLDEN") == "1"

    def check(name: str, body: bytes) -> None:
        path = GOLDEN / name
        if update:
            path.write_bytes(body)
        assert body.decode() == path.read_text(), \
            f"{name} differs; pytest --update-golden rewrites it"

    return check


@pytest.fixture
def scraper() -> type[Scraper]:
    """``scraper(*collectors)``: they render as ``/metrics`` would (``.render()``,
    ``.text()``, with Prometheus' scrape timeout optional)."""
    return Scraper


# ---- the HTTP front (tests/test_web_*.py; helpers in tests/support/web.py) ----

@pytest.fixture
def plain() -> Iterator[str]:
    """A plain-HTTP server with one gauge; its base URL."""
    from tests.support.web import running

    with running() as (_server, url):
        yield url


@pytest.fixture
def pki(tmp_path: object) -> dict:
    """A CA, a server and a client certificate, made for the test."""
    from tests.support.web import make_pki

    return make_pki(tmp_path)
