"""Copy what a run did out of its workspace into the write-back spool.

The change log and rejected rows are one ``COPY ... TO parquet`` each over the
run's own DuckDB tables (``changes`` joined to ``acked`` and ``outcome``, and
``new_rej``): the engine's record of what was sent and what Insider answered,
never recomputed and never row by row in Python. The run record follows at
:class:`~reverse_etl.run.events.RunFinished`, when the spool entry becomes ready
(``<state>/writeback/<run_id>/``) for :func:`reverse_etl.writeback.flush_spool`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from reverse_etl.diff.compare import AUTO_ACKED_OPS
from reverse_etl.diff.sqltext import ident, literal
from reverse_etl.project.config import Project
from reverse_etl.project.operate import WritebackConfig
from reverse_etl.redact import redact, redact_value
from reverse_etl.run.events import Hook, RunEvent, RunFinished, RunStarted, WorkspaceSettled
from reverse_etl.run.results import SyncResult
from reverse_etl.writeback import tables

log = logging.getLogger("reverse_etl.writeback")

SPOOL_DIR = "writeback"
PARTIAL_SUFFIX = ".partial"


def spool_dir(state_dir: Path) -> Path:
    """Where spooled runs wait for the warehouse."""
    return state_dir / SPOOL_DIR


def changes_sql(con: duckdb.DuckDBPyConnection, run_id: str, sync: str, include_payload: bool) -> str:
    """The change log of the run in ``con``: one row per operation of ``changes``."""
    columns = [c for (c, *_) in con.execute("DESCRIBE changes").fetchall()]
    before = {c for (c, *_) in con.execute("DESCRIBE delta").fetchall()}
    fields = [c[2:] for c in columns if c.startswith("w:") and f"v:{c[2:]}" in columns]
    # A field changed when the operation writes it and its value differs from what the snapshot
    # held (``delta``'s ``s:`` columns; a new row has none). Removed rows are not in ``delta``:
    # theirs are the fields the operation writes (cleared), if any.
    tests = []
    for f in fields:
        written, value = ident("w:" + f), ident("v:" + f)
        differs = f"ch.{value} IS DISTINCT FROM d.{ident('s:' + f)}" if f"s:{f}" in before else "TRUE"
        tests.append(f"CASE WHEN ch.{written} AND (ch.change = 'removed' OR {differs}) "
                     f"THEN {literal(f)} END")
    if tests:
        changed = f"to_json(list_filter([{', '.join(tests)}], lambda x: x IS NOT NULL))::VARCHAR"
    else:
        changed = "NULL::VARCHAR"
    auto = ", ".join(literal(op) for op in AUTO_ACKED_OPS)
    payload = "ch.payload" if include_payload else "NULL::VARCHAR"
    return f"""
        SELECT {literal(run_id)} AS run_id, {literal(sync)} AS sync, ch.key AS row_key, ch.change,
               ch.op AS operation, {changed} AS changed_fields,
               CASE WHEN ch.op = 'held' THEN 'held_back'
                    WHEN ch.op IN ({auto}) OR ch.payload IS NULL THEN 'no_request'
                    WHEN a.row_id IS NOT NULL THEN 'acked'
                    WHEN o.kind = 'failed' THEN 'failed'
                    WHEN o.kind IS NOT NULL THEN 'rejected'
                    ELSE 'not_sent' END AS outcome,
               CASE WHEN a.row_id IS NULL THEN o.reason END AS reason, {payload} AS payload
        FROM changes ch
        LEFT JOIN delta d ON d.key = ch.key AND ch.change <> 'removed'
        LEFT JOIN (SELECT DISTINCT row_id FROM acked) a ON a.row_id = ch.row_id
        LEFT JOIN outcome o ON o.row_id = ch.row_id
    """


def rejected_sql(run_id: str, sync: str, include_payload: bool) -> str:
    """The rows the run in the workspace left held back (``new_rej``), with their reasons."""
    payload = "payload" if include_payload else "NULL::VARCHAR"
    return f"""
        SELECT {literal(run_id)} AS run_id, {literal(sync)} AS sync, key AS row_key, op AS operation,
               kind, reason, attempts::BIGINT AS attempts, last_run AS last_tried_run_id, {payload} AS payload
        FROM new_rej
    """


def run_row(result: SyncResult, started_at: str | None, finished_at: datetime,
            target: str | None) -> dict[str, Any]:
    """The runs-table row of a finished run (every text redacted)."""
    started = _timestamp(started_at) or finished_at.replace(tzinfo=None)
    row: dict[str, Any] = {
        "run_id": result.run_id, "sync": result.sync, "target": target, "outcome": result.outcome,
        "failure": result.failure, "message": redact(result.message) if result.message else None,
        "started_at": started, "finished_at": finished_at.replace(tzinfo=None),
        "seconds": float(result.seconds.get("total", 0.0)),
        "full_resend_reason": result.full_resend_reason, "requests": int(result.requests),
        "notes": json.dumps(redact_value(list(result.notes))),
    }
    row.update({c: (int(result.counts[c]) if c in result.counts else None) for c in tables.COUNT_COLUMNS})
    return row


def _timestamp(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


class _Capture:
    """The hook's state across one invocation's runs: where each run's spool entry is."""

    def __init__(self, project: Project[Any], config: WritebackConfig) -> None:
        self.project = project
        self.config = config
        self.started: dict[str, str] = {}

    def partial(self, run_id: str) -> Path:
        return spool_dir(self.project.state_dir) / f"{run_id}{PARTIAL_SUFFIX}"

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted) and not event.dry_run:
            self.started[event.run_id] = event.started_at
        elif isinstance(event, WorkspaceSettled):
            self._copy_workspace(event)
        elif isinstance(event, RunFinished) and event.result.run_id in self.started:
            self._finish(event.result)

    def _copy_workspace(self, event: WorkspaceSettled) -> None:
        result, con = event.result, event.connection
        where = self.partial(result.run_id)
        where.mkdir(parents=True, exist_ok=True)
        try:
            present = {n for (n,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            pay = self.config.include_payload
            if {"changes", "delta", "acked", "outcome"} <= present:
                con.execute(f"COPY ({changes_sql(con, result.run_id, result.sync, pay)}) "
                            f"TO {literal(str(where / 'changes.parquet'))} (FORMAT parquet)")
            if "new_rej" in present:
                con.execute(f"COPY ({rejected_sql(result.run_id, result.sync, pay)}) "
                            f"TO {literal(str(where / 'rejected.parquet'))} (FORMAT parquet)")
        except (duckdb.Error, OSError) as exc:
            line = redact(f"write-back: could not capture the change log of run {result.run_id}: {exc}")
            log.warning("%s", line)
            result.notes.append(line.splitlines()[0])

    def _finish(self, result: SyncResult) -> None:
        where = self.partial(result.run_id)
        try:
            where.mkdir(parents=True, exist_ok=True)
            row = run_row(result, self.started.pop(result.run_id, None), datetime.now(UTC),
                          self.project.target)
            pq.write_table(pa.Table.from_pylist([row], schema=tables.schema(tables.RUNS)),
                           where / "run.parquet")
            ready = where.with_name(result.run_id)
            shutil.rmtree(ready, ignore_errors=True)
            os.replace(where, ready)  # now complete: the flush may take it
        except OSError as exc:
            line = redact(f"write-back: could not spool run {result.run_id}: {exc}")
            log.warning("%s", line)
            result.notes.append(line)


def writeback_hook(project: Project[Any]) -> Hook | None:
    """A hook spooling each run's write-back rows, or None without ``writeback:``."""
    config = project.config.writeback
    return None if config is None else _Capture(project, config)
