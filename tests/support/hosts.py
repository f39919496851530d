"""Binance's hosts apart, as they are: a simulator per host (``hosts`` in conftest.py).

api.binance.com (``/api`` and ``/sapi``, and ``/api/v3/time``, the clock every host keeps
time with), papi.binance.com, fapi.binance.com and dapi.binance.com each count their own
weight, ban on their own, and answer only their own paths (any other is a 404 there). A test
whose request goes to the wrong host fails; one that charges a host's weight to another's
gates shows it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from binance_margin_exporter.config import AccountConfig, Settings
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.products import SIMULATED
from tests.support.keys import API_KEY, SECRET

# host setting -> the path prefixes that host serves
PREFIXES = {"base_url": ("/api/", "/sapi/"), "papi_base_url": ("/papi/",),
            "fapi_base_url": ("/fapi/",), "dapi_base_url": ("/dapi/",)}


class Hosts:
    """One simulator per Binance host: ``api``, ``papi``, ``fapi``, ``dapi``."""

    def __init__(self) -> None:
        sims = {}
        for key, prefixes in PREFIXES.items():
            sim = Simulator(SIMULATED, account=SimulatedAccount(300, 12, drift=False),
                            serves=prefixes)
            sim.add_hmac_key(API_KEY, SECRET)
            sims[key] = sim
        self.by_setting = sims
        self.api, self.papi = sims["base_url"], sims["papi_base_url"]
        self.fapi, self.dapi = sims["fapi_base_url"], sims["dapi_base_url"]

    def settings(self, *accounts: AccountConfig, **given: object) -> Settings:
        """Settings with every product's defaults and each host on its own simulator;
        ``given``: settings (``request_timeout_seconds=2.5``) or products' options."""
        import dataclasses

        from binance_margin_exporter.config import Options
        from binance_margin_exporter.products import PRODUCTS
        from binance_margin_exporter.wiring import host_keys

        values: dict[str, object] = {s.key: s.default for p in PRODUCTS for s in p.settings}
        for product in PRODUCTS:
            for key in host_keys(product):
                values[key] = self.by_setting[key].base_url
        own = {f.name for f in dataclasses.fields(Settings)}
        values.update({k: v for k, v in given.items() if k not in own})
        fields = {"cache_ttl_seconds": 0, **{k: v for k, v in given.items() if k in own}}
        return Settings(accounts=tuple(accounts), base_url=self.api.base_url,
                        options=Options.of(values), **fields)  # type: ignore[arg-type]

    def hosts_of(self, path: str) -> list[str]:
        """The hosts (by setting) that were asked for ``path``."""
        return [key for key, sim in self.by_setting.items() if sim.counts[path]]


@contextmanager
def running_hosts() -> Iterator[Hosts]:
    hosts = Hosts()
    started = []
    try:
        for sim in hosts.by_setting.values():
            started.append(sim.start())
        yield hosts
    finally:  # side by side: each stop waits for its server's poll
        stopping = [threading.Thread(target=sim.stop) for sim in started]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
