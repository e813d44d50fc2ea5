"""Diff and fold in DuckDB: current rows vs the acknowledged snapshot.

Tables in the engine connection:

``cur_raw``  every model row: key, the mapped raw columns (``col:<name>``) and a
             ``digest`` (md5) of the tracked ones. ``present`` views its keys.
``snap``     key, the tracked fields (encoded), ``digest``: what Insider acknowledged.
``delta_keys`` keys that are new or whose digest differs from the snapshot's.
``cur``      the rows that matter this run (delta, null or duplicate keys):
             encoded fields (JSON text) and ``reason`` (why it can't be sent, or NULL).
``delta``    valid rows of ``cur`` with their snapshot values (``s_key``, ``s:<f>``).
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

from reverse_etl.diff.fields import EncodedField, Field
from reverse_etl.diff.sqltext import ident, literal

AUTO_ACKED_OPS = ("noop", "forget")
RESEND_DIGEST = "full-resend"
"""Digest of a snapshot row kept only as knowledge for a full resend: it never equals
a row's md5, so every such key is diffed again and (``delta.resend``) sent in full."""
DROP_OPS = ("forget", "delete_user", "remove_clear")


def raw_text_sql(col: str, duck_type: str) -> str:
    """A raw value as text for the row digest: exact, and JSON for nested values."""
    kind = duck_type.upper()
    nested = kind.endswith("]") or kind.startswith(("STRUCT", "MAP", "UNION", "JSON"))
    return f"CAST(to_json({col}) AS VARCHAR)" if nested else f"CAST({col} AS VARCHAR)"


def text_digest_sql(texts: Sequence[str]) -> str:
    """md5 (128-bit, hex) of length-prefixed texts: no value can fake a boundary."""
    if not texts:
        return "md5('')"
    parts = ", ".join(f"coalesce(strlen({t})::VARCHAR || ':' || {t}, 'N')" for t in texts)
    return f"md5(concat({parts}))"


RAW_PREFIX = "col:"
"""Model columns in ``cur_raw`` are renamed ``col:<name>``: a model column called
``key`` or ``digest`` cannot clash with the engine's own columns."""


def create_current_raw(con: duckdb.DuckDBPyConnection, source_table: str, key_sql: str,
                       columns: Sequence[str], digest_texts: Sequence[str]) -> None:
    """``cur_raw``: every model row's key, its mapped raw columns and a digest of them.

    Also ``dups`` (keys on more than one row) and the view ``present`` (every key
    in the model). Nothing is encoded here: a no-change run over millions of rows
    only hashes and joins.
    """
    cols = ", ".join(f"{ident(c)} AS {ident(RAW_PREFIX + c)}" for c in columns)
    con.execute(f"""
        CREATE OR REPLACE TABLE cur_raw AS
        SELECT {key_sql} AS key, {text_digest_sql(digest_texts)} AS digest{", " + cols if cols else ""}
        FROM {source_table}
    """)
    # Duplicate keys by aggregation, not a window: far cheaper over millions of rows.
    con.execute("CREATE OR REPLACE TABLE dups AS SELECT key, count(*) AS n FROM cur_raw "
                "WHERE key IS NOT NULL GROUP BY key HAVING count(*) > 1")
    con.execute("CREATE OR REPLACE VIEW present AS SELECT key FROM cur_raw WHERE key IS NOT NULL")


def create_delta_keys(con: duckdb.DuckDBPyConnection) -> None:
    """``delta_keys``: keys (single, non-null) that are new or whose digest changed."""
    con.execute("""
        CREATE OR REPLACE TABLE delta_keys AS
        SELECT c.key FROM (SELECT key, digest FROM cur_raw WHERE key IS NOT NULL) c
        LEFT JOIN (SELECT key, digest FROM snap) s ON c.key = s.key
        WHERE (s.key IS NULL OR c.digest IS DISTINCT FROM s.digest)
          AND NOT EXISTS (SELECT 1 FROM dups d WHERE d.key = c.key)
    """)


