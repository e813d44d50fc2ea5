"""Rows held back from Insider: why, how often tried, and what was sent.

Three kinds: ``validation`` (we refused the row before sending: bad email, null
or duplicate key, a disallowed type), ``insider`` (Insider rejected the row in a
200-with-fail answer or a bisected 400) and ``failed`` (the request kept failing
after its retries). Rejected and failed rows keep their old snapshot value, so
the next diff shows them again; after ``max_attempts`` tries with the same
payload a row is held back until it changes or the sync is reset.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pyarrow as pa

from reverse_etl.diff.sqltext import literal, scalar

REJECTED_COLUMNS = (
    "key VARCHAR, op VARCHAR, kind VARCHAR, reason VARCHAR, attempts INTEGER, "
    "payload VARCHAR, last_run VARCHAR"
)


def load_rejected(con: duckdb.DuckDBPyConnection, path: str | None) -> None:
    """``old_rej`` from the sync's rejected-rows file, or empty."""
    con.execute(f"CREATE OR REPLACE TABLE old_rej ({REJECTED_COLUMNS})")
    if path:
        con.execute(f"INSERT INTO old_rej SELECT * FROM read_parquet({literal(path)})")


def hold_back(con: duckdb.DuckDBPyConnection, max_attempts: int) -> int:
    """Hold back rows Insider rejected ``max_attempts`` times with the same payload.

    Their operations become ``held`` (not sent, not acknowledged: the snapshot keeps
    the old values and the next run diffs them again) and their entries are copied
    to ``held`` so they stay listed by ``rejected``. Rows that *failed* (outages,
    timeouts) are never held back: they are retried every run. Returns how many.
    """
    con.execute(f"""
        CREATE OR REPLACE TABLE held AS
        SELECT r.* FROM old_rej r JOIN changes ch
          ON r.key = ch.key AND r.op = ch.op AND r.payload IS NOT DISTINCT FROM ch.payload
        WHERE r.kind = 'insider' AND r.attempts >= {int(max_attempts)}
    """)
    con.execute("""
        UPDATE changes ch SET op = 'held', payload = NULL
        WHERE EXISTS (SELECT 1 FROM held h WHERE h.key = ch.key AND h.op = ch.op)
    """)
    return scalar(con, "SELECT count(*) FROM held")


def outcome_table(con: duckdb.DuckDBPyConnection, rejected: Mapping[int, str],
                  failed: Mapping[int, str]) -> None:
    """``outcome`` (row_id, kind, reason) from the delivery results."""
    if not rejected and not failed:
        # The usual case. Handing DuckDB an Arrow table imports pandas (~1 s): not for nothing.
        con.execute("CREATE OR REPLACE TABLE outcome (row_id BIGINT, kind VARCHAR, reason VARCHAR)")
        return
    ids = list(rejected) + list(failed)
    kinds = ["insider"] * len(rejected) + ["failed"] * len(failed)
    reasons = list(rejected.values()) + list(failed.values())
    table = pa.table({"row_id": pa.array(ids, pa.int64()), "kind": kinds, "reason": reasons},
                     schema=pa.schema([("row_id", pa.int64()), ("kind", pa.string()), ("reason", pa.string())]))
    con.register("outcome_arrow", table)
    con.execute("CREATE OR REPLACE TABLE outcome AS SELECT * FROM outcome_arrow")
    con.unregister("outcome_arrow")


def build_new_rejected(con: duckdb.DuckDBPyConnection, run_id: str, *, with_validation: bool,
                       carry_unacked: bool) -> None:
    """``new_rej`` = this run's rejections (+ validation) + held-back rows.

    ``carry_unacked`` (crash recovery) keeps old entries whose rows were not
    acknowledged, since that run never reached its own bookkeeping.
    """
    parts = [f"""
        SELECT ch.key, ch.op, o.kind, o.reason,
               (coalesce(r.attempts, 0) + 1)::INTEGER AS attempts, ch.payload, {literal(run_id)} AS last_run
        FROM outcome o JOIN changes ch ON ch.row_id = o.row_id
        -- A changed payload is a new row to Insider: its attempts start again.
        LEFT JOIN old_rej r ON r.key = ch.key AND r.op = ch.op AND r.payload IS NOT DISTINCT FROM ch.payload
    """, "SELECT * FROM held"]
    if with_validation:
        parts.append(f"""
            SELECT key, 'validate' AS op, 'validation' AS kind, any_value(reason) AS reason,
                   1 AS attempts, NULL AS payload, {literal(run_id)} AS last_run
            FROM cur WHERE reason IS NOT NULL GROUP BY key
        """)
    if carry_unacked:
        parts.append("""
            SELECT r.* FROM old_rej r
            WHERE NOT EXISTS (SELECT 1 FROM changes ch JOIN acked a ON a.row_id = ch.row_id
                              WHERE ch.key = r.key AND ch.op = r.op)
              AND NOT EXISTS (SELECT 1 FROM outcome o JOIN changes ch ON ch.row_id = o.row_id
                              WHERE ch.key = r.key AND ch.op = r.op)
              AND NOT EXISTS (SELECT 1 FROM held h WHERE h.key = r.key AND h.op = r.op)
        """)
    con.execute("CREATE OR REPLACE TABLE new_rej AS " + " UNION ALL ".join(parts))
