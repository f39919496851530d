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
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from prometheus_client.metrics_core import Metric

from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.config import AccountConfig, ConfigError, Settings

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


PartT = TypeVar("PartT")
PartIn = TypeVar("PartIn", contravariant=True)


class Product(Generic[PartT]):
    """One entry of the product list: its core, what every product has.

    - ``name``, ``types``: its name, the account types (``type:``) it reads;
    - :meth:`reads`: which of those accounts it reads (default: every account of its types);
    - :meth:`part`: the part it builds for an account (a ``PartT``: its caches, kept across
      reloads while the account is unchanged);
    - :meth:`collector`: the families it makes from the parts, one scrape at a time;
    - :meth:`weight_per_minute`: what reading an account costs.

    Everything else is a capability a product has only when it needs it, each a small
    ``runtime_checkable`` protocol the wiring, the loader and the plan ask with ``isinstance``:
    :class:`~binance_margin_exporter.config.Configured` (keys of its own),
    :class:`~binance_margin_exporter.config.OwnHosts` (hosts besides base_url),
    :class:`~binance_margin_exporter.config.ChecksAccount` and
    :class:`~binance_margin_exporter.config.ChecksAccounts` (rules across keys, across
    accounts), :class:`ScaledWeight` (weighted by a count), :class:`AcrossShards` (reads
    across shards), :class:`Joins` (joins the account's other parts), :class:`WarmsUp` and
    :class:`Closes` (runs in the background), :class:`Describes` (names the families it makes
    for an account, checked for duplicates at build). A product subclasses the capabilities it
    has (their defaults fill in), so the class line says what it is."""

    name: str = ""
    types: tuple[str, ...] = ()  # the account types (``type:``) it reads

    def reads(self, account: AccountConfig, settings: Settings) -> bool:
        """Does this product read the account?"""
        return account.type in self.types

    def part(self, account: AccountConfig, client: BinanceClient, build: Build) -> PartT:
        """The account's part of this product (its caches)."""
        raise NotImplementedError

    def collector(self, parts: Sequence[PartT], build: Build) -> Collector | None:
        """The collector of all the accounts' parts; None: nothing to collect."""
        raise NotImplementedError

    def weight_per_minute(self, account: AccountConfig, settings: Settings,
                          interval: float) -> dict[str, float]:
        """The request weight a minute reading the account costs at a scrape interval, by
        host base URL (the weight plan and the sub-accounts' budget add these up), from the
        endpoints ``binance/`` declares (:mod:`.weights`). Required: a product that calls
        Binance declares what it calls; one that calls nothing returns ``{}`` itself."""
        raise NotImplementedError(f"product {self.name!r} declares no weight_per_minute")


# --------------------------------------------------------------------------------------------
# capabilities (the loader's own are in config: Configured, OwnHosts, ChecksAccount(s))


@runtime_checkable
class ScaledWeight(Protocol):
    """A product whose weight grows with a count the configuration may not know (a master's
    sub-accounts with ``all``)."""

    def scaled_weight(self, account: AccountConfig, settings: Settings,
                      interval: float) -> Scaled | None:
        """Weight beyond :meth:`Product.weight_per_minute` that grows with a count (None:
        none for this account)."""



@runtime_checkable
class AcrossShards(Protocol):
    """With shards (``--shard``), a product that reads the accounts of other shards too,
    keeping its own share of the account labels it finds there (a master's sub-accounts).
    Without it, a product reads only the accounts whose own name is this shard's."""

    shards_within: bool = True


def across_shards(product: object) -> bool:
    return isinstance(product, AcrossShards) and product.shards_within


@runtime_checkable
class Joins(Protocol[PartIn]):
    """A product whose part follows another product's part of the same account (a stream
    refreshes the account's cached answer): the wiring hands it that part's ``refresh``."""

    follows: Product[Any]  # the product whose part of the account this one's part follows

    def join(self, part: PartIn, refresh: Callable[[], None]) -> None:
        """Called once the account's every part exists, when the account has a part of
        :attr:`follows`: with that part's ``refresh`` (a fetch now, in the background)."""


@runtime_checkable
class Refreshes(Protocol):
    """A part whose cached answer can be fetched anew at once (what a stream joins)."""

    def refresh(self) -> None: ...


@runtime_checkable
class WarmsUp(Protocol[PartIn]):
    """A product with something slow to start before the first scrape."""

    def warm_up(self, part: PartIn) -> None:
        """Start what is slow and need not be fresh (called again after each reload, for kept
        parts too: it must be idempotent)."""


@runtime_checkable
class Closes(Protocol[PartIn]):
    """A product whose parts run something in the background (a stream's thread)."""

    def close(self, part: PartIn) -> None:
        """Stop what the part runs: the exporter stops, or a reload removed or changed the
        account."""


@runtime_checkable
class Describes(Protocol):
    """A product that names the families it makes series of for the accounts it reads
    (labelled with the account's name): two products that would make series of one family for
    one account are refused at build, not found at each scrape (client_python's
    ``describe()`` at ``register()``). :class:`~.account_fetch.FetchProduct` has it."""

    def describe(self, build: Build) -> tuple[str, ...]:
        """The names of the families whose series carry the name of an account it reads."""


def check_series(accounts: Mapping[AccountConfig, Sequence[Product[Any]]],
                 build: Callable[[Product[Any]], Build]) -> None:
    """``ConfigError`` for two products that would make series of one family for one account
    (``accounts``: the products that read each)."""
    described: dict[str, tuple[str, ...]] = {}
    for account, products in accounts.items():
        owner: dict[str, str] = {}
        for product in products:
            if not isinstance(product, Describes):
                continue
            if product.name not in described:
                described[product.name] = product.describe(build(product))
            for family in described[product.name]:
                if family in owner:
                    raise ConfigError(
                        f"{account.source}: the products {owner[family]} and {product.name} "
                        f"would both make {family} for account {account.name!r} (a series "
                        f"must come from one product)")
                owner[family] = product.name
