"""Reading a YAML file into plain values; a broken one is one line naming the flag.

Stricter than ``yaml.safe_load``: a key given twice is refused (a second ``accounts:`` would
silently replace the first), and so are aliases (``*name``: nothing here needs them, and
nested ones expand exponentially). Messages never repeat the file's text: a tag, an alias or
a value may be a secret.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node

from binance_margin_exporter.config.schema import ConfigError

MAX_DEPTH = 64  # nesting deeper than any configuration needs: refused, not a RecursionError
QUOTED = re.compile(r"""(['"]).*?\1""")


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed",
                                              event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the SafeLoader refuses it below
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, "a key is given twice",
                                                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def load_yaml(path: str, flag: str = "--config") -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Loader)  # noqa: S506 - a SafeLoader, stricter
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{flag}: {path}: not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"{flag}: {path}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        # what the file says (a tag, an alias, a value) stays out of the message
        problem = QUOTED.sub("…", problem)
        raise ConfigError(f"{flag}: {path}: {problem}{where}") from None
