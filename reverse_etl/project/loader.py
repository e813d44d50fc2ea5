"""Load syncs.yml: read .env, render ``{{ env_var() }}``, parse YAML, validate.

Every failure becomes a one-line :class:`ConfigError` that names the file, the
line, the field and the fix, e.g.::

    syncs.yml:14: syncs[0].identifiers.uid: unknown field; remove it or use one of uuid, email, ...
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
from collections.abc import Callable, Container, Iterator, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError

from reverse_etl.errors import ConfigError
from reverse_etl.project.config import ConfigT, DbtConfig, DuckDBSourceConfig, Project
from reverse_etl.project.describe import describe_validation_error
from reverse_etl.project.files import read_text
from reverse_etl.project.literal_secrets import MARKER, refuse_literal_secrets
from reverse_etl.project.targets import apply_target, read_targets, target_loc
from reverse_etl.project.yaml_lines import LineMap, Loc, parse_yaml
from reverse_etl.redact import register_config_secrets

CONFIG_FILENAME = "syncs.yml"

_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_ENV_VAR_CALL = re.compile(
    r"""^env_var\(\s*(['"])(?P<name>[A-Za-z_][A-Za-z0-9_]*)\1\s*(?:,\s*(['"])(?P<default>.*?)\3\s*)?\)$"""
)


def load_config(path: str | Path, environ: Mapping[str, str] | None,
                schema: type[ConfigT], target: str | None = None) -> Project[ConfigT]:
    """Load a project from a directory holding syncs.yml, or from the file itself.

    ``schema`` is the whole file's model: the engine's sections plus the destination's.

    ``target`` names the environment (:mod:`reverse_etl.project.targets`); default:
    ``$REVERSE_ETL_TARGET``, else the file's ``target:``.

    ``environ`` defaults to ``.env`` beside the file overlaid by ``os.environ``.
    The values of the config's secret fields are registered with
    :func:`reverse_etl.redact.register_secret`, so nothing printed or recorded shows them.
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
        environ = {**_read_dotenv(root / ".env"), **os.environ}
    raw = read_text(config_path)
    name = config_path.name
    templated = frozenset(i for i, line in enumerate(raw.splitlines()) if _TEMPLATE.search(line))
    # A first, lenient pass finds the targets: an unset variable used only by a target this
    # run does not use (prod's API key on a laptop) is no error.
    lenient, lenient_lines = parse_yaml(render_env_vars(raw, environ, name, lenient=True), name, templated)
    if not isinstance(lenient, dict):
        raise ConfigError(f"{name}:1: the file must be a mapping with source, destination and syncs")
    targets = read_targets(lenient, lenient_lines, name, target, environ)
    from_dbt = lenient.get("source") is None and lenient.get("dbt") is not None
    if targets.selected is None and target is not None and not from_dbt:
        raise ConfigError(f"{name}: --target {target}: this project defines no targets; add a "
                          "`targets:` section (see the README, Environments) or drop --target")
    spans = {t: span for t, span in targets.spans(lenient_lines).items() if t != targets.selected}
    unused = frozenset(n for first, last in spans.values() for n in range(first, last + 1))
    unset: list[int] = []
    rendered = render_env_vars(raw, environ, name, unset_allowed=unused, unset_found=unset)
    data, lines = parse_yaml(rendered, name, templated)
    marked, _ = parse_yaml(render_env_vars(raw, _Markers(), name), name, templated)
    dbt_target = targets.selected or targets.requested
    if targets.selected is None:
        refuse_literal_secrets(marked, lines, name)
        config = _validate(schema, _with_profile_source(data, root, environ, dbt_target), lines, name)
    else:
        chosen: ConfigT | None = None
        for each in targets.names:  # every target is checked, not only the one used
            merged, merged_lines = apply_target(data, lines, each)
            refuse_literal_secrets(apply_target(marked, lines, each)[0], merged_lines, name)
            first, last = spans.get(each, (0, -1))
            if each != targets.selected and any(first <= n <= last for n in unset):
                continue  # its values are not all known here; its own runs check it
            # Another target's dbt profile may need variables this host does not have: not read.
            merged = _with_profile_source(merged, root, environ, dbt_target, check_only=each != targets.selected)
            checked = _validate(schema, merged, merged_lines, name, shown=functools.partial(target_loc, data, each))
            if each == targets.selected:
                chosen = checked
        assert chosen is not None
        config = chosen
    register_config_secrets(config)
    return Project(config=config, root=root, config_path=config_path.resolve(), target=targets.selected,
                   requested_target=targets.requested)


def _with_profile_source(data: dict[str, Any], root: Path, environ: Mapping[str, str],
                         dbt_target: str | None, check_only: bool = False) -> dict[str, Any]:
    """``data`` with the source dbt's profiles.yml describes, when it has ``dbt:`` and no ``source:``."""
    if "source" in data or not isinstance(data.get("dbt"), dict):
        return data
    try:
        dbt = DbtConfig.model_validate(data["dbt"])
    except ValidationError:
        return data  # the validation of the whole file names the problem
    if check_only:
        return {**data, "source": DuckDBSourceConfig(type="duckdb", path=":memory:")}
    from reverse_etl.project.dbt.profiles import profile_source

    return {**data, "source": profile_source(root, dbt, dbt_target, environ)}


def _validate(schema: type[ConfigT], data: dict[str, Any], lines: LineMap, filename: str,
              shown: Callable[[Loc], Loc] | None = None) -> ConfigT:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, lines, filename, schema, shown)) from None


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    text = read_text(path)
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


class _Markers(Mapping[str, str]):
    """An environment where every variable is set to :data:`MARKER`."""

    def __getitem__(self, key: str) -> str:
        return MARKER

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def render_env_vars(text: str, environ: Mapping[str, str], filename: str, *, lenient: bool = False,
                    unset_allowed: Container[int] = (), unset_found: list[int] | None = None) -> str:
    """Replace ``{{ env_var('NAME', 'default') }}`` line by line (keeps line numbers).

    Every variable that is not set (and has no default) is named in one error,
    except with ``lenient`` or on a line in ``unset_allowed`` (it reads as
    ``missing``; the line number is added to ``unset_found``).
    """
    out: list[str] = []
    missing: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):

        def substitute(match: re.Match[str], number: int = number, line: str = line) -> str:
            call = _ENV_VAR_CALL.match(match.group(1))
            if call is None:
                # A malformed env_var() call may hold a secret default: never quote it.
                shown = "env_var() call" if "env_var" in match.group(0) else f"template {match.group(0)[:40]!r}"
                raise ConfigError(
                    f"{filename}:{number}: unsupported {shown}; "
                    "only {{ env_var('NAME') }} or {{ env_var('NAME', 'default') }} is allowed"
                )
            name, default = call.group("name"), call.group("default")
            if name in environ:
                value = environ[name]
            elif default is not None:
                value = default
            else:
                if lenient or number in unset_allowed:
                    if unset_found is not None:
                        unset_found.append(number)
                else:
                    missing.append((number, name))
                return "missing"
            return _yaml_escaped(value, line, match)

        out.append(_TEMPLATE.sub(substitute, line))
    if len(missing) == 1:
        number, name = missing[0]
        raise ConfigError(
            f"{filename}:{number}: environment variable {name} is not set; "
            f"export {name}=... or add it to .env"
        )
    if missing:
        names = sorted({name for _, name in missing})
        where = ", ".join(f"{name} (line {number})" for number, name in missing)
        raise ConfigError(
            f"{filename}: environment variables {where} are not set; "
            f"export {'=... '.join(names)}=... or add them to .env"
        )
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
