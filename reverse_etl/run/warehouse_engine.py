"""``engine: warehouse``: pass 1 runs in the warehouse, only changed rows travel.

The local engine (:class:`~reverse_etl.run.runner.SyncRunner`) pulls every model
row into DuckDB to find the few that changed. This runner keeps all of its stages
but replaces how ``cur_raw`` is filled: the warehouse keys and digests every row
(in a session table), joins them against the sync's snapshot table
``<schema>.snapshot_<sync>`` (key, digest) and returns only new, changed, null-key
and duplicate-key rows, plus the keys that left the model. Pass 2 (encoding,
validation, payloads, the Insider rules) stays in DuckDB on that small set.

State: the local snapshot (Parquet, with each key's acknowledged *encoded* values)
stays the truth for what Insider holds, so a changed row still sends only its
changed attributes; the warehouse table is an index of it (key → the warehouse's
digest of the row last acknowledged). Commit order keeps the journal's crash
guarantee: the MERGE of acknowledged keys (one transaction, with the marker row
naming the run) happens before the local commit; if the process dies before the
MERGE, the next run's recovery folds the journal and MERGEs those keys; if the
marker names neither the local state's run nor the run being committed, the
table is rebuilt from the local snapshot. A stale table can only make rows
travel again (then diffed locally and found unchanged), never make an
acknowledged row go out twice.

Digests are the warehouse's text of each value, which differs from DuckDB's for
floats and timestamps, so they are never compared across engines: the
fingerprint names the engine, and switching engines is a full, reconciling
resend that ``plan`` announces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from reverse_etl.diff.fields import Field, resolve_columns
from reverse_etl.diff.sqltext import ident, scalar, table_exists
from reverse_etl.diff.tables import WAREHOUSE_REMOVED
from reverse_etl.diff.workspace import MODEL_TABLE
from reverse_etl.errors import ConfigError, SourceError
from reverse_etl.project.config import StateConfig
from reverse_etl.project.model_sql import ResolvedModel
from reverse_etl.run.commit import Committer, SnapshotFiles
from reverse_etl.run.destination import ModelResolver, Sender, SyncMode, SyncSpec
from reverse_etl.run.events import Hooks
from reverse_etl.run.results import SyncResult
from reverse_etl.run.runner import Rebase, SyncRunner
from reverse_etl.state import digests
from reverse_etl.state.store import Meta
from reverse_etl.warehouses.base import Source
from reverse_etl.warehouses.duckdb_source import arrow_reader
from reverse_etl.warehouses.normalize import result_names
from reverse_etl.warehouses.pushdown import WarehouseSnapshot, sql
from reverse_etl.warehouses.pushdown.session import UPLOAD_CHUNK

__all__ = ["WarehouseRunner", "engine_fingerprint"]

REMOVED = WAREHOUSE_REMOVED


def engine_fingerprint(local: str, dialect: str) -> str:
    """The fingerprint of a warehouse-engine snapshot: the mapping's, and which engine digested it."""
    return hashlib.sha256(f"{local}|engine=warehouse:{dialect}".encode()).hexdigest()[:20]


