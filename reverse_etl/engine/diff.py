"""Diff and fold in DuckDB: current rows vs the acknowledged snapshot.

Tables in the engine connection:

``cur``      key, one column per field (encoded JSON text), ``digest`` of the
             tracked fields, ``reason`` (why the row cannot be sent, or NULL).
``snap``     key, the tracked fields, ``digest``: what Insider acknowledged.
``delta``    valid current rows that are new or whose digest changed.
``changes``  built by the sync's mode (see ``engine.modes``): one row per
             operation, with ``row_id``, ``key``, ``change``, ``op``, ``payload``
             (the JSON Insider receives) and, per tracked field, ``v:<f>`` (value
             to write into the snapshot once acknowledged) and ``w:<f>`` (write it?).

``noop`` and ``forget`` operations need no request and count as acknowledged;
``forget``, ``delete_user`` and ``remove_clear`` drop the key from the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from reverse_etl.engine.fields import EncodedField, Field
from reverse_etl.engine.sqltext import ident, literal

AUTO_ACKED_OPS = ("noop", "forget")
DROP_OPS = ("forget", "delete_user", "remove_clear")


def create_current(con: duckdb.DuckDBPyConnection, source_table: str,
                   encoded: Sequence[EncodedField], key_sql: str, key_label: str,
                   tracked: Sequence[Field], extra_reasons: Sequence[str] = ()) -> None:
    """Build ``cur`` from the model rows: key, encoded fields, digest, reject reason."""
    values = ",\n  ".join(f"CAST({e.value_sql} AS VARCHAR) AS {ident(e.field.name)}" for e in encoded)
    reasons = ", ".join([e.reason_sql for e in encoded if e.reason_sql != "NULL"] + list(extra_reasons)) or "NULL"
    digest = digest_sql(tracked)
    # Duplicate keys by aggregation, not a window: far cheaper over millions of rows.
    con.execute(f"""
        CREATE OR REPLACE TABLE cur AS
        WITH encoded AS (
          SELECT {key_sql} AS key, {values},
            nullif(concat_ws('; ', {reasons}), '') AS field_reason
          FROM {source_table}
        ),
        dups AS (SELECT key, count(*) AS n FROM encoded WHERE key IS NOT NULL GROUP BY key HAVING count(*) > 1)
        SELECT e.* EXCLUDE (field_reason), {digest} AS digest,
          CASE
            WHEN e.key IS NULL THEN {literal(f'null key: {key_label} is empty; every row needs one')}
            WHEN d.n IS NOT NULL THEN {literal(f'duplicate key: {key_label}=')} || e.key || ' appears in '
                 || d.n || ' rows; make the model return one row per key'
            ELSE e.field_reason
          END AS reason
        FROM encoded e LEFT JOIN dups d ON e.key = d.key
    """)


def digest_sql(fields: Sequence[Field], prefix: str = "") -> str:
    """128-bit digest (md5, hex) of a row's encoded fields, to find changed rows fast.

    Fields are JSON texts, which never hold raw control characters, so the
    separators make the concatenation unambiguous.
    """
    if not fields:
        return "md5('')"
    parts = ", ".join(f"coalesce({prefix}{ident(f.name)}, chr(30))" for f in fields)
    return f"md5(concat_ws(chr(31), {parts}))"


def _drop_snap(con: duckdb.DuckDBPyConnection) -> None:
    # DROP VIEW IF EXISTS fails when a *table* of that name exists, so ask first.
    kinds = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'snap'"
    ).fetchall()
    for (kind,) in kinds:
        con.execute("DROP VIEW snap" if kind == "VIEW" else "DROP TABLE snap")


def create_empty_snapshot(con: duckdb.DuckDBPyConnection, fields: Sequence[Field]) -> None:
    """An empty ``snap`` (first run, full refresh, or a changed mapping)."""
    columns = ", ".join(f"{ident(f.name)} VARCHAR" for f in fields)
    _drop_snap(con)
    con.execute(f"CREATE TABLE snap (key VARCHAR, {columns}, digest VARCHAR)")


def load_snapshot(con: duckdb.DuckDBPyConnection, path: str, fields: Sequence[Field]) -> None:
    """``snap`` as a view of a snapshot Parquet file.

    A view, not a copy: the diff reads only ``key`` and ``digest`` of every row
    (Parquet projection pushdown) and the other columns of changed rows only.
    """
    columns = ", ".join(ident(f.name) for f in fields)
    _drop_snap(con)
    con.execute(f"CREATE VIEW snap AS SELECT key, {columns}, digest FROM read_parquet({literal(path)})")


def replace_snapshot(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Make ``table`` (e.g. a folded ``new_snap``) the ``snap`` the diff compares against."""
    _drop_snap(con)
    con.execute(f"CREATE TABLE snap AS SELECT * FROM {table}")


