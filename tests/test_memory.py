"""memory.py: malloc gives memory back after each scrape (glibc), set before any thread."""

from __future__ import annotations

import gc
import logging
import platform
import socket
import sys
import time

import pytest

from binance_margin_exporter import cli, memory
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.collectors.cache import Cached
from binance_margin_exporter.config import Options, Settings, host_keys
from binance_margin_exporter.products import PRODUCTS
from binance_margin_exporter.wiring import account_config
from tests.support.exporters import built_exporter, scrape_built
from tests.support.pool import EXECUTOR


def test_the_thresholds_are_set_where_the_c_library_is_glibc():
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert memory.release_promptly() is glibc


def test_the_exporter_sets_them_before_it_starts(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "release_promptly", lambda: calls.append(True) or True)
    # its handler would outlive the test (on a stream pytest closes)
    monkeypatch.setattr(cli, "setup_logging", lambda *args: None)
    config = tmp_path / "config.yml"
    config.write_text("accounts: [{name: a, api_key: k, api_secret: s}]\n")
    assert cli.main(["--config", str(config), "--config.check"]) == 0
    assert calls == [True]


class Cycle:
    def __init__(self) -> None:
        self.me = self


def alive(cls: type) -> int:
    """Instances of ``cls`` the collector of cycles still holds (frozen or not)."""
    gc.unfreeze()
    try:
        return sum(type(o) is cls for o in gc.get_objects())
    finally:
        gc.freeze()


@pytest.fixture
def thawed():
    yield
    gc.unfreeze()  # the rest of the suite as it was


def test_a_scrape_freezes_what_it_left_and_collects_its_cycles_first(thawed):
    settle = memory.Settle()
    kept = Cycle()
    Cycle()  # the scrape's garbage: collected, not frozen for good
    settle()
    assert all(o is not kept for o in gc.get_objects())  # no longer walked by collections
    assert gc.get_freeze_count() > 0
    assert alive(Cycle) == 1


def test_what_was_frozen_is_collected_with_a_new_configuration(thawed):
    settle = memory.Settle()
    old, new = object(), object()
    settle(old)
    dead = Cycle()  # e.g. a client of the configuration reloaded away
    settle(old)
    del dead
    settle(old)
    assert alive(Cycle) == 1  # frozen: the collector does not see it die
    settle(new)
    assert alive(Cycle) == 0


def test_and_every_thaw_every_scrapes_whatever_the_configuration(thawed):
    settle = memory.Settle(thaw_every=3)
    settle()
    dead = Cycle()
    settle()  # 2
    del dead
    assert alive(Cycle) == 1
    settle()  # 3: thawed first
    assert alive(Cycle) == 0


def test_every_scrape_of_metrics_settles_with_the_configuration_in_use(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "Settle", lambda: calls.append)
    monkeypatch.setattr(cli, "setup_logging", lambda *args: None)

    class Server:
        server_address = ("127.0.0.1", 9)

        def __init__(self, address, scrape, *args, **kwargs) -> None:
            self.scrape = scrape

        def serve_forever(self) -> None:
            list(self.scrape(0.1))  # one scrape, then the exporter stops
            list(self.scrape(0.1))

        def server_close(self) -> None:
            pass

    monkeypatch.setattr(cli, "make_server", Server)
    config = tmp_path / "config.yml"
    config.write_text("base_url: http://127.0.0.1:9\nrequest_timeout_seconds: 0.5\n"
                      "accounts: [{name: a, api_key: k, api_secret: s}]\n")
    assert cli.main(["--config", str(config)]) == 0
    assert len(calls) == 2 and calls[0] is calls[1] and calls[0] is not None


def test_a_failed_fetch_keeps_its_reason_not_its_frames():
    """A result outlives its fetch (and a scrape's freeze): its error must not hold the
    fetch's frames, which hold the error (a cycle only a thaw would free)."""
    def fetch(deadline: float) -> None:
        try:
            raise OSError("refused")
        except OSError as exc:
            raise UpstreamError("connection", "connection failed") from exc

    result = Cached("account a", fetch, EXECUTOR, ttl=0).get(time.monotonic() + 5)
    assert result.error is not None and result.error.reason == "connection"
    assert result.error.__traceback__ is None
    assert result.error.__cause__ is None and result.error.__context__ is None


def test_an_account_that_keeps_failing_leaves_nothing_frozen_for_good(thawed, caplog):
    """Binance unreachable, scrape after scrape: what each failed fetch leaves is collected
    at the next scrape, not frozen until the hourly thaw (1.86 million dead objects, +300 MiB,
    at 200 accounts and 100 scrapes)."""
    # no log records: the test's log capture would keep the errors (and their frames) alive
    caplog.set_level(logging.CRITICAL + 1, logger="binance_margin_exporter")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # nothing listens
    options = {s.key: s.default for p in PRODUCTS for s in getattr(p, "settings", ())}
    options.update({k: url for p in PRODUCTS for k in host_keys(p)})
    options.update(streams=False, usdt_values=False, risk_lists=False)
    settings = Settings(accounts=tuple(account_config(f"a{i}", "k" * 64, "s" * 64)
                                       for i in range(3)),
                        base_url=url, options=Options.of(options), cache_ttl_seconds=0)
    settle = memory.Settle(thaw_every=10**9, growth=10**9)  # no thaw but the first
    with built_exporter(settings) as built:
        for _ in range(10):
            values = scrape_built(built)
            settle(built)
        assert values[("binance_margin_up", (("account", "a0"),))] == 0.0
        gc.unfreeze()
        assert gc.collect() < 500  # 2,538 when a failed fetch's error kept its frames


def test_frozen_objects_that_keep_growing_are_thawed(thawed):
    settle = memory.Settle(thaw_every=10**9, growth=1.0)
    settle()
    settle()  # the base: what a scrape leaves
    dead = [Cycle() for _ in range(20_000)]
    settle()  # frozen while alive
    del dead
    settle()  # frozen past the base by 10,000 and more: thawed, collected
    assert alive(Cycle) == 0
