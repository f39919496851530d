"""An exporter in-process: collectors rendered as ``/metrics`` renders them, a whole exporter
built from settings, scraped and closed, and an exposition read back as values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.collectors.exporter import Exporter
from binance_margin_exporter.collectors.product import Collector, Product
from binance_margin_exporter.config import AccountConfig, Options, Settings
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.products import PRODUCTS
from binance_margin_exporter.web import exposition
from binance_margin_exporter.wiring import Built, build_exporter, host_keys
from tests.support.keys import API_KEY, SECRET

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Scraper:
    """Collectors rendered as ``/metrics`` renders them: one :class:`Exporter`, its scrape
    given ``scrape_timeout`` seconds by Prometheus (None: the exporter's own budget)."""

    def __init__(self, *collectors: Collector) -> None:
        self.exporter = Exporter(collectors, version="0.0.0-test")

    def render(self, scrape_timeout: float | None = None) -> bytes:
        """The text /metrics sends (its encoder; byte for byte ``generate_latest``'s)."""
        return exposition.render(self.exporter.families(scrape_timeout))

    def text(self, scrape_timeout: float | None = None) -> str:
        return self.render(scrape_timeout).decode()


def sample_values(text: str) -> Values:
    """Parse an exposition into {(name, sorted labels): value} with prometheus_client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class _OneScrape:
    """An exporter's one scrape, as a collector prometheus_client's ``generate_latest`` reads."""

    def __init__(self, exporter: Exporter, scrape_timeout: float | None) -> None:
        self.exporter, self.scrape_timeout = exporter, scrape_timeout

    def collect(self):
        return self.exporter.collect(self.scrape_timeout)


def one_scrape(exporter: Exporter, scrape_timeout: float | None) -> str:
    """One scrape of ``exporter`` as ``generate_latest`` writes it; the scrape given
    ``scrape_timeout`` seconds by Prometheus (None: the exporter's own budget)."""
    return generate_latest(_OneScrape(exporter, scrape_timeout)).decode()


def scrape_text(built: Built, scrape_timeout: float | None = 2.0) -> str:
    """One scrape of a built exporter (``wiring.build_exporter``), as exposition text."""
    return one_scrape(built.exporter, scrape_timeout)


def scrape_built(built: Built, scrape_timeout: float | None = 2.0) -> Values:
    """One scrape of a built exporter (``wiring.build_exporter``), as sample values."""
    return sample_values(scrape_text(built, scrape_timeout))


@contextmanager
def built_exporter(settings: Settings, previous: Built | None = None,
                   products: Sequence[Product] = PRODUCTS) -> Iterator[Built]:
    """``wiring.build_exporter``'s exporter for the block, closed when it ends."""
    built = build_exporter(settings, previous, products=products)
    try:
        yield built
    finally:
        built.exporter.close()


def scrape_once(settings: Settings, products: Sequence[Product] = PRODUCTS) -> Values:
    """Build an exporter for ``settings``, scrape it once, close it: the sample values."""
    with built_exporter(settings, products=products) as built:
        return scrape_built(built)


def settings_for(simulator: Simulator, *accounts: AccountConfig) -> Settings:
    """Settings with every product's defaults and every host on the simulator."""
    options = {s.key: s.default for p in PRODUCTS for s in p.settings}
    options.update({k: simulator.base_url for p in PRODUCTS for k in host_keys(p)})
    return Settings(accounts=tuple(accounts), base_url=simulator.base_url,
                    options=Options.of(options), cache_ttl_seconds=0)


def master_client(sim: Simulator, key: str | None = None) -> BinanceClient:
    """A client of a master key on the simulator, with connections for its sub-accounts."""
    return BinanceClient(Upstream(sim.base_url), key or API_KEY, HmacSigner(SECRET),
                         pool_size=16)