def create_delta(con: duckdb.DuckDBPyConnection, tracked: Sequence[Field]) -> None:
    """``delta``: valid current rows that are new or differ from the snapshot.

    One join over all rows; everything after it works on the (usually small) delta.
    Columns: the current fields, ``s_key`` and ``s:<field>`` (tracked snapshot values).
    """
    snap_cols = ", ".join(f"s.{ident(f.name)} AS {ident('s:' + f.name)}" for f in tracked)
    # Two steps: the join over all rows carries only key and digest; full values
    # are fetched for the changed keys alone.
    con.execute("""
        CREATE OR REPLACE TABLE delta_keys AS
        SELECT c.key FROM (SELECT key, digest FROM cur WHERE reason IS NULL) c
        LEFT JOIN (SELECT key, digest FROM snap) s ON c.key = s.key
        WHERE s.key IS NULL OR c.digest <> s.digest
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE delta AS
        SELECT c.*, s.key AS s_key, {snap_cols}
        FROM delta_keys k JOIN cur c ON c.key = k.key
        LEFT JOIN snap s ON s.key = k.key
        WHERE c.reason IS NULL
    """)


def fold(con: duckdb.DuckDBPyConnection, fields: Sequence[Field], acked_table: str,
         prune_sql: str | None = None) -> None:
    """``new_snap`` = ``snap`` with the acknowledged rows of ``changes`` applied.

    ``fields`` are the tracked fields. ``acked_table`` has one column ``row_id``.
    Operations that need no request (``noop``, ``forget``) are applied as
    acknowledged. ``prune_sql`` drops rows (e.g. events past their TTL).
    """
    merged_cols = ", ".join(
        f"bool_or({ident('w:' + f.name)}) AS {ident('w:' + f.name)}, "
        f"max({ident('v:' + f.name)}) FILTER (WHERE {ident('w:' + f.name)}) AS {ident('v:' + f.name)}"
        for f in fields)
    final_cols = ", ".join(
        f"CASE WHEN m.{ident('w:' + f.name)} THEN m.{ident('v:' + f.name)} ELSE s.{ident(f.name)} END AS {ident(f.name)}"
        for f in fields)
    auto = ", ".join(literal(op) for op in AUTO_ACKED_OPS)
    drops = ", ".join(literal(op) for op in DROP_OPS)
    con.execute(f"""
        CREATE OR REPLACE TABLE new_snap AS
        WITH acked AS (
          SELECT ch.* FROM changes ch
          WHERE ch.op IN ({auto}) OR ch.row_id IN (SELECT row_id FROM {acked_table})
        ),
        merged AS (
          SELECT key, {merged_cols} FROM acked WHERE op NOT IN ({drops}) GROUP BY key
        ),
        dropped AS (SELECT DISTINCT key FROM acked WHERE op IN ({drops}))
        SELECT *, {digest_sql(fields)} AS digest FROM (
          SELECT coalesce(s.key, m.key) AS key, {final_cols}
          FROM snap s FULL OUTER JOIN merged m ON s.key = m.key
          WHERE NOT EXISTS (SELECT 1 FROM dropped d WHERE d.key = coalesce(s.key, m.key))
        )
        WHERE NOT coalesce({prune_sql or "FALSE"}, FALSE)
    """)