class WarehouseCommitter(Committer):
    """The local commit, preceded by one transactional MERGE of the same keys into the warehouse."""

    def __init__(self, *args: Any, snapshot: WarehouseSnapshot, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warehouse = snapshot
        self.force_rebuild = False
        """Set for a full resend: the table is rebuilt from the new snapshot."""
        self.uploaded = 0

    def write(self, con: duckdb.DuckDBPyConnection, run_id: str, fingerprint: str | None,
              *, keep_snapshot: bool = False, destination: str | None = None,
              base: SnapshotFiles | None = None, fields: Sequence[Field] | None = None,
              with_delta: bool = True) -> Meta:
        previous = self.state.meta()
        marker_run, _ = self.warehouse.marker()
        trusted = (not self.force_rebuild and marker_run is not None
                   and marker_run in (previous.folded_run, run_id))
        built = table_exists(con, "new_snap") and not keep_snapshot
        if trusted:
            query = self._affected(con) if built else None
        elif built:
            query = "SELECT key, digest, TRUE AS keep FROM new_snap"
        elif previous.snapshot:
            query = f"SELECT key, digest, TRUE AS keep FROM {self.state.snapshot_sql(['key', 'digest'])} s"
        else:
            query = None
        # Streamed from DuckDB in batches into the warehouse's bulk loader: a first run's
        # millions of (key, digest) pairs never become Python rows (10M of them took 3 GB).
        # The warehouse's table holds hex text, as the warehouse digests rows (``state.digests``).
        upload = f"SELECT key, {digests.to_hex_sql('digest')} AS digest, keep FROM ({query}) q" if query else None
        rows = arrow_reader(con, upload, UPLOAD_CHUNK) if upload else iter(())
        self.uploaded += self.warehouse.commit(rows, run_id, fingerprint or "", rebuild=not trusted)
        return super().write(con, run_id, fingerprint, keep_snapshot=keep_snapshot, destination=destination,
                             base=base, fields=fields, with_delta=with_delta)

    def _reads_touched(self, base: SnapshotFiles | None) -> bool:
        return True  # the MERGE's keys are read from it (see _affected)

    def _affected(self, con: duckdb.DuckDBPyConnection) -> str:
        """A query of (key, digest, keep: still in the snapshot) for every key this run (or
        recovered run) could alter."""
        sources = ["SELECT key FROM changes"]
        if table_exists(con, "cur_raw"):
            sources.append("SELECT key FROM cur_raw")
        affected = f"(SELECT DISTINCT key FROM ({' UNION ALL '.join(sources)}) WHERE key IS NOT NULL) a"
        if self.prune_sql is not None:  # pruning may drop any row: only new_snap knows
            return f"SELECT a.key, n.digest, n.key IS NOT NULL AS keep FROM {affected} LEFT JOIN new_snap n ON n.key = a.key"
        # The keys the fold touched get their new row; any other key is as the snapshot has
        # it. Reading new_snap instead would pass over every row of a 10M-row snapshot to
        # find these few (8 s of a 1%-changed run's commit).
        return f"""
            SELECT a.key, CASE WHEN t.key IS NOT NULL THEN t.digest ELSE s.digest END AS digest,
                   CASE WHEN t.key IS NOT NULL THEN t.live ELSE s.key IS NOT NULL END AS keep
            FROM {affected}
            LEFT JOIN fold_touched t ON t.key = a.key
            LEFT JOIN (SELECT key, digest FROM snap) s ON s.key = a.key"""


class WarehouseRunner(SyncRunner):
    """A :class:`SyncRunner` whose pass 1 runs inside the warehouse."""

    def __init__(self, state_dir: Path, state_config: StateConfig, sync: SyncSpec, mode: SyncMode,
                 source: Source, model: ResolvedModel, *, resolve: ModelResolver,
                 sender_factory: Callable[[], Sender] | None = None, hooks: Hooks | None = None,
                 destination: str | None = None, schema: str = "reverse_etl",
                 rebase: Rebase | None = None) -> None:
        super().__init__(state_dir, state_config, sync, mode, source, model, resolve=resolve,
                         sender_factory=sender_factory, hooks=hooks, destination=destination)
        if rebase is not None:
            # A repair rebases keys the model did not change; pass 1 in the warehouse never
            # brings those rows back, so it would silently repair nothing.
            raise ConfigError(f"sync {sync.name!r}: `audit --repair` needs engine: local; with "
                              "engine: warehouse, audit to see the drift and `reverse-etl reset` "
                              "the sync to resend it")
        if mode.custom_delivery:
            raise ConfigError(f"sync {sync.name!r}: engine: warehouse does not support its mode "
                              "(it uploads whole segments); use engine: local for it")
        self.warehouse = WarehouseSnapshot(source, schema, sync.name)
        self.local_fingerprint = self.fingerprint
        self.fingerprint = engine_fingerprint(self.fingerprint, self.warehouse.dialect)
        self.committer = self.wh_committer = WarehouseCommitter(
            self.state, self.tracked, self.fingerprint, mode.prune_sql(), destination, snapshot=self.warehouse,
            overlay_min_rows=self.state_config.overlay_min_rows)
        self.scanned = 0
        self.fetched = 0
        self.every_row = False

    # ------------------------------------------------------------ hooks
    def _read_source(self, con: duckdb.DuckDBPyConnection, result: SyncResult, *,
                     full_refresh: bool, fold_pending: bool) -> dict[str, str]:
        wh = self.warehouse
        where = wh.label(f"reverse_etl/{self.sync.name}/{result.run_id}")
        tables = True
        if fold_pending:  # plan writes nothing: a missing table just means every row travels
            try:
                marker_run, _ = wh.marker()
            except SourceError:
                marker_run, tables = None, False
        else:
            wh.ensure()
            # Before pass 1: a crashed run's acknowledgements reach the local snapshot and the table.
            result.counts["recovered"] = self.committer.recover(con)
            marker_run, _ = wh.marker()
        meta = self.state.meta()
        snapshot = self.state.snapshot_path()
        self.every_row = (full_refresh or snapshot is None or not snapshot.exists()
                          or meta.fingerprint != self.fingerprint or marker_run != meta.folded_run
                          or (self.destination is not None and meta.destination not in (None, self.destination))
                          or (fold_pending and self.state.pending() is not None))
        self.wh_committer.force_rebuild = self.every_row
        key_sql, digest_texts = self._pass1_sql()
        try:
            self.scanned = wh.pass1(self.model.sql, key_sql, digest_texts)
            _load(con, MODEL_TABLE, wh.changed(every_row=self.every_row))
            if tables:
                _load(con, REMOVED, wh.removed())
            else:
                con.execute(f"CREATE OR REPLACE TABLE {REMOVED} (key VARCHAR)")
        except SourceError as exc:
            raise SourceError(f"sync {self.sync.name!r}: model {self.model.name!r} ({self.model.origin}) "
                              f"failed in the warehouse engine: {exc}") from None
        finally:
            wh.finish_pass1()
        self.fetched = scalar(con, f"SELECT count(*) FROM {MODEL_TABLE}")
        removed = scalar(con, f"SELECT count(*) FROM {REMOVED}")
        result.counts["scanned"] = self.scanned
        result.counts["transferred"] = self.fetched + removed
        ids = ", ".join(wh.session.query_ids[-5:]) or "none"
        result.notes.append(
            f"warehouse engine ({wh.dialect}): scanned {self.scanned} row(s) in the warehouse, transferred "
            f"{self.fetched + removed} ({self.fetched} row(s), {removed} removed key(s))"
            f"{' (every row: full resend)' if self.every_row else ''}; find its statements by {where}; "
            f"query ids: {ids}")
        return {name: dtype for name, dtype, *_ in con.execute(f"DESCRIBE {MODEL_TABLE}").fetchall()
                if name not in sql.ENGINE_COLUMNS}

    def _pass1_sql(self) -> tuple[str, list[str]]:
        """The key and the tracked values' texts, as DuckDB-dialect SQL over the model's ``m.`` columns."""
        wh, mode = self.warehouse, self.mode
        raw = wh.model_columns(self.model.sql)
        names = result_names([n for n, _ in raw], fold_upper=wh.dialect == "snowflake")
        semis = {name: semi for name, (_, semi) in zip(names, raw, strict=True)}
        raw_of = {name: r for name, (r, _) in zip(names, raw, strict=True)}
        columns = resolve_columns([*mode.fields, *mode.columns_only], {n.lower(): n for n in names},
                                  self.sync.name, self.model.name)

        def column_of(f: Field) -> str:
            return "m." + sql.model_column(raw_of[columns[f.name]])

        def text_of(f: Field) -> str:
            if f.constant is not None:
                return sql.text(f.constant)
            return sql.warehouse_text(column_of(f), semis[columns[f.name]])

        # Portable: the warehouse, not DuckDB, computes this key (transpiled by sqlglot).
        return mode.key_sql(column_of, text_of, portable=True), [text_of(f) for f in self.tracked]

    def _create_current_raw(self, con: duckdb.DuckDBPyConnection, source_table: str, key_sql: str,
                            columns: list[str], digest_texts: list[str], *, fused: bool = False) -> str | None:
        # Never fused: this engine's _read_source loads pass 1's results, it adds no columns.
        if source_table != MODEL_TABLE:
            raise ConfigError(f"sync {self.sync.name!r}: engine: warehouse does not support a mode that "
                              "reshapes the model's rows (the e-commerce preset); use engine: local for it")
        # The warehouse's key and digest, not DuckDB's: they are what its snapshot table holds.
        cols = ", ".join(f"{ident(c)} AS {ident('col:' + c)}" for c in columns)
        con.execute(f"""
            CREATE OR REPLACE TABLE cur_raw AS
            SELECT CAST({ident(sql.KEY_COLUMN)} AS VARCHAR) AS key,
                   {digests.from_hex_sql(f"CAST({ident(sql.DIGEST_COLUMN)} AS VARCHAR)")} AS digest{", " + cols if cols else ""}
            FROM {source_table}
        """)
        con.execute("CREATE OR REPLACE TABLE dups AS SELECT key, count(*) AS n FROM cur_raw "
                    "WHERE key IS NOT NULL GROUP BY key HAVING count(*) > 1")
        con.execute("CREATE OR REPLACE VIEW present AS SELECT key FROM cur_raw WHERE key IS NOT NULL")
        return None  # the few rows that travelled are copied whole

    def _after_baseline(self, con: duckdb.DuckDBPyConnection, result: SyncResult) -> None:
        meta = self.state.meta()
        if result.full_resend_reason and meta.fingerprint == self.local_fingerprint:
            result.full_resend_reason = ("engine changed (local → warehouse): every row is resent once, "
                                         "reconciled against the last snapshot")
        if not self.every_row:
            # Rows that did not travel are still in the model: every snapshot key but the removed
            # ones. UNION ALL: a key in both is harmless to its readers (EXISTS), and no hash of
            # every snapshot key is built to deduplicate them.
            con.execute(f"""CREATE OR REPLACE VIEW present AS
                SELECT key FROM cur_raw WHERE key IS NOT NULL
                UNION ALL SELECT s.key FROM snap s ANTI JOIN {REMOVED} r ON r.key = s.key""")

    def _digest_holds_key(self) -> bool:
        # The warehouse's digests, and a ``cur_raw`` of the few rows it returned: matching
        # them on (key, digest) costs nothing worth saving.
        return False

    def _create_removed_keys(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.every_row:
            super()._create_removed_keys(con)
            return
        # The warehouse named the keys that left: ``snap`` anti ``present`` is exactly the
        # snapshot keys among them that did not travel back. Read that way, it never builds a
        # hash of every snapshot key (which ran out of the 640 MB budget at 10M rows).
        if not scalar(con, f"SELECT count(*) FROM (SELECT 1 FROM {REMOVED} LIMIT 1)"):
            con.execute("CREATE OR REPLACE TABLE removed_keys (key VARCHAR)")
            return
        con.execute(f"""CREATE OR REPLACE TABLE removed_keys AS
            SELECT s.key FROM snap s SEMI JOIN {REMOVED} r ON r.key = s.key
            WHERE NOT EXISTS (SELECT 1 FROM cur_raw c WHERE c.key = s.key)""")

    def _model_rows(self, con: duckdb.DuckDBPyConnection) -> int:
        return self.scanned

    def _diff_counts(self, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        counts = super()._diff_counts(con)
        counts["unchanged"] += self.scanned - self.fetched  # the rows that stayed in the warehouse
        return counts

    def run(self, result: SyncResult, *, full_refresh: bool = False) -> None:
        """Run the sync; also count the keys the commit uploaded to the warehouse."""
        try:
            super().run(result, full_refresh=full_refresh)
        finally:
            result.counts["uploaded"] = self.wh_committer.uploaded


def _load(con: duckdb.DuckDBPyConnection, table: str, reader: Any) -> None:
    """Materialise an Arrow stream from the warehouse as a DuckDB table."""
    con.register("pushdown_stream", reader)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM pushdown_stream")
    finally:
        con.unregister("pushdown_stream")
