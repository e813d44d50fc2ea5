"""Honour SQLite's declared column types (BOOLEAN, DATE, TIMESTAMP, JSON) in a result.

SQLite stores a BOOLEAN as 0/1, dates as text and arrays as JSON text, and the
sqlite3 driver reports no types, so a model on SQLite would send ``1`` for
``true`` and a string for an array. SQLite does know each result column's
*declared* type, though (for a column taken straight from a table, also through
subqueries): a temporary view over the model exposes it through
``PRAGMA table_info``. This module reads those types and converts the columns,
on whole Arrow arrays:

- BOOLEAN / BOOL → ``bool`` (non-zero is true)
- DATE → ``date32``; DATETIME / TIMESTAMP → ``timestamp[us]``
- JSON → decoded like a Snowflake VARIANT (:mod:`reverse_etl.warehouses.variant`)

A value that does not parse as its declared type is left alone for that batch;
the stable-schema reader then reports the column if its type flips.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl.warehouses.variant import JsonDecoder

_CASTS = {
    "BOOLEAN": "bool",
    "BOOL": "bool",
    "DATE": "date",
    "DATETIME": "timestamp",
    "TIMESTAMP": "timestamp",
    "JSON": "json",
}


def declared_types(dbapi_connection: Any, sql: str) -> dict[int, str]:
    """Column position → conversion (``bool``, ``date``, ``timestamp``, ``json``) of ``sql``.

    Runs before the model itself: SQLite cannot drop the probe view while a
    statement reads. Any failure means "no declared types" (the model's own run
    reports real SQL errors).
    """
    view = f"_reverse_etl_probe_{secrets.token_hex(4)}"
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"CREATE TEMP VIEW {view} AS {sql}")
        try:
            rows = cursor.execute(f"PRAGMA temp.table_info({view})").fetchall()
        finally:
            cursor.execute(f"DROP VIEW IF EXISTS temp.{view}")
    except Exception:  # sqlite3.Error, or SQL a view cannot hold
        return {}
    finally:
        with contextlib.suppress(Exception):
            cursor.close()
    out: dict[int, str] = {}
    for position, _name, declared, *_ in rows:
        kind = _CASTS.get(str(declared or "").split("(")[0].strip().upper())
        if kind is not None:
            out[int(position)] = kind
    return out


class DeclaredTypeDecoder:
    """A :class:`~reverse_etl.warehouses.normalize.BatchDecoder` applying declared types."""

    def __init__(self, kinds: Mapping[int, str], names: Mapping[int, str]) -> None:
        self._kinds = {i: k for i, k in kinds.items() if k != "json"}
        json_columns = [i for i, k in kinds.items() if k == "json"]
        self._json = JsonDecoder(dict.fromkeys(json_columns, "scalar"), names) if json_columns else None

    def observe(self, batch: pa.RecordBatch) -> bool:
        """Learn the shape of JSON columns (other conversions need no learning)."""
        return self._json.observe(batch) if self._json is not None else True

    def finish(self) -> None:
        """Fix the JSON columns' shapes."""
        if self._json is not None:
            self._json.finish()

    def decode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Convert the declared BOOLEAN/DATE/TIMESTAMP/JSON columns of one batch."""
        if self._json is not None:
            batch = self._json.decode(batch)
        columns = list(batch.columns)
        for i, kind in self._kinds.items():
            columns[i] = _convert(columns[i], kind)
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)

    def close(self) -> None:
        """Release the JSON decoder's DuckDB connection."""
        if self._json is not None:
            self._json.close()


def _convert(column: pa.Array, kind: str) -> pa.Array:
    try:
        if kind == "bool" and (pa.types.is_integer(column.type) or pa.types.is_null(column.type)):
            return pc.not_equal(column.cast(pa.int64()), 0)
        if kind == "date" and pa.types.is_string(column.type):
            return pc.cast(column, pa.date32())
        if kind == "timestamp" and pa.types.is_string(column.type):
            return pc.cast(column, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # not what the column declares: keep the stored values
    return column
