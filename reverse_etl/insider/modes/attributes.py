"""user_attributes: upsert / replace_attributes, and delete_attributes.

Upsert sends, for an added row, all its non-null attributes; for a changed row,
only the changed ones; an attribute that became NULL is removed at Insider
(attribute delete, ``whole``). Removed rows follow ``on_removed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from reverse_etl.insider import payloads
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.fields import attribute_fields, identifier_fields
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
    """``operation: upsert`` (and ``replace_attributes``: arrays always replaced)."""

    deliveries: Sequence[Delivery] = (
        (("upsert",), "UPSERT"), (("clear", "remove_clear"), "ATTRIBUTE_DELETE"),
        (("delete_user",), "USER_DELETE"))

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        ids, moved = identifier_fields(sync)
        self.ids, self.attrs = ids, attribute_fields(sync, moved)
        self.fields = self.tracked = [*ids, *self.attrs]
        self.key_field = ids[0]  # uuid first, then email, phone, custom: the most stable identity
        self.not_append = sync.operation == "replace_attributes" or not sync.options.append_arrays

    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        ids, attrs = self.ids, self.attrs
        ident_changed = "(d.s_key IS NOT NULL AND (" + " OR ".join(
            f"{cur(f)} IS DISTINCT FROM {old(f)}" for f in ids) + "))"
        send = {f.name: f"({cur(f)} IS NOT NULL AND (d.s_key IS NULL OR {ident_changed} "
                        f"OR {cur(f)} IS DISTINCT FROM {old(f)}))" for f in attrs}
        clear = {f.name: f"(d.s_key IS NOT NULL AND {cur(f)} IS NULL AND {old(f)} IS NOT NULL)" for f in attrs}
        any_send = " OR ".join(send.values()) or "FALSE"
        any_clear = " OR ".join(clear.values()) or "FALSE"
        upsert = payloads.upsert_user_json(ids, attrs, cur, lambda f: f"CASE WHEN {send[f.name]} THEN {cur(f)} END",
                                           not_append=self.not_append)
        # Added rows need no comparison: every non-null attribute is sent (the cheap
        # branch, which a first run over millions of rows takes for all of them).
        upsert_new = payloads.upsert_user_json(ids, attrs, cur, cur, not_append=self.not_append)
        any_value = " OR ".join(f"{cur(f)} IS NOT NULL" for f in attrs) or "FALSE"
        clear_payload = payloads.attribute_delete_json(ids, cur, attrs, lambda f: clear[f.name])
        write_current = writes(self.tracked, cur, lambda f: f"({cur(f)} IS NOT NULL)")
        con.execute(numbered(f"""
          SELECT d.key, 'added' AS change,
                 CASE WHEN {any_value} THEN 'upsert' ELSE 'noop' END AS op,
                 CASE WHEN {any_value} THEN {upsert_new} END AS payload, {write_current}
          FROM delta d
          WHERE d.s_key IS NULL
          UNION ALL
          SELECT d.key, 'changed' AS change,
                 CASE WHEN {any_send} THEN 'upsert' ELSE 'noop' END AS op,
                 CASE WHEN {any_send} THEN {upsert} END AS payload, {write_current}
          FROM delta d
          WHERE d.s_key IS NOT NULL AND ({ident_changed} OR {any_send})
          UNION ALL
          SELECT d.key, 'changed' AS change, 'clear' AS op, {clear_payload} AS payload,
                 {writes(self.tracked, lambda f: "NULL::VARCHAR",
                         lambda f: clear[f.name] if f.group == "attributes" else "FALSE")}
          FROM delta d
          WHERE {any_clear}
          UNION ALL
          {self._removed()}
        """))

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
        con.execute(once_per_row(self.tracked, f"CASE WHEN {anything} THEN 'delete_attributes' ELSE 'noop' END",
                                 f"CASE WHEN {anything} THEN {body} END"))
