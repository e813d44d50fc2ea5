"""Diff and fold in DuckDB: current rows vs the acknowledged snapshot.

Tables in the engine connection:

``cur_raw``  every model row: key, a ``digest`` (md5) of the tracked raw values and
             either the source row's ``rid`` or the mapped raw columns (``col:<name>``).
             ``present`` views its keys.
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
from reverse_etl.diff.sqltext import column_types, first_row, ident, literal, scalar
from reverse_etl.diff.tables import ROW_DIGEST, ROW_KEY
from reverse_etl.state.digests import DIGEST_TYPE, NULL_DIGEST, RESEND_DIGEST, md5_digest_sql

AUTO_ACKED_OPS = ("noop", "forget")
# RESEND_DIGEST: the digest of a snapshot row kept only as knowledge for a full resend.
# It never equals a row's digest, so every such key is diffed again and (``delta.resend``)
# sent in full. How digests are stored: ``state.digests``.
DROP_OPS = ("forget", "delete_user", "remove_clear")
MAX_ACKED_SPAN_TESTS = 16
"""Up to this many acknowledged row-id ranges, the fold tests ``row_id`` against each."""


def raw_text_sql(col: str, duck_type: str) -> str:
    """A raw value as text for the row digest: exact, and JSON for nested values."""
    kind = duck_type.upper()
    nested = kind.endswith("]") or kind.startswith(("STRUCT", "MAP", "UNION", "JSON"))
    return f"CAST(to_json({col}) AS VARCHAR)" if nested else f"CAST({col} AS VARCHAR)"


def _length_prefixed(texts: Sequence[str]) -> str:
    if not texts:
        return "''"
    # Each text becomes ``<length>:<text>``, a NULL ``N``. Spelled as CASE + concat, not
    # coalesce(... || ...): the same string (digests stay valid), 9% faster at 1M rows.
    parts = ", ".join(f"CASE WHEN {t} IS NULL THEN 'N' ELSE concat(strlen({t}), ':', {t}) END" for t in texts)
    return f"concat({parts})"


def text_digest_sql(texts: Sequence[str]) -> str:
    """md5 (128-bit, hex text) of length-prefixed texts: no value can fake a boundary.

    The form of event keys derived from an event's values (they are Insider's
    event ids, so they never change form); row digests use :func:`row_digest_sql`.
    """
    return f"md5({_length_prefixed(texts)})"


def row_digest_sql(texts: Sequence[str]) -> str:
    """A row's digest: the md5 of :func:`text_digest_sql` as 128 bits (``state.digests``).

    The same md5 of the same string, held in 16 bytes: a snapshot that stored it as
    hex text converts to exactly this value.
    """
    return md5_digest_sql(_length_prefixed(texts))


RAW_PREFIX = "col:"
"""Model columns in ``cur_raw`` are renamed ``col:<name>``: a model column called
``key`` or ``digest`` cannot clash with the engine's own columns."""


def create_current_raw(con: duckdb.DuckDBPyConnection, source_table: str, key_sql: str,
                       columns: Sequence[str], digest_texts: Sequence[str], *, by_rowid: bool = False) -> None:
    """``cur_raw``: every model row's key and a digest of its tracked values.

    With ``by_rowid`` (``source_table`` is a table that outlives ``cur``) it holds only
    ``key``, ``digest`` and ``rid`` (the source row's ``rowid``): :func:`create_current`
    reads the raw columns of the rows it needs from the source table, so a no-change
    run never copies a model's values. Otherwise the mapped raw columns are copied in
    (``col:<name>``). Also ``dups`` (keys on more than one row) and the view ``present``
    (every key in the model). Nothing is encoded here.
    """
    con.execute(f"""
        CREATE OR REPLACE TABLE cur_raw AS
        SELECT {key_sql} AS key, {row_digest_sql(digest_texts)} AS digest{_kept_columns(columns, by_rowid)}
        FROM {source_table}
    """)
    _index_current_keys(con)


