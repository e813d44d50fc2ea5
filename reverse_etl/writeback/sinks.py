"""Where write-back rows land: the project's source warehouse, through its own driver.

Each sink creates the schema and tables if missing and replaces one run's rows
in one transaction (delete that run id, insert), so writing a run twice leaves
it once. DuckDB reads the spooled Parquet itself; Snowflake and SQLAlchemy
receive the rows as one batched ``executemany`` per table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from reverse_etl.diff.sqltext import literal
from reverse_etl.project.config import (
    DuckDBSourceConfig,
    SnowflakeSourceConfig,
    SourceConfig,
    SQLAlchemySourceConfig,
)

Columns = Mapping[str, pa.DataType]
BATCH_ROWS = 10_000


class WritebackError(Exception):
    """The warehouse refused or could not be reached (one line, no secrets)."""


class Sink(Protocol):
    """A warehouse that stores write-back tables."""

    def ensure(self, schema: str, tables: Mapping[str, Columns]) -> None:
        """Create the schema and each table (name → columns) if missing."""

    def replace_run(self, schema: str, run_id: str, files: Mapping[str, Path]) -> None:
        """In one transaction: delete ``run_id``'s rows from each table, insert the file's rows."""

    def close(self) -> None:
        """Release the connection."""


def _sql_type(dtype: pa.DataType, dialect: str) -> str:
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP_NTZ" if dialect == "snowflake" else "TIMESTAMP"
    if pa.types.is_integer(dtype):
        return "BIGINT"
    if pa.types.is_floating(dtype):
        return "FLOAT" if dialect == "snowflake" else "DOUBLE PRECISION" if dialect == "postgresql" else "DOUBLE"
    return "VARCHAR" if dialect != "postgresql" else "TEXT"


def _create_sql(schema: str | None, table: str, columns: Columns, dialect: str) -> str:
    cols = ", ".join(f"{name} {_sql_type(dtype, dialect)}" for name, dtype in columns.items())
    qualified = f"{schema}.{table}" if schema else table
    return f"CREATE TABLE IF NOT EXISTS {qualified} ({cols})"


class DuckDBSink:
    """The DuckDB file the project reads (opened read-write for the write-back only)."""

    def __init__(self, config: DuckDBSourceConfig, root: Path) -> None:
        import duckdb

        if config.path.startswith(":"):
            raise WritebackError("writeback: the source is an in-memory DuckDB; nothing would keep "
                                 "the tables. Point source.path at a file or remove writeback:")
        if config.read_only:
            raise WritebackError("writeback: source.read_only is true, so the tables cannot be "
                                 "written; set read_only: false or remove writeback:")
        self.con = duckdb.connect(str(root / config.path))

    def ensure(self, schema: str, tables: Mapping[str, Columns]) -> None:
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table, columns in tables.items():
            self.con.execute(_create_sql(schema, table, columns, "duckdb"))

    def replace_run(self, schema: str, run_id: str, files: Mapping[str, Path]) -> None:
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, path in files.items():
                self.con.execute(f"DELETE FROM {schema}.{table} WHERE run_id = ?", [run_id])
                self.con.execute(f"INSERT INTO {schema}.{table} BY NAME "
                                 f"SELECT * FROM read_parquet({literal(str(path))})")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.con.close()


def _rows(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    table = pq.read_table(path)
    names = table.column_names
    return names, list(zip(*(table.column(n).to_pylist() for n in names), strict=True))


class SnowflakeSink:
    """The Snowflake account and database the project reads, through snowflake-connector-python."""

    def __init__(self, config: SnowflakeSourceConfig, root: Path) -> None:
        from reverse_etl.warehouses.snowflake_source import _connector, connect_kwargs

        self.conn = _connector().connect(**connect_kwargs(config, root))

    def ensure(self, schema: str, tables: Mapping[str, Columns]) -> None:
        with self.conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for table, columns in tables.items():
                cur.execute(_create_sql(schema, table, columns, "snowflake"))

    def replace_run(self, schema: str, run_id: str, files: Mapping[str, Path]) -> None:
        with self.conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                for table, path in files.items():
                    cur.execute(f"DELETE FROM {schema}.{table} WHERE run_id = %s", (run_id,))
                    names, rows = _rows(path)
                    marks = ", ".join(["%s"] * len(names))
                    for start in range(0, len(rows), BATCH_ROWS):
                        # One multi-row INSERT per batch (the connector binds them client-side).
                        cur.executemany(f"INSERT INTO {schema}.{table} ({', '.join(names)}) VALUES ({marks})",
                                        rows[start:start + BATCH_ROWS])
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.conn.close()


class SQLAlchemySink:
    """Any SQLAlchemy database the project reads (PostgreSQL, SQLite, ...)."""

    def __init__(self, config: SQLAlchemySourceConfig, root: Path) -> None:
        import sqlalchemy as sa

        from reverse_etl.warehouses.sqlalchemy_source import _resolve_sqlite

        url = _resolve_sqlite(sa.engine.make_url(config.url.get_secret_value()), root)
        self.engine = sa.create_engine(url, connect_args=dict(config.connect_args))
        # SQLite has no schemas (only attached files): its tables go unqualified.
        self.schemas = self.engine.dialect.name != "sqlite"
        self.tables: dict[str, Any] = {}

    def _schema(self, schema: str) -> str | None:
        return schema if self.schemas else None

    def ensure(self, schema: str, tables: Mapping[str, Columns]) -> None:
        import sqlalchemy as sa

        types = {"string": sa.Text, "int64": sa.BigInteger, "double": sa.Float}
        metadata = sa.MetaData(schema=self._schema(schema))
        for table, columns in tables.items():
            self.tables[table] = sa.Table(table, metadata, *(
                sa.Column(name, sa.DateTime() if pa.types.is_timestamp(dtype) else types[str(dtype)]())
                for name, dtype in columns.items()))
        with self.engine.begin() as conn:
            if self.schemas:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            metadata.create_all(conn)

    def replace_run(self, schema: str, run_id: str, files: Mapping[str, Path]) -> None:
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            for table, path in files.items():
                target = self.tables[table]
                conn.execute(sa.delete(target).where(target.c.run_id == run_id))
                names, rows = _rows(path)
                for start in range(0, len(rows), BATCH_ROWS):
                    conn.execute(sa.insert(target), [dict(zip(names, row, strict=True))
                                                     for row in rows[start:start + BATCH_ROWS]])

    def close(self) -> None:
        self.engine.dispose()


def open_sink(source: SourceConfig, root: Path) -> Sink:
    """The sink for the project's source warehouse."""
    if isinstance(source, DuckDBSourceConfig):
        return DuckDBSink(source, root)
    if isinstance(source, SnowflakeSourceConfig):
        return SnowflakeSink(source, root)
    return SQLAlchemySink(source, root)
