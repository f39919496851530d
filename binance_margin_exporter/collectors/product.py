"""What a product is to the rest of the exporter, and the protocols products share.

A product is one kind of thing Binance answers about an account (its cross margin account, its
isolated pairs, its sub-accounts, ...). Each is a module in ``binance/`` (requests and parsing),
one here (what to fetch for an account, how often, and its families) and one in ``demo/`` (its
simulated routes), and one entry in ``binance_margin_exporter.products.PRODUCTS``. The wiring
builds every product from that list and the accounts' settings: for each account a product
reads, a *part* (its caches, kept across reloads while the account is unchanged); for all of
them, one collector a scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.metrics_core import Metric

from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.config import AccountConfig, Setting, Settings

if TYPE_CHECKING:
    from binance_margin_exporter.binance.limits import Upstream
    from binance_margin_exporter.binance.transport import BinanceClient


class KeyState(Protocol):
    """What the families read of an account's client: its key's back-off."""

    def auth_backoff_until(self) -> float: ...


class ClientState(KeyState, Protocol):
    """What a collector reads of an account's client (a ``BinanceClient``)."""

    timeout: float


class Collector(Protocol):
    def start(self, scrape: Scrape) -> Callable[[], Iterable[Metric]]:
        """Start this scrape's fetches; return what waits for them (until the scrape's
        deadline) and builds the families. Every collector starts before any is waited for,
        and the families are built in the order of the products."""
        ...


@dataclass
class Build:
    """What the wiring hands a product when it builds: the settings, the shared executor, and
    ``kept``, the product's own state, kept across reloads that leave the global settings
    alone (the prices' cache)."""

    settings: Settings
    executor: Executor
    kept: dict[str, Any] = field(default_factory=dict)
    # by (egress name, base URL)
    upstreams: Mapping[tuple[str, str], Upstream] = field(default_factory=dict)
    # the weight a minute every product declares for every account, by (egress, host), at an
    # interval
    weights: Callable[[float], Mapping[tuple[str, str], float]] = lambda interval: {}

    def client_on(self, client: BinanceClient, host_setting: str) -> BinanceClient:
        """The account's key on the host of ``host_setting`` (one of the product's
        ``host_settings``) from the same egress: that host's clock and weight gates, shared by
        every account leaving by that egress."""
        egress = client.upstream.egress.name
        return client.on(self.upstreams[(egress, self.settings.option(host_setting))])


def fetches_per_minute(settings: Settings, interval: float) -> float:
    """How often a cached answer is fetched at a scrape interval: once a scrape, or once per
    ``cache_ttl_seconds`` if that is longer."""
    return 60.0 / max(interval, settings.cache_ttl_seconds, 1e-3)


@dataclass(frozen=True)
class Scaled:
    """Weight that grows with a count the configuration may not know (a master's
    sub-accounts with ``all``): per unit a minute on a host, and how long one round of the
    units takes when the budget allows it."""

    unit: str  # "sub-account"
    host: str  # base URL
    per_unit: float  # weight a minute per unit
    count: int | None  # None: known only online
    round_seconds: float  # one round of every unit, within the budget


class Product:
    """One entry of the product list. The defaults: no settings of its own, reads nothing."""

    name: str = ""
    types: tuple[str, ...] = ()  # the account types (``type:``) it reads
    settings: tuple[Setting, ...] = ()  # top-level keys of its own
    account_settings: tuple[Setting, ...] = ()  # keys of its own in an accounts[] entry
    host_setting: str | None = None  # its own host's top-level key, if not base_url
    # top-level keys of further hosts its parts call with the account's key (``Build.client_on``:
    # the futures' fapi and dapi hosts); BINANCE_BASE_URL replaces them too
    host_settings: tuple[str, ...] = ()
    # with shards (``--shard``): does it read the accounts of other shards too, keeping its
    # own share of the account labels it finds there (a master's sub-accounts)? Otherwise it
    # reads only the accounts whose own name is this shard's.
    shards_within: bool = False
    # the product whose part of the same account this one's part is joined to (``join``: a
    # stream refreshes the account's cached answer); None: none
    follows: Product | None = None

    def check(self, account: AccountConfig) -> None:
        """Rules across an account's keys: ``ConfigError`` naming the key."""

    def check_accounts(self, accounts: Sequence[AccountConfig]) -> None:
        """Rules across accounts: ``ConfigError`` naming the key."""

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        """Does this product read the account?"""
        return account.type in self.types

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> Any:
        """The account's part of this product (its caches)."""
        return client

    def collector(self, parts: Sequence[Any], build: Build) -> Collector | None:
        """The collector of all the accounts' parts; None: nothing to collect."""
        return None

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The request weight a minute reading the account costs at a scrape interval, by
        host base URL (the weight plan and the sub-accounts' budget add these up). The
        default: nothing declared."""
        return {}

    def scaled_weight(self, account: AccountConfig, settings: Settings,
                      interval: float) -> Scaled | None:
        """Weight beyond :meth:`weight_per_minute` that grows with a count (None: none)."""
        return None

    def join(self, part: Any, refresh: Callable[[], None]) -> None:
        """Called once the account's every part exists, when the account has a part of
        :attr:`follows`: with that part's ``refresh`` (a fetch now, in the background)."""

    def warm_up(self, part: Any) -> None:
        """Start, before the first scrape, what is slow and need not be fresh (called again
        after each reload, for kept parts too: it must be idempotent)."""

    def close(self, part: Any) -> None:
        """Stop what the part runs in the background: the exporter stops, or a reload removed
        or changed the account."""
