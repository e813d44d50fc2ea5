"""Turn a pydantic ValidationError into lines naming file:line, field and fix.

One problem gives one line; several give a header and one indented line each::

    syncs.yml: 2 problems
      syncs.yml:12: syncs[0].modle: unknown field; did you mean 'model'?
      syncs.yml:20: destination.concurrency: expected a number, got true; write a number
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from reverse_etl.project.yaml_lines import LineMap, Loc, dotted, line_of

_SOURCE_TAGS = ("duckdb", "snowflake", "sqlalchemy")


def describe_validation_error(exc: ValidationError, lines: LineMap, filename: str,
                              schema: type[BaseModel], shown: Callable[[Loc], Loc] | None = None) -> str:
    """The message of a :class:`ConfigError` listing every problem of ``exc``.

    ``shown`` maps a field's path to the one the message names (a target's override
    is named ``targets.<name>.<section>...``).
    """
    problems: list[tuple[int, str]] = []
    errors = [(_clean_loc(error["loc"]), error) for error in exc.errors()]
    missing: dict[tuple[str | int, ...], list[str]] = {}
    for loc, error in errors:
        if error["type"] == "missing" and loc:
            missing.setdefault(loc[:-1], []).append(str(loc[-1]))
    for loc, error in errors:
        field = (error.get("ctx") or {}).get("field")
        if isinstance(field, str):  # raised by Strict's model-level check for one field
            loc = (*loc, field)
        line = line_of(loc, lines)
        problem = _problem(error, loc, schema, missing.get(loc[:-1], []))
        entry = (line, f"{filename}:{line}: {dotted(shown(loc) if shown else loc)}: {problem}")
        if entry not in problems:
            problems.append(entry)
    problems.sort(key=lambda p: p[0])
    if len(problems) == 1:
        return problems[0][1]
    return f"{filename}: {len(problems)} problems\n" + "\n".join(f"  {text}" for _, text in problems)


def _problem(error: Any, loc: tuple[str | int, ...], schema: type[BaseModel], missing: list[str]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = known_fields(schema, loc[:-1])
        # A required field missing beside the unknown one is the likeliest meaning.
        close = difflib.get_close_matches(str(loc[-1]), missing, n=1, cutoff=0.6) if loc else []
        close = close or (difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6) if loc else [])
        if close:
            return f"unknown field; did you mean {close[0]!r}?"
        listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        return "unknown field; remove it" + (f" or use one of {listed}" if listed else "")
    if kind == "missing":
        return "required field is missing; add it"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message


def _clean_loc(raw: tuple[Any, ...]) -> tuple[str | int, ...]:
    # Drop pydantic's union/validator tags ("function-after[...]") and the source's discriminator.
    loc = [p for p in raw if not (isinstance(p, str) and ("[" in p or "-" in p))]
    if len(loc) > 1 and loc[0] == "source" and loc[1] in _SOURCE_TAGS:
        del loc[1]
    return tuple(loc)


def known_fields(schema: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """Field names (aliases where set) of the model(s) found at ``path`` in ``schema``."""
    current: list[Any] = [schema]
    for part in path:
        following: list[Any] = []
        for annotation in _expand(current):
            origin, args = typing.get_origin(annotation), typing.get_args(annotation)
            if isinstance(part, int):
                if origin in (list, tuple, set, frozenset) and args:
                    following.append(args[0])
            elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
                for name, field in annotation.model_fields.items():
                    if part in (name, field.alias):
                        following.append(field.annotation)
            elif origin is dict and len(args) == 2:
                following.append(args[1])
        current = following
    names: list[str] = []
    for annotation in _expand(current):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, field in annotation.model_fields.items():
                if (field.alias or name) not in names:
                    names.append(field.alias or name)
    return names


def _expand(annotations: list[Any]) -> list[Any]:
    out: list[Any] = []
    for annotation in annotations:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            out.extend(_expand([typing.get_args(annotation)[0]]))
        elif isinstance(annotation, types.UnionType) or origin is typing.Union:
            out.extend(_expand(list(typing.get_args(annotation))))
        elif hasattr(annotation, "__value__"):  # a `type X = ...` alias
            out.extend(_expand([annotation.__value__]))
        else:
            out.append(annotation)
    return out
