"""What a product's requests cost a minute, from the endpoints ``binance/`` declares.

A product's ``weight_per_minute`` says which of its endpoints it calls how often; this turns
that into weight a minute on each host's IP budget (by host base URL), the figure the weight
plan (``--config.plan``) and the sub-accounts' budget add up. An endpoint limited by account
(``UID``) costs its host's IP nothing: it is declared all the same (as 0 on its host).
"""

from __future__ import annotations

from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.collectors.product import Product, fetches_per_minute
from binance_margin_exporter.config import AccountConfig, Settings


def first_read(product: Product, settings: Settings) -> AccountConfig | None:
    """The first account of this shard the product reads: the one that carries the cost of
    what the product fetches once for all (the prices, Binance's risk lists)."""
    return next((a for a in settings.accounts
                 if product.reads(a, settings) and settings.serves(a.name)), None)


def host_of(settings: Settings, endpoint: Endpoint) -> str:
    """The base URL of the endpoint's host in these settings."""
    if endpoint.host_setting == "base_url":
        return settings.base_url
    return str(settings.option(endpoint.host_setting))


class Weights(dict[str, float]):
    """Weight a minute by host base URL (what ``weight_per_minute`` returns), and
    ``at_start``: by host, the weight of the calls made every few minutes or less often
    (the bars, the interest rates, the risk lists, the roster, a listen key), which are all
    due at once when the exporter starts: the first minute costs that much more than the
    average says (and so, roughly, does the minute each hour when they fall due together)."""

    def __init__(self) -> None:
        super().__init__()
        self.at_start: dict[str, float] = {}


class Costs:
    """Weight a minute by host, added up call by call."""

    def __init__(self, settings: Settings, interval: float) -> None:
        self.settings = settings
        self.fetches = fetches_per_minute(settings, interval)  # of a cached answer
        self.by_host = Weights()

    def calls(self, endpoint: Endpoint, per_minute: float) -> Costs:
        host = host_of(self.settings, endpoint)
        self.by_host[host] = self.by_host.get(host, 0.0) + endpoint.ip_weight * per_minute
        return self

    def each_fetch(self, *endpoints: Endpoint) -> Costs:
        """Called once per fetch of the account (every scrape, or per ``cache_ttl_seconds``)."""
        for endpoint in endpoints:
            self.calls(endpoint, self.fetches)
        return self

    def every(self, seconds: float, *endpoints: Endpoint, at_start: bool = True) -> Costs:
        """Called every ``seconds`` (a refresh in the background), the first time at start
        (``at_start``: counted in :attr:`Weights.at_start` as well)."""
        for endpoint in endpoints:
            self.calls(endpoint, 60.0 / seconds)
            if at_start:
                host = host_of(self.settings, endpoint)
                start = self.by_host.at_start
                start[host] = start.get(host, 0.0) + endpoint.ip_weight
        return self
