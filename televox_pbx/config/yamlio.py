"""YAML for config files: YAML 1.2 scalars, node positions and duplicate-key detection.

PyYAML speaks YAML 1.1, where `end: 20:00` is the base-60 integer 1200 (read by pydantic
as 00:20:00), `default_country: NO` is False and `2026-12-01` a date object. Admins write
clock times and country codes unquoted, so config files resolve scalars like YAML 1.2's
core schema: only true/false are booleans, numbers are plain decimal (or 0x hex), and
everything else, times, dates and digit strings with a leading zero (extension 0200)
included, stays a string for pydantic to parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_REPLACED = frozenset({_BOOL, _INT, _FLOAT, _TIMESTAMP})


class ConfigYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalar resolution (see module docstring)."""


ConfigYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigYamlLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# Int before float: both regexes accept "10" and the first one registered wins.
ConfigYamlLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
ConfigYamlLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?[0-9]+[eE][-+]?[0-9]+"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    path: tuple[str, ...]
    line: int
    first_line: int


def parse(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the plain data. Raises yaml.YAMLError."""
    root = yaml.compose(text, Loader=ConfigYamlLoader)
    data = yaml.load(text, Loader=ConfigYamlLoader)  # a SafeLoader subclass: safe
    return root, data


def duplicate_keys(node: yaml.Node | None,
                   path: tuple[str, ...] = ()) -> list[DuplicateKey]:
    """Keys given twice in one mapping: YAML loaders silently keep the last one."""
    found: list[DuplicateKey] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode):
                if key in seen:
                    found.append(DuplicateKey((*path, key), line, seen[key]))
                else:
                    seen[key] = line
            found.extend(duplicate_keys(value_node, (*path, key)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(duplicate_keys(item, (*path, str(i))))
    return found


def line_of(node: yaml.Node | None, path: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node along `path` (the key's line for mapping entries)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            # Reversed: with a duplicated key the last one is the one that counts.
            for key_node, value_node in reversed(node.value):
                if str(key_node.value) == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
