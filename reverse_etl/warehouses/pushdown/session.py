"""Statements on a source's own warehouse connection: run, upload, commit, and find them again.

The warehouse engine needs a little more than :meth:`Source.fetch`: statements
without results (a session table, the MERGE), a transaction around the commit,
a bulk upload of the keys it commits, and a label on every statement so users
can find the cost (Postgres ``application_name``, Snowflake ``QUERY_TAG`` and
query ids).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pa_csv

from reverse_etl.errors import SourceError
from reverse_etl.warehouses.base import Source

UPLOAD_CHUNK = 16_384
"""Rows per uploaded batch (and per INSERT when a driver has no bulk path: COPY, a stage)."""

_CSV = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid", batch_size=UPLOAD_CHUNK)
"""Every value quoted, NULL an unquoted empty field: Postgres' and Snowflake's CSV
formats read that back as NULL, and ``""`` as ''."""


def csv_bytes(batch: pa.RecordBatch) -> bytes:
    """One batch as CSV (UTF-8) in the quoting both bulk loaders read exactly."""
    buffer = io.BytesIO()
    pa_csv.write_csv(batch, buffer, _CSV)
    return buffer.getvalue()


def python_rows(batches: Iterable[pa.RecordBatch]) -> Iterator[list[tuple[Any, ...]]]:
    """Each batch as a list of row tuples, for drivers that only bind rows."""
    for batch in batches:
        yield list(zip(*(column.to_pylist() for column in batch.columns), strict=True))


class WarehouseSession(Protocol):
    """One warehouse connection, as the warehouse engine uses it."""

    dialect: str
    atomic: bool
    """True: statements between :meth:`begin` and :meth:`commit` are one transaction.
    False: each statement commits alone."""
    query_ids: list[str]
    """Ids of the statements run so far (Snowflake query ids; Postgres backend pid), for the report."""

    def label(self, tag: str) -> str:
        """Label this session's statements with ``tag``; returns how users find them."""
        ...

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (empty for a statement without result)."""
        ...

    def columns(self, sql: str) -> list[tuple[str, bool]]:
        """Column names of a query's result as the warehouse spells them, and whether each is
        semi-structured (JSON text is its exact form)."""
        ...

    def upload(self, table: str, columns: Sequence[str], batches: Iterable[pa.RecordBatch], *,
               stage: str) -> int:
        """Insert the rows of ``batches`` (streamed: memory stays one batch) into an existing
        table (``table`` and ``columns`` are quoted SQL names), in bulk where the driver can
        (``stage``: a quoted name free for a temporary stage). Returns how many rows."""
        ...

    def commit(self) -> None:
        """Commit the open transaction."""
        ...

    def rollback(self) -> None:
        """Roll back the open transaction (errors while doing so are swallowed)."""
        ...

    def begin(self) -> None:
        """Start a transaction (statements until :meth:`commit` are one unit)."""
        ...


def open_session(source: Source) -> WarehouseSession:
    """The session of a Snowflake or SQLAlchemy source."""
    from reverse_etl.warehouses.snowflake_source import SnowflakeSource
    from reverse_etl.warehouses.sqlalchemy_source import SQLAlchemySource

    if isinstance(source, SnowflakeSource):
        return SnowflakeSession(source)
    if isinstance(source, SQLAlchemySource):
        return SQLAlchemySession(source)
    raise SourceError("engine: warehouse needs a Snowflake or SQLAlchemy source")


class SQLAlchemySession:
    """Statements through a SQLAlchemy connection (Postgres, Redshift, BigQuery, ...)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.conn = source.connection
        self.dialect: str = source.dialect
        self.atomic = True
        self.query_ids: list[str] = []

    def _fail(self, exc: Exception, sql: str) -> SourceError:
        self.rollback()
        verb = sql.split(None, 1)[0].upper() if sql.strip() else "statement"
        return SourceError(f"warehouse engine: {verb} failed: {self.source.describe_error(exc)}")

    def label(self, tag: str) -> str:
        if self.dialect in ("postgres", "redshift"):
            # application_name is at most 63 bytes (NAMEDATALEN): the tag is cut, never rejected.
            name = tag[:63]
            self.execute(f"SET application_name = '{name.replace(chr(39), '')}'")
            pid = self.execute("SELECT pg_backend_pid()")[0][0]
            self.query_ids.append(f"pid {pid}")
            self.commit()
            return f"application_name {name!r} (pg_stat_activity, log_line_prefix %a)"
        return f"this session ({self.dialect} has no statement label the engine sets)"

    @property
    def _dbapi(self) -> Any:
        # The driver's own connection (same transaction as SQLAlchemy's): the source's
        # streaming options (server-side cursors) stay on the SQLAlchemy connection.
        return self.conn.connection.dbapi_connection

    @property
    def _errors(self) -> Any:
        return self.conn.dialect.loaded_dbapi.Error

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self._dbapi.cursor()
        try:
            cursor.execute(sql)  # no parameters: no '%' or ':name' parsing
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        except self._errors as exc:
            raise self._fail(exc, sql) from None
        finally:
            cursor.close()

    def columns(self, sql: str) -> list[tuple[str, bool]]:
        cursor = self._dbapi.cursor()
        try:
            cursor.execute(f"SELECT * FROM ({sql}) AS probe WHERE 1 = 0")
            return [(column[0], False) for column in cursor.description or []]
        except self._errors as exc:
            raise self._fail(exc, "SELECT") from None
        finally:
            cursor.close()

    def upload(self, table: str, columns: Sequence[str], batches: Iterable[pa.RecordBatch], *,
               stage: str) -> int:
        names = ", ".join(columns)
        dbapi = self._dbapi
        count = 0
        try:
            with contextlib.closing(dbapi.cursor()) as cursor:
                if type(dbapi).__module__.split(".")[0] == "psycopg":  # psycopg 3: COPY, the bulk path
                    encoding = dbapi.info.encoding
                    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy:
                        for batch in batches:
                            data = csv_bytes(batch)
                            if encoding.replace("-", "").lower() != "utf8":  # the session's encoding
                                data = data.decode("utf-8").encode(encoding)
                            copy.write(data)
                            count += batch.num_rows
                    return count
                style = self.conn.dialect.loaded_dbapi.paramstyle
                mark = {"qmark": "?", "numeric": ":1", "named": ":p"}.get(style, "%s")
                statement = f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(columns))})"
                for rows in python_rows(batches):
                    if rows:
                        cursor.executemany(statement, rows)
                        count += len(rows)
        except self._errors as exc:
            raise self._fail(exc, "INSERT") from None
        return count

    def begin(self) -> None:
        # The driver begins on first use; end whatever read transaction is open first.
        self.commit()

    def commit(self) -> None:
        try:
            self._dbapi.commit()
            self.conn.commit()
        except Exception as exc:  # the driver's error or SQLAlchemy's
            raise self._fail(exc, "COMMIT") from None

    def rollback(self) -> None:
        with contextlib.suppress(Exception):
            self._dbapi.rollback()
        with contextlib.suppress(Exception):
            self.conn.rollback()