def create_current(con: duckdb.DuckDBPyConnection, encoded: Sequence[EncodedField], key_label: str,
                   extra_reasons: Sequence[str] = (), *, every_row: bool = False) -> None:
    """``cur``: the rows that matter this run, encoded and validated, with a reason if invalid.

    Those are the delta rows and the rows with a null or duplicate key (or
    ``every_row``, for modes that need the whole model, such as a segment upload).
    """
    values = ",\n  ".join(f"CAST({e.value_sql} AS VARCHAR) AS {ident(e.field.name)}" for e in encoded)
    reasons = ", ".join([e.reason_sql for e in encoded if e.reason_sql != "NULL"] + list(extra_reasons)) or "NULL"
    wanted = "TRUE" if every_row else """(c.key IS NULL
        OR EXISTS (SELECT 1 FROM delta_keys k WHERE k.key = c.key)
        OR EXISTS (SELECT 1 FROM dups d WHERE d.key = c.key))"""
    con.execute(f"""
        CREATE OR REPLACE TABLE cur AS
        WITH encoded AS (
          SELECT key, digest, {values},
            nullif(concat_ws('; ', {reasons}), '') AS field_reason
          FROM cur_raw c WHERE {wanted}
        )
        SELECT e.* EXCLUDE (field_reason),
          CASE
            WHEN e.key IS NULL THEN {literal(f'null key: {key_label} is empty; every row needs one')}
            WHEN d.n IS NOT NULL THEN {literal(f'duplicate key: {key_label}=')} || e.key || ' appears in '
                 || d.n || ' rows; make the model return one row per key'
            ELSE e.field_reason
          END AS reason
        FROM encoded e LEFT JOIN dups d ON e.key = d.key
    """)


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


