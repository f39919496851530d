"""Configuration: YAML file + environment + ``*_file`` secrets -> frozen, validated settings.

Every problem becomes a :class:`ConfigError` whose message is one line naming the key, so the CLI
can print it and stop without a traceback. Secrets are read here, once, and are never part of a
``repr`` or of an error message.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt
import yaml

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.binance.com"
DEFAULT_PAPI_BASE_URL = "https://papi.binance.com"
ACCOUNT_TYPES = ("cross", "portfolio_margin")
DEFAULT_ACCOUNT_NAME = "default"
REDACTED = "<redacted>"


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line that names the offending key."""


@dataclass(frozen=True, repr=False)
class AccountConfig:
    """One Binance account: a label and its credentials (exactly one way of signing)."""

    name: str
    api_key: str
    api_secret: str | None = None
    private_key_pem: bytes | None = None
    private_key_passphrase: bytes | None = None
    source: str = "accounts[0]"  # where it was configured, for error messages
    isolated: bool = True  # also read the account's isolated margin pairs
    type: str = "cross"  # or "portfolio_margin"
    # a master key's sub-accounts: "all" (discovered), a tuple of e-mails, or None
    sub_accounts: str | tuple[str, ...] | None = None
    master: bool = True  # export the master's own margin account too

    def __repr__(self) -> str:
        kind = "hmac" if self.api_secret is not None else "private_key"
        return f"AccountConfig(name={self.name!r}, api_key={REDACTED}, signing={kind})"


@dataclass(frozen=True)
class Settings:
    accounts: tuple[AccountConfig, ...]
    base_url: str = DEFAULT_BASE_URL
    papi_base_url: str = DEFAULT_PAPI_BASE_URL
    recv_window_ms: int = 5000
    request_timeout_seconds: float = 5.0
    cache_ttl_seconds: float = 10.0
    include_zero_assets: bool = False
    assets: tuple[str, ...] | None = None
    max_response_bytes: int = 16 * 1024 * 1024
    ip_weight_soft_limit: int = 9600
    fetch_concurrency: int = 64
    usdt_values: bool = True  # GET /api/v3/ticker/price once per cache interval
    interest_rates: bool = True  # GET /sapi/v1/margin/next-hourly-interest-rate hourly
    # every file these settings were read from (the config, secret files): watched for change
    files: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class TLSConfig:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"


@dataclass(frozen=True)
class WebConfig:
    tls: TLSConfig | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# small typed readers


def _number(value: Any, key: str, *, minimum: float, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{key}: must be between {minimum:g} and {maximum:g}, got {value:g}")
    return float(value)


def _integer(value: Any, key: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{key}: must be between {minimum} and {maximum}, got {value}")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a non-empty string")
    return value


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {type(value).__name__}")
    return value


def _base_url(value: Any, key: str) -> str:
    url = _string(value, key).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigError(f"{key}: expected an http(s) URL such as {DEFAULT_BASE_URL}")
    return url


def _check_keys(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"{name}: unknown key (allowed: {', '.join(sorted(allowed))})")


# the files read by the load_settings under way (its Settings.files)
_files_read: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "files_read", default=None)


def read_secret_file(path: Any, key: str, *, base: Path | None = None) -> bytes:
    """Read a secret from a file; warn when group or others may read it."""
    name = _string(path, key)
    target = Path(name) if base is None else base / name
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {str(target)!r}: {exc.strerror}") from None
    files = _files_read.get()
    if files is not None:
        files.append(str(target))
    if _readable_by_others(target):
        log.warning(
            "%s: secret file %s is readable by group or others (mode %s); chmod 600 it",
            key,
            target,
            oct(stat.S_IMODE(target.stat().st_mode)),
        )
    return data


def _readable_by_others(path: Path) -> bool:
    """Others may read it, or a group this process is not in (a Kubernetes secret volume with
    ``fsGroup`` is group-readable by the pod's own group: that is fine)."""
    info = path.stat()
    if info.st_mode & stat.S_IRWXO:
        return True
    if info.st_mode & stat.S_IRWXG:
        return info.st_gid not in {os.getgid(), *os.getgroups()}
    return False


def _secret_text(data: bytes, key: str) -> str:
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: must be ASCII text") from None
    if not text:
        raise ConfigError(f"{key}: is empty")
    if any(c.isspace() for c in text):
        raise ConfigError(f"{key}: must not contain white space")
    return text


