"""SQL that assembles Insider request bodies from encoded fields, row by row in DuckDB.

Each builder takes a function mapping a field to the SQL of its encoded value
(the JSON text) and returns SQL producing the JSON document as text. NULL values
are skipped (``concat_ws`` drops NULLs), so absent values are never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reverse_etl.diff.sqltext import json_key, literal
from reverse_etl.insider.fields import Field

ValueOf = Callable[[Field], str]


def _object(parts: Sequence[str]) -> str:
    """``{...}`` from SQL parts (each ``'"k":' || value`` or NULL)."""
    if not parts:
        return "'{}'"
    return "'{' || concat_ws(',', " + ", ".join(parts) + ") || '}'"


def _members(fields: Sequence[Field], value: ValueOf, *, guard_nulls: bool = True) -> list[str]:
    """Root members, plus a ``"custom":{...}`` member for the custom ones (if any is non-null)."""
    def member(f: Field) -> str:
        v = value(f)
        return (f"CASE WHEN {v} IS NOT NULL THEN {json_key(f.insider_name)} || {v} END"
                if guard_nulls else f"{json_key(f.insider_name)} || {v}")

    parts = [member(f) for f in fields if not f.custom]
    custom = [member(f) for f in fields if f.custom]
    if custom:
        parts.append(f"'\"custom\":{{' || nullif(concat_ws(',', {', '.join(custom)}), '') || '}}'")
    return parts


def identifiers_json(ids: Sequence[Field], value: ValueOf) -> str:
    """``{"uuid":...,"email":...,"custom":{...}}``."""
    return _object(_members(ids, value))


def attributes_json(attrs: Sequence[Field], value: ValueOf) -> str:
    """``{"name":...,"custom":{...}}``; a NULL value leaves the attribute out."""
    return _object(_members(attrs, value, guard_nulls=False))


def upsert_user_json(ids: Sequence[Field], attrs: Sequence[Field], id_value: ValueOf,
                     attr_value: ValueOf, *, not_append: bool) -> str:
    """One user object of an upsert."""
    tail = ",\"not_append\":true}'" if not_append else "}'"
    return ("'{\"identifiers\":' || " + identifiers_json(ids, id_value)
            + " || ',\"attributes\":' || " + attributes_json(attrs, attr_value) + " || '" + tail)


def attribute_delete_json(ids: Sequence[Field], id_value: ValueOf, attrs: Sequence[Field],
                          whole: Callable[[Field], str],
                          partial: Callable[[Field], str] | None = None) -> str:
    """One user object of an attribute delete.

    ``whole(f)`` is a SQL condition: delete the attribute's value. ``partial(f)``
    (optional) is SQL giving a JSON array of elements to remove, or NULL.
    """
    def names(group: list[Field]) -> str | None:
        items = [f"CASE WHEN {whole(f)} THEN {literal(chr(34) + f.insider_name + chr(34))} END" for f in group]
        return f"'[' || nullif(concat_ws(',', {', '.join(items)}), '') || ']'" if items else None

    def partials(group: list[Field]) -> str | None:
        if partial is None or not group:
            return None
        items = [f"CASE WHEN {partial(f)} IS NOT NULL THEN {json_key(f.insider_name)} || {partial(f)} END"
                 for f in group]
        return f"'{{' || nullif(concat_ws(',', {', '.join(items)}), '') || '}}'"

    def section(group: list[Field]) -> list[str]:
        out = []
        w = names(group)
        if w:
            out.append(f"'\"whole\":' || {w}")
        p = partials(group)
        if p:
            out.append(f"'\"partial\":' || {p}")
        return out

    root = section([f for f in attrs if not f.custom])
    custom = section([f for f in attrs if f.custom])
    parts = list(root)
    if custom:
        parts.append(f"'\"custom\":{{' || nullif(concat_ws(',', {', '.join(custom)}), '') || '}}'")
    body = "concat_ws(',', " + ", ".join(parts) + ")" if parts else "''"
    return ("'{\"identifiers\":' || " + identifiers_json(ids, id_value)
            + " || coalesce(nullif(',' || " + body + ", ','), '') || '}'")


def identifiers_body_json(ids: Sequence[Field], value: ValueOf) -> str:
    """``{"identifiers":{...}}``: the body of the one-user endpoints."""
    return "'{\"identifiers\":' || " + identifiers_json(ids, value) + " || '}'"


def event_user_json(ids: Sequence[Field], id_value: ValueOf, name: str, timestamp: str,
                    params: Sequence[Field], param_value: ValueOf) -> str:
    """A user object carrying one event: ``{"identifiers":...,"events":[{...}]}``."""
    params_obj = "nullif(" + _object(_members(params, param_value)) + ", '{}')" if params else "NULL"
    event = ("'{' || concat_ws(',', '\"event_name\":' || " + name + ", '\"timestamp\":' || " + timestamp
             + ", '\"event_params\":' || " + params_obj + ") || '}'")
    return "'{\"identifiers\":' || " + identifiers_json(ids, id_value) + " || ',\"events\":[' || " + event + " || ']}'"
