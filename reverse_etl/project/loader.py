"""Load syncs.yml: read .env, render ``{{ env_var() }}``, parse YAML, validate.

Every failure becomes a one-line :class:`ConfigError` that names the file, the
line, the field and the fix, e.g.::

    syncs.yml:14: syncs[0].identifiers.uid: unknown field; remove it or use one of uuid, email, ...
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import ValidationError

from reverse_etl.errors import ConfigError
from reverse_etl.project.config import ConfigT, Project

CONFIG_FILENAME = "syncs.yml"

_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_ENV_VAR_CALL = re.compile(
    r"""^env_var\(\s*(['"])(?P<name>[A-Za-z_][A-Za-z0-9_]*)\1\s*(?:,\s*(['"])(?P<default>.*?)\3\s*)?\)$"""
)
# Fields that hold secrets: they must come from the environment, never the file.
_SECRET_PATHS = (
    ("destination", "api_key"),
    ("source", "password"),
    ("source", "private_key_passphrase"),
)
_URL_WITH_PASSWORD = re.compile(r"^[a-z0-9+]+://[^/:@]+:[^/@]+@", re.IGNORECASE)


def load_config(path: str | Path, environ: Mapping[str, str] | None,
                schema: type[ConfigT]) -> Project[ConfigT]:
    """Load a project from a directory holding syncs.yml, or from the file itself.

    ``schema`` is the whole file's model: the engine's sections plus the destination's.

    ``environ`` defaults to ``.env`` beside the file overlaid by ``os.environ``.
    """
    config_path = Path(path)
    if config_path.is_dir():
        config_path = config_path / CONFIG_FILENAME
    if not config_path.is_file():
        raise ConfigError(
            f"{config_path}: no such file; run in the project directory or pass --project DIR"
        )
    root = config_path.parent.resolve()
    if environ is None:
        dotenv_file = root / ".env"
        dot = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None} if dotenv_file.is_file() else {}
        environ = {**dot, **os.environ}
    raw = config_path.read_text(encoding="utf-8")
    rendered = render_env_vars(raw, environ, config_path.name)
    templated = frozenset(i for i, line in enumerate(raw.splitlines()) if _TEMPLATE.search(line))
    data, lines = _parse_yaml(rendered, config_path.name, templated)
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path.name}:1: the file must be a mapping with source, destination and syncs")
    _refuse_literal_secrets(data, lines, raw.splitlines(), config_path.name)
    try:
        config = schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, lines, config_path.name)) from None
    return Project(config=config, root=root, config_path=config_path.resolve())


def render_env_vars(text: str, environ: Mapping[str, str], filename: str) -> str:
    """Replace ``{{ env_var('NAME', 'default') }}`` line by line (keeps line numbers)."""
    out: list[str] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):

        def substitute(match: re.Match[str], number: int = number, line: str = line) -> str:
            call = _ENV_VAR_CALL.match(match.group(1))
            if call is None:
                raise ConfigError(
                    f"{filename}:{number}: unsupported template {match.group(0)!r}; "
                    "only {{ env_var('NAME') }} or {{ env_var('NAME', 'default') }} is allowed"
                )
            name, default = call.group("name"), call.group("default")
            if name in environ:
                value = environ[name]
            elif default is not None:
                value = default
            else:
                raise ConfigError(
                    f"{filename}:{number}: environment variable {name} is not set; "
                    f"export {name}=... or add it to .env"
                )
            return _yaml_escaped(value, line, match)

        out.append(_TEMPLATE.sub(substitute, line))
    return "".join(out)


