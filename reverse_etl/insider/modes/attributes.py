"""user_attributes: upsert / replace_attributes, and delete_attributes.

Upsert sends, for an added row, all its non-null attributes; for a changed row,
only the changed ones; an attribute that became NULL is removed at Insider
(attribute delete, ``whole``). Removed rows follow ``on_removed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb

from reverse_etl.diff.sqltext import column_types, ident, literal, scalar, trimmed_text_sql
from reverse_etl.diff.tables import ROW_KEY
from reverse_etl.insider import payloads
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.fields import Field, attribute_fields, identifier_fields
from reverse_etl.insider.modes.base import (
    Delivery,
    Mode,
    cur,
    numbered,
    old,
    once_per_row,
    removed_rows,
    snap,
    writes,
)


class UpsertAttributes(Mode):
    """``operation: upsert`` (and ``replace_attributes``: arrays always replaced).

    Identifiers never change through an upsert (Insider ignores a new value for a
    kind a profile already holds): a changed non-key identifier goes through the
    identity update (one request per user and kind, old value from the snapshot,
    new from the model), one that became NULL through the identity delete. A
    changed key is a different key: a removal plus an addition. Rows that would be
    unified at Insider (one email, phone or custom identifier under two keys) are
    rejected rows naming both keys.
    """

    deliveries: Sequence[Delivery] = (
        (("identity_update",), "IDENTITY_UPDATE"), (("identity_delete",), "IDENTITY_DELETE"),
        (("upsert",), "UPSERT"), (("clear", "remove_clear"), "ATTRIBUTE_DELETE"),
        (("delete_user",), "USER_DELETE"))
    reconciles_resend = True

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        ids, moved = identifier_fields(sync)
        self.ids, self.attrs = ids, attribute_fields(sync, moved)
        self.fields = self.tracked = [*ids, *self.attrs]
        self.key_field = ids[0]  # uuid first, then email, phone, custom: the most stable identity
        self.not_append = sync.operation == "replace_attributes" or not sync.options.append_arrays

    # ------------------------------------------------------ identity conflicts
    def before_encode(self, con: duckdb.DuckDBPyConnection, rows_table: str,
                      column_of: Callable[[Field], str | None]) -> None:
        """``id_conflicts`` (key, reason): rows sharing a non-key identifier value."""
        # Rows of the model's own table are linked to their keys by ``cur_raw.rid``.
        linked = "cur_raw" if rows_table != "cur_raw" else None
        # ``cur_raw.key``, or the key column pass 1 added to the model's table, is each row's
        # key text (``Mode.key_sql``, which this mode keeps): read, not computed again.
        if linked is None:
            key_column: str | None = "key"
        else:
            key_column = ROW_KEY if ROW_KEY in column_types(con, rows_table) else None
        conflicts_sql(con, rows_table, column_of, self.ids, only_keys_in=("delta_keys", "dups"), keys_by_rowid=linked,
                      key_column=key_column)

    def every_row_fields(self) -> Sequence[Field]:
        """The identifiers: a conflict is a value shared with any row of the model."""
        return self.ids

    def row_reasons(self, column_of: Callable[[Field], str], type_of: Callable[[Field], str],
                    value_of: Callable[[Field], str]) -> list[str]:
        """An identity conflict (see :func:`conflicts_sql`) makes a row invalid, and so does
        an identity takeover (see :meth:`_takeover_reasons`)."""
        return ["(SELECT r.reason FROM id_conflicts r WHERE r.key = c.key)", *self._takeover_reasons(value_of)]

    def _takeover_reasons(self, value_of: Callable[[Field], str]) -> list[str]:
        """A row holding an email, phone or custom identifier of a key that left the model
        waits for that key's ``on_removed`` to be acknowledged.

        Insider unifies by any identifier: upserted first, the new key would be merged
        into the old key's profile, which the removal then deletes (``delete_user``) or
        clears (``clear_attributes``). Held back as invalid for one run, the row is sent
        the run after, once the old key is gone from the snapshot.
        """
        if self.sync.on_removed not in ("delete_user", "clear_attributes"):
            return []
        reasons = []
        for f in self.ids[1:]:
            column = ident(f.name)
            prefix = literal(f"identity takeover: {f.label}=")
            reasons.append(f"""(SELECT {prefix} || trim({value_of(f)}, '"') || ' belonged to removed key '
                   || min(s.key) || {literal(f"; sent next run, once its on_removed ({self.sync.on_removed}) "
                                              "is acknowledged (Insider would merge the two)")}
                FROM snap s WHERE s.{column} = {value_of(f)} AND s.key <> c.key
                  AND NOT EXISTS (SELECT 1 FROM present p WHERE p.key = s.key))""")
        return reasons

    # ------------------------------------------------------------- changes
    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        ids, attrs = self.ids, self.attrs
        others = ids[1:]  # the key identifier cannot change: another value is another key
        known = "(d.s_key IS NOT NULL)"
        in_full = "(d.s_key IS NULL OR d.resend)"  # new, or a full resend: send every value
        change = f"CASE WHEN {in_full} THEN 'added' ELSE 'changed' END"

        def moved(f: Field) -> str:  # an identifier value Insider holds, and another one now
            return f"({known} AND {old(f)} IS NOT NULL AND {cur(f)} IS NOT NULL AND {cur(f)} <> {old(f)})"

        def gone(f: Field) -> str:
            return f"({known} AND {old(f)} IS NOT NULL AND {cur(f)} IS NULL)"

        def appeared(f: Field) -> str:  # added by the upsert itself (a kind the profile lacks)
            return f"({known} AND NOT d.resend AND {old(f)} IS NULL AND {cur(f)} IS NOT NULL)"

        def value(f: Field) -> str:
            # Appended arrays (append_arrays: true) carry only the elements the snapshot
            # lacks: a resend or a retried change never appends an element twice.
            if self.not_append:
                return cur(f)
            missing = (f"list_filter(CAST(from_json({cur(f)}, '[\"JSON\"]') AS VARCHAR[]), lambda x: NOT "
                       f"list_contains(CAST(from_json({old(f)}, '[\"JSON\"]') AS VARCHAR[]), x))")
            return (f"(CASE WHEN starts_with({cur(f)}, '[') AND starts_with({old(f)}, '[') "
                    f"THEN nullif('[' || array_to_string({missing}, ',') || ']', '[]') ELSE {cur(f)} END)")

        id_added = " OR ".join(appeared(f) for f in others) or "FALSE"
        id_moved = " OR ".join(f"{moved(f)} OR {gone(f)}" for f in others) or "FALSE"
        send = {f.name: f"({value(f)} IS NOT NULL AND ({in_full} OR {id_added} "
                        f"OR {cur(f)} IS DISTINCT FROM {old(f)}))" for f in attrs}
        clear = {f.name: f"({known} AND {cur(f)} IS NULL AND {old(f)} IS NOT NULL)" for f in attrs}
        any_send = " OR ".join(send.values()) or "FALSE"
        any_clear = " OR ".join(clear.values()) or "FALSE"
        upsert = payloads.upsert_user_json(ids, attrs, cur, lambda f: f"CASE WHEN {send[f.name]} THEN {value(f)} END",
                                           not_append=self.not_append)
        # Added rows need no comparison: every non-null attribute is sent (the cheap
        # branch, which a first run over millions of rows takes for all of them).
        upsert_new = payloads.upsert_user_json(ids, attrs, cur, value, not_append=self.not_append)
        any_value = " OR ".join(f"{value(f)} IS NOT NULL" for f in attrs) or "FALSE"
        clear_payload = payloads.attribute_delete_json(ids, cur, attrs, lambda f: clear[f.name])
        moving = {f.name for f in others}

        def upsert_writes(sent: str) -> str:
            # An identifier the identity update or delete moves is written by that
            # operation alone; one the upsert adds only if the upsert is sent.
            def write(f: Field) -> str:
                if f.name not in moving:
                    return f"({cur(f)} IS NOT NULL)"
                return f"({cur(f)} IS NOT NULL AND NOT {moved(f)} AND (NOT {appeared(f)} OR {sent}))"
            return writes(self.tracked, cur, write)

        ops = [f"""
          SELECT d.key, 'added' AS change,
                 CASE WHEN {any_value} THEN 'upsert' ELSE 'noop' END AS op,
                 CASE WHEN {any_value} THEN {upsert_new} END AS payload, {upsert_writes(any_value)}, d.digest AS digest
          FROM delta d
          WHERE {in_full}""", f"""
          SELECT d.key, 'changed' AS change,
                 CASE WHEN {any_send} THEN 'upsert' ELSE 'noop' END AS op,
                 CASE WHEN {any_send} THEN {upsert} END AS payload, {upsert_writes(any_send)}, d.digest AS digest
          FROM delta d
          WHERE NOT {in_full} AND ({id_added} OR {id_moved} OR {any_send})""", f"""
          SELECT d.key, {change} AS change, 'clear' AS op, {clear_payload} AS payload,
                 {writes(self.tracked, lambda f: "NULL::VARCHAR",
                         lambda f: clear[f.name] if f.group == "attributes" else "FALSE")}, d.digest AS digest
          FROM delta d
          WHERE {any_clear}"""]
        for f in others:
            body = ("'{\"old_identifier\":' || " + payloads.identifiers_json([f], old)
                    + " || ',\"new_identifier\":' || " + payloads.identifiers_json([f], cur) + " || '}'")
            ops.append(f"""
          SELECT d.key, {change} AS change, 'identity_update' AS op, {body} AS payload,
                 {writes(self.tracked, cur, _only(f))}, d.digest AS digest
          FROM delta d WHERE {moved(f)}""")
            ops.append(f"""
          SELECT d.key, {change} AS change, 'identity_delete' AS op,
                 {payloads.identifiers_body_json([f], old)} AS payload,
                 {writes(self.tracked, lambda g: "NULL::VARCHAR", _only(f))}, d.digest AS digest
          FROM delta d WHERE {gone(f)}""")
        ops.append(self._removed())
        numbered(con, " UNION ALL ".join(ops), carries_digest=True)

    def _removed(self) -> str:
        on_removed = self.sync.on_removed
        if on_removed == "delete_user":
            return removed_rows(self.tracked, "'delete_user'", payloads.identifiers_body_json(self.ids, snap))
        if on_removed == "clear_attributes":
            any_attr = " OR ".join(f"{snap(f)} IS NOT NULL" for f in self.attrs) or "FALSE"
            body = payloads.attribute_delete_json(self.ids, snap, self.attrs, lambda f: f"{snap(f)} IS NOT NULL")
            return removed_rows(self.tracked, f"CASE WHEN {any_attr} THEN 'remove_clear' ELSE 'forget' END",
                                f"CASE WHEN {any_attr} THEN {body} END")
        return removed_rows(self.tracked)


def _only(field: Field) -> Callable[[Field], str]:
    """A ``w:`` condition writing ``field`` alone."""
    return lambda g: "TRUE" if g.name == field.name else "FALSE"


def conflicts_sql(con: duckdb.DuckDBPyConnection, source_table: str, column_of: Callable[[Field], str | None],
                  ids: Sequence[Field], only_keys_in: Sequence[str] = (), keys_by_rowid: str | None = None,
                  key_column: str | None = None) -> None:
    """``id_conflicts`` (key, reason): rows whose email, phone or custom identifier value
    is also on a row with another key. Insider would unify them into one user, so
    neither is sent; the reason names the keys. One aggregation per identifier.

    ``only_keys_in``: tables of keys (``key``) whose reasons are wanted (the rows this
    run encodes). Only identifier values on those keys' rows are examined, against
    every row of the model: the reasons of those keys are exact, and a run where
    nothing changed aggregates nothing. With no such key the table is empty.

    ``keys_by_rowid``: a table of (``key``, ``rid``), ``rid`` the ``rowid`` of that key's
    row in ``source_table`` and ``key`` the first identifier's text. The wanted keys'
    rows are then found by row id, not by computing every row's key text (a third of
    this check on a 1%-changed run).

    ``key_column``: a column of ``source_table`` holding each row's key text (the first
    identifier's, as computed here). Rows with no key are then skipped by reading it,
    not by trimming every row's key value (10M rows, 1% changed: 1.2 s -> 0.8 s).
    """
    wanted = " UNION ALL ".join(f"SELECT key FROM {table}" for table in only_keys_in)
    if wanted:
        how_many = scalar(con, f"SELECT count(*) FROM ({wanted})")
        if not how_many:
            con.execute("CREATE OR REPLACE TABLE id_conflicts (key VARCHAR, reason VARCHAR)")
            return
        if how_many * 10 > scalar(con, f"SELECT count(*) FROM {source_table}"):
            wanted = ""  # most of the model (a first run): counting every value is cheaper

    wanted_rowids = _row_ids_of(con, only_keys_in, keys_by_rowid) if wanted and keys_by_rowid else ""

    def text(column: str) -> str:
        return trimmed_text_sql(ident(column))

    key_col = column_of(ids[0]) if ids else None
    # (DuckDB pushes ``key IS NOT NULL`` into the scan: without ``key_column`` every row's
    # key is trimmed, not only the rows holding a candidate value.)
    key_source = ident(key_column) if key_column else (ident(key_col) if key_col else "NULL")
    key_text = ident(key_column) if key_column else (text(key_col) if key_col else "NULL")
    parts = []
    for f in ids[1:]:
        col = column_of(f)
        if key_col is None or col is None:
            continue
        if wanted and keys_by_rowid:  # only the values on the wanted keys' rows: few, so no counting first
            # (``rowid IN``, not a join of the two tables: DuckDB then fetches those rows only.)
            candidates = (f"SELECT DISTINCT {text(col)} AS v FROM {source_table} "
                          f"WHERE rowid IN ({wanted_rowids})")
        elif wanted:
            candidates = f"SELECT DISTINCT {text(col)} AS v FROM {source_table} WHERE {key_text} IN ({wanted})"
        else:
            # Only values on more than one row can be shared: counting them first keeps
            # the distinct pairs and key lists to those few rows, not the whole model.
            candidates = (f"SELECT {text(col)} AS v FROM {source_table} WHERE {key_text} IS NOT NULL "
                          "GROUP BY 1 HAVING count(*) > 1")
        parts.append(f"""
            SELECT k AS key, {literal(f.label + '=')} || v || ' is shared by keys '
                   || array_to_string(list_sort(list_distinct(keys))[1:5], ', ')
                   || CASE WHEN len(list_distinct(keys)) > 5 THEN ', ...' ELSE '' END AS reason
            FROM (SELECT v, list(k) AS keys FROM (
                    SELECT DISTINCT {key_text} AS k, v
                    FROM (SELECT {key_source}, {text(col)} AS v FROM {source_table}) m
                    SEMI JOIN ({candidates}) c USING (v)
                    WHERE {key_text} IS NOT NULL) t
                  GROUP BY v HAVING count(*) > 1) g, unnest(g.keys) AS u(k)""")
    body = " UNION ALL ".join(parts) or "SELECT NULL::VARCHAR AS key, NULL::VARCHAR AS reason WHERE FALSE"
    con.execute(f"""
        CREATE OR REPLACE TABLE id_conflicts AS
        SELECT key, 'identity conflict: ' || string_agg(reason, '; ' ORDER BY reason)
               || '; Insider would merge them into one user' AS reason
        FROM ({body}) x GROUP BY key
    """)


def _row_ids_of(con: duckdb.DuckDBPyConnection, key_tables: Sequence[str], keys_by_rowid: str) -> str:
    """SQL of the row ids (in ``keys_by_rowid``'s ``rid``) of the keys in ``key_tables``.

    A table that carries its rows' ids (``delta_keys`` made ``with_rows``) gives them
    straight away; a table of keys only is looked up in ``keys_by_rowid``, which
    probes every model row's key, so only when it has a key (10M rows: 0.1 s).
    """
    parts = []
    for table in key_tables:
        if "rid" in column_types(con, table):
            parts.append(f"SELECT rid FROM {table}")
        elif scalar(con, f"SELECT EXISTS (SELECT 1 FROM {table})"):
            parts.append(f"SELECT rid FROM {keys_by_rowid} WHERE key IN (SELECT key FROM {table})")
    return " UNION ALL ".join(parts) or "SELECT NULL::BIGINT WHERE FALSE"


class DeleteAttributes(Mode):
    """``operation: delete_attributes``: each new or changed row deletes its mapped attributes.

    Per mapped column: a list deletes those elements from the array attribute
    (``partial``); ``false`` deletes nothing; any other non-null value deletes the
    whole value. Rows leaving the model are forgotten (nothing is sent).
    """

    deliveries: Sequence[Delivery] = ((("delete_attributes",), "ATTRIBUTE_DELETE"),)

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        ids, moved = identifier_fields(sync)
        self.ids, self.attrs = ids, attribute_fields(sync, moved)
        self.fields = self.tracked = [*ids, *self.attrs]
        self.key_field = ids[0]

    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        def whole(f: object) -> str:
            v = cur(f)  # type: ignore[arg-type]
            return f"({v} IS NOT NULL AND {v} <> 'false' AND NOT starts_with({v}, '['))"

        def partial(f: object) -> str:
            v = cur(f)  # type: ignore[arg-type]
            return f"CASE WHEN starts_with({v}, '[') AND {v} <> '[]' THEN {v} END"

        anything = " OR ".join(f"{whole(f)} OR {partial(f)} IS NOT NULL" for f in self.attrs) or "FALSE"
        body = payloads.attribute_delete_json(self.ids, cur, self.attrs, whole, partial)
        once_per_row(con, self.tracked, f"CASE WHEN {anything} THEN 'delete_attributes' ELSE 'noop' END",
                     f"CASE WHEN {anything} THEN {body} END")
