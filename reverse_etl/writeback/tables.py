"""The three write-back tables and their columns, in a warehouse-neutral form."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from reverse_etl.project.operate import WritebackConfig

COUNT_COLUMNS = ("added", "changed", "removed", "unchanged", "invalid", "held_back", "to_send", "acked",
                 "rejected", "failed", "recovered", "snapshot_rows")
"""The run's counts, one column each (a count the run did not reach is NULL)."""

RUNS: dict[str, pa.DataType] = {
    "run_id": pa.string(), "sync": pa.string(), "target": pa.string(), "outcome": pa.string(),
    "failure": pa.string(), "message": pa.string(), "started_at": pa.timestamp("us"),
    "finished_at": pa.timestamp("us"), "seconds": pa.float64(), "full_resend_reason": pa.string(),
    "requests": pa.int64(), **{c: pa.int64() for c in COUNT_COLUMNS}, "notes": pa.string(),
}
"""One row per run. Timestamps are UTC."""

REJECTED: dict[str, pa.DataType] = {
    "run_id": pa.string(), "sync": pa.string(), "row_key": pa.string(), "operation": pa.string(),
    "kind": pa.string(), "reason": pa.string(), "attempts": pa.int64(), "last_tried_run_id": pa.string(),
    "payload": pa.string(),
}
"""The rows a run left held back: kind (validation, insider, failed) and the reason for each."""

CHANGES: dict[str, pa.DataType] = {
    "run_id": pa.string(), "sync": pa.string(), "row_key": pa.string(), "change": pa.string(),
    "operation": pa.string(), "changed_fields": pa.string(), "outcome": pa.string(),
    "reason": pa.string(), "payload": pa.string(),
}
"""One row per operation of a run: added/changed/removed, the fields it changed (a JSON array),
and what became of it: acked, rejected, failed, held_back, not_sent, or no_request."""


def schema(columns: Mapping[str, pa.DataType]) -> pa.Schema:
    """The Arrow schema of a table's columns."""
    return pa.schema(list(columns.items()))


def table_names(config: WritebackConfig) -> dict[str, tuple[str, Mapping[str, pa.DataType]]]:
    """Spool file stem → (warehouse table name, columns)."""
    return {"run": (config.runs_table, RUNS), "rejected": (config.rejected_table, REJECTED),
            "changes": (config.changes_table, CHANGES)}
