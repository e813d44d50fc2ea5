"""Load a downloaded export file into the warehouse, mapping Insider's columns to clean names.

Insider's raw export v1 columns (its export v2 page, "how v2 differs from v1")
carry prefixes; the loaded table drops them:

======================  ==================  =====================================
file column             table column        what it is
======================  ==================  =====================================
``iid``                 ``insider_id``      the profile's Insider id
``a_<name>``            ``<name>``          a default attribute or an identifier
                                            (``a_email`` → ``email``)
``a_c_<name>``          ``<name>``          a custom attribute (or custom identifier)
``e_event_name``,       ``event_name``,     the event (``timestamp`` is TIMESTAMPTZ)
``e_timestamp``         ``timestamp``
``e_<param>``           ``<param>``         a standard event parameter
``e_c_<param>``         ``<param>``         a custom event parameter
======================  ==================  =====================================

Collisions: the clean names are claimed in this order: ``insider_id``,
``event_name``, ``timestamp``, default attributes, standard event parameters,
custom attributes, custom event parameters (and never a default attribute's or
standard parameter's reserved name, present in the file or not). A column whose
clean name is already claimed keeps a prefix: a custom attribute ``a_c_email``
next to the default ``a_email`` becomes ``c_email`` (its custom prefix only), a
custom parameter ``e_c_x`` colliding becomes ``c_x`` if free; a standard parameter
whose name is an attribute's (``e_name`` next to ``a_name``) keeps ``e_name``.
Anything still taken keeps its file name. The result lists every column that
kept a prefix. A column without a known prefix is loaded under its own name.
The mapping is a list of column aliases in one ``SELECT``: no row passes through Python.

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

# Clean names of the export layout's own columns (see reverse_etl/insider/emulator/exportfile.py).
LAYOUT_COLUMNS = {"iid": "insider_id", "e_event_name": "event_name", "e_timestamp": "timestamp"}


@dataclass
class ColumnMapping:
    """File column → table column, and the columns that kept a prefix."""

    renamed: dict[str, str] = field(default_factory=dict)
    kept_prefix: list[str] = field(default_factory=list)
    """Table names that kept (part of) a prefix because the clean name was taken."""
    columns: list[tuple[str, str]] = field(default_factory=list)
    """(file column, table column) in file order."""


def _kind(column: str) -> tuple[int, str, list[str]]:
    """(claim priority, clean name, fallback names) of one file column."""
    if column in LAYOUT_COLUMNS:
        return 0, LAYOUT_COLUMNS[column], []
    if column.startswith("a_c_") and len(column) > 4:
        return 3, column[4:], [column[2:]]  # a_c_email → c_email
    if column.startswith("e_c_") and len(column) > 4:
        return 4, column[4:], [column[2:]]
    if column.startswith("a_") and len(column) > 2:
        return 1, column[2:], []
    if column.startswith("e_") and len(column) > 2:
        return 2, column[2:], []
    return 0, column, []


def map_columns(file_columns: Sequence[str]) -> ColumnMapping:
    """Clean names for Insider's v1 export columns (see module docstring)."""
    kinds = {c: _kind(c) for c in file_columns}
    # Names reserved for what Insider defines, whether or not this file holds them:
    # a custom attribute never takes a default attribute's name.
    reserved = {n.lower() for n in (*DEFAULT_ATTRIBUTES, *STANDARD_EVENT_PARAMS, "uuid")}
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for column in sorted(file_columns, key=lambda c: kinds[c][0]):  # stable: file order within a kind
        priority, clean, fallbacks = kinds[column]
        candidates = [clean, *fallbacks] if priority < 3 or clean.lower() not in reserved else fallbacks
        target = next((n for n in candidates if n.lower() not in taken), column)
        taken.add(target.lower())
        chosen[column] = target
    mapping = ColumnMapping()
    for column in file_columns:
        target = chosen[column]
        if target != column:
            mapping.renamed[column] = target
        if kinds[column][0] and target != kinds[column][1]:
            mapping.kept_prefix.append(target)
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
        if dst == "timestamp" and src == "e_timestamp" and types.get(src) == "VARCHAR":
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