def _yaml_escaped(value: str, line: str, match: re.Match[str]) -> str:
    """``value`` written so YAML reads it back unchanged, whatever it holds.

    A secret may start with ``*`` or ``!`` or hold a backslash or a quote; pasted raw
    it would be parsed as YAML syntax (and echoed in the parse error).
    """
    quote = _quote_at(line, match.start())
    if quote == '"':
        return json.dumps(value)[1:-1]  # JSON string escapes are YAML double-quoted escapes
    if quote == "'":
        return value.replace("'", "''")
    before, after = line[: match.start()].rstrip(), line[match.end():].strip()
    if (before.endswith(":") or before.endswith("- ") or before.endswith("-")) and not after:
        return json.dumps(value)  # the template is the whole plain scalar: make it a quoted one
    return value


def _quote_at(line: str, position: int) -> str | None:
    """The YAML quote character open at ``position`` of ``line``, if any."""
    quote: str | None = None
    i = 0
    while i < position:
        char = line[i]
        if quote is None:
            if char in "\"'":
                quote = char
            elif char == "#":
                return None
        elif quote == '"' and char == "\\":
            i += 1  # skip the escaped character
        elif char == quote:
            if quote == "'" and i + 1 < position and line[i + 1] == "'":
                i += 1  # '' is an escaped single quote
            else:
                quote = None
        i += 1
    return quote


# ------------------------------------------------------------------ YAML + lines
LineMap = dict[tuple[str | int, ...], int]


def _parse_yaml(text: str, filename: str, templated_lines: frozenset[int] = frozenset()) -> tuple[Any, LineMap]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is not None and mark.line in templated_lines:
            # The line held a rendered env_var(): the problem text could quote a secret.
            problem = "cannot parse the line once its env_var() value is filled in"
        raise ConfigError(f"{where}: invalid YAML: {problem}; check indentation and quoting") from None
    lines: LineMap = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], lines: LineMap) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (key_node.value,)
            lines[path + key] = key_node.start_mark.line + 1
            _index_lines(value_node, path + key, lines)
            lines[path + key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def _line_of(path: tuple[str | int, ...], lines: LineMap) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _refuse_literal_secrets(
    data: dict[str, Any], lines: LineMap, raw_lines: list[str], filename: str
) -> None:
    for section, field in _SECRET_PATHS:
        block = data.get(section)
        if isinstance(block, dict) and block.get(field) not in (None, ""):
            _require_env_var(raw_lines, lines, (section, field), filename)
    source = data.get("source")
    url = source.get("url") if isinstance(source, dict) else None
    if isinstance(url, str) and _URL_WITH_PASSWORD.match(url):
        _require_env_var(raw_lines, lines, ("source", "url"), filename)


def _require_env_var(
    raw_lines: list[str], lines: LineMap, path: tuple[str, str], filename: str
) -> None:
    number = _line_of(path, lines)
    if "env_var(" not in raw_lines[number - 1]:
        name = "_".join(path).upper()
        raise ConfigError(
            f"{filename}:{number}: {_dotted(path)} is a secret written literally; write "
            f"\"{{{{ env_var('{name}') }}}}\" and set {name} in the environment or .env"
        )


def _describe_validation_error(exc: ValidationError, lines: LineMap, filename: str) -> str:
    errors = exc.errors()
    first = errors[0]
    # Drop pydantic's union/discriminator tags from the location ("duckdb", "function-after").
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and ("[" in p or "-" in p)))
    loc = _strip_discriminator(loc)
    kind = first["type"]
    field = _dotted(loc)
    if kind == "extra_forbidden":
        message = f"{field}: unknown field; remove it or check its spelling"
    elif kind == "missing":
        message = f"{field}: required field is missing; add it"
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        message = f"{field}: {first['msg']}"
    else:
        message = f"{field}: {first['msg']}"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{filename}:{_line_of(loc, lines)}: {message}{more}"


def _strip_discriminator(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # For discriminated unions pydantic inserts the tag value ("duckdb") after "source".
    cleaned: list[str | int] = []
    for index, part in enumerate(loc):
        if index > 0 and loc[index - 1] == "source" and part in ("duckdb", "snowflake", "sqlalchemy") and len(cleaned) == 1:
            continue
        cleaned.append(part)
    return tuple(cleaned)
