"""One sync run, start to finish: source → diff → deliver → commit.

The runner composes the stages (``engine`` for the diff, :mod:`.delivery`,
:mod:`.commit`); none of them imports another. It never prints and never exits:
it returns :class:`SyncResult` and raises typed errors.
"""

from __future__ import annotations

import hashlib
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from reverse_etl.diff import compare as diff
from reverse_etl.diff import rejected
from reverse_etl.diff.sqltext import first_row, ident, literal, scalar
from reverse_etl.diff.workspace import MODEL_TABLE, engine_connection, load_model
from reverse_etl.errors import DeliveryError, SourceError
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.fields import Field, encode_field, resolve_columns
from reverse_etl.insider.modes import mode_for
from reverse_etl.project.config import Project
from reverse_etl.project.model_sql import ResolvedModel
from reverse_etl.run.baseline import load_baseline
from reverse_etl.run.commit import Committer
from reverse_etl.run.delivery import Client, ProgressCallback, deliver_changes
from reverse_etl.run.results import SyncResult
from reverse_etl.state import Ledger, RunRecord, SyncState
from reverse_etl.state.store import Pending
from reverse_etl.warehouses.base import Source

__all__ = ["ProgressCallback", "SyncRunner", "new_run_id", "sync_fingerprint"]

SNAPSHOT_FORMAT = 4
"""Bump when the snapshot's meaning changes: every sync then resends in full."""

