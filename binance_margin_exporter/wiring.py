"""Settings -> an exporter: a client per account, every product of the product list built from
the accounts it reads, the hosts' clocks and rate gates; and on a reload, what can be kept.

Nothing here names a product: :data:`~.products.PRODUCTS` says what there is.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from binance_margin_exporter.binance.egress import Egress
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import make_signer
from binance_margin_exporter.binance.transport import BinanceClient, new_session
from binance_margin_exporter.collectors.exporter import Exporter
from binance_margin_exporter.collectors.product import (
    Build,
    Closes,
    Collector,
    Joins,
    Product,
    Refreshes,
    WarmsUp,
    across_shards,
    check_series,
)
from binance_margin_exporter.collectors.rate_limits import HostsCollector
from binance_margin_exporter.config import (
    AccountConfig,
    ConfigError,
    Options,
    Settings,
    account_settings_of,
    host_keys,
    host_setting_of,
    load_settings,
)
from binance_margin_exporter.products import PRODUCTS

log = logging.getLogger(__name__)


def load(path: str | None, env: Mapping[str, str], *, require_accounts: bool = True,
         products: Sequence[Product] = PRODUCTS, shard: str | None = None) -> Settings:
    """The settings of the configuration file and the environment, with every product's own
    (``shard``: ``--shard``'s INDEX/COUNT, over the file's)."""
    return load_settings(path, env, products, require_accounts=require_accounts, shard=shard)


def reads(product: Product, account: AccountConfig, settings: Settings) -> bool:
    """Does the product read the account in this shard? Its own name must be the shard's,
    unless the product keeps its own share of what it finds (a master's sub-accounts)."""
    return product.reads(account, settings) and (
        across_shards(product) or settings.serves(account.name))


def account_config(name: str, api_key: str, api_secret: str | None = None, *,
                   type: str = "cross", source: str = "code",
                   products: Sequence[Product] = PRODUCTS, **options: Any) -> AccountConfig:
    """An account made in code (the demo's, the tests'), with the products' defaults for the
    options not given."""
    declared = {s.key: s.default for p in products for s in account_settings_of(p)}
    unknown = set(options) - set(declared)
    if unknown:
        raise TypeError(f"unknown account options: {', '.join(sorted(unknown))}")
    return AccountConfig(name, api_key, api_secret, source=source, type=type,
                         options=Options.of({**declared, **options}))


@dataclass
class AccountParts:
    """What one configured account is made of: its client, and its part of each product that
    reads it (by product name). Kept across reloads while its configuration is unchanged, with
    its caches, counters and back-off."""

    client: BinanceClient
    parts: dict[str, object] = field(default_factory=dict)  # each its product's PartT


@dataclass
class Built:
    """An exporter and the parts it was built from (for the next reload to reuse)."""

    exporter: Exporter
    settings: Settings
    upstreams: dict[tuple[str, str], Upstream]  # by (egress, base URL); base_url's first
    executor: ThreadPoolExecutor
    accounts: dict[AccountConfig, AccountParts] = field(default_factory=dict)
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)  # products' own state
    products: tuple[Product, ...] = PRODUCTS


def _globals(settings: Settings) -> Settings:
    return dataclasses.replace(settings, accounts=())


