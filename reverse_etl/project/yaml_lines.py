"""Parse YAML into plain data plus a map from each value's path to its line.

Duplicate keys are errors (PyYAML silently keeps the last one), naming both lines::

    syncs.yml:14: duplicate key 'name' (first at line 12); keep one of them
"""

from __future__ import annotations

from typing import Any

import yaml

from reverse_etl.errors import ConfigError

Loc = tuple[str | int, ...]
"""Path of a value in the document: ``("syncs", 0, "model")``."""
LineMap = dict[Loc, int]
"""Path of a value (``("syncs", 0, "model")``) -> 1-based line of its key or item."""

MAX_DEPTH = 64
"""Deeper nesting is refused: no syncs.yml needs it, and the parser would recurse without end."""


def parse_yaml(text: str, filename: str, templated_lines: frozenset[int] = frozenset()) -> tuple[Any, LineMap]:
    """``(data, lines)`` of a YAML document; every problem is a one-line :class:`ConfigError`.

    ``templated_lines`` (0-based) held a rendered ``env_var()``: a parse error there
    does not quote the line, which could show a secret.
    """
    _refuse_deep_nesting(text, filename)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        lines: LineMap = {}
        if node is not None:
            _index_lines(node, (), lines, filename)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is not None and mark.line in templated_lines:
            problem = "cannot parse the line once its env_var() value is filled in"
        raise ConfigError(f"{where}: invalid YAML: {problem}; check indentation and quoting") from None
    except RecursionError:
        raise ConfigError(f"{filename}: invalid YAML: nested too deeply; flatten it") from None
    return data, lines


def _refuse_deep_nesting(text: str, filename: str) -> None:
    """Refuse flow nesting (``[[[[...``) deeper than :data:`MAX_DEPTH` before parsing it."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            if char in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(
                        f"{filename}:{number}: invalid YAML: nested more than {MAX_DEPTH} levels deep; flatten it"
                    )
            elif char in "]}":
                depth = max(0, depth - 1)
            elif char == "#":
                break


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], lines: LineMap, filename: str) -> None:
    if len(path) > MAX_DEPTH:
        raise ConfigError(
            f"{filename}:{node.start_mark.line + 1}: invalid YAML: nested more than {MAX_DEPTH} levels deep; flatten it"
        )
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            name, line = key_node.value, key_node.start_mark.line + 1
            if name == "<<":
                continue
            if name in first_seen:
                raise ConfigError(
                    f"{filename}:{line}: duplicate key {name[:60]!r} (first at line {first_seen[name]}); "
                    "keep one of them"
                )
            first_seen[name] = line
            _index_lines(value_node, (*path, name), lines, filename)
            lines[(*path, name)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, filename)


def line_of(path: tuple[str | int, ...], lines: LineMap) -> int:
    """The line of ``path``, or of its nearest ancestor the map knows."""
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def dotted(path: tuple[str | int, ...]) -> str:
    """``("syncs", 0, "model")`` -> ``syncs[0].model``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