def _kept_columns(columns: Sequence[str], by_rowid: bool) -> str:
    """What ``cur_raw`` holds besides key and digest: the row id, or the raw columns (``col:<name>``)."""
    kept = "rowid AS rid" if by_rowid else ", ".join(f"{ident(c)} AS {ident(RAW_PREFIX + c)}" for c in columns)
    return ", " + kept if kept else ""


def row_key_columns(key_sql: str, digest_texts: Sequence[str]) -> list[str]:
    """Pass 1 as columns of the model's own table (``ROW_KEY``, ``ROW_DIGEST``).

    A source that materialises the model adds them in the same pass
    (``Source.materialize``); :func:`create_current_raw_view` then reads them.
    """
    return [f"{key_sql} AS {ident(ROW_KEY)}", f"{row_digest_sql(digest_texts)} AS {ident(ROW_DIGEST)}"]


def create_current_raw_view(con: duckdb.DuckDBPyConnection, source_table: str, columns: Sequence[str],
                            *, by_rowid: bool = False) -> None:
    """``cur_raw`` as a view over ``source_table``, whose rows carry their key and digest.

    The same columns as :func:`create_current_raw` builds, with no copy: at 10M rows a
    no-change run saves the second pass over the model (8.3 s -> 7.0 s for
    model + pass 1 + duplicates + delta keys). Also ``dups`` and ``present``.
    """
    _view_current_raw(con, source_table, _kept_columns(columns, by_rowid))
    _index_current_keys(con)


def _view_current_raw(con: duckdb.DuckDBPyConnection, source_table: str, kept: str = "") -> None:
    con.execute(f"CREATE OR REPLACE VIEW cur_raw AS SELECT {ident(ROW_KEY)} AS key, {ident(ROW_DIGEST)} AS digest"
                f"{kept} FROM {source_table}")


def keep_row_keys_only(con: duckdb.DuckDBPyConnection, source_table: str) -> None:
    """Once ``cur`` is built, drop every model column of the table under the ``cur_raw`` view.

    ``cur_raw`` keeps its keys and digests (later counts and the removed-key join read
    them); the model's values are freed for the change set built next.
    """
    # Column by column: DuckDB drops a column without copying the others.
    for name in column_types(con, source_table):
        if name not in (ROW_KEY, ROW_DIGEST):
            con.execute(f"ALTER TABLE {source_table} DROP COLUMN {ident(name)}")
    _view_current_raw(con, source_table)


def _index_current_keys(con: duckdb.DuckDBPyConnection) -> None:
    # Duplicate keys by aggregation, not a window: far cheaper over millions of rows.
    con.execute("CREATE OR REPLACE TABLE dups AS SELECT key, count(*) AS n FROM cur_raw "
                "WHERE key IS NOT NULL GROUP BY key HAVING count(*) > 1")
    con.execute("CREATE OR REPLACE VIEW present AS SELECT key FROM cur_raw WHERE key IS NOT NULL")


def create_delta_keys(con: duckdb.DuckDBPyConnection, *, with_rows: bool = False,
                      digest_holds_key: bool = False) -> None:
    """``delta_keys``: keys (single, non-null) that are new or whose digest changed.

    ``with_rows`` (``cur_raw`` is ``by_rowid``): each key also carries its row's
    ``digest`` and ``rid``, so :func:`create_current` reads those rows without
    probing every ``cur_raw`` row against the delta keys.

    ``digest_holds_key`` (``Mode.digest_holds_key``): a digest names one key, so rows
    match the snapshot on the digest alone. The same rows match as on (key, digest),
    and the join's table holds 16 fixed bytes per snapshot row, not a key string too:
    at 10M rows 1.2-1.3 s -> 0.8 s.
    """
    # An anti join on (key, digest): a key whose snapshot row is missing, or has another
    # (or a NULL) digest, finds no match. Cheaper than a left join that carries the
    # snapshot digest out to compare it (~20% at 10M rows, where the join spills).
    carried = ", c.digest, c.rid" if with_rows else ""
    snap_cols, on = ("digest", "c.digest = s.digest") if digest_holds_key else \
        ("key, digest", "c.key = s.key AND c.digest = s.digest")
    con.execute(f"""
        CREATE OR REPLACE TABLE delta_keys AS
        SELECT c.key{carried} FROM (SELECT key, digest{", rid" if with_rows else ""} FROM cur_raw WHERE key IS NOT NULL) c
        ANTI JOIN (SELECT {snap_cols} FROM snap) s ON {on}
        WHERE NOT EXISTS (SELECT 1 FROM dups d WHERE d.key = c.key)
    """)