def _upstreams(settings: Settings, products: Sequence[Product],
               previous: Mapping[tuple[str, str], Upstream]
               ) -> dict[tuple[str, str], Upstream]:
    """One per Binance host and egress in use: base_url's, and each product's own (which
    keeps time with base_url's: Portfolio Margin's papi host has no clock endpoint). One host
    seen from one address is one budget.

    A (egress, host) the previous configuration had is kept, whatever else changed: its bans,
    back-offs, weight counters and clock outlive every reload (a new one would call Binance at
    once, and lengthen a ban)."""
    def upstream(egress: Egress, url: str, clock_of: Upstream | None = None) -> Upstream:
        kept = previous.get((egress.name, url))
        if kept is not None and kept.egress == egress:
            kept.set_soft_limit(settings.ip_weight_soft_limit)
            if clock_of is not None and kept.time_upstream is not clock_of.time_upstream:
                kept.keep_time_with(clock_of)  # base_url moved: time comes from its new host
            return kept
        return Upstream(url, soft_limit=settings.ip_weight_soft_limit, clock_of=clock_of,
                        egress=egress)

    used = [settings.egress_of(a) for a in settings.accounts] or [Egress()]
    upstreams: dict[tuple[str, str], Upstream] = {}
    for egress in dict.fromkeys(used):
        _check_binds(egress)
        api = upstream(egress, settings.base_url)
        upstreams[(egress.name, settings.base_url)] = api
        for product in products:
            for key in host_keys(product):
                url = settings.option(key)
                if (egress.name, url) not in upstreams:
                    upstreams[(egress.name, url)] = upstream(egress, url, clock_of=api)
    return upstreams


def _check_binds(egress: Egress) -> None:
    """A source address this host does not have: a ``ConfigError`` now, not a failed fetch
    every scrape."""
    if egress.source_address is None:
        return
    family = socket.AF_INET6 if ":" in egress.source_address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((egress.source_address, 0))
    except OSError as exc:
        raise ConfigError(f"egress {egress.name}: cannot bind source_address "
                          f"{egress.source_address} ({exc.strerror})") from None


def declared_weights(settings: Settings, products: Sequence[Product],
                     interval: float) -> dict[tuple[str, str], float]:
    """The weight a minute every product declares for the configured accounts, by (egress,
    host)."""
    total: dict[tuple[str, str], float] = {}
    for account in settings.accounts:
        for product in products:
            for host, weight in product.weight_per_minute(account, settings, interval).items():
                key = (account.egress, host)
                total[key] = total.get(key, 0.0) + weight
    return total


def _host(account: AccountConfig, settings: Settings, products: Sequence[Product]) -> str:
    """The base URL of the account's host: that of the products that read it."""
    for product in products:
        host = host_setting_of(product)
        if host is not None and product.reads(account, settings):
            return str(settings.option(host))
    return settings.base_url


def _account_parts(account: AccountConfig, settings: Settings,
                   upstreams: dict[tuple[str, str], Upstream],
                   builds: Mapping[str, Build], products: Sequence[Product],
                   sessions: dict[tuple[str, str], Any]) -> AccountParts:
    """``sessions``: by (egress, host), shared by the accounts on one (one pool of
    connections for all of them: 200 accounts keep 64 connections open, not 400)."""
    try:
        signer = make_signer(account.api_secret, account.private_key_pem,
                             account.private_key_passphrase)
    except ValueError as exc:
        key = ("BINANCE_PRIVATE_KEY_FILE" if account.source == "env"
               else f"{account.source}.private_key_file")
        raise ConfigError(f"{key}: {exc}") from None
    where = (account.egress, _host(account, settings, products))
    if where not in sessions:
        sessions[where] = new_session(upstreams[where], settings.fetch_concurrency)
    client = BinanceClient(
        upstreams[where], account.api_key, signer, session=sessions[where],
        recv_window_ms=settings.recv_window_ms,
        timeout=settings.request_timeout_seconds,
        max_response_bytes=settings.max_response_bytes,
        pool_size=settings.fetch_concurrency,
    )
    parts = {product.name: product.part(account, client, builds[product.name])
             for product in products if reads(product, account, settings)}
    for product in products:
        if product.name in parts and isinstance(product, Joins):
            followed = parts.get(product.follows.name)
            if isinstance(followed, Refreshes):
                product.join(parts[product.name], followed.refresh)
    return AccountParts(client, parts)


def _close(accounts: Sequence[AccountParts], products: Sequence[Product]) -> None:
    """Stop what the accounts' parts run in the background (their streams), side by side:
    each part's close is bounded by its product, and a hundred accounts take no longer than
    one."""
    closing = [threading.Thread(target=product.close, args=(account.parts[product.name],),
                                name="close", daemon=True)
               for account in accounts for product in products
               if product.name in account.parts and isinstance(product, Closes)]
    for thread in closing:
        thread.start()
    for thread in closing:
        thread.join()


