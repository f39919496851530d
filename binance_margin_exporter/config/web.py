"""``--web.config.file``, the Prometheus exporter-toolkit format: TLS and basic auth."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from binance_margin_exporter.config.schema import ConfigError, check_keys, string
from binance_margin_exporter.config.yamlfile import load_yaml

log = logging.getLogger(__name__)


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
    check_keys(raw, {"tls_server_config", "basic_auth_users", "http_server_config"}, "")
    base = Path(path).resolve().parent

    def existing(value: Any, key: str) -> str:
        target = base / string(value, key)
        if not target.is_file():
            raise ConfigError(f"{key}: no such file {str(target)!r}")
        return str(target)

    tls = None
    if raw.get("tls_server_config") is not None:
        section = raw["tls_server_config"]
        if not isinstance(section, dict):
            raise ConfigError("tls_server_config: expected a mapping")
        allowed = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
        check_keys(section, allowed, "tls_server_config")
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
            hashed = string(hashed, key)
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