# --------------------------------------------------------------------------------------------
# accounts

ACCOUNT_KEYS = {
    "name",
    "api_key",
    "api_key_file",
    "api_secret",
    "api_secret_file",
    "private_key_file",
    "private_key_passphrase_file",
    "isolated",
    "type",
    "sub_accounts",
    "master",
}


def _one_of(values: Mapping[str, Any], keys: tuple[str, ...], where: str) -> str | None:
    present = [k for k in keys if values.get(k) is not None]
    if len(present) > 1:
        raise ConfigError(f"{where}: set only one of {', '.join(present)}")
    return present[0] if present else None


def _account(values: Mapping[str, Any], where: str, base: Path | None) -> AccountConfig:
    name = _string(values.get("name"), f"{where}.name")
    key_source = _one_of(values, ("api_key", "api_key_file"), where)
    if key_source is None:
        raise ConfigError(f"{where}.api_key: missing (set api_key or api_key_file)")
    if key_source == "api_key":
        api_key = _secret_text(_string(values["api_key"], f"{where}.api_key").encode(),
                               f"{where}.api_key")
    else:
        key = f"{where}.api_key_file"
        api_key = _secret_text(read_secret_file(values["api_key_file"], key, base=base), key)

    signing = _one_of(values, ("api_secret", "api_secret_file", "private_key_file"), where)
    if signing is None:
        raise ConfigError(
            f"{where}.api_secret: missing (set api_secret, api_secret_file or private_key_file)"
        )
    if values.get("private_key_passphrase_file") is not None and signing != "private_key_file":
        raise ConfigError(f"{where}.private_key_passphrase_file: only with private_key_file")
    api_secret = pem = passphrase = None
    if signing == "api_secret":
        key = f"{where}.api_secret"
        api_secret = _secret_text(_string(values["api_secret"], key).encode(), key)
    elif signing == "api_secret_file":
        key = f"{where}.api_secret_file"
        api_secret = _secret_text(read_secret_file(values["api_secret_file"], key, base=base), key)
    else:
        pem = read_secret_file(values["private_key_file"], f"{where}.private_key_file", base=base)
        if values.get("private_key_passphrase_file") is not None:
            key = f"{where}.private_key_passphrase_file"
            passphrase = read_secret_file(values["private_key_passphrase_file"], key, base=base)
            passphrase = passphrase.rstrip(b"\r\n")
    isolated = True
    if values.get("isolated") is not None:
        isolated = _boolean(values["isolated"], f"{where}.isolated")
    kind = values.get("type") or "cross"
    if kind not in ACCOUNT_TYPES:
        raise ConfigError(f"{where}.type: expected one of {', '.join(ACCOUNT_TYPES)}")
    subs = _sub_accounts(values.get("sub_accounts"), f"{where}.sub_accounts")
    master = True
    if values.get("master") is not None:
        master = _boolean(values["master"], f"{where}.master")
    if kind == "portfolio_margin" and subs is not None:
        raise ConfigError(f"{where}.sub_accounts: only for type cross (a master key's "
                          f"sub-accounts are read as cross margin accounts)")
    if not master and subs is None:
        raise ConfigError(f"{where}.master: false leaves nothing to read without sub_accounts")
    return AccountConfig(name, api_key, api_secret, pem, passphrase, source=where,
                         isolated=isolated and kind == "cross" and master, type=kind,
                         sub_accounts=subs, master=master)


def _sub_accounts(value: Any, key: str) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    if value == "all":
        return "all"
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key}: expected all or a non-empty list of sub-account e-mails")
    emails = tuple(_string(v, f"{key}[{i}]") for i, v in enumerate(value))
    if len(set(emails)) != len(emails):
        raise ConfigError(f"{key}: lists an e-mail twice")
    return emails


def _env_account(env: Mapping[str, str]) -> AccountConfig | None:
    values = {
        "name": DEFAULT_ACCOUNT_NAME,
        "api_key": env.get("BINANCE_API_KEY") or None,
        "api_key_file": env.get("BINANCE_API_KEY_FILE") or None,
        "api_secret": env.get("BINANCE_API_SECRET") or None,
        "api_secret_file": env.get("BINANCE_API_SECRET_FILE") or None,
        "private_key_file": env.get("BINANCE_PRIVATE_KEY_FILE") or None,
        "private_key_passphrase_file": env.get("BINANCE_PRIVATE_KEY_PASSPHRASE_FILE") or None,
    }
    if all(v is None for k, v in values.items() if k != "name"):
        return None
    try:
        return _account(values, "env", None)
    except ConfigError as exc:
        # Name the environment variable rather than the YAML-style key.
        message = str(exc)
        for key in sorted(ACCOUNT_KEYS - {"name"}, key=len, reverse=True):
            message = message.replace(f"env.{key}", f"BINANCE_{key.upper()}")
        message = message.replace("env:", "BINANCE_*:")
        raise ConfigError(message) from None