def create_removed_keys(con: duckdb.DuckDBPyConnection, *, none_left: bool = False) -> None:
    """``removed_keys``: the snapshot keys the model no longer returns (``snap`` anti ``present``).

    ``none_left``: the caller proved every snapshot key is still in the model (see
    :func:`every_key_still_present`), so the anti join over every key is skipped.
    """
    if none_left:
        con.execute("CREATE OR REPLACE TABLE removed_keys (key VARCHAR)")
        return
    con.execute("CREATE OR REPLACE TABLE removed_keys AS SELECT s.key FROM snap s ANTI JOIN present c ON s.key = c.key")


def snapshot_is_empty(con: duckdb.DuckDBPyConnection) -> bool:
    """True when ``snap`` has no row (a first run), found without counting it."""
    return not scalar(con, "SELECT count(*) FROM (SELECT 1 FROM snap LIMIT 1)")


def every_key_still_present(con: duckdb.DuckDBPyConnection) -> bool:
    """True when no snapshot key left the model, known from counts (no anti join over every key).

    Every non-null model key that is neither a delta key nor a duplicate matched a
    snapshot row exactly (same key, same digest: a digest that holds the key matched
    alone), so it is a snapshot key, once.
    Adding the delta and duplicate keys found in the snapshot counts the snapshot keys
    still in the model: as many as the snapshot has rows means all of them. A snapshot
    with a repeated key only makes the counts differ (then the anti join decides).

    Call after :func:`create_delta`: its valid rows already carry their snapshot key
    (``s_key``), so only the other delta keys (invalid rows) and the duplicate keys are
    looked up in the snapshot, and only when there are any. (Looking up every delta
    key read every snapshot key: 0.25 s at 10M rows, 1% changed.)
    """
    if snapshot_is_empty(con):
        return True  # a first run: no snapshot key to miss (the counts below cost 1.2 s at 10M rows)
    keyed, duplicated, duplicates, changed = first_row(con, """
        SELECT (SELECT count(*) FROM cur_raw WHERE key IS NOT NULL), (SELECT coalesce(sum(n), 0) FROM dups),
               (SELECT count(*) FROM dups), (SELECT count(*) FROM delta_keys)""") or (0, 0, 0, 0)
    matched = int(keyed) - int(duplicated) - int(changed)
    if duplicates or changed:
        matched += scalar(con, "SELECT count(DISTINCT s_key) FROM delta")
        others = ("SELECT key FROM delta_keys k WHERE NOT EXISTS (SELECT 1 FROM delta d WHERE d.key = k.key) "
                  "UNION ALL SELECT key FROM dups")
        if scalar(con, f"SELECT EXISTS ({others})"):
            matched += scalar(con, f"SELECT count(*) FROM ({others}) k SEMI JOIN (SELECT key FROM snap) s ON s.key = k.key")
    return matched == scalar(con, "SELECT count(*) FROM snap")


