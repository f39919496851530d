"""Egresses: the addresses Binance sees the exporter's requests come from.

Binance limits weight per IP, not per key: each egress is a budget of its own. One is either a
local address the outgoing connections are bound to (``source_address``: a second address of
the host, or of the pod) or an HTTP(S) proxy (``proxy``: Binance sees the proxy's address).
Accounts name theirs (``accounts[].egress``); without one they leave by the host's default
route, the egress named ``default``. Every egress keeps the fetch deadline
(:class:`.deadline.DeadlineAdapter`), and the risk data streams leave by the account's egress
too (:func:`websocket_options`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from binance_margin_exporter.binance.deadline import DeadlineAdapter

DEFAULT_EGRESS_NAME = "default"


@dataclass(frozen=True)
class Egress:
    name: str = DEFAULT_EGRESS_NAME
    source_address: str | None = None  # bind outgoing connections to this local address
    proxy: str | None = None  # or send them through this proxy


DEFAULT_EGRESS = Egress()


class SourceAddressAdapter(DeadlineAdapter):
    """Connections bound to one local address (urllib3's ``source_address``), under the
    fetch's deadline as every connection is."""

    def __init__(self, source_address: str, **kwargs: Any) -> None:
        self.source_address = source_address
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        pool_kwargs["source_address"] = (self.source_address, 0)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        proxy_kwargs["source_address"] = (self.source_address, 0)
        return super().proxy_manager_for(proxy, **proxy_kwargs)


def use_egress(session: requests.Session, egress: Egress, pool_size: int) -> None:
    """Send the session's requests by the egress: bound to its address, or by its proxy
    (instead of any proxy the environment names). The default egress changes nothing."""
    if egress.source_address is not None:
        adapter = SourceAddressAdapter(egress.source_address, pool_connections=4,
                                       pool_maxsize=max(pool_size, 10))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    if egress.proxy is not None:
        session.proxies = {"http": egress.proxy, "https": egress.proxy}


def websocket_options(egress: Egress) -> dict[str, Any]:
    """:func:`websockets.sync.client.connect`'s options that make a stream leave by
    ``egress``: bound to its address, or through its proxy (not the one the environment
    names). The default egress: the environment's proxy, as the REST calls."""
    if egress.proxy is not None:
        return {"proxy": egress.proxy}
    if egress.source_address is not None:
        return {"source_address": (egress.source_address, 0)}
    return {}


class Host(Protocol):
    """What a session needs of its host (a :class:`.limits.Upstream`): where, and by which
    egress."""

    @property
    def base_url(self) -> str: ...

    @property
    def egress(self) -> Egress: ...


def new_session(upstream: Host, pool_size: int = 10) -> requests.Session:
    """A session to the upstream's host by its egress (a source address, or a proxy),
    keeping up to ``pool_size`` connections open."""
    session = requests.Session()
    # requests reads proxy, netrc and CA settings from the environment on every request:
    # at fund scale (200 requests a scrape) that is 30 ms of CPU of a 405 ms scrape, over
    # the 400 ms target. Read them once, here, instead.
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(upstream.base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=max(pool_size, 10))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    use_egress(session, upstream.egress, pool_size)
    return session
