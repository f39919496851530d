"""Reading a YAML file into plain values; a broken one is one line naming the flag."""

from __future__ import annotations

from typing import Any

import yaml

from binance_margin_exporter.config.schema import ConfigError


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
