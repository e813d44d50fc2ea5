"""The warehouse engine's warehouse side: pass 1 and the snapshot table, inside the warehouse.

:class:`WarehouseSnapshot` owns one sync's objects in the warehouse (see
:class:`.sql.Objects`): the snapshot table ``<schema>.snapshot_<sync>`` of
(key, digest) rows and the marker row in ``<schema>.syncs`` naming the local run
the table was last committed by. Pass 1 (:meth:`WarehouseSnapshot.pass1`) keys
and digests every model row in a session table, joins it against the snapshot
table, and hands back only what must travel. :meth:`WarehouseSnapshot.commit`
applies a run's acknowledged keys in one transaction (MERGE + marker).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from reverse_etl.errors import SourceError
from reverse_etl.warehouses.base import Source
from reverse_etl.warehouses.pushdown import sql
from reverse_etl.warehouses.pushdown.session import WarehouseSession, open_session

__all__ = ["WarehouseSnapshot", "sql"]

PASS1_TABLE = "reverse_etl_pass1"


class WarehouseSnapshot:
    """One sync's snapshot table in the warehouse, and the statements over it."""

    def __init__(self, source: Source, schema: str, sync_name: str) -> None:
        self.source = source
        self.session: WarehouseSession = open_session(source)
        self.dialect = self.session.dialect
        self.objects = sql.Objects(self.dialect, schema, sync_name)
        self.where: str | None = None
        """How users find this run's statements (set by :meth:`label`)."""

    def _sql(self, statement: str) -> str:
        return sql.transpile(statement, self.dialect)

    def run(self, statement: str) -> list[tuple[Any, ...]]:
        """Transpile and run one engine statement."""
        return self.session.execute(self._sql(statement))

    def label(self, tag: str) -> str:
        """Tag the session's statements (application_name / QUERY_TAG)."""
        self.where = self.session.label(tag)
        return self.where

    # ------------------------------------------------------------ set up
    def ensure(self) -> None:
        """Create the schema and tables if missing; a role that may not gets the DDL to run."""
        objects = self.objects
        try:
            if not self.run(sql.schema_exists(objects)):
                # Snowflake makes a schema it creates the session's current one: the model's
                # unqualified names must keep resolving where they did.
                current = self.session.execute("SELECT current_schema()") if self.dialect == "snowflake" else []
                self.run(sql.create_schema(objects))
                if current and current[0][0]:
                    self.session.execute(f"USE SCHEMA {sql.quote(str(current[0][0]))}")
            for ddl in sql.create_tables(objects):
                self.run(ddl)
            self.session.commit()
        except SourceError as exc:
            ddl = "; ".join(self._sql(s) for s in [sql.create_schema(objects), *sql.create_tables(objects)])
            raise SourceError(
                f"engine: warehouse cannot create its snapshot table in schema {objects.schema!r} ({exc}); "
                f"have an admin run: {ddl}; and grant this role USAGE and CREATE on that schema "
                "(or set source.engine_schema to a schema it may write)") from None

    def marker(self) -> tuple[str | None, str | None]:
        """(local run id, fingerprint) the snapshot table was last committed with."""
        rows = self.run(sql.read_marker(self.objects))
        self.session.commit()
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def model_columns(self, model_sql: str) -> list[tuple[str, bool]]:
        """The model's columns as the warehouse names them (and which are semi-structured)."""
        return self.session.columns(model_sql.strip().rstrip(";"))

    # ------------------------------------------------------------ pass 1
    def pass1(self, model_sql: str, key_sql: str, digest_texts: Sequence[str]) -> int:
        """Key and digest every model row inside the warehouse, in a session table; returns the count.

        ``key_sql`` and ``digest_texts`` are DuckDB-dialect SQL over ``m.<column>``.
        Then :meth:`changed` and :meth:`removed` read what must travel, one after the other.
        """
        self.run(sql.drop_temp(PASS1_TABLE))
        create = self._sql(sql.create_pass1(PASS1_TABLE, key_sql, sql.digest_sql(digest_texts)))
        self.session.execute(sql.with_model(create, model_sql))
        self.session.commit()  # the session table outlives the read transaction
        scanned = int(self.run(sql.count_rows(PASS1_TABLE))[0][0])
        self.session.commit()
        return scanned

    def changed(self, *, every_row: bool) -> pa.RecordBatchReader:
        """New, changed, null-key and duplicate-key rows (``every_row``: all of them): the
        model's columns plus the key and digest columns."""
        return self._fetch(sql.changed_rows(PASS1_TABLE, self.objects, every_row=every_row))

    def removed(self) -> pa.RecordBatchReader:
        """Keys of the snapshot table the model no longer returns (one column ``key``)."""
        return self._fetch(sql.removed_keys(PASS1_TABLE, self.objects))

    def _fetch(self, statement: str) -> pa.RecordBatchReader:
        return self.source.fetch(self._sql(statement))

    def finish_pass1(self) -> None:
        """Drop the session table (it would go with the session anyway)."""
        self.run(sql.drop_temp(PASS1_TABLE))
        self.session.commit()

    # ------------------------------------------------------------ commit
    def commit(self, rows: Iterable[pa.RecordBatch], run_id: str, fingerprint: str,
               *, rebuild: bool) -> int:
        """Stage ``rows`` (batches of key, digest, keep), MERGE them (or, ``rebuild``, replace the
        table's rows with the kept ones), and move the marker to ``run_id``: one transaction.
        Returns how many rows were staged. The batches are streamed into the warehouse's bulk
        loader, so memory stays one batch however many keys a first run commits.

        Where statements commit one by one (Snowflake's autocommit session) this is still safe:
        the MERGE is idempotent, and until the marker moves, the next run's recovery MERGEs the
        same keys again (or rebuilds: a rebuild first sets the marker to no run).
        """
        objects = self.objects
        session = self.session
        self.run(sql.drop_staging(objects))
        self.run(sql.create_staging(objects))
        session.commit()
        if rebuild and not session.atomic:
            # Without one transaction, a crash between the DELETE and the INSERT must not leave
            # an empty table that the marker vouches for: the marker names no run until the end.
            for statement in sql.write_marker(objects, "rebuilding", fingerprint):
                self.run(statement)
        session.begin()
        try:
            staged = session.upload(objects.staging, [objects.col(c) for c in ("key", "digest", "keep")], rows,
                                    stage=objects.upload_stage(secrets.token_hex(4)))
            for statement in (sql.rebuild(objects) if rebuild else [sql.merge(objects)] if staged else []):
                self.run(statement)
            for statement in sql.write_marker(objects, run_id, fingerprint):
                self.run(statement)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        self.run(sql.drop_staging(objects))
        session.commit()
        return staged