def load_resend_snapshot(con: duckdb.DuckDBPyConnection, path: str, fields: Sequence[Field]) -> None:
    """``snap`` for a full resend that still reconciles: an earlier snapshot as knowledge.

    The earlier snapshot may have been made under another mapping: its columns are
    projected onto ``fields`` (a field it lacks is NULL: nothing to clear), and every
    digest is :data:`RESEND_DIGEST`, so every current row is in the delta and marked
    ``resend`` (sent in full) while values that became NULL and keys that left the
    model are still seen against what Insider acknowledged.
    """
    have = {name for name, *_ in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({literal(path)})").fetchall()}
    columns = ", ".join((ident(f.name) if f.name in have else "NULL::VARCHAR") + " AS " + ident(f.name)
                        for f in fields)
    _drop_snap(con)
    con.execute(f"CREATE VIEW snap AS SELECT key{', ' + columns if columns else ''}, "
                f"{literal(RESEND_DIGEST)} AS digest FROM read_parquet({literal(path)})")


def replace_snapshot(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Make ``table`` (e.g. a folded ``new_snap``) the ``snap`` the diff compares against."""
    _drop_snap(con)
    con.execute(f"CREATE TABLE snap AS SELECT * FROM {table}")


def create_delta(con: duckdb.DuckDBPyConnection, tracked: Sequence[Field]) -> None:
    """``delta``: valid rows of ``cur`` that are new or changed, with their snapshot values.

    Columns: the current fields, ``digest``, ``s_key``, ``s:<field>`` (tracked
    snapshot values) and ``resend`` (the snapshot row is only knowledge kept for a
    full resend: send the row in full, see :func:`load_resend_snapshot`).
    """
    snap_cols = ", ".join(f"s.{ident(f.name)} AS {ident('s:' + f.name)}" for f in tracked)
    con.execute(f"""
        CREATE OR REPLACE TABLE delta AS
        SELECT c.*, s.key AS s_key{", " + snap_cols if snap_cols else ""},
          coalesce(s.digest = {literal(RESEND_DIGEST)}, FALSE) AS resend
        FROM cur c LEFT JOIN snap s ON s.key = c.key
        WHERE c.reason IS NULL AND EXISTS (SELECT 1 FROM delta_keys k WHERE k.key = c.key)
    """)


def fold(con: duckdb.DuckDBPyConnection, fields: Sequence[Field], acked_table: str,
         prune_sql: str | None = None, *, with_delta: bool = True) -> None:
    """``new_snap`` = ``snap`` with the acknowledged rows of ``changes`` applied.

    ``fields`` are the tracked fields. ``acked_table`` has one column ``row_id``.
    Operations that need no request (``noop``, ``forget``) are applied as
    acknowledged. ``prune_sql`` drops rows (e.g. events past their TTL).

    A key's digest becomes its current row's digest (``changes.digest``) only when
    every operation for it was acknowledged (or it needed none): a key with an
    unacknowledged or held-back operation gets a NULL digest, so the next run diffs
    it again. ``with_delta`` (a normal run) also refreshes the digest of delta rows
    that needed no operation; without it (crash recovery) only ``changes`` counts.
    Pruned rows (``prune_sql``) are dropped only once they have left the model.
    A key still marked :data:`RESEND_DIGEST` stays so until its full resend is
    acknowledged (a crashed or rejected resend is finished by a later run).
    """
    def w(f: Field) -> str:
        return ident("w:" + f.name)

    def v(f: Field) -> str:
        return ident("v:" + f.name)

    plain_cols = ", ".join(f"{v(f)}, {w(f)}" for f in fields)
    # Same column order as plain_cols: the two are combined with UNION ALL.
    merged_cols = ", ".join(f"max({v(f)}) FILTER (WHERE {w(f)}) AS {v(f)}, bool_or({w(f)}) AS {w(f)}"
                            for f in fields)
    final_cols = ", ".join(f"CASE WHEN m.{w(f)} THEN m.{v(f)} ELSE s.{ident(f.name)} END AS {ident(f.name)}"
                           for f in fields)
    auto = ", ".join(literal(op) for op in AUTO_ACKED_OPS)
    drops = ", ".join(literal(op) for op in DROP_OPS)
    unchanged_rows = ("UNION ALL SELECT d.key, d.digest FROM delta d WHERE d.s_key IS NOT NULL "
                      "AND NOT EXISTS (SELECT 1 FROM touched t WHERE t.key = d.key)") if with_delta else ""
    prune = (f"{prune_sql} AND NOT EXISTS (SELECT 1 FROM present p WHERE p.key = pruned.key)"
             if prune_sql and with_delta else "FALSE")
    sep = ", " if fields else ""
    con.execute(f"""
        CREATE OR REPLACE TABLE new_snap AS
        WITH flagged AS (  -- payloads are not needed here, and they are most of the bytes
          SELECT ch.key, ch.op, ch.digest{sep}{", ".join(f"ch.{v(f)}, ch.{w(f)}" for f in fields)},
            (ch.op IN ({auto}) OR EXISTS (SELECT 1 FROM {acked_table} a WHERE a.row_id = ch.row_id)) AS ok
          FROM changes ch
        ),
        touched AS (SELECT key, bool_and(ok) AS all_acked, any_value(digest) AS digest
                    FROM flagged GROUP BY key),
        acked AS (SELECT * FROM flagged WHERE ok),
        -- Most keys have one operation: aggregate only the few with several.
        multi AS (SELECT key FROM acked WHERE op NOT IN ({drops}) GROUP BY key HAVING count(*) > 1),
        merged AS (
          SELECT key{sep}{plain_cols} FROM acked a
          WHERE op NOT IN ({drops}) AND NOT EXISTS (SELECT 1 FROM multi x WHERE x.key = a.key)
          UNION ALL
          SELECT key{sep}{merged_cols} FROM acked a
          WHERE op NOT IN ({drops}) AND EXISTS (SELECT 1 FROM multi x WHERE x.key = a.key) GROUP BY key
        ),
        dropped AS (SELECT DISTINCT key FROM acked WHERE op IN ({drops})),
        fresh AS (SELECT key, digest FROM touched WHERE all_acked AND digest IS NOT NULL
                  {unchanged_rows}),
        -- Every key this run can alter (merged and dropped keys are touched ones). The other
        -- snapshot rows (all but the changed few on most runs) pass through unjoined.
        affected AS (SELECT key FROM touched UNION SELECT key FROM fresh),
        snap_affected AS (SELECT * FROM snap s WHERE EXISTS (SELECT 1 FROM affected a WHERE a.key = s.key)),
        folded AS (
          SELECT coalesce(s.key, m.key, f.key) AS key{sep}{final_cols},
            CASE WHEN f.key IS NOT NULL THEN f.digest
                 WHEN t.key IS NOT NULL AND s.digest = {literal(RESEND_DIGEST)} THEN s.digest
                 WHEN t.key IS NOT NULL THEN NULL
                 ELSE s.digest END AS digest
          FROM snap_affected s
          FULL OUTER JOIN merged m ON s.key = m.key
          FULL OUTER JOIN fresh f ON f.key = coalesce(s.key, m.key)
          LEFT JOIN touched t ON t.key = coalesce(s.key, m.key, f.key)
          WHERE NOT EXISTS (SELECT 1 FROM dropped d WHERE d.key = coalesce(s.key, m.key, f.key))
        )
        SELECT * FROM (
          SELECT * FROM folded
          UNION ALL
          SELECT key{sep}{", ".join(ident(f.name) for f in fields)}, digest FROM snap s
          WHERE NOT EXISTS (SELECT 1 FROM affected a WHERE a.key = s.key)
        ) pruned
        WHERE NOT coalesce({prune}, FALSE)
    """)
