"""The accounts the exporter reads: :class:`AccountConfig`, what a product declares to the
loader (:class:`Declares`), and how an ``accounts[]`` entry or the ``BINANCE_*`` environment
becomes an account (its name, key and way of signing, its type, the products' own keys).

:func:`~.settings.load_settings` drives the reading; the exporter's global settings are in
:mod:`.settings`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from binance_margin_exporter.binance.egress import DEFAULT_EGRESS_NAME
from binance_margin_exporter.config.schema import (
    ConfigError,
    Options,
    Setting,
    read_declared,
    string,
)
from binance_margin_exporter.config.secrets import REDACTED, read_secret_file, secret_text

DEFAULT_ACCOUNT_NAME = "default"


class Declares(Protocol):
    """What every product tells the loader (see ``products.py``): its name and the account
    types (``type:``) it reads. What only some products have is a capability of its own,
    below: the loader asks ``isinstance`` (each is ``runtime_checkable``)."""

    name: str
    types: tuple[str, ...]  # the account types it reads ("cross", "portfolio_margin")


@runtime_checkable
class Configured(Protocol):
    """A product with keys of its own (both default to none when a product subclasses this)."""

    settings: tuple[Setting, ...] = ()  # top-level keys of its own
    account_settings: tuple[Setting, ...] = ()  # keys of its own in an accounts[] entry


@runtime_checkable
class OwnHosts(Protocol):
    """A product that calls hosts besides base_url (BINANCE_BASE_URL replaces them too)."""

    host_setting: str | None = None  # its own host's top-level key (the account's client's)
    # top-level keys of further hosts its parts call with the account's key (the futures'
    # fapi and dapi hosts)
    host_settings: tuple[str, ...] = ()


@runtime_checkable
class ChecksAccount(Protocol):
    """A product with rules across an account's keys."""

    def check(self, account: AccountConfig) -> None:
        """``ConfigError`` naming the key."""


@runtime_checkable
class ChecksAccounts(Protocol):
    """A product with rules across accounts (a sub-account's e-mail is no other's name)."""

    def check_accounts(self, accounts: Sequence[AccountConfig]) -> None:
        """``ConfigError`` naming the key."""


def settings_of(product: Declares) -> tuple[Setting, ...]:
    """A product's top-level keys (none unless it is :class:`Configured`)."""
    return product.settings if isinstance(product, Configured) else ()


def account_settings_of(product: Declares) -> tuple[Setting, ...]:
    """A product's keys in an accounts[] entry (none unless it is :class:`Configured`)."""
    return product.account_settings if isinstance(product, Configured) else ()


def host_setting_of(product: Declares) -> str | None:
    """The top-level key of the host of the accounts the product reads (None: base_url)."""
    return product.host_setting if isinstance(product, OwnHosts) else None


def host_keys(product: Declares) -> tuple[str, ...]:
    """The top-level keys of every host a product calls, besides base_url."""
    if not isinstance(product, OwnHosts):
        return ()
    own = () if product.host_setting is None else (product.host_setting,)
    return (*own, *product.host_settings)


@dataclass(frozen=True, repr=False)
class AccountConfig:
    """One Binance account: a label and its credentials (exactly one way of signing)."""

    name: str
    api_key: str
    api_secret: str | None = None
    private_key_pem: bytes | None = None
    private_key_passphrase: bytes | None = None
    source: str = "accounts[0]"  # where it was configured, for error messages
    type: str = "cross"
    options: Options = field(default_factory=Options)  # the products' own keys
    egress: str = DEFAULT_EGRESS_NAME  # the name of the egress its requests leave by

    def option(self, key: str) -> Any:
        return self.options[key]

    def __repr__(self) -> str:
        kind = "hmac" if self.api_secret is not None else "private_key"
        return f"AccountConfig(name={self.name!r}, api_key={REDACTED}, signing={kind})"


# --------------------------------------------------------------------------------------------
# accounts

SIGNING_KEYS = ("api_key", "api_key_file", "api_secret", "api_secret_file", "private_key_file",
                "private_key_passphrase_file")


def _one_of(values: Mapping[str, Any], keys: tuple[str, ...], where: str) -> str | None:
    present = [k for k in keys if values.get(k) is not None]
    if len(present) > 1:
        raise ConfigError(f"{where}: set only one of {', '.join(present)}")
    return present[0] if present else None


