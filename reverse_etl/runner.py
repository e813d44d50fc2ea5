"""One sync run, start to finish: source → diff → deliver → commit.

The runner composes the stages; none of them imports another. It never prints
and never exits: it returns :class:`SyncResult` and raises typed errors.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import orjson
import pyarrow as pa

from reverse_etl.config.schema import Project, SyncConfig
from reverse_etl.engine import diff, rejected
from reverse_etl.engine.fields import Field, encode_field, resolve_columns
from reverse_etl.engine.modes import mode_for
from reverse_etl.engine.session import MODEL_TABLE, engine_connection, load_model
from reverse_etl.engine.sqltext import first_row, ident, literal, scalar
from reverse_etl.errors import ConfigError, DeliveryError, SourceError
from reverse_etl.models import ResolvedModel
from reverse_etl.results import SyncResult
from reverse_etl.sources.base import Source
from reverse_etl.sources.duckdb_source import arrow_reader
from reverse_etl.state import Journal, Ledger, RunRecord, SyncState, read_journal
from reverse_etl.state.store import Meta, Pending

SNAPSHOT_FORMAT = 3
"""Bump when the snapshot's meaning changes: every sync then resends in full."""

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage description, rows done, rows total)"""


class Client(Protocol):
    """What the runner needs from the delivery client."""

    def deliver(self, endpoint: Any, chunks: Any, *, on_result: Callable[[Any], None],
                skip_hook: bool = False, halt_on_reject: bool = False,
                progress: Callable[[int], None] | None = None) -> Any: ...


@dataclass
class _Delivery:
    acked: list[tuple[int, int]]
    rejected: dict[int, str]
    failed: dict[int, str]
    requests: int = 0
    error: str | None = None


def new_run_id() -> str:
    """Sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def sync_fingerprint(sync: SyncConfig, model: ResolvedModel) -> str:
    """Hash of everything that decides what the snapshot means."""
    relevant = sync.model_dump(mode="json", include={"mode", "operation", "identifiers",
                                                     "attributes", "options"})
    relevant["model_sql"] = model.sql
    relevant["snapshot_format"] = SNAPSHOT_FORMAT
    return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:20]