def build_exporter(settings: Settings, previous: Built | None = None,
                   products: Sequence[Product] = PRODUCTS) -> Built:
    """Clients, caches and collectors for the settings; ``ConfigError`` for an unusable key.

    With ``previous`` (a reload) and the same global settings, every account whose
    configuration is unchanged keeps its parts, and the hosts keep their clocks and rate
    gates; a changed account (a rotated key) starts afresh, with no back-off."""
    products = tuple(products)
    same = previous is not None and _globals(previous.settings) == _globals(settings)
    if same and previous is not None:
        # the same objects, and one for an egress no account used before (an account moved)
        upstreams = _upstreams(settings, products, previous.upstreams)
        executor = previous.executor
        kept_accounts, kept = previous.accounts, previous.kept
    else:
        upstreams = _upstreams(settings, products, previous.upstreams if previous else {})
        executor = previous.executor if previous is not None and \
            previous.settings.fetch_concurrency == settings.fetch_concurrency else \
            ThreadPoolExecutor(max_workers=settings.fetch_concurrency,
                               thread_name_prefix="fetch")
        # a product's "across_globals" state outlives a change of the global settings too
        kept_accounts, kept = {}, {name: {"across_globals": own["across_globals"]}
                                   for name, own in (previous.kept if previous else {}).items()
                                   if "across_globals" in own}
    def weights(interval: float) -> dict[tuple[str, str], float]:
        return declared_weights(settings, products, interval)

    builds = {p.name: Build(settings, executor, kept.setdefault(p.name, {}), upstreams,
                            weights) for p in products}
    accounts: dict[AccountConfig, AccountParts] = {}
    sessions: dict[tuple[str, str], Any] = {}
    try:
        for account in settings.accounts:
            if not any(reads(p, account, settings) for p in products):
                continue  # another shard's
            accounts[account] = kept_accounts.get(account) or _account_parts(
                account, settings, upstreams, builds, products, sessions)
        # two products making one series for an account: refused now, not at each scrape
        check_series({account: [p for p in products if p.name in parts.parts]
                      for account, parts in accounts.items()}, lambda p: builds[p.name])
    except ConfigError:
        if previous is None or executor is not previous.executor:
            executor.shutdown()
        raise
    collectors: list[Collector] = []
    for product in products:
        parts = [a.parts[product.name] for a in accounts.values() if product.name in a.parts]
        collector = product.collector(parts, builds[product.name])
        if collector is not None:
            collectors.append(collector)
    collectors.append(HostsCollector(list(upstreams.values())))
    exporter = Exporter(collectors, request_timeout=settings.request_timeout_seconds,
                        executor=executor,
                        on_close=lambda: _close(list(accounts.values()), products),
                        shards=settings.shard.count if settings.shard is not None else None)
    if previous is not None:
        # what a reload removed or changed stops now (a kept account keeps its streams)
        _close([parts for account, parts in previous.accounts.items()
                if accounts.get(account) is not parts], previous.products)
    return Built(exporter, settings, upstreams, executor, accounts, kept, products)


def warm_up(built: Built) -> None:
    """Sync the hosts' clocks and start what is slow (the margin bars) before the first
    scrape."""
    synced: set[int] = set()
    for account in built.accounts.values():
        upstream = account.client.upstream
        if id(upstream.clock) not in synced and upstream.clock.claim_sync():
            synced.add(id(upstream.clock))
            try:
                account.client.sync_time()
            except UpstreamError as exc:
                log.warning("start-up clock sync with Binance failed: %s", exc)
        for product in built.products:
            if product.name in account.parts and isinstance(product, WarmsUp):
                try:
                    product.warm_up(account.parts[product.name])
                except RuntimeError:  # the exporter closed its pool meanwhile: it stops
                    log.debug("warm-up ended: the exporter is closing")
                    return
