"""The exporter's settings: YAML file + environment + ``*_file`` secrets -> frozen, validated
:class:`Settings`.

The global settings of the exporter itself are declared here (the settings every account has
are in :mod:`.accounts`); a product declares its own next to its code (see
``binance_margin_exporter.products``) and the loader is handed those declarations. Each
setting is declared once (:class:`~.schema.Setting`: key, type and range, default, meaning).
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from binance_margin_exporter.binance.egress import DEFAULT_EGRESS_NAME, Egress
from binance_margin_exporter.config.accounts import (
    DEFAULT_ACCOUNT_NAME,
    AccountConfig,
    ChecksAccounts,
    Declares,
    _env_account,
    _one_of,
    _Reader,
    _unique,
    host_keys,
    settings_of,
)
from binance_margin_exporter.config.schema import (
    DEFAULT_BASE_URL,
    ConfigError,
    Options,
    Setting,
    check_keys,
    integer,
    number,
    read_declared,
    string,
    url,
)
from binance_margin_exporter.config.yamlfile import load_yaml

# re-exported: config/__init__.py imports these from here
__all__ = ["DEFAULT_ACCOUNT_NAME", "GLOBAL_SETTINGS", "AccountConfig", "Declares", "Settings",
           "Shard", "egresses", "host_keys", "load_settings", "shard_of"]

log = logging.getLogger(__name__)

def egresses(value: Any, key: str) -> tuple[Egress, ...]:
    """``egress:``: a list of {name, source_address} or {name, proxy}."""
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of egresses (name, and source_address or "
                          f"proxy)")
    found: dict[str, Egress] = {}
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with name and source_address or "
                              f"proxy")
        check_keys(entry, {"name", "source_address", "proxy"}, where)
        name = string(entry.get("name"), f"{where}.name")
        if name == DEFAULT_EGRESS_NAME or name in found:
            raise ConfigError(f"{where}.name: {name!r} is taken (the host's route is "
                              f"{DEFAULT_EGRESS_NAME!r}; names are unique)")
        way = _one_of(entry, ("source_address", "proxy"), where)
        if way is None:
            raise ConfigError(f"{where}: set source_address or proxy")
        if way == "source_address":
            text = string(entry[way], f"{where}.{way}")
            try:
                address = ip_address(text)
            except ValueError:
                raise ConfigError(f"{where}.source_address: expected an IP address of this "
                                  f"host") from None
            if address.is_unspecified or address.is_multicast:
                # 0.0.0.0 binds to nothing: the default route's address, a second budget on
                # the same IP
                raise ConfigError(f"{where}.source_address: {text} is not one address of "
                                  f"this host (0.0.0.0 and :: leave by the default route)")
            found[name] = Egress(name, source_address=text)
        else:
            text = string(entry[way], f"{where}.{way}")
            if "@" in text.partition("://")[2].partition("/")[0]:
                raise ConfigError(f"{where}.proxy: a proxy that needs a user and password is "
                                  f"not supported (nor is HTTPS_PROXY read for the accounts "
                                  f"of a proxy egress): use a proxy that needs none")
            found[name] = Egress(name, proxy=url(text, f"{where}.{way}"))
    return tuple(found.values())


@dataclass(frozen=True)
class Shard:
    """One of ``count`` exporters that split the accounts between them: this one serves the
    accounts whose ``account`` label hashes to ``index`` (sha256 of the UTF-8 name, the first
    8 bytes big-endian, modulo ``count``: the same in every process, host and version)."""

    index: int
    count: int

    def serves(self, name: str) -> bool:
        digest = hashlib.sha256(name.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


ASCII_NUMBER = re.compile(r"[0-9]{1,9}")


def shard_of(value: Any, key: str) -> Shard:
    """``shard: {index, count}`` (YAML) or ``INDEX/COUNT`` (``--shard``; INDEX ``ordinal``:
    the trailing number of the host name, as a StatefulSet's pod ``name-2`` has)."""
    if isinstance(value, str):
        index_text, slash, count_text = value.partition("/")
        if index_text == "ordinal":
            host = socket.gethostname()
            match = re.search(r"-([0-9]+)$", host)
            if match is None:
                raise ConfigError(f"{key}: ordinal: the host name {host[:64]!r} does not end "
                                  f"in -NUMBER (a StatefulSet's pod name does)")
            index_text = match.group(1)
        # ASCII digits only (str.isdigit takes Arabic-Indic digits and superscripts), and few
        # (int() of 5,000 digits is a ValueError of its own that names no flag)
        if not slash or not ASCII_NUMBER.fullmatch(index_text) or \
                not ASCII_NUMBER.fullmatch(count_text):
            raise ConfigError(f"{key}: expected INDEX/COUNT such as 0/3, or ordinal/3 (ASCII "
                              f"digits, COUNT at most 4096)")
        value = {"index": int(index_text), "count": int(count_text)}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping with index and count")
    check_keys(value, {"index", "count"}, key)
    count = integer(1, 4096)(value.get("count"), f"{key}.count")
    index = integer(0, count - 1)(value.get("index"), f"{key}.index")
    return Shard(index, count)


GLOBAL_SETTINGS: tuple[Setting, ...] = (
    Setting("base_url", url, DEFAULT_BASE_URL,
            "Binance's REST host (BINANCE_BASE_URL replaces every host: a proxy, a simulator)."),
    Setting("recv_window_ms", integer(1, 60000), 5000,
            "How long after its timestamp Binance accepts a signed request."),
    Setting("request_timeout_seconds", number(0.1, 60), 5.0,
            "The longest a scrape waits for Binance (Prometheus' own timeout may cut it)."),
    Setting("cache_ttl_seconds", number(0, 3600), 10.0,
            "How long a fetched answer serves scrapes (0: every scrape fetches)."),
    Setting("max_response_bytes", integer(4096, 1 << 30), 16 * 1024 * 1024,
            "The largest answer read from Binance."),
    Setting("ip_weight_soft_limit", integer(10, 12000), 9600,
            "Request weight a minute at which this IP pauses (Binance bans at 12000)."),
    Setting("fetch_concurrency", integer(1, 256), 64,
            "Requests in flight to Binance at once."),
    Setting("egress", egresses, (),
            "Addresses Binance sees, each a weight budget of its own: {name, source_address} "
            "(bind to this local address) or {name, proxy} (an http(s) proxy); accounts "
            "choose one with egress: (default: the host's route)."),
    Setting("shard", shard_of, None,
            "{index, count}: serve only the accounts (sub-accounts too) whose name hashes to "
            "index of count (--shard=INDEX/COUNT replaces it)."),
)


@dataclass(frozen=True)
class Settings:
    accounts: tuple[AccountConfig, ...]
    base_url: str = DEFAULT_BASE_URL
    recv_window_ms: int = 5000
    request_timeout_seconds: float = 5.0
    cache_ttl_seconds: float = 10.0
    max_response_bytes: int = 16 * 1024 * 1024
    ip_weight_soft_limit: int = 9600
    fetch_concurrency: int = 64
    egress: tuple[Egress, ...] = ()
    shard: Shard | None = None
    options: Options = field(default_factory=Options)  # the products' own top-level keys
    # every file these settings were read from (the config, secret files): watched for change
    files: tuple[str, ...] = field(default=(), compare=False)

    def option(self, key: str) -> Any:
        return self.options[key]

    def serves(self, name: str) -> bool:
        """Is this account label this exporter's (all are, without shards)?"""
        return self.shard is None or self.shard.serves(name)

    def egress_of(self, account: AccountConfig) -> Egress:
        """The egress the account's requests leave by."""
        for egress in self.egress:
            if egress.name == account.egress:
                return egress
        return Egress(DEFAULT_EGRESS_NAME)


# --------------------------------------------------------------------------------------------
# settings


def load_settings(
    path: str | None,
    env: Mapping[str, str],
    products: Sequence[Declares],
    *,
    require_accounts: bool = True,
    shard: str | None = None,
) -> Settings:
    """Build :class:`Settings` from an optional YAML file and the environment, with the
    settings the ``products`` declare."""
    raw: Any = {} if path is None else load_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("--config: the top level must be a mapping of keys")
    own = _unique(s for p in products for s in settings_of(p))
    check_keys(raw, {"accounts", *(s.key for s in (*GLOBAL_SETTINGS, *own))}, "")
    files: list[str] = [] if path is None else [str(Path(path).resolve())]
    reader = _Reader(products, Path(path).resolve().parent if path else None, files)

    core = read_declared(raw, GLOBAL_SETTINGS)
    if shard is not None:
        core["shard"] = shard_of(shard, "--shard")
    options = read_declared(raw, own)
    if env.get("BINANCE_BASE_URL"):  # one host for everything: a proxy, or the simulator
        core["base_url"] = url(env["BINANCE_BASE_URL"], "BINANCE_BASE_URL")
        for product in products:
            for key in host_keys(product):
                options[key] = core["base_url"]

    accounts: list[AccountConfig] = []
    if raw.get("accounts") is not None:
        if not isinstance(raw["accounts"], list) or not raw["accounts"]:
            raise ConfigError("accounts: expected a non-empty list")
        for i, entry in enumerate(raw["accounts"]):
            where = f"accounts[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: expected a mapping with name, api_key, api_secret")
            check_keys(entry, reader.account_keys(), where)
            accounts.append(reader.account(entry, where))
        seen: set[str] = set()
        for account in accounts:
            if account.name in seen:
                raise ConfigError(f"{account.source}.name: duplicate account name {account.name!r}")
            seen.add(account.name)
        for product in products:
            if isinstance(product, ChecksAccounts):
                product.check_accounts(accounts)
        named = {e.name for e in core["egress"]} | {DEFAULT_EGRESS_NAME}
        for account in accounts:
            if account.egress not in named:
                raise ConfigError(f"{account.source}.egress: no egress named "
                                  f"{account.egress!r} (egress: lists "
                                  f"{', '.join(sorted(named))})")
        if env.get("BINANCE_API_KEY") or env.get("BINANCE_API_KEY_FILE"):
            log.warning("BINANCE_API_KEY* is ignored: the config file lists accounts")
    else:
        account = _env_account(env, reader)
        if account is not None:
            accounts.append(account)
    if require_accounts and not accounts:
        raise ConfigError(
            "no API credentials: set BINANCE_API_KEY and BINANCE_API_SECRET (or their *_FILE "
            "variants), list accounts in --config, or try --demo"
        )
    return Settings(accounts=tuple(accounts), **core, options=Options.of(options),
                    files=tuple(files))