class SnowflakeSession:
    """Statements through the Snowflake connector (autocommit; explicit BEGIN/COMMIT for the MERGE)."""

    dialect = "snowflake"

    def __init__(self, source: Any) -> None:
        self.source = source
        self.conn = source.connection
        self.query_ids: list[str] = []
        self._errors = __import__("snowflake.connector", fromlist=["errors"]).errors

    def _run(self, sql: str, rows: Sequence[tuple[Any, ...]] | None = None) -> Any:
        cursor = self.conn.cursor()
        try:
            if rows is None:
                cursor.execute(sql)
            else:
                cursor.executemany(sql, rows)
        except self._errors.Error as exc:
            cursor.close()
            self.rollback()
            verb = sql.split(None, 1)[0].upper()
            raise SourceError(f"warehouse engine: {verb} failed: {self.source.describe_error(exc)}") from None
        if getattr(cursor, "sfqid", None):
            self.query_ids.append(str(cursor.sfqid))
        return cursor

    def label(self, tag: str) -> str:
        try:
            self._run(f"ALTER SESSION SET QUERY_TAG = '{tag.replace(chr(39), '')}'").close()
        except SourceError:
            # An account (or an emulation of one) that refuses it: the session keeps the
            # tag it connected with (source.query_tag), and the query ids still find them.
            return "the QUERY_TAG it connected with (source.query_tag) and the query ids (QUERY_HISTORY)"
        return f"QUERY_TAG {tag!r} (QUERY_HISTORY)"

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self._run(sql)
        try:
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        finally:
            cursor.close()

    def columns(self, sql: str) -> list[tuple[str, bool]]:
        from snowflake.connector.constants import FIELD_ID_TO_NAME

        cursor = self._run(f"SELECT * FROM ({sql}) AS probe WHERE 1 = 0")
        try:
            return [(c.name, FIELD_ID_TO_NAME[c.type_code] in ("VARIANT", "ARRAY", "OBJECT"))
                    for c in cursor.description or []]
        finally:
            cursor.close()

    def upload(self, table: str, columns: Sequence[str], batches: Iterable[pa.RecordBatch], *,
               stage: str) -> int:
        """Snowflake's bulk path: one CSV file, PUT to a temporary internal stage, one COPY INTO.

        (INSERTs of bound rows run at about 1,000 rows a second; this is the loading path
        Snowflake documents.) The CSV is written batch by batch: every value quoted, NULL
        as an unquoted empty field, which Snowflake reads back as NULL (and ``""`` as '').
        """
        names = ", ".join(columns)
        count = 0
        with tempfile.TemporaryDirectory(prefix="reverse_etl_upload_") as tmp:
            path = Path(tmp) / "keys.csv"
            with open(path, "wb") as handle:
                for batch in batches:
                    handle.write(csv_bytes(batch))
                    count += batch.num_rows
            if not count:
                return 0
            self._run(f"CREATE TEMPORARY STAGE {stage}").close()
            try:
                self._run(f"PUT 'file://{path.as_posix()}' @{stage} AUTO_COMPRESS=TRUE OVERWRITE=TRUE").close()
                self._run(f"COPY INTO {table} ({names}) FROM @{stage} "
                          "FILE_FORMAT = (TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"') PURGE = TRUE").close()
            finally:
                with contextlib.suppress(SourceError):
                    self._run(f"DROP STAGE IF EXISTS {stage}").close()
        return count

    # Autocommit: each statement commits alone (fakesnow cannot run the MERGE inside BEGIN ..
    # COMMIT). The commit is built so that is safe: see WarehouseSnapshot.commit.
    atomic = False

    def begin(self) -> None:
        """Nothing: every statement is its own transaction."""

    def commit(self) -> None:
        """Nothing: every statement is its own transaction."""

    def rollback(self) -> None:
        """Nothing: every statement is its own transaction."""