@dataclass
class _Reader:
    """One load: the products' declarations, the config's folder and the files read."""

    products: Sequence[Declares]
    base: Path | None
    files: list[str]

    def secret(self, value: Any, key: str) -> bytes:
        return read_secret_file(value, key, base=self.base, files=self.files)

    def account(self, values: Mapping[str, Any], where: str) -> AccountConfig:
        name = string(values.get("name"), f"{where}.name")
        key_source = _one_of(values, ("api_key", "api_key_file"), where)
        if key_source is None:
            raise ConfigError(f"{where}.api_key: missing (set api_key or api_key_file)")
        key = f"{where}.{key_source}"
        api_key = secret_text(string(values["api_key"], key).encode()
                              if key_source == "api_key" else self.secret(values[key_source], key),
                              key)
        signing = _one_of(values, ("api_secret", "api_secret_file", "private_key_file"), where)
        if signing is None:
            raise ConfigError(f"{where}.api_secret: missing (set api_secret, api_secret_file "
                              f"or private_key_file)")
        if values.get("private_key_passphrase_file") is not None and \
                signing != "private_key_file":
            raise ConfigError(f"{where}.private_key_passphrase_file: only with private_key_file")
        api_secret = pem = passphrase = None
        key = f"{where}.{signing}"
        if signing == "api_secret":
            api_secret = secret_text(string(values["api_secret"], key).encode(), key)
        elif signing == "api_secret_file":
            api_secret = secret_text(self.secret(values["api_secret_file"], key), key)
        else:
            pem = self.secret(values["private_key_file"], key)
            if values.get("private_key_passphrase_file") is not None:
                key = f"{where}.private_key_passphrase_file"
                passphrase = self.secret(values["private_key_passphrase_file"], key)
                passphrase = passphrase.rstrip(b"\r\n")
        types = tuple(dict.fromkeys(t for p in self.products for t in p.types))
        kind = values.get("type") or "cross"
        if kind not in types:
            raise ConfigError(f"{where}.type: expected one of {', '.join(types)}")
        options = read_declared(values, _unique(s for p in self.products
                                                for s in account_settings_of(p)), where)
        egress = DEFAULT_EGRESS_NAME if values.get("egress") is None else \
            string(values["egress"], f"{where}.egress")
        account = AccountConfig(name, api_key, api_secret, pem, passphrase, source=where,
                                type=kind, options=Options.of(options), egress=egress)
        for product in self.products:
            if isinstance(product, ChecksAccount):
                product.check(account)
        return account

    def account_keys(self) -> set[str]:
        return {"name", "type", "egress", *SIGNING_KEYS,
                *(s.key for p in self.products for s in account_settings_of(p))}


def _unique(settings: Any) -> list[Setting]:
    """Declarations by key, once each (two products may share one, e.g. interest_rates)."""
    return list({s.key: s for s in settings}.values())


# a YAML-style signing key in a message, as the environment variable that sets it
_ENV_KEY = re.compile(r"(?:\benv\.)?\b(" + "|".join(sorted(SIGNING_KEYS, key=len, reverse=True))
                      + r")\b")
_QUOTED = re.compile(r"""('[^']*'|"[^"]*")""")


def _env_account(env: Mapping[str, str], reader: _Reader) -> AccountConfig | None:
    values = {key: env.get(f"BINANCE_{key.upper()}") or None for key in SIGNING_KEYS}
    if all(v is None for v in values.values()):
        return None
    try:
        return reader.account({"name": DEFAULT_ACCOUNT_NAME, **values}, "env")
    except ConfigError as exc:
        # Name the environment variables rather than the YAML-style keys, in the advice too
        # ("set BINANCE_API_SECRET, BINANCE_API_SECRET_FILE or BINANCE_PRIVATE_KEY_FILE").
        # Quoted parts (a file's path) stay as they are.
        parts = _QUOTED.split(str(exc))
        message = "".join(part if i % 2 else _ENV_KEY.sub(
            lambda m: f"BINANCE_{m.group(1).upper()}", part) for i, part in enumerate(parts))
        raise ConfigError(message.replace("env:", "BINANCE_*:")) from None
