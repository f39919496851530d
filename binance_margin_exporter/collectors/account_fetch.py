"""One account fetch, shared by every account product: the families every fetch has are made
here, once, from the fetch's result, never rebuilt by a product.

As node_exporter's ``execute()`` emits success and duration from the error a collector returns,
:func:`account_families` emits, for each fetch of each account, ``up`` (1 with a value, 0
without), the errors by reason, the duration, the last success and the key's back-off (the
:class:`~.fetch_families.Fetches` a product names: the account's, or its own prefix), and the
account's invalid fields; and hands the product's :class:`Families` only the parsed values.
A failed fetch gives ``up 0``, its counted error and nothing else of the account.

An account product is then two things:

- its fetch: ``part()`` returns :func:`account_part` of its Binance call and parse (or a part of
  its own with a ``fetched`` of several fetches, as the positions' markets);
- its families: a :class:`Families` of the parsed values, named by the product's
  :meth:`FetchProduct.families`.

:class:`FetchProduct` does the rest: the collector, and ``describe()`` (the families it makes
for an account, checked for duplicates when the exporter is built).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client.metrics_core import Metric

from binance_margin_exporter.collectors.cache import Cached, Result, start_all
from binance_margin_exporter.collectors.fetch_families import Fetches, account_fetches
from binance_margin_exporter.collectors.invalid_fields import InvalidFields, invalid_fields
from binance_margin_exporter.collectors.product import (
    Build,
    ClientState,
    Describes,
    KeyState,
    Product,
)
from binance_margin_exporter.collectors.scrape import Scrape
from binance_margin_exporter.collectors.tables import Memo, non_empty

T = TypeVar("T")
P = TypeVar("P", bound="AccountPart[Any]")


class Parsed(Protocol):
    """A parsed answer: the optional fields that did not parse (the account stays up)."""

    @property
    def invalid(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """One fetch of an account: the label values of its series (the account's name first),
    the key whose back-off they show (None: not shown) and its cache."""

    key: tuple[str, ...]
    client: KeyState | None
    cached: Cached[T]


class AccountPart(Protocol[T]):
    """What the shared code reads of an account's part."""

    @property
    def name(self) -> str: ...

    @property
    def invalid(self) -> InvalidFields: ...

    @property
    def memo(self) -> Memo | None: ...

    @property
    def fetched(self) -> Sequence[Fetched[T]]: ...


@dataclass(frozen=True)
class Account(Generic[T]):
    """The part of a product that makes one fetch an account (futures, Portfolio Margin, PM
    Pro): its client, its cached answer, its invalid fields."""

    name: str
    client: ClientState
    cached: Cached[T]
    invalid: InvalidFields = field(default_factory=lambda: InvalidFields("an account"))
    memo: Memo | None = field(default=None, compare=False)

    @property
    def fetched(self) -> tuple[Fetched[T]]:
        return (Fetched((self.name,), self.client, self.cached),)

    def refresh(self) -> None:
        """Binance pushed a change (a risk stream's event): fetch the account anew now."""
        self.cached.refresh()


def _invalid(value: Any) -> Iterable[str]:
    fields: Iterable[str] = value.invalid
    return fields


def noting(call: Callable[[float], T], invalid: InvalidFields,
           fields: Callable[[T], Iterable[str]] = _invalid) -> Callable[[float], T]:
    """``call`` (a Binance call and its parse), noting the fields of each answer that did not
    parse (``fields``: which they are; the answer's ``invalid``)."""
    def fetch(deadline: float) -> T:
        value = call(deadline)
        invalid.note(fields(value))
        return value
    return fetch


def account_part(what: str, name: str, client: ClientState, call: Callable[[float], T],
                 executor: Executor, *, ttl: float, **cached: Any) -> Account[T]:
    """An account's one fetch: ``call`` cached (``ttl``; ``cached``: :class:`Cached`'s other
    arguments) on the shared executor, bounded by the client's timeout; ``what`` names it in
    log lines ("futures account main")."""
    invalid = InvalidFields(what)
    return Account(name, client, Cached(what, noting(call, invalid), executor, ttl=ttl,
                                        timeout=client.timeout, **cached), invalid)


class Families(Generic[P, T]):
    """What a product makes of its accounts' parsed values in one scrape (a new one each
    scrape: nothing carries over)."""

    def seen(self, part: P) -> None:
        """Every account, before its values, whether its fetches succeeded or not (for what
        the configuration knows: a sub-account's master)."""

    def add(self, part: P, key: tuple[str, ...], value: T) -> None:
        """One successful fetch's value (``key``: its series' label values)."""
        raise NotImplementedError

    def families(self) -> Sequence[Metric]:
        """The families, in exposition order: between ``up`` and the fetch's other families."""
        raise NotImplementedError

    def after(self) -> Sequence[Metric]:
        """Families after the invalid fields (none by default)."""
        return ()


def account_families(kind: Fetches, made: Families[P, T],
                     results: Iterable[tuple[P, Sequence[tuple[Fetched[T], Result[T]]]]],
                     ) -> Iterator[Metric]:
    """The families of one scrape: for each account and each of its fetches, the fetch's
    families (``kind``) and, when it succeeded, the product's (``made``); the accounts' invalid
    fields. Families without samples are left out."""
    invalid = invalid_fields()
    for part, fetches in results:
        made.seen(part)
        for fetched, result in fetches:
            kind.add(fetched.key, fetched.cached, result, fetched.client, part.memo)
            if result.value is not None:
                made.add(part, fetched.key, result.value)
        part.invalid.add_to(invalid, part.name)
    return non_empty((kind.up, *made.families(), *kind.tail(), invalid, *made.after()))


def family_names(kind: Fetches, made: Families[Any, Any]) -> tuple[str, ...]:
    """The names of the families a scrape makes for an account (the invalid fields aside:
    every product shows its own fields there, by the ``field`` label)."""
    return tuple(f.name for f in (kind.up, *made.families(), *kind.tail(), *made.after()))


class AccountCollector(Generic[P, T]):
    """The collector of an account product: every fetch started at once, then the families."""

    def __init__(self, parts: Sequence[P], families: Callable[[Scrape], Families[P, T]],
                 kind: Callable[[], Fetches] = account_fetches) -> None:
        self.parts = tuple(parts)
        self.families = families
        self.kind = kind

    def start(self, scrape: Scrape) -> Callable[[], Iterator[Metric]]:
        results = start_all([fetched.cached for part in self.parts for fetched in part.fetched],
                            scrape.deadline)

        def finish() -> Iterator[Metric]:
            done = iter(results())
            return account_families(self.kind(), self.families(scrape), [
                (part, [(fetched, next(done)) for fetched in part.fetched])
                for part in self.parts])

        return finish

    def collect(self, deadline: float) -> Iterator[Metric]:
        """Fetch (or take from the cache) and build, for this product alone."""
        return iter(self.start(Scrape(deadline))())


class FetchProduct(Product[P], Describes, Generic[P, T]):
    """A product that is its accounts' fetches (``part()``) and their families
    (:meth:`families`)."""

    def kind(self) -> Fetches:
        """The families of its fetches: the account's (``binance_margin_up``, ...) unless the
        product's fetch is shown apart (the isolated pairs', the positions')."""
        return account_fetches()

    def families(self, scrape: Scrape, build: Build) -> Families[P, T]:
        """What this product makes of its accounts' values in one scrape."""
        raise NotImplementedError

    def collector(self, parts: Sequence[P], build: Build) -> AccountCollector[P, T] | None:
        if not parts:
            return None
        return AccountCollector(parts, lambda scrape: self.families(scrape, build), self.kind)

    def describe(self, build: Build) -> tuple[str, ...]:
        return family_names(self.kind(), self.families(Scrape(0.0), build))