# --------------------------------------------------------------------------------------------
# settings

SETTINGS_KEYS = {
    "base_url",
    "papi_base_url",
    "recv_window_ms",
    "request_timeout_seconds",
    "cache_ttl_seconds",
    "include_zero_assets",
    "assets",
    "max_response_bytes",
    "ip_weight_soft_limit",
    "fetch_concurrency",
    "usdt_values",
    "interest_rates",
    "accounts",
}


def load_yaml(path: str, flag: str = "--config") -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{flag}: {path}: {problem}{where}") from None


def load_settings(
    path: str | None,
    env: Mapping[str, str],
    *,
    require_accounts: bool = True,
) -> Settings:
    """Build :class:`Settings` from an optional YAML file and the environment."""
    files: list[str] = [] if path is None else [str(Path(path).resolve())]
    token = _files_read.set(files)
    try:
        settings = _load_settings(path, env, require_accounts)
    finally:
        _files_read.reset(token)
    return dataclasses.replace(settings, files=tuple(files))


def _load_settings(path: str | None, env: Mapping[str, str], require_accounts: bool) -> Settings:
    raw: Any = {} if path is None else load_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("--config: the top level must be a mapping of keys")
    _check_keys(raw, SETTINGS_KEYS, "")
    base = Path(path).resolve().parent if path else None

    kwargs: dict[str, Any] = {}
    if "base_url" in raw:
        kwargs["base_url"] = _base_url(raw["base_url"], "base_url")
    if "papi_base_url" in raw:
        kwargs["papi_base_url"] = _base_url(raw["papi_base_url"], "papi_base_url")
    if env.get("BINANCE_BASE_URL"):  # one host for everything: a proxy, or the simulator
        kwargs["base_url"] = _base_url(env["BINANCE_BASE_URL"], "BINANCE_BASE_URL")
        kwargs["papi_base_url"] = kwargs["base_url"]
    if "recv_window_ms" in raw:
        kwargs["recv_window_ms"] = _integer(
            raw["recv_window_ms"], "recv_window_ms", minimum=1, maximum=60000
        )
    if "request_timeout_seconds" in raw:
        kwargs["request_timeout_seconds"] = _number(
            raw["request_timeout_seconds"], "request_timeout_seconds", minimum=0.1, maximum=60
        )
    if "cache_ttl_seconds" in raw:
        kwargs["cache_ttl_seconds"] = _number(
            raw["cache_ttl_seconds"], "cache_ttl_seconds", minimum=0, maximum=3600
        )
    for flag in ("usdt_values", "interest_rates"):
        if flag in raw:
            kwargs[flag] = _boolean(raw[flag], flag)
    if "include_zero_assets" in raw:
        kwargs["include_zero_assets"] = _boolean(raw["include_zero_assets"], "include_zero_assets")
    if "max_response_bytes" in raw:
        kwargs["max_response_bytes"] = _integer(
            raw["max_response_bytes"], "max_response_bytes", minimum=4096, maximum=1 << 30
        )
    if "ip_weight_soft_limit" in raw:
        kwargs["ip_weight_soft_limit"] = _integer(
            raw["ip_weight_soft_limit"], "ip_weight_soft_limit", minimum=10, maximum=12000
        )
    if "fetch_concurrency" in raw:
        kwargs["fetch_concurrency"] = _integer(
            raw["fetch_concurrency"], "fetch_concurrency", minimum=1, maximum=256
        )
    if "assets" in raw and raw["assets"] is not None:
        assets = raw["assets"]
        if not isinstance(assets, list) or not assets:
            raise ConfigError("assets: expected a non-empty list of asset symbols")
        names = tuple(_string(a, f"assets[{i}]") for i, a in enumerate(assets))
        if len(set(names)) != len(names):
            raise ConfigError("assets: lists an asset twice")
        kwargs["assets"] = names

    accounts: list[AccountConfig] = []
    if raw.get("accounts") is not None:
        if not isinstance(raw["accounts"], list) or not raw["accounts"]:
            raise ConfigError("accounts: expected a non-empty list")
        for i, entry in enumerate(raw["accounts"]):
            where = f"accounts[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: expected a mapping with name, api_key, api_secret")
            _check_keys(entry, ACCOUNT_KEYS, where)
            accounts.append(_account(entry, where, base))
        seen: set[str] = set()
        for account in accounts:
            if account.name in seen:
                raise ConfigError(f"{account.source}.name: duplicate account name {account.name!r}")
            seen.add(account.name)
        if env.get("BINANCE_API_KEY") or env.get("BINANCE_API_KEY_FILE"):
            log.warning("BINANCE_API_KEY* is ignored: the config file lists accounts")
    else:
        account = _env_account(env)
        if account is not None:
            accounts.append(account)
    if require_accounts and not accounts:
        raise ConfigError(
            "no API credentials: set BINANCE_API_KEY and BINANCE_API_SECRET (or their *_FILE "
            "variants), list accounts in --config, or try --demo"
        )
    return Settings(accounts=tuple(accounts), **kwargs)


