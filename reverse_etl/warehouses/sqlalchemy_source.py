"""Generic SQLAlchemy source: Postgres, BigQuery, Redshift, SQLite, ... by URL.

Rows are streamed (server-side cursors where the dialect has them) and turned
into Arrow one batch at a time, column by column: a ``fetchmany`` batch is
transposed with ``zip`` and each column goes through one ``pa.array`` call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from reverse_etl.errors import SourceError
from reverse_etl.project.config import SQLAlchemySourceConfig
from reverse_etl.warehouses.normalize import one_line, result_names, stable_reader
from reverse_etl.warehouses.sqlite_types import DeclaredTypeDecoder, declared_types

INSTALL_HINT = "pip install 'reverse_etl[sqlalchemy]'"
DEFAULT_CONNECT_TIMEOUT = 15
"""Seconds a driver waits for the server, for drivers whose timeout option we know."""

# SQLAlchemy dialect name → sqlglot dialect name, where they differ.
_SQLGLOT = {"postgresql": "postgres", "mssql": "tsql", "mariadb": "mysql", "awsathena": "athena"}

# Packages providing a dialect that SQLAlchemy itself does not ship.
_DIALECT_PACKAGES = {
    "bigquery": "sqlalchemy-bigquery",
    "redshift": "sqlalchemy-redshift redshift_connector",
    "snowflake": "snowflake-sqlalchemy",
    "databricks": "databricks-sqlalchemy",
    "trino": "trino",
    "duckdb": "duckdb-engine",
    "clickhouse": "clickhouse-sqlalchemy",
    "awsathena": "pyathena",
}

# DB-API driver (SQLAlchemy's name for it) → the package that installs it.
_DRIVER_PACKAGES = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "asyncpg": "asyncpg",
    "pymysql": "pymysql",
    "mysqldb": "mysqlclient",
    "mariadbconnector": "mariadb",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
    "oracledb": "oracledb",
    "cx_oracle": "cx_Oracle",
    "redshift_connector": "redshift_connector",
}

# Driver name → its connect-timeout keyword (only drivers known to take one).
_TIMEOUT_ARG = {
    "psycopg2": "connect_timeout",
    "psycopg": "connect_timeout",
    "pymysql": "connect_timeout",
    "mysqldb": "connect_timeout",
    "pg8000": "timeout",
    "redshift_connector": "timeout",
}


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError:
        raise SourceError(f"the SQLAlchemy source needs SQLAlchemy: {INSTALL_HINT}") from None
    return sqlalchemy


def _install_hint(url: Any) -> str:
    """``pip install ...`` for what a URL needs: its dialect package, else its driver."""
    backend = url.get_backend_name()
    if backend in _DIALECT_PACKAGES:
        return f"pip install {_DIALECT_PACKAGES[backend]}"
    try:
        driver = url.get_dialect().driver
    except Exception:  # an unknown dialect has no driver to name
        return "install the SQLAlchemy dialect package that provides it"
    package = _DRIVER_PACKAGES.get(driver, driver)
    return f"pip install {package}"


class SQLAlchemySource:
    """A SQLAlchemy connection that streams a model's result as Arrow record batches."""

    def __init__(self, config: SQLAlchemySourceConfig, root: str | Path | None = None) -> None:
        sa = _sqlalchemy()
        raw = config.url.get_secret_value()
        try:
            url = sa.engine.make_url(raw)
        except sa.exc.ArgumentError:
            raise SourceError(
                "the source url is not a SQLAlchemy URL; write dialect+driver://user:password@host/database"
            ) from None
        url = _resolve_sqlite(url, root)
        self._secrets = [raw, url.password if isinstance(url.password, str) else None]
        self._where = url.render_as_string(hide_password=True)
        try:
            # The dialect class names its driver before the driver is imported, so
            # a bounded connect timeout can be passed in the one create_engine call.
            connect_args = dict(getattr(config, "connect_args", None) or {})
            timeout_arg = _TIMEOUT_ARG.get(url.get_dialect().driver)
            if timeout_arg and timeout_arg not in connect_args and timeout_arg not in url.query:
                connect_args[timeout_arg] = DEFAULT_CONNECT_TIMEOUT
            engine = sa.create_engine(url, connect_args=connect_args)
        except sa.exc.NoSuchModuleError:
            raise SourceError(
                f"unknown SQLAlchemy dialect {url.drivername!r} in the source url: "
                f"{_install_hint(url)}"
            ) from None
        except ImportError as exc:
            raise SourceError(
                f"the driver for {url.drivername!r} is not installed (no module {exc.name!r}): "
                f"{_install_hint(url)}"
            ) from None
        self._engine = engine
        self._decoders: list[DeclaredTypeDecoder] = []
        self.dialect: str = _SQLGLOT.get(engine.dialect.name, engine.dialect.name)
        """sqlglot name of the warehouse's SQL dialect."""
        try:
            self._conn = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise SourceError(f"cannot connect to {self._where}: {self._message(exc)}") from None

    def fetch(self, sql: str, batch_size: int = 100_000) -> pa.RecordBatchReader:
        """Run ``sql`` and stream its result, batches of at most ``batch_size`` rows."""
        sa = _sqlalchemy()
        # SQLite reports no result types; its declared ones are read before the
        # model runs (the probe cannot run while the model's statement reads).
        declared = (
            declared_types(self._conn.connection.dbapi_connection, sql)
            if self._engine.dialect.name == "sqlite"
            else {}
        )
        conn = self._conn.execution_options(
            stream_results=True,
            yield_per=batch_size,
            # Hand the SQL to the driver untouched: no ':name' or '%' parameter parsing.
            no_parameters=True,
        )
        try:
            result = conn.exec_driver_sql(sql)
        except sa.exc.SQLAlchemyError as exc:
            self._rollback()
            raise SourceError(f"query failed on {self._where}: {self._message(exc)}") from None
        if not result.returns_rows:
            result.close()
            raise SourceError("the model returned no rows to fetch: a model must be a query (SELECT ...)")
        raw_names = list(result.keys())
        names = result_names(raw_names, fold_upper=False)
        decoder = DeclaredTypeDecoder(declared, dict(enumerate(names))) if declared else None
        if decoder is not None:
            self._decoders.append(decoder)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                empty = True
                for rows in result.partitions(batch_size):
                    empty = False
                    yield _to_batch(rows, raw_names)
                if empty:
                    yield _to_batch([], raw_names)
            except sa.exc.SQLAlchemyError as exc:
                raise SourceError(f"fetch failed on {self._where}: {self._message(exc)}") from None
            finally:
                result.close()

        return stable_reader(
            batches(),
            names=names,
            batch_size=batch_size,
            decoder=decoder,
            type_hints=_type_hints(result, self._engine.dialect),
        )

    @property
    def connection(self) -> Any:
        """The open SQLAlchemy ``Connection`` (the warehouse engine runs its own statements on it)."""
        return self._conn

    def describe_error(self, exc: BaseException) -> str:
        """One line from a driver error, with every configured secret masked."""
        return self._message(exc)

    def close(self) -> None:
        """Close the connection and its pool (idempotent)."""
        for decoder in self._decoders:
            decoder.close()
        self._decoders.clear()
        self._rollback()
        self._conn.close()
        self._engine.dispose()

    def _rollback(self) -> None:
        # End the read transaction the connection auto-began; a broken connection
        # is closed right after anyway.
        with contextlib.suppress(Exception):
            self._conn.rollback()

    def _message(self, exc: BaseException) -> str:
        # SQLAlchemy's str() appends the SQL and a docs link; the driver's own
        # error is the informative part.
        orig = getattr(exc, "orig", None)
        text = str(orig) if orig is not None else str(exc).split("\n(Background")[0]
        text = text.split("\n[SQL:")[0]
        return one_line(text or type(orig or exc).__name__, secrets=self._secrets)


