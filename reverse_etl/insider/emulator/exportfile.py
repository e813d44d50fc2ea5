"""The file a raw data export produces: its layout, row selection and the three encodings.

Layout: Insider's raw export v1 columns (the reference's export v2 page, "how v2
differs from v1"): ``iid``, attributes ``a_<attribute>``, custom attributes
``a_c_<custom>``, event parameters ``e_<param>``, custom event parameters
``e_c_<custom>``. One table; every row has::

    iid                                        the emulator's profile id
    a_uuid, a_email, a_phone_number            the identifiers (default attributes in UCD)
    a_c_<custom identifier> ...                custom identifiers (custom attributes in UCD)

then the attribute columns, then ``e_event_name`` and ``e_timestamp``, then the
event parameter columns. The reference names no row-kind column, so there is
none: an event row is one whose ``e_event_name`` is set (the emulator's choice,
as are ``e_event_name``/``e_timestamp``: ``event_name`` and ``timestamp`` are
parameters of an export request, so they take the ``e_`` prefix).

- a **user** row per profile of the segment (only when ``attributes`` was asked):
  ``a_<name>`` / ``a_c_<name>``; ``["*"]`` means every default attribute any
  exported profile holds (in insider-api.md order) then every custom attribute
  (sorted); an asked identifier (``email``) is its identifier column;
- an **event** row per stored event of an exported profile whose name is a
  ``wanted`` event, whose timestamp is within ``start_date``..``end_date``
  (epoch seconds, both inclusive) and that passes the wanted event's filter:
  ``e_<name>`` / ``e_c_<name>``; the identifier columns are filled, attribute
  columns are null;
- Rows: all user rows first (profile creation order), then event rows (profile
  order, then ``wanted`` order, then event order). Missing values are null.

Encodings: ``csv`` (header row, RFC 4180, null → empty, arrays as JSON text,
booleans ``true``/``false``), ``json`` (JSON Lines: one object per row, every
column present) and ``parquet`` (format version 1.0; a column whose values do
not share one Arrow type is written as JSON text strings).

Filters: ``eq``/``ne`` test membership in ``values`` (an array parameter matches
if any element does); ``lt``/``gt``/``lteq``/``gteq`` compare against the single
value, numerically when the parameter is a number. A missing parameter matches
only ``ne``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import orjson

from .validation import DEFAULT_ATTRIBUTES, IDENTIFIER_KINDS, STANDARD_EVENT_PARAMS, epoch_of

Row = dict[str, Any]


def _param(event: dict[str, Any], name: str) -> Any:
    if name == "timestamp":
        return event["timestamp"]
    if name == "event_name":
        return event["event_name"]
    params = event.get("event_params") or {}
    if name in STANDARD_EVENT_PARAMS:
        return params.get(name)
    return (params.get("custom") or {}).get(name)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def matches(value: Any, operator: str, values: Sequence[Any]) -> bool:
    """Whether a parameter value passes one export filter (see module docstring)."""
    if value is None:
        return operator == "ne"
    if isinstance(value, list):
        hit = any(matches(v, "eq", values) for v in value)
        if operator in ("eq", "ne"):
            return hit == (operator == "eq")
        return any(matches(v, operator, values) for v in value)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if operator in ("eq", "ne"):
        if numeric:
            hit = any(_number(c) == float(value) for c in values)
        else:
            hit = any(str(c) == str(value) for c in values)
        return hit == (operator == "eq")
    target = values[0]
    left: Any = float(value) if numeric else str(value)
    right: Any = _number(target) if numeric else str(target)
    if right is None:
        return False
    if operator == "lt":
        return bool(left < right)
    if operator == "gt":
        return bool(left > right)
    if operator == "lteq":
        return bool(left <= right)
    return bool(left >= right)


def _param_column(name: str) -> str:
    if name in ("timestamp", "event_name"):
        return "e_" + name
    return ("e_" if name in STANDARD_EVENT_PARAMS else "e_c_") + name


def _attribute_column(name: str) -> str:
    if name in DEFAULT_ATTRIBUTES or name in IDENTIFIER_KINDS:
        return "a_" + name
    return "a_c_" + name  # custom attributes and custom identifiers alike


def build_rows(profiles: list[dict[str, Any]], request: dict[str, Any],
               custom_identifiers: Sequence[str]) -> tuple[list[str], list[Row]]:
    """Columns and rows of an export over ``profiles`` (inspection dicts)."""
    id_columns = [*(f"a_{k}" for k in IDENTIFIER_KINDS), *(f"a_c_{k}" for k in custom_identifiers)]
    columns = ["iid", *id_columns]

    def base(p: dict[str, Any]) -> Row:
        ids = p["identifiers"]
        row: Row = {"iid": p["insider_id"]}
        for k in IDENTIFIER_KINDS:
            row[f"a_{k}"] = ids.get(k)
        for k in custom_identifiers:
            row[f"a_c_{k}"] = ids["custom"].get(k)
        return row

    rows: list[Row] = []
    wanted_attrs: list[str] = request.get("attributes") or []
    if wanted_attrs:
        attr_cols: list[tuple[str, str, bool]] = []  # (column, name, is_custom)
        if "*" in wanted_attrs:
            held = {k for p in profiles for k in p["attributes"] if k != "custom"}
            custom = sorted({k for p in profiles for k in p["attributes"]["custom"]})
            attr_cols += [("a_" + k, k, False) for k in DEFAULT_ATTRIBUTES if k in held]
            attr_cols += [("a_c_" + k, k, True) for k in custom]
        for name in wanted_attrs:
            if name == "*":
                continue
            is_custom = name not in DEFAULT_ATTRIBUTES and name not in IDENTIFIER_KINDS
            col = _attribute_column(name)
            if all(c != col for c, _, _ in attr_cols):
                attr_cols.append((col, name, is_custom))
        # An attribute that is also an identifier (email) is its identifier column.
        attr_cols = [a for a in attr_cols if a[0] not in id_columns]
        columns += [c for c, _, _ in attr_cols]
        for p in profiles:
            row = base(p)
            attrs = p["attributes"]
            for col, name, is_custom in attr_cols:
                row[col] = attrs["custom"].get(name) if is_custom else attrs.get(name)
            for k in IDENTIFIER_KINDS:  # an attribute-only email still shows in a_email
                if row.get(f"a_{k}") is None and attrs.get(k) is not None:
                    row[f"a_{k}"] = attrs[k]
            rows.append(row)
    events = request.get("events")
    if events:
        columns += ["e_event_name", "e_timestamp"]
        for wanted in events["wanted"]:
            for name in wanted.get("params") or ():
                col = _param_column(name)
                if col not in columns:
                    columns.append(col)
        start, end = events["start_date"], events["end_date"]
        for p in profiles:
            for wanted in events["wanted"]:
                flt = (wanted.get("filters") or [None])[0]
                for ev in p["events"]:
                    if ev["event_name"] != wanted["event_name"]:
                        continue
                    if not start <= epoch_of(ev["timestamp"]) <= end:
                        continue
                    if flt is not None and not matches(_param(ev, flt["key"]),
                                                       flt["operator"], flt["values"]):
                        continue
                    row = base(p)
                    row["e_event_name"] = ev["event_name"]
                    row["e_timestamp"] = ev["timestamp"]
                    for name in wanted.get("params") or ():
                        if name not in ("timestamp", "event_name"):
                            row[_param_column(name)] = _param(ev, name)
                    rows.append(row)
    return columns, [{c: r.get(c) for c in columns} for r in rows]


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | dict):
        return orjson.dumps(v).decode()
    return str(v)


def encode(columns: list[str], rows: list[Row], fmt: str) -> bytes:
    """The export file in ``csv``, ``json`` (JSON Lines) or ``parquet``."""
    if fmt == "json":
        return b"".join(orjson.dumps(r) + b"\n" for r in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_text(r[c]) for c in columns])
        return out.getvalue().encode()
    import pyarrow as pa  # lazy: heavy, and only the parquet export needs it
    import pyarrow.parquet as pq

    arrays = []
    for c in columns:
        values = [r[c] for r in rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arrays.append(pa.array([None if v is None else orjson.dumps(v).decode()
                                    for v in values], type=pa.string()))
    table = pa.Table.from_arrays(arrays, names=columns) if columns else pa.table({})
    buf = io.BytesIO()
    pq.write_table(table, buf, version="1.0")
    return buf.getvalue()
