"""Environments: ``target:`` and ``targets:`` in syncs.yml, the way dbt profiles name outputs.

::

    target: dev                    # the default; --target NAME or REVERSE_ETL_TARGET choose another
    targets:
      dev:
        destination: {api_base_url: "http://127.0.0.1:8787", partner: local}
      prod:
        destination: {partner: acme, api_key: "{{ env_var('INSIDER_API_KEY') }}"}
        state: {path: s3://acme-reverse-etl/state}

A target overrides whole keys of the top-level ``source``, ``destination``,
``state`` and ``dbt`` sections (a section whose ``type`` differs is replaced whole).
Each target keeps its own state: its ``state.path``, or else a ``<target>`` folder
(or prefix) under the top-level one, so switching never reuses another
environment's snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reverse_etl.errors import ConfigError
from reverse_etl.project.yaml_lines import LineMap, Loc, line_of

TARGET_ENV = "REVERSE_ETL_TARGET"
"""Environment variable naming the target when ``--target`` is not given."""
SECTIONS = ("source", "destination", "state", "dbt")
"""The top-level sections a target may override."""
DEFAULT_STATE_PATH = ".reverse_etl"


@dataclass(frozen=True)
class Targets:
    """The targets a file declares, and which one a run uses."""

    names: tuple[str, ...]
    selected: str | None
    """None: the file declares no targets (the top-level sections are used as they are)."""
    chosen_by: str
    """How ``selected`` was chosen (for messages): ``--target``, the variable, or ``target:``."""
    requested: str | None = None
    """The name asked for by ``--target`` or the variable (with no ``targets:``: dbt's target)."""

    def spans(self, lines: LineMap) -> dict[str, tuple[int, int]]:
        """First and last line of each target's block."""
        out: dict[str, tuple[int, int]] = {}
        for path, line in lines.items():
            if len(path) >= 2 and path[0] == "targets" and isinstance(path[1], str):
                first, last = out.get(path[1], (line, line))
                out[path[1]] = (min(first, line), max(last, line))
        return out


def read_targets(data: Mapping[str, Any], lines: LineMap, filename: str, requested: str | None,
                 environ: Mapping[str, str]) -> Targets:
    """Check the shape of ``target:``/``targets:`` and choose the target of this run.

    ``requested`` is ``--target`` (or the API's ``target=``); else ``REVERSE_ETL_TARGET``;
    else the file's ``target:``. Every problem is a one-line :class:`ConfigError`.
    """
    declared = data.get("targets")
    default = data.get("target")
    chosen: str | None
    if requested is not None:
        chosen, chosen_by = requested, "--target"
    elif environ.get(TARGET_ENV):
        chosen, chosen_by = environ[TARGET_ENV], TARGET_ENV
    else:
        chosen, chosen_by = default, "target:"
    if declared is None:
        if default is not None:
            raise ConfigError(f"{filename}:{line_of(('target',), lines)}: target: names a default target "
                              "but the file has no `targets:` section; add one or remove target:")
        # No environments: a requested name can still choose dbt's profile target.
        return Targets((), None, chosen_by, requested=chosen)
    where = f"{filename}:{line_of(('targets',), lines)}"
    if not isinstance(declared, dict) or not declared:
        raise ConfigError(f"{where}: targets: must map target names to their overrides, e.g. "
                          "targets: {dev: {state: {path: .reverse_etl}}}")
    from reverse_etl.project.config import SYNC_NAME

    for name, body in declared.items():
        line = line_of(("targets", str(name)), lines)
        if not isinstance(name, str) or not SYNC_NAME.match(name) or len(name) > 64:
            raise ConfigError(f"{filename}:{line}: targets: {str(name)[:40]!r} is not a target name; "
                              "use letters, digits, _ . -")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{filename}:{line}: targets.{name}: must be a mapping of "
                              f"{', '.join(SECTIONS)} overrides")
        for key, value in body.items():
            key_line = line_of(("targets", name, str(key)), lines)
            if key not in SECTIONS:
                raise ConfigError(f"{filename}:{key_line}: targets.{name}.{key}: unknown field; a target "
                                  f"overrides only {', '.join(SECTIONS)}")
            if not isinstance(value, dict):
                raise ConfigError(f"{filename}:{key_line}: targets.{name}.{key}: must be a mapping of the "
                                  f"{key} fields to override")
    names = tuple(str(n) for n in declared)
    if default is None:
        raise ConfigError(f"{where}: targets: needs a default; add `target: NAME` at the top level "
                          f"(one of {', '.join(names)})")
    if chosen not in declared:
        source = {"--target": "--target", TARGET_ENV: f"${TARGET_ENV}"}.get(chosen_by, "target:")
        raise ConfigError(f"{filename}: target {str(chosen)[:60]!r} (from {source}) is not defined; "
                          f"known targets: {', '.join(names)}")
    return Targets(names, str(chosen), chosen_by, requested=str(chosen))


def apply_target(data: dict[str, Any], lines: LineMap, name: str) -> tuple[dict[str, Any], LineMap]:
    """``data`` with target ``name``'s overrides applied, and the lines of the merged values.

    A value a target sets keeps its own line (errors point at the target's block).
    ``target``/``targets`` are removed: the schema never sees them.
    """
    body = (data.get("targets") or {}).get(name) or {}
    merged = {k: v for k, v in data.items() if k not in ("target", "targets")}
    merged_lines: LineMap = dict(lines)
    for section in SECTIONS:
        override = body.get(section)
        base = data.get(section)
        if override is None:
            value = base
        elif not isinstance(base, dict) or ("type" in override and override.get("type") != base.get("type")):
            value = dict(override)
            for path in [p for p in merged_lines if p[:1] == (section,) and len(p) > 1]:
                del merged_lines[path]
        else:
            value = {**base, **override}
        if override is not None:
            for path, line in lines.items():
                if path[:3] == ("targets", name, section):
                    merged_lines[(section, *path[3:])] = line
        if section == "state":
            value = dict(value or {})
            if "path" not in (override or {}):
                # Each target keeps its own state, beside the others under the top-level path.
                value["path"] = f"{str(value.get('path') or DEFAULT_STATE_PATH).rstrip('/')}/{name}"
        if value is not None:
            merged[section] = value
    return merged, merged_lines


def target_loc(data: Mapping[str, Any], name: str, loc: Loc) -> Loc:
    """The path an error at ``loc`` of target ``name``'s merged config should name."""
    body = (data.get("targets") or {}).get(name) or {}
    if not loc or loc[0] not in body:
        return loc
    override, base = body[loc[0]], data.get(str(loc[0]))
    whole = not isinstance(base, dict) or ("type" in override and override.get("type") != base.get("type"))
    if whole or len(loc) == 1 or loc[1] in override:
        return ("targets", name, *loc)
    return loc
