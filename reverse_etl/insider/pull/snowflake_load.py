"""Load an export file into Snowflake through snowflake-connector-python.

The file is read by an in-memory DuckDB with the same readers and column
mapping as the DuckDB loader (so types and names match on both warehouses),
written back out as Parquet, PUT to a temporary stage and loaded with ``COPY
INTO ... MATCH_BY_COLUMN_NAME``: no row-by-row INSERTs, no pandas. Column names
are written unquoted, so Snowflake stores them upper-case (``tier`` → ``TIER``)
as it does for any unquoted identifier.

The table is created here from the file's DuckDB types (not with
``INFER_SCHEMA``), so the types are explicit: arrays become ARRAY, the event time
TIMESTAMP_TZ. ``replace`` is ``CREATE OR REPLACE TABLE`` then the copy; Snowflake
commits DDL at once, so a copy that fails leaves the table empty until the next
pull (``append`` adds any new column first, then copies).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from reverse_etl.errors import ConfigError, SourceError
from reverse_etl.project.config import SnowflakeSourceConfig

from .load import ColumnMapping, Loaded, file_columns, is_empty, map_columns, select_sql


def _connector() -> Any:
    try:
        import snowflake.connector
    except ImportError:
        raise ConfigError("loading into Snowflake needs snowflake-connector-python: "
                          "pip install 'reverse_etl[snowflake]'") from None
    return snowflake.connector


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "msg", None) or exc).split())


def snowflake_type(duckdb_type: str) -> str:
    """The Snowflake column type for a DuckDB type of the export file."""
    t = duckdb_type.upper()
    if t.endswith("]"):
        return "ARRAY"
    if t.startswith(("STRUCT", "MAP", "JSON")):
        return "VARIANT"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return "NUMBER(38,0)"
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return "FLOAT"
    if t == "TIMESTAMP WITH TIME ZONE":
        return "TIMESTAMP_TZ"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP_NTZ"
    if t in ("BOOLEAN", "DATE"):
        return t
    return "VARCHAR"


def _to_parquet(path: Path, fmt: str, target: Path) -> tuple[ColumnMapping, dict[str, str], int]:
    """Rewrite the export as Parquet with the mapped names; (mapping, Snowflake types, rows)."""
    import duckdb

    con = duckdb.connect()
    try:
        described = file_columns(con, path, fmt)
        mapping = map_columns([name for name, _ in described])
        select = select_sql(path, fmt, mapping, dict(described))
        types = {str(r[0]).upper(): snowflake_type(str(r[1]))
                 for r in con.execute(f"DESCRIBE {select}").fetchall()}
        literal = "'" + str(target).replace("'", "''") + "'"
        con.execute(f"COPY ({select}) TO {literal} (FORMAT PARQUET)")
        count = con.execute(f"SELECT count(*) FROM read_parquet({literal})").fetchone()
    except duckdb.Error as exc:
        raise SourceError(f"cannot read the export file: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    return mapping, types, int(count[0]) if count else 0


def _prepare_table(cursor: Any, table: str, mode: str, types: dict[str, str]) -> None:
    columns = ", ".join(f"{name} {typ}" for name, typ in types.items())
    if mode == "replace":
        cursor.execute(f"CREATE OR REPLACE TABLE {table} ({columns})")
        return
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
    cursor.execute(f"DESCRIBE TABLE {table}")
    existing = {str(row[0]).upper() for row in cursor.fetchall()}
    for name, typ in types.items():
        if name not in existing:
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN {name} {typ}")


def load_snowflake(config: SnowflakeSourceConfig, root: Path, path: Path, fmt: str,
                   table: str, mode: str) -> Loaded:
    """Load ``path`` into ``table`` (``[database.][schema.]table``) on Snowflake."""
    from reverse_etl.warehouses.snowflake_source import connect_kwargs

    if is_empty(path):
        return Loaded(0, [], ColumnMapping())
    connector = _connector()
    staged = path.with_name(f"{path.stem}_load.parquet")
    mapping, types, rows = _to_parquet(path, fmt, staged)
    stage = f"REVERSE_ETL_PULL_{secrets.token_hex(6).upper()}"
    try:
        conn = connector.connect(**connect_kwargs(config, root))
    except connector.errors.Error as exc:
        raise SourceError(f"cannot connect to Snowflake: {_one_line(exc)}") from None
    try:
        with conn.cursor() as cursor:
            _prepare_table(cursor, table.upper(), mode, types)
            cursor.execute(f"CREATE TEMPORARY STAGE {stage}")
            cursor.execute(f"PUT 'file://{staged.as_posix()}' @{stage} AUTO_COMPRESS = FALSE")
            cursor.execute(f"COPY INTO {table.upper()} FROM @{stage} "
                           "FILE_FORMAT = (TYPE = PARQUET) "
                           "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE")
    except connector.errors.Error as exc:
        raise SourceError(f"loading the export into Snowflake table {table} failed: "
                          f"{_one_line(exc)}") from None
    finally:
        conn.close()
    return Loaded(rows, [dst for _, dst in mapping.columns], mapping)
