"""memory.py: malloc gives memory back after each scrape (glibc), set before any thread."""

from __future__ import annotations

import gc
import platform
import sys

import pytest

from binance_margin_exporter import cli, memory


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