# --------------------------------------------------------------------------------------------
# --web.config.file (the Prometheus exporter-toolkit format)

# RequestClientCert and RequireAnyClientCert accept unverified certificates, which Python's ssl
# module cannot do; they are refused rather than silently weakened.
CLIENT_AUTH_TYPES = {"NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}
# TLS 1.0 and 1.1 are never offered; min_version can only raise the floor.
TLS_MIN_VERSIONS = ("TLS12", "TLS13")


def load_web_config(path: str) -> WebConfig:
    where = "--web.config.file"
    raw = load_yaml(path, where)
    if raw is None:
        return WebConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of keys")
    _check_keys(raw, {"tls_server_config", "basic_auth_users", "http_server_config"}, "")
    base = Path(path).resolve().parent

    def existing(value: Any, key: str) -> str:
        target = base / _string(value, key)
        if not target.is_file():
            raise ConfigError(f"{key}: no such file {str(target)!r}")
        return str(target)

    tls = None
    if raw.get("tls_server_config") is not None:
        section = raw["tls_server_config"]
        if not isinstance(section, dict):
            raise ConfigError("tls_server_config: expected a mapping")
        allowed = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
        _check_keys(section, allowed, "tls_server_config")
        for key in ("cert_file", "key_file"):
            if key not in section:
                raise ConfigError(f"tls_server_config.{key}: missing")
        auth_type = section.get("client_auth_type", "NoClientCert")
        if auth_type not in CLIENT_AUTH_TYPES:
            raise ConfigError(
                f"tls_server_config.client_auth_type: expected one of "
                f"{', '.join(sorted(CLIENT_AUTH_TYPES))}"
            )
        min_version = section.get("min_version", "TLS12")
        if min_version not in TLS_MIN_VERSIONS:
            raise ConfigError(
                f"tls_server_config.min_version: expected {' or '.join(TLS_MIN_VERSIONS)} "
                f"(TLS 1.0 and 1.1 are not offered)"
            )
        ca = section.get("client_ca_file")
        if auth_type in {"VerifyClientCertIfGiven", "RequireAndVerifyClientCert"} and not ca:
            raise ConfigError(f"tls_server_config.client_ca_file: required by {auth_type}")
        tls = TLSConfig(
            cert_file=existing(section["cert_file"], "tls_server_config.cert_file"),
            key_file=existing(section["key_file"], "tls_server_config.key_file"),
            client_ca_file=existing(ca, "tls_server_config.client_ca_file") if ca else None,
            client_auth_type=auth_type,
            min_version=min_version,
        )
    users: dict[str, str] = {}
    if raw.get("basic_auth_users") is not None:
        section = raw["basic_auth_users"]
        if not isinstance(section, dict) or not section:
            raise ConfigError("basic_auth_users: expected a mapping of user name to bcrypt hash")
        for user, hashed in section.items():
            key = f"basic_auth_users.{user}"
            hashed = _string(hashed, key)
            try:
                if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                    raise ValueError
                bcrypt.checkpw(b"", hashed.encode())
            except ValueError:
                raise ConfigError(
                    f"{key}: expected a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')"
                ) from None
            users[str(user)] = hashed
    if raw.get("http_server_config") is not None:
        log.warning("%s: http_server_config is not supported and is ignored", where)
    return WebConfig(tls=tls, basic_auth_users=users)


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
