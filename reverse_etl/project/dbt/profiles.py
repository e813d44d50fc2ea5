"""The source of a project with ``dbt:`` and no ``source:``: dbt's own ``profiles.yml``.

The profile is the one ``dbt_project.yml`` names (or ``dbt.profile``); the output
is ``dbt.target``, else the reverse-etl target (``--target``/``REVERSE_ETL_TARGET``),
else the profile's ``target:``. ``profiles.yml`` is looked for where dbt looks:
``--profiles-dir``/``$DBT_PROFILES_DIR``, ``dbt.profiles_dir``, the dbt project
directory, then ``~/.dbt``. Its string values are rendered after YAML parsing, as
dbt renders them: ``{{ env_var('NAME') }}``, ``{{ env_var('NAME', 'default') }}`` and
the filters ``as_number``, ``as_bool``, ``as_native``, ``int``, ``float``, ``string``.
dbt-duckdb and dbt-snowflake outputs are understood; dbt is never imported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from reverse_etl.errors import ConfigError
from reverse_etl.project.config import DbtConfig, DuckDBSourceConfig, SnowflakeSourceConfig
from reverse_etl.project.files import read_text
from reverse_etl.project.yaml_lines import LineMap, Loc, dotted, line_of, parse_yaml

PROFILES_ENV = "DBT_PROFILES_DIR"
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_CALL = re.compile(r"""^env_var\(\s*(['"])(?P<name>[A-Za-z_][A-Za-z0-9_]*)\1\s*"""
                   r"""(?:,\s*(?:(['"])(?P<default>.*?)\3|(?P<number>-?\d+(?:\.\d+)?))\s*)?\)"""
                   r"""(?P<filters>(?:\s*\|\s*[a-z_]+)*)$""")
_FILTERS = {"as_number", "as_bool", "as_native", "int", "float", "string", "trim", "lower", "upper"}
_SNOWFLAKE_FIELDS = {"account", "user", "password", "private_key_path", "private_key_passphrase", "role",
                     "warehouse", "database", "schema", "query_tag", "host", "port", "protocol",
                     "login_timeout_seconds", "network_timeout_seconds"}
# dbt's own settings of an output: meaningful to dbt, not to a read-only source.
_DBT_ONLY = {"type", "threads", "client_session_keep_alive", "connect_retries", "connect_timeout",
             "retry_on_database_errors", "retry_all", "reuse_connections", "insecure_mode",
             "extensions", "settings", "attach", "plugins", "filesystems", "module_paths", "secrets",
             "external_root", "use_credential_provider", "disable_transactions", "keepalives_idle"}


def profile_source(root: Path, dbt: DbtConfig, requested_target: str | None,
                   environ: Mapping[str, str]) -> DuckDBSourceConfig | SnowflakeSourceConfig:
    """The source described by dbt's ``profiles.yml`` for this project; :class:`ConfigError` if not."""
    project_dir = (root / dbt.project_dir).resolve()
    profile_name = dbt.profile or _profile_of(project_dir)
    path = find_profiles(root, dbt, project_dir, environ)
    shown = path.name if path.parent == project_dir else str(path)
    data, lines = parse_yaml(read_text(path, shown), shown)
    profiles = data if isinstance(data, dict) else {}
    if profile_name not in profiles or not isinstance(profiles[profile_name], dict):
        known = ", ".join(str(k) for k in profiles if k != "config") or "none"
        raise ConfigError(f"{shown}: no profile {profile_name!r} (named by dbt_project.yml); "
                          f"profiles there: {known}")
    profile = profiles[profile_name]
    outputs = profile.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise ConfigError(f"{shown}:{line_of((profile_name,), lines)}: {profile_name}.outputs: "
                          "no outputs; add one (dbt's `outputs:` mapping)")
    default = _render(profile.get("target"), environ, shown, lines, (profile_name, "target"))
    target = dbt.target or requested_target or default
    if target is None:
        raise ConfigError(f"{shown}:{line_of((profile_name,), lines)}: {profile_name}.target: not set; "
                          "add `target:` to the profile or pass --target")
    if str(target) not in outputs:
        raise ConfigError(f"{shown}:{line_of((profile_name, 'outputs'), lines)}: profile {profile_name!r} "
                          f"has no output {str(target)!r}; outputs: {', '.join(map(str, outputs))}")
    where: Loc = (profile_name, "outputs", str(target))
    output = outputs[str(target)]
    if not isinstance(output, dict):
        raise ConfigError(f"{shown}:{line_of(where, lines)}: {dotted(where)}: must be a mapping")
    rendered = {key: _render(value, environ, shown, lines, (*where, key)) for key, value in output.items()}
    kind = rendered.get("type")
    if kind == "duckdb":
        raw_path = str(rendered.get("path") or ":memory:")
        db_path = raw_path if raw_path.startswith(":") or "://" in raw_path else str(project_dir / raw_path)
        fields: dict[str, Any] = {"type": "duckdb", "path": db_path}
        return _build(DuckDBSourceConfig, fields, shown, lines, where)
    if kind == "snowflake":
        if rendered.get("private_key") is not None:
            raise ConfigError(f"{shown}:{line_of((*where, 'private_key'), lines)}: {dotted(where)}.private_key: "
                              "an inline key is not supported; use private_key_path")
        if rendered.get("authenticator") not in (None, "snowflake", "username_password_mfa"):
            raise ConfigError(f"{shown}:{line_of((*where, 'authenticator'), lines)}: {dotted(where)}"
                              f".authenticator: {rendered['authenticator']!r} is not supported; use a "
                              "password or private_key_path")
        fields = {k: v for k, v in rendered.items() if k in _SNOWFLAKE_FIELDS and v is not None}
        if "connect_timeout" in rendered:
            fields.setdefault("login_timeout_seconds", rendered["connect_timeout"])
        return _build(SnowflakeSourceConfig, {"type": "snowflake", **fields}, shown, lines, where)
    raise ConfigError(f"{shown}:{line_of((*where, 'type'), lines)}: {dotted(where)}.type: {kind!r} outputs "
                      "cannot be read as a source yet (duckdb and snowflake can); add a `source:` "
                      "section to syncs.yml instead")


def find_profiles(root: Path, dbt: DbtConfig, project_dir: Path, environ: Mapping[str, str]) -> Path:
    """Where ``profiles.yml`` is, searched in dbt's order."""
    candidates: list[tuple[Path, str]] = []
    if environ.get(PROFILES_ENV):
        candidates.append((Path(environ[PROFILES_ENV]).expanduser(), f"--profiles-dir/${PROFILES_ENV}"))
    elif dbt.profiles_dir:
        candidates.append(((root / dbt.profiles_dir).resolve(), "dbt.profiles_dir"))
    else:
        candidates += [(project_dir, "the dbt project"), (Path.home() / ".dbt", "~/.dbt")]
    for directory, _ in candidates:
        if (directory / "profiles.yml").is_file():
            return directory / "profiles.yml"
    looked = ", ".join(f"{d} ({why})" for d, why in candidates)
    raise ConfigError(f"profiles.yml not found (looked in {looked}); pass --profiles-dir, set "
                      f"{PROFILES_ENV}, or add a `source:` section to syncs.yml")


def _profile_of(project_dir: Path) -> str:
    path = project_dir / "dbt_project.yml"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; point dbt.project_dir at the dbt project "
                          "(or set dbt.profile)")
    data, lines = parse_yaml(read_text(path), path.name)
    profile = data.get("profile") if isinstance(data, dict) else None
    if not isinstance(profile, str) or not profile:
        raise ConfigError(f"{path.name}:{line_of(('profile',), lines)}: profile: not set; "
                          "name the profile in dbt_project.yml or set dbt.profile in syncs.yml")
    return profile


def _render(value: Any, environ: Mapping[str, str], filename: str, lines: LineMap, loc: Loc) -> Any:
    """A profile value with its ``{{ env_var() }}`` templates filled in, the dbt way."""
    if not isinstance(value, str) or "{{" not in value:
        return value
    line = line_of(loc, lines)
    whole = _TEMPLATE.fullmatch(value.strip())
    parts: list[Any] = []

    def substitute(match: re.Match[str]) -> str:
        call = _CALL.match(match.group(1))
        if call is None:
            raise ConfigError(f"{filename}:{line}: {dotted(loc)}: unsupported template; reverse-etl reads "
                              "only {{ env_var('NAME') }} or {{ env_var('NAME', 'default') }} with "
                              "as_number/as_bool/as_native/int/float/string filters here")
        name = call.group("name")
        if name in environ:
            result: Any = environ[name]
        elif call.group("default") is not None:
            result = call.group("default")
        elif call.group("number") is not None:
            result = call.group("number")
        else:
            raise ConfigError(f"{filename}:{line}: {dotted(loc)}: environment variable {name} is not set; "
                              f"export {name}=... (dbt reads it from the environment too)")
        for name in (f.strip() for f in call.group("filters").split("|")[1:]):
            if name not in _FILTERS:
                raise ConfigError(f"{filename}:{line}: {dotted(loc)}: filter {name!r} is not supported; "
                                  f"use one of {', '.join(sorted(_FILTERS))}")
            result = _filter(name, result, filename, line, loc)
        parts.append(result)
        return str(result)

    text = _TEMPLATE.sub(substitute, value)
    if whole is not None and len(parts) == 1 and not isinstance(parts[0], str):
        return parts[0]  # a native value (as_number, as_bool, int, ...), as dbt's native rendering
    return text


def _filter(name: str, value: Any, filename: str, line: int, loc: Loc) -> Any:
    text = str(value)
    try:
        if name in ("as_number", "float") or (name == "as_native" and re.fullmatch(r"-?\d+\.\d*", text)):
            number = float(text)
            return int(number) if name != "float" and number.is_integer() and "." not in text else number
        if name == "int" or (name == "as_native" and re.fullmatch(r"-?\d+", text)):
            return int(float(text))
    except ValueError:
        raise ConfigError(f"{filename}:{line}: {dotted(loc)}: {name}: the value is not a number; "
                          "check the environment variable") from None
    if name == "as_bool" or (name == "as_native" and text.lower() in ("true", "false")):
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"{filename}:{line}: {dotted(loc)}: as_bool: the value is not true or false; "
                              "check the environment variable")
        return text.lower() == "true"
    return {"trim": text.strip(), "lower": text.lower(), "upper": text.upper()}.get(name, text)


def _build(model: type[BaseModel], fields: dict[str, Any], filename: str, lines: LineMap,
           where: Loc) -> Any:
    try:
        return TypeAdapter(model).validate_python(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = (*where, *(str(p) for p in error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{filename}:{line_of(loc, lines)}: {dotted(loc)}: {message} "
                          "(read from the dbt profile)") from None