def new_run_id() -> str:
    """Sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def sync_fingerprint(sync: SyncConfig, model: ResolvedModel) -> str:
    """Hash of everything that decides what the snapshot means.

    A changed fingerprint means a full resend. For attribute syncs that is the
    mapping, the options and the model's SQL. An event snapshot is only the set of
    event keys already sent, so only what defines a key counts: the key column,
    or (digest keys) the identifiers and event mapping. Resending events after a
    model edit would duplicate them at Insider.
    """
    relevant: dict[str, Any]
    if sync.mode == "user_events" and sync.event is not None:
        if sync.event.key:
            relevant = {"mode": sync.mode, "event_key": sync.event.key}
        else:
            relevant = sync.model_dump(mode="json", include={"mode", "identifiers", "event"})
            relevant["event"].pop("ttl_days", None)
    else:
        relevant = sync.model_dump(mode="json", include={"mode", "operation", "identifiers", "attributes"})
        # Only options that change what is sent; toggling skip_hook or halting is no resend.
        relevant["options"] = sync.options.model_dump(include={
            "append_arrays", "treat_email_as_identifier", "treat_phone_as_identifier"})
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
        self.client_factory = client_factory
        self.progress = progress
        self.state = SyncState(project.state_dir, sync.name)
        self.mode = mode_for(sync)
        self.model = model = self.mode.prepare_model(project, model)  # e.g. audience columns
        self.tracked = self.mode.tracked
        self.fingerprint = sync_fingerprint(sync, model)
        self.committer = Committer(self.state, self.tracked, self.fingerprint, self.mode.prune_sql())

    def _engine(self, spill_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
        state = self.project.config.state
        return engine_connection(spill_dir or self.state.tmp_dir, state.memory_limit, state.threads)

    # ------------------------------------------------------------------ API
    def plan(self, *, full_refresh: bool = False, samples: int = 3) -> SyncResult:
        """Dry run: what a run would send. Sends nothing and writes nothing."""
        result = SyncResult(sync=self.sync.name, run_id=new_run_id(), outcome="planned")
        started = time.perf_counter()
        spill = tempfile.TemporaryDirectory(prefix="reverse_etl_plan_")  # plan writes no state
        con = self._engine(Path(spill.name))
        try:
            self._load_and_diff(con, result, full_refresh=full_refresh, fold_pending=True)
            # A few payloads of each kind: "upsert (changed)", "upsert (added)", ...
            rows = con.execute(f"""
                SELECT op || ' (' || change || ')', payload FROM changes WHERE payload IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY op, change ORDER BY row_id) <= {int(samples)}
                ORDER BY change DESC, op, row_id
            """).fetchall()
            for kind, payload in rows:
                result.samples.setdefault(kind, []).append(payload)
            result.rejected_samples = self._validation_samples(con, samples)
        finally:
            con.close()
            spill.cleanup()
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
        if (self.sync.on_removed != "ignore" and not self.sync.options.allow_empty_model
                and result.counts["removed"] and not scalar(con, "SELECT count(*) FROM cur_raw")):
            result.outcome = "failed"
            result.message = (f"sync {self.sync.name!r}: model {self.model.name!r} returned no rows, which would "
                              f"{self.sync.on_removed.replace('_', ' ')} for all {result.counts['removed']} "
                              "users; nothing was sent. If that is intended, set options.allow_empty_model: true")
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
            # Recovery folds into what this run diffed against (nothing, or resend knowledge).
            self.state.begin_pending(Pending(run_id=result.run_id, fingerprint=self.fingerprint,
                                             fields=[f.name for f in self.tracked],
                                             base_snapshot=self.baseline.snapshot,
                                             resend_base=self.baseline.resend))
        delivery = deliver_changes(con, self.sync, self.mode.deliveries, self.client_factory,
                                   journal_path, self.progress)
        result.seconds["deliver"] = round(time.perf_counter() - t0, 3)
        result.requests = delivery.requests
        result.counts["acked"] = delivery.acked_count
        result.counts["rejected"] = len(delivery.rejected)
        result.counts["failed"] = len(delivery.failed)
        rejected.outcome_table(con, delivery.rejected, delivery.failed)
        t1 = time.perf_counter()
        result.counts["snapshot_rows"] = self.committer.commit(con, result.run_id, delivery.acked).rows
        result.seconds["commit"] = round(time.perf_counter() - t1, 3)
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
            result.counts["recovered"] = self.committer.recover(con)
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
        self.baseline = load_baseline(con, self.state, self.committer, self.tracked, self.fingerprint,
                                      full_refresh=full_refresh, reconcile=self.mode.reconciles_resend,
                                      plan=fold_pending)
        result.full_resend_reason = self.baseline.reason
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
        if "digest" not in {c for c, *_ in con.execute("DESCRIBE changes").fetchall()}:
            # A mode that built `changes` itself: each operation still carries its digest.
            con.execute("CREATE OR REPLACE TABLE changes AS SELECT ch.*, d.digest "
                        "FROM changes ch LEFT JOIN delta d ON d.key = ch.key")
        rej_path = self.state.rejected_path()
        rejected.load_rejected(con, str(rej_path) if rej_path else None)
        result.counts["held_back"] = rejected.hold_back(con, self.sync.max_attempts)
        result.counts.update(self._diff_counts(con))
        result.seconds["diff"] = round(time.perf_counter() - t1, 3)

    def _diff_counts(self, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        row = first_row(con, """
            SELECT
              (SELECT count(DISTINCT key) FROM changes WHERE change = 'added' AND op <> 'held'),
              (SELECT count(DISTINCT key) FROM changes WHERE change = 'changed' AND op <> 'held'),
              (SELECT count(DISTINCT key) FROM changes WHERE change = 'removed'),
              (SELECT count(*) FROM cur_raw) - (SELECT count(*) FROM cur WHERE reason IS NOT NULL),
              (SELECT count(*) FROM cur WHERE reason IS NOT NULL),
              (SELECT count(*) FROM changes WHERE payload IS NOT NULL),
              (SELECT count(*) FROM (SELECT key FROM changes WHERE change <> 'removed'
                                     GROUP BY key HAVING bool_and(op = 'held')))
        """)
        assert row is not None
        added, changed, removed, valid, invalid, to_send, held = (int(v) for v in row)
        return {"added": added, "changed": changed, "removed": removed,
                "unchanged": valid - added - changed - held, "invalid": invalid, "to_send": to_send}

    # ----------------------------------------------------------- samples
    def _validation_samples(self, con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
        rows = con.execute(f"SELECT key, reason FROM cur WHERE reason IS NOT NULL ORDER BY key LIMIT {int(limit)}").fetchall()
        return [{"key": k, "kind": "validation", "reason": r} for k, r in rows]

    def _rejected_samples(self, con: duckdb.DuckDBPyConnection, limit: int = 5) -> list[dict[str, Any]]:
        rows = con.execute(f"SELECT key, kind, reason FROM new_rej ORDER BY kind, key LIMIT {int(limit)}").fetchall()
        return [{"key": k, "kind": kind, "reason": r} for k, kind, r in rows]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