def create_current(con: duckdb.DuckDBPyConnection, encoded: Sequence[EncodedField], key_label: str,
                   extra_reasons: Sequence[str] = (), *, every_row: bool = False,
                   raw_table: str | None = None, raw_columns: Sequence[str] = (),
                   wanted_rows: str | None = None) -> None:
    """``cur``: the rows that matter this run, encoded and validated, with a reason if invalid.

    Those are the delta rows and the rows with a null or duplicate key (or
    ``every_row``, for modes that need the whole model, such as a segment upload).
    ``raw_table``: ``cur_raw`` was made ``by_rowid``; the ``raw_columns`` of those rows
    are read from that table. ``wanted_rows``: a table holding exactly those rows as
    ``cur_raw`` would (``workspace.reread_rows``), read instead.
    """
    wanted = "TRUE" if every_row else """(c.key IS NULL
        OR EXISTS (SELECT 1 FROM delta_keys k WHERE k.key = c.key)
        OR EXISTS (SELECT 1 FROM dups d WHERE d.key = c.key))"""
    only_delta = False
    if not every_row and not scalar(con, "SELECT EXISTS (SELECT 1 FROM dups) OR EXISTS (SELECT 1 FROM cur_raw WHERE key IS NULL)"):
        if not scalar(con, "SELECT EXISTS (SELECT 1 FROM delta_keys)"):
            # No row matters (a no-change run): an empty ``cur``, declared, not planned from
            # the encoding SQL (planning that took 36 ms, a twentieth of a 1M-row no-change
            # run). The same columns as the query below makes.
            kinds = column_types(con, "cur_raw")
            columns = [f"key {kinds['key']}", f"digest {kinds['digest']}",
                       *(f"{ident(e.field.name)} VARCHAR" for e in encoded), "reason VARCHAR"]
            con.execute(f"CREATE OR REPLACE TABLE cur ({', '.join(columns)})")
            return
        # Only delta rows matter, and the delta keys carry their row ids (``create_delta_keys``):
        # read those rows straight away (10M rows, 1% changed: 0.16-0.24 s -> 0.04 s).
        only_delta = raw_table is not None and "rid" in column_types(con, "delta_keys")
    if wanted_rows is not None:
        rows = f"SELECT * FROM {wanted_rows}"
    elif raw_table is None:
        rows = f"SELECT * FROM cur_raw c WHERE {wanted}"
    else:
        cols = ", ".join(f"m.{ident(col)} AS {ident(RAW_PREFIX + col)}" for col in raw_columns)
        chosen = "delta_keys" if only_delta else f"(SELECT * FROM cur_raw c WHERE {wanted})"
        rows = (f"SELECT w.key, w.digest{', ' + cols if cols else ''} FROM {chosen} w "
                f"JOIN {raw_table} m ON m.rowid = w.rid")
    if not every_row and (wanted_rows is not None or only_delta):
        # Only over rows already picked out (read again, or found by row id): over every row of
        # a first run, or filtered out of all of them, the check would cost more than it saves.
        encoded = _plain_where_possible(con, encoded, rows)
    values = ",\n  ".join(f"CAST({e.value_sql} AS VARCHAR) AS {ident(e.field.name)}" for e in encoded)
    reasons = ", ".join([e.reason_sql for e in encoded if e.reason_sql != "NULL"] + list(extra_reasons)) or "NULL"
    con.execute(f"""
        CREATE OR REPLACE TABLE cur AS
        WITH wanted AS ({rows}),
        encoded AS (
          SELECT key, digest, {values},
            nullif(concat_ws('; ', {reasons}), '') AS field_reason
          FROM wanted c
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


def _plain_where_possible(con: duckdb.DuckDBPyConnection, encoded: Sequence[EncodedField],
                         rows_sql: str) -> list[EncodedField]:
    """``encoded`` with each field's plain form where no row of ``rows_sql`` needs more (one query)."""
    guarded = [(e, e.plain) for e in encoded if e.plain is not None]
    if not guarded:
        return list(encoded)
    checks = ", ".join(f"coalesce(bool_or({plain.unless_sql}), FALSE)" for _, plain in guarded)
    needed = first_row(con, f"SELECT {checks} FROM ({rows_sql}) c") or tuple(True for _ in guarded)
    plain_for = {e.field.name: plain for (e, plain), full in zip(guarded, needed, strict=True) if not full}
    return [EncodedField(e.field, plain.value_sql, plain.reason_sql) if (plain := plain_for.get(e.field.name)) else e
            for e in encoded]


def drop_raw_values(con: duckdb.DuckDBPyConnection, raw_columns: Sequence[str]) -> None:
    """Drop the ``raw_columns`` copied into ``cur_raw`` once ``cur`` holds the encoded rows.

    They are not read again (a first run copies every model row's); freed here, they
    leave the memory budget to the change set built next (at 1M rows: 130 MB freed,
    and building ``changes`` no longer spills, 0.9 s -> 0.57 s).
    """
    # Column by column: DuckDB drops a column without copying the others (a copy of the
    # keys and digests cost 0.7 s at 10M rows).
    for col in raw_columns:
        con.execute(f"ALTER TABLE cur_raw DROP COLUMN {ident(RAW_PREFIX + col)}")


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
    con.execute(f"CREATE TABLE snap (key VARCHAR, {columns}, digest {DIGEST_TYPE})")


def load_snapshot(con: duckdb.DuckDBPyConnection, source: str, fields: Sequence[Field]) -> None:
    """``snap`` as a view of a snapshot's files; ``source`` is the SQL relation reading them
    (``state.snapshot_files.relation``).

    A view, not a copy: the diff reads only ``key`` and ``digest`` of every row
    (Parquet projection pushdown) and the other columns of changed rows only.
    """
    columns = ", ".join(ident(f.name) for f in fields)
    _drop_snap(con)
    con.execute(f"CREATE VIEW snap AS SELECT key, {columns}, digest FROM {source} s")


def load_resend_snapshot(con: duckdb.DuckDBPyConnection, source: str, fields: Sequence[Field]) -> None:
    """``snap`` for a full resend that still reconciles: an earlier snapshot as knowledge.

    The earlier snapshot may have been made under another mapping: its columns are
    projected onto ``fields`` (a field it lacks is NULL: nothing to clear), and every
    digest is :data:`RESEND_DIGEST`, so every current row is in the delta and marked
    ``resend`` (sent in full) while values that became NULL and keys that left the
    model are still seen against what Insider acknowledged.
    """
    have = {name for name, *_ in con.execute(f"DESCRIBE SELECT * FROM {source} s").fetchall()}
    columns = ", ".join((ident(f.name) if f.name in have else "NULL::VARCHAR") + " AS " + ident(f.name)
                        for f in fields)
    _drop_snap(con)
    con.execute(f"CREATE VIEW snap AS SELECT key{', ' + columns if columns else ''}, "
                f"{RESEND_DIGEST} AS digest FROM {source} s")


def replace_snapshot(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Make ``table`` (e.g. a folded ``new_snap``) the ``snap`` the diff compares against."""
    # Materialised first: a folded ``new_snap`` is a view over ``snap`` itself.
    con.execute(f"CREATE OR REPLACE TABLE next_snap AS SELECT * FROM {table}")
    _drop_snap(con)
    con.execute("ALTER TABLE next_snap RENAME TO snap")


def create_delta(con: duckdb.DuckDBPyConnection, tracked: Sequence[Field], *, all_new: bool = False) -> None:
    """``delta``: valid rows of ``cur`` that are new or changed, with their snapshot values.

    ``all_new``: ``snap`` is empty, so every valid row of ``cur`` is new (no join with
    ``delta_keys``, which then holds every key of the model) and ``delta`` is a view.

    Columns: the current fields, ``digest``, ``s_key``, ``s:<field>`` (tracked
    snapshot values) and ``resend`` (the snapshot row is only knowledge kept for a
    full resend: send the row in full, see :func:`load_resend_snapshot`).
    """
    if all_new:
        # A view, not a copy: with nothing acknowledged the snapshot columns are NULL, so
        # ``delta`` is ``cur``'s valid rows as they are (copying them cost 7 s at 10M rows,
        # spilling). ``cur`` is not changed after this, and the view does not read ``snap``,
        # which the commit replaces.
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = 'main' AND table_name = 'snap'").fetchall())
        nulls = "".join(f", NULL::{types[f.name]} AS {ident('s:' + f.name)}" for f in tracked)
        con.execute("DROP TABLE IF EXISTS delta")
        con.execute(f"""
            CREATE OR REPLACE VIEW delta AS
            SELECT c.*, NULL::{types['key']} AS s_key{nulls}, FALSE AS resend
            FROM cur c WHERE c.reason IS NULL
        """)
        return
    snap_cols = ", ".join(f"s.{ident(f.name)} AS {ident('s:' + f.name)}" for f in tracked)
    con.execute("DROP VIEW IF EXISTS delta")
    con.execute(f"""
        CREATE OR REPLACE TABLE delta AS
        SELECT c.*, s.key AS s_key{", " + snap_cols if snap_cols else ""},
          coalesce(s.digest = {RESEND_DIGEST}, FALSE) AS resend
        FROM cur c LEFT JOIN snap s ON s.key = c.key
        WHERE c.reason IS NULL{"" if all_new else " AND EXISTS (SELECT 1 FROM delta_keys k WHERE k.key = c.key)"}
    """)


def fold(con: duckdb.DuckDBPyConnection, fields: Sequence[Field], acked_table: str,
         prune_sql: str | None = None, *, with_delta: bool = True,
         acked_spans: Sequence[tuple[int, int]] | None = None, touched: bool = True) -> None:
    """``new_snap`` = ``snap`` with the acknowledged rows of ``changes`` applied.

    ``new_snap`` is a view: the commit streams it straight into the new snapshot
    file (one pass over the old one, no million-row copy in between), so it must be
    read before ``snap``, ``changes`` or ``acked_table`` change.

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

    Also (``touched``) the view ``fold_touched``, for writing only what changed (see
    :func:`create_overlay`): one row per key this run touched, its new row,
    ``live`` (it stays in the snapshot) and ``was_present`` (it was in ``snap``).
    It ignores ``prune_sql``, which filters every row.

    ``acked_spans``: the row ids of ``acked_table`` as sorted, disjoint inclusive
    ranges, when the caller has them. A few ranges (every request acknowledged is
    one) become a range test on ``row_id`` instead of a join with every acknowledged id.
    """
    def w(f: Field) -> str:
        return ident("w:" + f.name)

    def v(f: Field) -> str:
        return ident("v:" + f.name)

    auto = ", ".join(literal(op) for op in AUTO_ACKED_OPS)
    drops = ", ".join(literal(op) for op in DROP_OPS)
    writes = "writes"  # a column of ``flagged``: an acknowledged operation that writes values
    sep = ", " if fields else ""
    # One row per touched key. Most keys have one operation and need no aggregation;
    # only the few with several (``multi``) are grouped. Both branches have the same
    # columns: every operation acknowledged, the row's digest, dropped by an
    # acknowledged removal, wrote anything, and per field the value written (if any).
    single_cols = ", ".join(f"CASE WHEN {writes} AND {w(f)} THEN {v(f)} END AS {v(f)}, "
                            f"({writes} AND {w(f)}) AS {w(f)}" for f in fields)
    multi_cols = ", ".join(f"max({v(f)}) FILTER (WHERE {writes} AND {w(f)}) AS {v(f)}, "
                           f"coalesce(bool_or({writes} AND {w(f)}), FALSE) AS {w(f)}" for f in fields)
    final_cols = ", ".join(f"CASE WHEN k.{w(f)} THEN k.{v(f)} ELSE s.{ident(f.name)} END AS {ident(f.name)}"
                           for f in fields)
    snap_cols = ", ".join(f"s.{ident(f.name)}" for f in fields)
    # Delta rows that needed no operation (their values did not change as Insider sees
    # them): only their digest is refreshed.
    untouched_delta = ("SELECT d.key, d.digest FROM delta d WHERE d.s_key IS NOT NULL "
                       "AND NOT EXISTS (SELECT 1 FROM keyed k WHERE k.key = d.key)") if with_delta else \
        f"SELECT NULL::VARCHAR AS key, {NULL_DIGEST} AS digest WHERE FALSE"
    prune = (f"{prune_sql} AND NOT EXISTS (SELECT 1 FROM present p WHERE p.key = pruned.key)"
             if prune_sql and with_delta else "FALSE")
    if acked_spans is not None and len(acked_spans) <= MAX_ACKED_SPAN_TESTS:
        acked_test = "(" + (" OR ".join(f"ch.row_id BETWEEN {int(first)} AND {int(last)}"
                                        for first, last in acked_spans) or "FALSE") + ")"
    else:
        acked_test = f"EXISTS (SELECT 1 FROM {acked_table} a WHERE a.row_id = ch.row_id)"
    # Written out in each branch, not a CTE: a CTE read twice is materialised, a
    # million-row copy of every value just to be read once per branch.
    # (Payloads are not needed here, and they are most of the bytes.)
    # ``writes`` is a column, not its condition spelled out in each field's expressions:
    # DuckDB binds and optimises every copy of the text (the fold's SQL was twice as long).
    flagged = (f"""(SELECT *, (ok AND op NOT IN ({drops})) AS writes FROM (
            SELECT ch.key, ch.op, ch.digest{sep}{", ".join(f"ch.{v(f)}, ch.{w(f)}" for f in fields)},
              (ch.op IN ({auto}) OR {acked_test}) AS ok
            FROM changes ch))""")
    ctes = f"""
        WITH multi AS (SELECT key FROM changes GROUP BY key HAVING count(*) > 1),
        keyed AS (
          SELECT key, ok AS all_acked, digest, (ok AND op IN ({drops})) AS dropped,
                 {writes} AS wrote{sep}{single_cols}
          FROM {flagged} f WHERE NOT EXISTS (SELECT 1 FROM multi m WHERE m.key = f.key)
          UNION ALL
          SELECT key, bool_and(ok), any_value(digest), bool_or(ok AND op IN ({drops})),
                 bool_or({writes}){sep}{multi_cols}
          FROM {flagged} f WHERE EXISTS (SELECT 1 FROM multi m WHERE m.key = f.key) GROUP BY key
        ),
        fresh AS ({untouched_delta})"""
    resend = RESEND_DIGEST

    def new_digest(was_resend: str) -> str:
        # The row's digest once every operation was acknowledged; else a resend mark kept
        # (``was_resend``: the snapshot row carried it) or NULL, so the key is diffed again.
        return (f"CASE WHEN k.all_acked AND k.digest IS NOT NULL THEN k.digest "
                f"WHEN {was_resend} THEN {resend} ELSE NULL END AS digest")

    stays = "NOT k.dropped AND (s.key IS NOT NULL OR k.wrote OR (k.all_acked AND k.digest IS NOT NULL))"
    # The other snapshot rows (all but the changed few on most runs) pass through. With
    # no snapshot (a first run) there are none, and ``keyed``, read once, is not
    # materialised: every row of a first run streams straight into the snapshot file.
    passed_through = "" if snapshot_is_empty(con) else f"""
          UNION ALL
          SELECT s.key{sep}{snap_cols}, coalesce(f.digest, s.digest) AS digest
          FROM snap s LEFT JOIN fresh f ON f.key = s.key
          WHERE NOT EXISTS (SELECT 1 FROM keyed k WHERE k.key = s.key)"""
    con.execute(f"""
        CREATE OR REPLACE VIEW new_snap AS {ctes}
        SELECT * FROM (
          -- Every key this run touched, against its snapshot row (if any).
          SELECT k.key{sep}{final_cols}, {new_digest(f"s.digest = {resend}")}
          FROM keyed k LEFT JOIN snap s ON s.key = k.key
          WHERE {stays}
          {passed_through}
        ) pruned
        WHERE NOT coalesce({prune}, FALSE)
    """)
    if not touched:
        return
    untouched_cols = ", ".join(f"NULL::VARCHAR AS {v(f)}, FALSE AS {w(f)}" for f in fields)
    if with_delta:
        # The snapshot rows of delta keys are in ``delta`` already (``s:<field>``): snap,
        # whose every value of every row a join reads, is read only for the other
        # touched keys (removals), and not at all when there are none.
        delta_cols = ", ".join(f"d.{ident('s:' + f.name)} AS {ident(f.name)}" for f in fields)
        # Asked first, not left to the join: with no such key DuckDB still opened the
        # snapshot and decoded a first vector of every column (~10 ms at any size).
        others = scalar(con, "SELECT count(*) FROM (SELECT 1 FROM changes c "
                             "WHERE NOT EXISTS (SELECT 1 FROM delta d WHERE d.key = c.key) LIMIT 1)")
        from_snap = f"""
              UNION ALL
              SELECT s.key, s.digest = {resend}{sep}{snap_cols} FROM snap s
              WHERE s.key IN (SELECT key FROM keyed k WHERE NOT EXISTS (SELECT 1 FROM delta d WHERE d.key = k.key))""" \
            if others else ""
        before = f"""(SELECT d.key, d.resend{sep}{delta_cols} FROM delta d WHERE d.s_key IS NOT NULL{from_snap})"""
    else:
        before = f"(SELECT s.key, s.digest = {resend} AS resend{sep}{snap_cols} FROM snap s)"
    con.execute(f"""
        CREATE OR REPLACE VIEW fold_touched AS {ctes}
        SELECT k.key{sep}{final_cols}, {new_digest("s.resend")}, {stays} AS live, s.key IS NOT NULL AS was_present
        FROM (SELECT * FROM keyed UNION ALL
              -- Delta rows that needed no operation: acknowledged, nothing written, a new digest.
              SELECT key, TRUE, digest, FALSE, FALSE{sep}{untouched_cols} FROM fresh) k
        LEFT JOIN {before} s ON s.key = k.key
    """)


def create_overlay(con: duckdb.DuckDBPyConnection, fields: Sequence[Field], old_overlay: str | None) -> int:
    """``new_overlay`` (a view): the current overlay with the keys this run touched replaced.

    Call after :func:`fold`; ``old_overlay`` reads the current overlay (None: there is
    none), which must lie over the base ``snap`` was read from. Returns how many rows
    the snapshot gains (new keys less keys that left).
    """
    con.execute("CREATE OR REPLACE TABLE touched AS SELECT * FROM fold_touched")
    sep = ", " if fields else ""
    names = ", ".join(ident(f.name) for f in fields)
    nulls = ", ".join(f"NULL::VARCHAR AS {ident(f.name)}" for f in fields)
    carried = (f"UNION ALL SELECT key{sep}{names}, digest, dropped FROM {old_overlay} o "
               "WHERE NOT EXISTS (SELECT 1 FROM touched t WHERE t.key = o.key)") if old_overlay else ""
    # Every touched key that is not kept gets a tombstone, present or not: it may be in
    # the base file behind an earlier tombstone that this overlay replaces.
    con.execute(f"""
        CREATE OR REPLACE VIEW new_overlay AS
        SELECT key{sep}{names}, digest, FALSE AS dropped FROM touched WHERE live
        UNION ALL
        SELECT key{sep}{nulls}, {NULL_DIGEST} AS digest, TRUE AS dropped FROM touched WHERE NOT live
        {carried}
    """)
    return scalar(con, "SELECT count(*) FILTER (WHERE live AND NOT was_present) "
                       "- count(*) FILTER (WHERE NOT live AND was_present) FROM touched")
