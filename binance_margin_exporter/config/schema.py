"""How a setting is declared: its key, how its value is read (type and range), its default and
its meaning. A declaration is the one place a setting lives; the loader, the error messages and
the configuration reference (docs/reference/configuration.md, written by scripts/docs.py) all
come from it.

Every problem becomes a :class:`ConfigError` whose message is one line naming the key, so the
CLI can print it and stop without a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.binance.com"

Reader = Callable[[Any, str], Any]  # (the YAML value, its key for messages) -> the setting


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line that names the offending key."""


@dataclass(frozen=True)
class Setting:
    """One key of the configuration file (top level, or of an ``accounts[]`` entry)."""

    key: str
    read: Reader
    default: Any
    meaning: str


def number(minimum: float, maximum: float) -> Reader:
    def read(value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__}")
        if not minimum <= value <= maximum:
            raise ConfigError(f"{key}: must be between {minimum:g} and {maximum:g}, "
                              f"got {value:g}")
        return float(value)
    return read


def integer(minimum: int, maximum: int) -> Reader:
    def read(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__}")
        if not minimum <= value <= maximum:
            raise ConfigError(f"{key}: must be between {minimum} and {maximum}, got {value}")
        return value
    return read


def string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # YAML allows "\ud800": no page could carry it as a label
        raise ConfigError(f"{key}: not valid Unicode (a lone surrogate)") from None
    return value


def flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {type(value).__name__}")
    return value


def url(value: Any, key: str) -> str:
    text = string(value, key).rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a port out of range is a ValueError too
    except ValueError:  # "Invalid IPv6 URL": say whose
        raise ConfigError(f"{key}: expected an http(s) URL such as {DEFAULT_BASE_URL} (it "
                          f"does not parse)") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigError(f"{key}: expected an http(s) URL such as {DEFAULT_BASE_URL}")
    if "@" in parts.netloc:
        # it would stand in the host label and in every error line
        raise ConfigError(f"{key}: a user or password in the URL is not accepted (for a "
                          f"proxy that needs them, set HTTPS_PROXY)")
    return text


def choice(*allowed: str) -> Reader:
    def read(value: Any, key: str) -> str:
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(allowed)}")
        return str(value)
    return read


def names(item: str, listing: str, *, all_word: str | None = None,
          among: tuple[str, ...] | None = None) -> Reader:
    """A non-empty list of distinct strings (or, with ``all_word``, that word): ``item`` is
    one of them ("an asset"), ``listing`` what the list holds ("asset symbols"); with
    ``among``, each must be one of those."""
    def read(value: Any, key: str) -> tuple[str, ...] | str:
        if all_word is not None and value == all_word:
            return all_word
        if not isinstance(value, list) or not value:
            either = f"{all_word} or " if all_word else ""
            raise ConfigError(f"{key}: expected {either}a non-empty list of {listing}")
        items = tuple(string(v, f"{key}[{i}]") for i, v in enumerate(value))
        for i, name in enumerate(items):
            if among is not None and name not in among:
                raise ConfigError(f"{key}[{i}]: expected {' or '.join(among)}")
        if len(set(items)) != len(items):
            raise ConfigError(f"{key}: lists {item} twice")
        return items
    return read


def check_keys(mapping: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = set(allowed)
    for key in mapping:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"{name}: unknown key (allowed: {', '.join(sorted(allowed))})")


def read_declared(raw: Mapping[str, Any], declared: Iterable[Setting],
                  where: str = "") -> dict[str, Any]:
    """The declared settings' values: read from ``raw`` where present (and not null), else
    their defaults. Keys not declared are left for the caller to check."""
    values: dict[str, Any] = {}
    for setting in declared:
        key = f"{where}.{setting.key}" if where else setting.key
        value = raw.get(setting.key)
        values[setting.key] = setting.default if value is None else setting.read(value, key)
    return values


@dataclass(frozen=True)
class Options:
    """Settings that products declare, by key: frozen and hashable (an account's options are
    part of what makes it "unchanged" on a reload)."""

    items: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Options:
        return cls(tuple(sorted(values.items())))

    def __getitem__(self, key: str) -> Any:
        for name, value in self.items:
            if name == key:
                return value
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default
