"""Configuration: YAML file + environment + ``*_file`` secrets -> frozen, validated settings.

- :mod:`.schema` — how a setting is declared and read; :class:`ConfigError`.
- :mod:`.settings` — the exporter's own settings; ``load_settings``.
- :mod:`.accounts` — the accounts: ``AccountConfig``, how an entry or the environment is read.
- :mod:`.secrets` — secrets read from files.
- :mod:`.web` — ``--web.config.file`` (TLS and basic auth, exporter-toolkit format).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from binance_margin_exporter.config.accounts import (
    ChecksAccount,
    ChecksAccounts,
    Configured,
    OwnHosts,
    account_settings_of,
    host_setting_of,
    settings_of,
)
from binance_margin_exporter.config.schema import DEFAULT_BASE_URL, ConfigError, Options, Setting
from binance_margin_exporter.config.secrets import REDACTED, read_secret_file
from binance_margin_exporter.config.settings import (
    DEFAULT_ACCOUNT_NAME,
    GLOBAL_SETTINGS,
    AccountConfig,
    Declares,
    Settings,
    Shard,
    host_keys,
    load_settings,
)
from binance_margin_exporter.config.web import TLSConfig, WebConfig, load_web_config
from binance_margin_exporter.config.yamlfile import load_yaml


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ


__all__ = [
    "DEFAULT_ACCOUNT_NAME",
    "DEFAULT_BASE_URL",
    "GLOBAL_SETTINGS",
    "REDACTED",
    "AccountConfig",
    "ChecksAccount",
    "ChecksAccounts",
    "ConfigError",
    "Configured",
    "Declares",
    "Options",
    "OwnHosts",
    "Setting",
    "Settings",
    "Shard",
    "TLSConfig",
    "WebConfig",
    "account_settings_of",
    "environ",
    "host_keys",
    "host_setting_of",
    "load_settings",
    "load_web_config",
    "load_yaml",
    "read_secret_file",
    "settings_of",
]
