"""Load a downloaded export file into the warehouse, mapping ``c_`` columns back.

Insider prefixes custom attributes and custom event parameters with ``c_``. The
loaded table names them as they were sent (``c_tier`` → ``tier``), except where
the plain name is taken: a default attribute, a standard event parameter, a
column of the export layout, or another column of the file (say a custom
``c_email`` next to the default ``email``). Those keep the prefix and the result
lists them.

DuckDB reads all three formats itself (``read_csv``/``read_parquet``/
``read_json``), so the file never passes through Python rows; the same reader
feeds the Snowflake loader (:mod:`reverse_etl.insider.pull.snowflake_load`) as Arrow,
which keeps column types identical on both warehouses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reverse_etl.errors import SourceError
from reverse_etl.insider.rules import DEFAULT_ATTRIBUTES, STANDARD_EVENT_PARAMS

if TYPE_CHECKING:
    import duckdb

# Columns of the export layout itself (see reverse_etl/emulator/exportfile.py).
LAYOUT_COLUMNS = frozenset({"row_type", "insider_id", "event_name", "timestamp"})


@dataclass
class ColumnMapping:
    """File column → table column, and the ``c_`` columns that kept their prefix."""

    renamed: dict[str, str] = field(default_factory=dict)
    kept_prefix: list[str] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)
    """(file column, table column) in file order."""


def map_columns(file_columns: Sequence[str]) -> ColumnMapping:
    """Strip ``c_`` from custom columns whose plain name is free (see module docstring)."""
    taken = {c.lower() for c in (*DEFAULT_ATTRIBUTES, *STANDARD_EVENT_PARAMS, *LAYOUT_COLUMNS)}
    taken |= {c.lower() for c in file_columns if not c.startswith("c_")}
    mapping = ColumnMapping()
    for column in file_columns:
        target = column
        if column.startswith("c_") and len(column) > 2:
            plain = column[2:]
            if plain.lower() in taken or plain.lower().startswith("id_"):
                mapping.kept_prefix.append(column)
            else:
                target = plain
                taken.add(plain.lower())
                mapping.renamed[column] = plain
        mapping.columns.append((column, target))
    return mapping


def quote(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def reader_sql(path: Path, fmt: str) -> str:
    """DuckDB table function reading the export file of format ``fmt``."""
    literal = "'" + str(path).replace("'", "''") + "'"
    if fmt == "csv":
        # Empty fields are nulls in the export's CSV (RFC 4180, null → empty).
        return f"read_csv({literal}, header = true, auto_detect = true, sample_size = -1)"
    if fmt == "parquet":
        return f"read_parquet({literal})"
    return f"read_json({literal}, format = 'newline_delimited', sample_size = -1)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def file_columns(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of each column of the export file."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {reader_sql(path, fmt)}").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def select_sql(path: Path, fmt: str, mapping: ColumnMapping,
               types: dict[str, str] | None = None) -> str:
    """``SELECT`` of the file with the mapped column names.

    The event time is TIMESTAMPTZ whatever the format: the CSV and JSON readers
    detect it, but Parquet exports carry it as RFC 3339 text.
    """
    types = types or {}
    items = []
    for src, dst in mapping.columns:
        if src == "timestamp" and types.get(src) == "VARCHAR":
            items.append(f"CAST({quote(src)} AS TIMESTAMPTZ) AS {quote(dst)}")
        else:
            items.append(f"{quote(src)} AS {quote(dst)}")
    return f"SELECT {', '.join(items)} FROM {reader_sql(path, fmt)}"


def is_empty(path: Path) -> bool:
    """Whether the file holds nothing at all (an export of zero JSON rows)."""
    return path.stat().st_size == 0


@dataclass
class Loaded:
    """What a load wrote."""

    rows: int
    columns: list[str]
    mapping: ColumnMapping


def load_duckdb(database: str, path: Path, fmt: str, table: str, mode: str) -> Loaded:
    """Load ``path`` into ``table`` of the DuckDB file ``database`` (replace or append)."""
    import duckdb

    try:
        con = duckdb.connect(database)
    except duckdb.Error as exc:
        raise SourceError(f"cannot open DuckDB database {database}: {_first_line(exc)}") from None
    try:
        if is_empty(path):
            return Loaded(0, [], ColumnMapping())
        described = file_columns(con, path, fmt)
        mapping = map_columns([name for name, _ in described])
        select = select_sql(path, fmt, mapping, dict(described))
        con.execute("BEGIN")
        parts = table.split(".")
        if len(parts) == 2:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {parts[0]}")
        if mode == "replace":
            # DuckDB answers CREATE ... AS and INSERT with the number of rows written.
            count = con.execute(f"CREATE OR REPLACE TABLE {table} AS {select}").fetchone()
        else:
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS {select} LIMIT 0")
            _add_missing_columns(con, table, select)
            count = con.execute(f"INSERT INTO {table} BY NAME {select}").fetchone()
        con.execute("COMMIT")
        return Loaded(int(count[0]) if count else 0, [d for _, d in mapping.columns], mapping)
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):  # no transaction may be open
            con.execute("ROLLBACK")
        raise SourceError(f"loading the export into DuckDB table {table} failed: "
                          f"{_first_line(exc)}") from None
    finally:
        con.close()


def _add_missing_columns(con: duckdb.DuckDBPyConnection, table: str, select: str) -> None:
    # Append mode: a custom attribute that first appears today becomes a new
    # (nullable) column instead of failing the whole load.
    existing = {str(r[0]).lower() for r in con.execute(f"DESCRIBE {table}").fetchall()}
    for column, typ, *_ in con.execute(f"DESCRIBE {select}").fetchall():
        if str(column).lower() not in existing:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(str(column))} {typ}")