class SyncRunner:
    """Runs (or plans) one sync of a project."""

    def __init__(self, project: Project, sync: SyncConfig, source: Source, model: ResolvedModel,
                 *, client_factory: Callable[[], Client] | None = None,
                 progress: ProgressCallback | None = None) -> None:
        self.project = project
        self.sync = sync
        self.source = source
        self.model = model
        self.client_factory = client_factory
        self.progress = progress
        self.state = SyncState(project.state_dir, sync.name)
        self.mode = mode_for(sync)
        self.model = model = self.mode.prepare_model(project, model)  # e.g. audience columns
        self.tracked = self.mode.tracked
        self.fingerprint = sync_fingerprint(sync, model)

    def _engine(self) -> duckdb.DuckDBPyConnection:
        state = self.project.config.state
        return engine_connection(self.state.tmp_dir, state.memory_limit, state.threads)

    # ------------------------------------------------------------------ API
    def plan(self, *, full_refresh: bool = False, samples: int = 3) -> SyncResult:
        """Dry run: what a run would send. Sends nothing and writes nothing."""
        result = SyncResult(sync=self.sync.name, run_id=new_run_id(), outcome="planned")
        started = time.perf_counter()
        con = self._engine()
        try:
            self._load_and_diff(con, result, full_refresh=full_refresh, fold_pending=True)
            for op, in con.execute("SELECT DISTINCT op FROM changes WHERE payload IS NOT NULL").fetchall():
                rows = con.execute(
                    f"SELECT payload FROM changes WHERE op = {literal(op)} ORDER BY row_id LIMIT {int(samples)}"
                ).fetchall()
                result.samples[op] = [r[0] for r in rows]
            result.rejected_samples = self._validation_samples(con, samples)
        finally:
            con.close()
        result.seconds["total"] = round(time.perf_counter() - started, 3)
        return result

    def run(self, *, full_refresh: bool = False) -> SyncResult:
        """Run the sync: send what changed, commit what Insider acknowledged."""
        result = SyncResult(sync=self.sync.name, run_id=new_run_id(), outcome="running")
        started = time.perf_counter()
        started_at = _now()
        self.state.prepare()
        ledger = Ledger(self.project.state_dir)
        with self.state.lock():
            con = self._engine()
            try:
                self._run_locked(con, result, full_refresh)
            except SourceError as exc:
                result.outcome, result.message = "failed", str(exc)
                result.counts["source_failed"] = 1
                raise
            except DeliveryError as exc:
                result.outcome, result.message = "failed", str(exc)
            finally:
                con.close()
                result.seconds["total"] = round(time.perf_counter() - started, 3)
                if result.outcome == "running":
                    result.outcome = "failed"
                ledger.append(RunRecord(
                    run_id=result.run_id, sync=self.sync.name, started_at=started_at,
                    finished_at=_now(), seconds=result.seconds["total"], outcome=result.outcome,
                    counts=dict(result.counts), full_resend_reason=result.full_resend_reason,
                    error=result.message, details={"requests": result.requests,
                                                   "seconds": result.seconds}))
        return result

    # ------------------------------------------------------------ stages
    def _run_locked(self, con: duckdb.DuckDBPyConnection, result: SyncResult, full_refresh: bool) -> None:
        self._load_and_diff(con, result, full_refresh=full_refresh, fold_pending=False)
        if self.mode.custom_delivery:  # e.g. a first-party segment: one upload, its own state
            self.mode.deliver_custom(con, self.project, self.state, result)
            return
        if not self.sync.options.skip_invalid_records and result.counts.get("invalid", 0):
            first = first_row(con, "SELECT key, reason FROM cur WHERE reason IS NOT NULL ORDER BY key LIMIT 1")
            key, reason = (first or (None, "?"))
            result.outcome = "failed"
            result.message = (f"sync {self.sync.name!r} halted before sending: row with key {key!r} is "
                              f"invalid ({reason}); fix it or set options.skip_invalid_records: true")
            return  # nothing sent, nothing committed
        pending_path, journal_path = self.state.pending_paths(result.run_id)
        t0 = time.perf_counter()
        if result.counts["to_send"]:
            # The change set is on disk before the first request: a crash can be folded later.
            # Payloads stay out: folding needs only keys, operations and values.
            con.execute(f"COPY (SELECT * EXCLUDE (payload) FROM changes) TO {literal(str(pending_path))} (FORMAT parquet)")
            self.state.begin_pending(Pending(run_id=result.run_id, fingerprint=self.fingerprint,
                                             fields=[f.name for f in self.tracked]))
        delivery = self._deliver(con, journal_path)
        result.seconds["deliver"] = round(time.perf_counter() - t0, 3)
        result.requests = delivery.requests
        result.counts["acked"] = sum(e - s + 1 for s, e in delivery.acked)
        result.counts["rejected"] = len(delivery.rejected)
        result.counts["failed"] = len(delivery.failed)
        rejected.outcome_table(con, delivery.rejected, delivery.failed)
        self._commit(con, result, acked=delivery.acked)
        if delivery.error:
            result.outcome, result.message = "failed", delivery.error
        elif delivery.rejected or delivery.failed:
            result.outcome = "partial"
            result.message = (f"{len(delivery.rejected)} row(s) rejected by Insider, {len(delivery.failed)} "
                              f"failed after retries; see `reverse-etl rejected {self.sync.name}`")
        else:
            result.outcome = "success"
        result.rejected_samples = self._rejected_samples(con)

    def _load_and_diff(self, con: duckdb.DuckDBPyConnection, result: SyncResult, *,
                       full_refresh: bool, fold_pending: bool) -> None:
        t0 = time.perf_counter()
        types = load_model(con, self.source, self.model, self.sync.name)
        result.seconds["source"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        # Only now, with the source read, may state be touched (crash recovery first).
        if not fold_pending:
            result.counts["recovered"] = self._recover(con)
        mode = self.mode
        # A mode may reshape the model rows first (the ecommerce preset explodes products).
        source_table = mode.prepare(con, MODEL_TABLE, types)
        if source_table != MODEL_TABLE:
            types = {name: dtype for name, dtype, *_ in con.execute(f"DESCRIBE {source_table}").fetchall()}
        lower = {name.lower(): name for name in types}
        columns = resolve_columns([*mode.fields, *mode.columns_only], lower, self.sync.name, self.model.name)
        raw = diff.RAW_PREFIX

        def column_of(f: Field) -> str:
            return ident(raw + columns[f.name])

        def type_of(f: Field) -> str:
            return types[columns[f.name]]

        def source_column(f: Field) -> str:
            return ident(columns[f.name])

        def source_text(f: Field) -> str:  # a field's raw value as exact text (digests)
            if f.constant is not None:
                return literal(f.constant)
            return diff.raw_text_sql(source_column(f), type_of(f))

        # Pass 1 over every row: keys and a digest of the raw tracked values, no encoding.
        diff.create_current_raw(con, source_table, mode.key_sql(source_column, source_text),
                                sorted(set(columns.values())), [source_text(f) for f in self.tracked])
        con.execute(f"DROP TABLE IF EXISTS {MODEL_TABLE}")  # everything needed is in cur_raw now
        meta = self.state.meta()
        snapshot = self.state.snapshot_path()
        if full_refresh:
            result.full_resend_reason = "--full-refresh"
        elif snapshot is None:
            result.full_resend_reason = "first run" if meta.fingerprint is None else "snapshot missing"
        elif meta.fingerprint != self.fingerprint:
            result.full_resend_reason = "the sync's mapping or model changed since the last run"
        if result.full_resend_reason or snapshot is None:
            diff.create_empty_snapshot(con, self.tracked)
        else:
            diff.load_snapshot(con, str(snapshot), self.tracked)
            if fold_pending and self.state.pending() is not None:
                # plan shows what a run would do, including finishing a crashed run.
                self._fold_pending_in_memory(con)
                diff.replace_snapshot(con, "new_snap")
        # Pass 2, over new and changed rows only: encode, validate, compare field by field.
        diff.create_delta_keys(con)
        encoded = {f.name: encode_field(f, raw + columns[f.name] if f.name in columns else None,
                                        types.get(columns.get(f.name, ""))) for f in mode.fields}

        def value_of(f: Field) -> str:
            return f"({encoded[f.name].value_sql})"

        diff.create_current(con, list(encoded.values()), mode.key_label,
                            mode.row_reasons(column_of, type_of, value_of), every_row=mode.custom_delivery)
        diff.create_delta(con, self.tracked)
        mode.build_changes(con)
        rej_path = self.state.rejected_path()
        rejected.load_rejected(con, str(rej_path) if rej_path else None)
        result.counts["held_back"] = rejected.hold_back(con, self.sync.max_attempts)
        result.counts.update(self._diff_counts(con))
        result.seconds["diff"] = round(time.perf_counter() - t1, 3)

    def _diff_counts(self, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        row = first_row(con, """
            SELECT
              (SELECT count(DISTINCT key) FROM changes WHERE change = 'added'),
              (SELECT count(DISTINCT key) FROM changes WHERE change = 'changed'),
              (SELECT count(DISTINCT key) FROM changes WHERE change = 'removed'),
              (SELECT count(*) FROM cur_raw) - (SELECT count(*) FROM cur WHERE reason IS NOT NULL),
              (SELECT count(*) FROM cur WHERE reason IS NOT NULL),
              (SELECT count(*) FROM changes WHERE payload IS NOT NULL)
        """)
        assert row is not None
        added, changed, removed, valid, invalid, to_send = (int(v) for v in row)
        return {"added": added, "changed": changed, "removed": removed,
                "unchanged": valid - added - changed, "invalid": invalid, "to_send": to_send}

    # ---------------------------------------------------------- delivery
    def _deliver(self, con: duckdb.DuckDBPyConnection, journal_path: Any) -> _Delivery:
        from reverse_etl.deliver import Endpoint

        outcome = _Delivery(acked=[], rejected={}, failed={})
        total = scalar(con, "SELECT count(*) FROM changes WHERE payload IS NOT NULL")
        if total == 0:
            return outcome
        if self.client_factory is None:
            raise ConfigError("no delivery client configured")
        client = self.client_factory()
        journal = Journal(journal_path)
        done = 0

        def on_result(batch: Any) -> None:
            nonlocal done
            journal.append(batch.acked, batch.rejected, batch.failed)
            outcome.acked.extend(_ranges(batch.acked))
            outcome.rejected.update(batch.rejected)
            outcome.failed.update(batch.failed)

        def on_progress(rows: int) -> None:
            nonlocal done
            done += rows
            if self.progress:
                self.progress(f"{self.sync.name}: sending", done, total)

        try:
            for ops, endpoint_name in self.mode.deliveries:
                op_group = ", ".join(literal(op) for op in ops)
                chunks = _chunks(con, f"op IN ({op_group}) AND payload IS NOT NULL")
                stats = client.deliver(
                    Endpoint[endpoint_name], chunks, on_result=on_result,
                    skip_hook=not self.sync.options.trigger_data_stream,
                    halt_on_reject=not self.sync.options.skip_invalid_records,
                    progress=on_progress)
                outcome.requests += int(getattr(stats, "requests", 0))
                if getattr(stats, "halted", False):
                    outcome.error = (f"sync {self.sync.name!r} halted at the first row Insider rejected: "
                                     f"{getattr(stats, 'halt_reason', None) or 'see reverse-etl rejected'}")
                    break
        except DeliveryError as exc:
            outcome.error = str(exc)
        finally:
            journal.close()
        return outcome

    # ------------------------------------------------------------ commit
    def _commit(self, con: duckdb.DuckDBPyConnection, result: SyncResult, *,
                acked: Sequence[tuple[int, int]]) -> None:
        t0 = time.perf_counter()
        _acked_table(con, acked)
        auto = ", ".join(literal(op) for op in diff.AUTO_ACKED_OPS)
        touched = (bool(acked) or bool(scalar(con, f"SELECT count(*) FROM changes WHERE op IN ({auto})"))
                   or bool(scalar(con, "SELECT count(*) FROM delta")))
        unchanged_snapshot = not touched and self.state.meta().fingerprint == self.fingerprint
        if not unchanged_snapshot:
            diff.fold(con, self.tracked, "acked", self.mode.prune_sql())
        rejected.build_new_rejected(con, result.run_id, with_validation=True, carry_unacked=False)
        meta = self._write_state(con, result.run_id, self.fingerprint, keep_snapshot=unchanged_snapshot)
        result.counts["snapshot_rows"] = meta.rows
        result.seconds["commit"] = round(time.perf_counter() - t0, 3)

    def _write_state(self, con: duckdb.DuckDBPyConnection, run_id: str, fingerprint: str | None,
                     *, keep_snapshot: bool = False) -> Meta:
        """Write the new snapshot and rejected rows, then make them current atomically.

        ``keep_snapshot``: nothing was acknowledged, so the current snapshot file stays
        (a no-change run over millions of rows must not rewrite them).
        """
        previous = self.state.meta()
        rej_name = f"rejected-{run_id}.parquet"
        if keep_snapshot and previous.snapshot:
            snap_name, rows = previous.snapshot, previous.rows
        else:
            snap_name = f"snapshot-{run_id}.parquet"
            con.execute(f"COPY new_snap TO {literal(str(self.state.path(snap_name)))} (FORMAT parquet, COMPRESSION zstd)")
            rows = scalar(con, "SELECT count(*) FROM new_snap")
        con.execute(f"COPY new_rej TO {literal(str(self.state.path(rej_name)))} (FORMAT parquet)")
        meta = Meta(fingerprint=fingerprint, snapshot=snap_name, rejected=rej_name,
                    folded_run=run_id, rows=rows)
        self.state.commit(meta)
        return meta

    def _recover(self, con: duckdb.DuckDBPyConnection) -> int:
        """Fold a crashed run's acknowledged rows into the snapshot. Returns rows folded."""
        pending = self.state.pending()
        if pending is None:
            return 0
        meta = self.state.meta()
        if meta.folded_run == pending.run_id:
            self.state.clear_pending()  # crashed after its commit: nothing left to do
            return 0
        folded = self._fold_pending_in_memory(con, pending=pending)
        rej_path = self.state.rejected_path()
        rejected.load_rejected(con, str(rej_path) if rej_path else None)
        con.execute(f"CREATE OR REPLACE TABLE held ({rejected.REJECTED_COLUMNS})")
        rejected.build_new_rejected(con, pending.run_id, with_validation=False, carry_unacked=True)
        self._write_state(con, pending.run_id, pending.fingerprint)
        return folded

    def _fold_pending_in_memory(self, con: duckdb.DuckDBPyConnection, pending: Pending | None = None) -> int:
        pending = pending or self.state.pending()
        assert pending is not None
        pending_path, journal_path = self.state.pending_paths(pending.run_id)
        same = pending.fingerprint == self.fingerprint
        old_fields = self.tracked if same else _fields_named(pending.fields)
        snapshot = self.state.snapshot_path()
        if snapshot is not None:
            diff.load_snapshot(con, str(snapshot), old_fields)
        else:
            diff.create_empty_snapshot(con, old_fields)
        con.execute(f"CREATE OR REPLACE TABLE changes AS SELECT *, NULL::VARCHAR AS payload "
                    f"FROM read_parquet({literal(str(pending_path))})")
        contents = read_journal(journal_path)
        _acked_table(con, contents.acked_ranges)
        rejected.outcome_table(con, contents.rejected, contents.failed)
        diff.fold(con, old_fields, "acked", self.mode.prune_sql() if same else None, with_delta=False)
        return sum(e - s + 1 for s, e in contents.acked_ranges)

    # ----------------------------------------------------------- samples
    def _validation_samples(self, con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
        rows = con.execute(f"SELECT key, reason FROM cur WHERE reason IS NOT NULL ORDER BY key LIMIT {int(limit)}").fetchall()
        return [{"key": k, "kind": "validation", "reason": r} for k, r in rows]

    def _rejected_samples(self, con: duckdb.DuckDBPyConnection, limit: int = 5) -> list[dict[str, Any]]:
        rows = con.execute(f"SELECT key, kind, reason FROM new_rej ORDER BY kind, key LIMIT {int(limit)}").fetchall()
        return [{"key": k, "kind": kind, "reason": r} for k, kind, r in rows]


def _fields_named(names: Sequence[str]) -> list[Field]:
    """Stand-in fields for folding a snapshot made under an older mapping (names only matter)."""
    out = []
    for name in names:
        group, _, rest = name.partition(".")
        custom = rest.startswith("custom.")
        out.append(Field(group, rest.removeprefix("custom."), custom, name))  # type: ignore[arg-type]
    return out


def _acked_table(con: duckdb.DuckDBPyConnection, ranges: Sequence[tuple[int, int]]) -> None:
    table = pa.table({"s": pa.array([r[0] for r in ranges], pa.int64()),
                      "e": pa.array([r[1] for r in ranges], pa.int64())})
    con.register("acked_ranges", table)
    con.execute("CREATE OR REPLACE TABLE acked AS SELECT unnest(range(s, e + 1)) AS row_id FROM acked_ranges")
    con.unregister("acked_ranges")


def _ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for row_id in sorted(ids):
        if out and out[-1][1] == row_id - 1:
            out[-1] = (out[-1][0], row_id)
        else:
            out.append((row_id, row_id))
    return out


def _chunks(con: duckdb.DuckDBPyConnection, where: str, size: int = 20_000) -> Iterator[tuple[list[int], list[str]]]:
    cursor = con.cursor()
    reader = arrow_reader(cursor, f"SELECT row_id, payload FROM changes WHERE {where} ORDER BY row_id", size)
    for batch in reader:
        yield batch.column(0).to_pylist(), batch.column(1).to_pylist()
    cursor.close()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