def _resolve_sqlite(url: Any, root: str | Path | None) -> Any:
    """A relative SQLite path is relative to the project, like a DuckDB source's."""
    if root is None or url.get_backend_name() != "sqlite" or not url.database:
        return url
    if url.database == ":memory:" or url.database.startswith("file:") or Path(url.database).is_absolute():
        return url
    return url.set(database=str(Path(root) / url.database))


def _to_batch(rows: Sequence[Sequence[Any]], names: list[str]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [_to_array(column) for column in columns]
    # Positional names here; the reader renames (duplicate names are rejected there).
    return pa.RecordBatch.from_arrays(arrays, names=[f"c{i}" for i in range(len(names))])


def _to_array(values: Sequence[Any]) -> pa.Array:
    try:
        array = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        # Mixed Python types (SQLite allows them), UUIDs, ints beyond 64 bits:
        # text is the one type every such value has.
        return pa.array([_as_text(v) for v in values], pa.string())
    if _holds_objects(array.type):
        # JSON objects (e.g. Postgres json/jsonb) travel as JSON text, like
        # Snowflake OBJECT columns do; the engine rejects them with a reason.
        return pa.array([_as_text(v) for v in values], pa.string())
    return array


def _holds_objects(t: pa.DataType) -> bool:
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _holds_objects(t.value_type) or pa.types.is_list(t.value_type)
    return False


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return value if isinstance(value, str) else str(value)


def _type_hints(result: Any, dialect: Any) -> dict[int, pa.DataType]:
    """Arrow types from the DB-API type codes, for columns that are NULL in the first rows."""
    description = getattr(getattr(result, "cursor", None), "description", None) or []
    dbapi = getattr(dialect, "loaded_dbapi", None)
    if dbapi is None:
        return {}
    hints: dict[int, pa.DataType] = {}
    for i, column in enumerate(description):
        code = column[1]
        if code is None:
            continue
        for kind, arrow_type in (
            ("STRING", pa.string()),
            ("NUMBER", pa.float64()),
            ("DATETIME", pa.timestamp("us")),
            ("BINARY", pa.binary()),
        ):
            try:
                if code == getattr(dbapi, kind):
                    hints[i] = arrow_type
                    break
            except Exception:  # a driver whose type objects do not compare
                break
    return hints
