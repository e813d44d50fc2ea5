"""Diff and fold in DuckDB: current rows vs the acknowledged snapshot.

Tables in the engine connection:

``cur``      key, one column per field (encoded JSON text), ``reason`` (why the
             row cannot be sent, or NULL).
``snap``     key, one column per field: what Insider acknowledged.
``changes``  one row per operation to deliver: ``row_id``, ``key``, ``op``,
             ``payload`` (the JSON Insider receives) and, per field, ``v:<f>`` (value
             to write into the snapshot once acknowledged) and ``w:<f>`` (write it?).

Operations: ``upsert`` and ``clear`` (attribute delete of values that became
NULL) for present rows; ``delete_user``, ``remove_clear`` or ``forget`` for rows
that left the model; ``noop`` for rows with nothing to send but a snapshot to
record. ``noop`` and ``forget`` need no request and count as acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from reverse_etl.engine.fields import EncodedField, Field
from reverse_etl.engine.sqltext import ident, json_key, literal

AUTO_ACKED_OPS = ("noop", "forget")
DROP_OPS = ("forget", "delete_user", "remove_clear")
OP_ENDPOINTS = {"upsert": "UPSERT", "clear": "ATTRIBUTE_DELETE", "remove_clear": "ATTRIBUTE_DELETE",
                "delete_user": "USER_DELETE"}


def create_current(con: duckdb.DuckDBPyConnection, source_table: str,
                   encoded: Sequence[EncodedField], key_column: str, key_label: str) -> None:
    """Build ``cur`` from the model rows: encoded fields, key, and a reject reason per row."""
    key_text = f"nullif(trim(CAST({ident(key_column)} AS VARCHAR)), '')"
    values = ",\n  ".join(f"CAST({e.value_sql} AS VARCHAR) AS {ident(e.field.name)}" for e in encoded)
    digest = digest_sql([e.field for e in encoded])
    reasons = ", ".join(e.reason_sql for e in encoded if e.reason_sql != "NULL") or "NULL"
    # Duplicate keys by aggregation, not a window: far cheaper over millions of rows.
    con.execute(f"""
        CREATE OR REPLACE TABLE cur AS
        WITH encoded AS (
          SELECT {key_text} AS key, {values},
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


def create_changes(con: duckdb.DuckDBPyConnection, fields: Sequence[Field], *,
                   on_removed: str, not_append: bool) -> None:
    """Compare ``cur`` with ``snap`` into ``changes`` (with payloads and row ids)."""
    ids = [f for f in fields if f.group == "identifiers"]
    attrs = [f for f in fields if f.group == "attributes"]

    create_delta(con, fields)

    def c(f: Field) -> str:
        return "d." + ident(f.name)

    def s(f: Field) -> str:
        return "d." + ident("s:" + f.name)

    ident_changed = "(d.s_key IS NOT NULL AND (" + (" OR ".join(
        f"{c(f)} IS DISTINCT FROM {s(f)}" for f in ids)) + "))"
    send = {f.name: f"({c(f)} IS NOT NULL AND (d.s_key IS NULL OR {ident_changed} OR {c(f)} IS DISTINCT FROM {s(f)}))"
            for f in attrs}
    clear = {f.name: f"(d.s_key IS NOT NULL AND {c(f)} IS NULL AND {s(f)} IS NOT NULL)" for f in attrs}
    any_send = " OR ".join(send.values()) or "FALSE"
    any_clear = " OR ".join(clear.values()) or "FALSE"

    current_ids = _identifiers_json(ids, c)
    upsert_payload = (
        "'{\"identifiers\":' || " + current_ids + " || ',\"attributes\":' || "
        + _attributes_json(attrs, lambda f: f"CASE WHEN {send[f.name]} THEN {c(f)} END")
        + (" || ',\"not_append\":true}'" if not_append else " || '}'")
    )
    clear_payload = _attribute_delete_json(current_ids, attrs, lambda f: clear[f.name])
    def r(f: Field) -> str:  # a removed row's snapshot value
        return "s." + ident(f.name)

    snap_ids = _identifiers_json(ids, r)
    removed_clear_payload = _attribute_delete_json(snap_ids, attrs, lambda f: f"{r(f)} IS NOT NULL")
    any_snap_attr = " OR ".join(f"{r(f)} IS NOT NULL" for f in attrs) or "FALSE"

    def writes(value: object, write: object) -> str:
        return ", ".join(
            f"{value(f)} AS {ident('v:' + f.name)}, {write(f)} AS {ident('w:' + f.name)}"  # type: ignore[operator]
            for f in fields)

    write_current = writes(c, lambda f: f"({c(f)} IS NOT NULL)")
    write_clear = writes(lambda f: "NULL::VARCHAR",
                         lambda f: clear[f.name] if f.group == "attributes" else "FALSE")
    write_none = writes(lambda f: "NULL::VARCHAR", lambda f: "FALSE")

    if on_removed == "delete_user":
        removed_op, removed_payload = "'delete_user'", "'{\"identifiers\":' || " + snap_ids + " || '}'"
    elif on_removed == "clear_attributes":
        removed_op = f"CASE WHEN {any_snap_attr} THEN 'remove_clear' ELSE 'forget' END"
        removed_payload = f"CASE WHEN {any_snap_attr} THEN {removed_clear_payload} END"
    else:
        removed_op, removed_payload = "'forget'", "NULL"

    con.execute(f"""
        CREATE OR REPLACE TABLE changes AS
        WITH ops AS (
          SELECT d.key, CASE WHEN d.s_key IS NULL THEN 'added' ELSE 'changed' END AS change,
                 CASE WHEN {any_send} THEN 'upsert' ELSE 'noop' END AS op,
                 CASE WHEN {any_send} THEN {upsert_payload} END AS payload, {write_current}
          FROM delta d
          WHERE d.s_key IS NULL OR {ident_changed} OR {any_send}
          UNION ALL
          SELECT d.key, 'changed' AS change, 'clear' AS op, {clear_payload} AS payload, {write_clear}
          FROM delta d
          WHERE {any_clear}
          UNION ALL
          SELECT s.key, 'removed' AS change, {removed_op} AS op, {removed_payload} AS payload, {write_none}
          FROM snap s ANTI JOIN cur c ON s.key = c.key
        )
        SELECT (row_number() OVER (ORDER BY op, key) - 1)::BIGINT AS row_id, * FROM ops
    """)


def create_delta(con: duckdb.DuckDBPyConnection, fields: Sequence[Field]) -> None:
    """``delta``: valid current rows that are new or differ from the snapshot.

    One join over all rows; everything after it works on the (usually small) delta.
    Columns: the current fields, ``s_key`` and ``s:<field>`` (snapshot values).
    """
    snap_cols = ", ".join(f"s.{ident(f.name)} AS {ident('s:' + f.name)}" for f in fields)
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


def _identifiers_json(ids: Sequence[Field], col: object) -> str:
    def get(f: Field) -> str:
        return col(f)  # type: ignore[operator,no-any-return]

    root = [f"CASE WHEN {get(f)} IS NOT NULL THEN {json_key(f.insider_name)} || {get(f)} END"
            for f in ids if not f.custom]
    custom = [f"CASE WHEN {get(f)} IS NOT NULL THEN {json_key(f.insider_name)} || {get(f)} END"
              for f in ids if f.custom]
    parts = list(root)
    if custom:
        parts.append(f"'\"custom\":{{' || nullif(concat_ws(',', {', '.join(custom)}), '') || '}}'")
    return "'{' || concat_ws(',', " + ", ".join(parts) + ") || '}'"


def _attributes_json(attrs: Sequence[Field], value: object) -> str:
    def get(f: Field) -> str:
        return value(f)  # type: ignore[operator,no-any-return]

    root = [f"{json_key(f.insider_name)} || {get(f)}" for f in attrs if not f.custom]
    custom = [f"{json_key(f.insider_name)} || {get(f)}" for f in attrs if f.custom]
    parts = list(root)
    if custom:
        parts.append(f"'\"custom\":{{' || nullif(concat_ws(',', {', '.join(custom)}), '') || '}}'")
    if not parts:
        return "'{}'"
    return "'{' || concat_ws(',', " + ", ".join(parts) + ") || '}'"


def _attribute_delete_json(identifiers_json: str, attrs: Sequence[Field], wanted: object) -> str:
    def cond(f: Field) -> str:
        return wanted(f)  # type: ignore[operator,no-any-return]

    root = [f"CASE WHEN {cond(f)} THEN {literal(chr(34) + f.insider_name + chr(34))} END"
            for f in attrs if not f.custom]
    custom = [f"CASE WHEN {cond(f)} THEN {literal(chr(34) + f.insider_name + chr(34))} END"
              for f in attrs if f.custom]
    parts = []
    if root:
        parts.append(f"'\"whole\":[' || nullif(concat_ws(',', {', '.join(root)}), '') || ']'")
    if custom:
        parts.append(f"'\"custom\":{{\"whole\":[' || nullif(concat_ws(',', {', '.join(custom)}), '') || ']}}'")
    body = "concat_ws(',', " + ", ".join(parts) + ")" if parts else "''"
    return "'{\"identifiers\":' || " + identifiers_json + " || ',' || " + body + " || '}'"


def fold(con: duckdb.DuckDBPyConnection, fields: Sequence[Field], acked_table: str) -> None:
    """``new_snap`` = ``snap`` with the acknowledged rows of ``changes`` applied.

    ``acked_table`` has one column ``row_id``. Operations that need no request
    (``noop``, ``forget``) are applied as acknowledged.
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
    """)
