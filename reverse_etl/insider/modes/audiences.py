"""Computed audiences on a user_attributes upsert sync: membership transitions.

Each audience is one computed column added to the model (``prepare_model``):
TRUE for a member, NULL otherwise, from a ``when:`` condition or a LEFT JOIN on
a member model, so membership is computed where the model runs, in one pass.
The column becomes a tracked field (``attributes.custom.<snake>``) holding
``true`` or NULL in the snapshot, so the ordinary digest diff finds the users
whose membership changed; this mode turns those into operations:

=================  =====================================  ==================================
delivery           enter                                  exit
=================  =====================================  ==================================
boolean            upsert ``<snake>: true``               upsert ``<snake>: false``
array              upsert ``custom.<attr>: [names]``      delete ``custom.partial.<attr>``
td_user_audiences  upsert ``td_audience_id/name`` arrays  delete ``partial`` of both arrays
=================  =====================================  ==================================

Audience operations are separate user objects (and requests) from the
attribute upsert: that one may carry ``not_append: true``, which replaces every
array *in its user object*; the audience arrays are never in it, so appends
and partial deletes are the only writes to them.

A new user is sent only for the audiences it is in. A member who leaves the
model exits first (whatever ``on_removed`` says); its ``on_removed`` action
follows on the next run, once the exit is acknowledged: a forgotten key could
otherwise lose an unacknowledged exit. ``on_removed: delete_user`` deletes at
once (a deleted user has no memberships).
"""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb

from reverse_etl.diff.sqltext import ident, json_key, literal, trimmed_text_sql
from reverse_etl.insider import payloads
from reverse_etl.insider.audience_config import TD_ATTRIBUTES, AudienceConfig
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.fields import Field
from reverse_etl.insider.modes.attributes import UpsertAttributes
from reverse_etl.insider.modes.base import cur, numbered, old, snap, writes
from reverse_etl.project.model_sql import ResolvedModel
from reverse_etl.run.destination import ModelResolver

COLUMN_PREFIX = "__audience_"
_MEMBER_KEY = "__member_key"
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _column_ref(name: str) -> str:
    # Unquoted when possible: Snowflake folds unquoted names to upper case, and a
    # quoted lower-case name would then not match the model's column.
    return name if _PLAIN_NAME.match(name) else ident(name)


def _key_text(expr: str) -> str:
    """A key as the engine sees it (see ``Mode.key_sql``)."""
    return trimmed_text_sql(expr, portable=True)  # member models run in the warehouse


class AudienceUpsert(UpsertAttributes):
    """``user_attributes`` upsert with ``audiences:``."""

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        self.audience_configs: list[AudienceConfig] = list(sync.audiences)
        self.audiences = [Field("attributes", a.snake, True, COLUMN_PREFIX + a.snake) for a in sync.audiences]
        self.base_tracked = list(self.tracked)
        self.fields = self.tracked = [*self.base_tracked, *self.audiences]
        self.style = sync.audience_delivery
        if self.style == "boolean":
            audience_ops: tuple[tuple[tuple[str, ...], str], ...] = (
                (("audience_set",), "UPSERT"), (("clear", "remove_clear"), "ATTRIBUTE_DELETE"))
        else:
            audience_ops = ((("audience_enter",), "UPSERT"),
                            (("clear", "remove_clear", "audience_exit"), "ATTRIBUTE_DELETE"))
        self.deliveries = ((("identity_update",), "IDENTITY_UPDATE"), (("identity_delete",), "IDENTITY_DELETE"),
                           (("upsert",), "UPSERT"), *audience_ops, (("delete_user",), "USER_DELETE"))

    # ------------------------------------------------------------ the model
    def prepare_model(self, model: ResolvedModel, resolve: ModelResolver) -> ResolvedModel:
        """The model plus one ``__audience_<snake>`` column per audience (TRUE or NULL)."""
        assert self.key_field is not None and self.key_field.column is not None
        key_col = _column_ref(self.key_field.column)
        conditions = [f"CASE WHEN ({a.when}) THEN TRUE END AS {ident(COLUMN_PREFIX + a.snake)}"
                      for a in self.audience_configs if a.when is not None]
        sql = f"SELECT m.*{''.join(', ' + c for c in conditions)} FROM ({model.sql}) m"
        joins, members = [], []
        for i, audience in enumerate(a for a in self.audience_configs if a.model is not None):
            assert audience.model is not None
            member = resolve(audience.model)
            alias = f"a{i}"
            # DISTINCT: a member listed twice must not duplicate the user's row.
            joins.append(f"LEFT JOIN (SELECT DISTINCT {_key_text(key_col)} AS {_MEMBER_KEY} "
                         f"FROM ({member.sql}) x) {alias} ON {alias}.{_MEMBER_KEY} = {_key_text('w.' + key_col)}")
            members.append(f"CASE WHEN {alias}.{_MEMBER_KEY} IS NOT NULL THEN TRUE END "
                           f"AS {ident(COLUMN_PREFIX + audience.snake)}")
        if joins:
            sql = f"SELECT w.*, {', '.join(members)} FROM ({sql}) w {' '.join(joins)}"
        # The delivery style is part of what the snapshot means: keep it in the SQL
        # text, which the fingerprint hashes, so changing it resends in full.
        header = f"/* reverse_etl audiences: {self.style} {self.sync.audience_attribute} */ "
        return ResolvedModel(name=model.name, sql=header + sql, origin=model.origin)

    # ------------------------------------------------------------ changes
    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        """Attribute operations (as UpsertAttributes) plus audience transitions."""
        # The attribute operations must write only the attribute fields: an
        # acknowledged attribute upsert says nothing about audience membership.
        self.tracked = self.base_tracked
        try:
            super().build_changes(con)
        finally:
            self.tracked = [*self.base_tracked, *self.audiences]
        con.execute("ALTER TABLE changes RENAME TO attribute_changes")
        removed_members = self._removed_members_sql()
        keep_base = "TRUE" if self.sync.on_removed == "delete_user" else (
            f"NOT (change = 'removed' AND key IN (SELECT key FROM ({removed_members})))")
        no_audience_writes = ", ".join(f"NULL::VARCHAR AS {ident('v:' + a.name)}, FALSE AS {ident('w:' + a.name)}"
                                       for a in self.audiences)
        ops = [f"SELECT * EXCLUDE (row_id), {no_audience_writes} FROM attribute_changes WHERE {keep_base}"]
        ops.extend(self._transition_ops())
        if self.sync.on_removed != "delete_user":
            ops.extend(self._removed_ops())
        numbered(con, " UNION ALL BY NAME ".join(f"({q})" for q in ops))
        con.execute("DROP TABLE attribute_changes")

    def _entered(self, f: Field) -> str:
        return f"({cur(f)} IS NOT NULL AND {old(f)} IS NULL)"

    def _exited(self, f: Field) -> str:
        return f"({cur(f)} IS NULL AND {old(f)} IS NOT NULL)"

    def _audience_writes(self, write: Any, value: str) -> str:
        return writes(self.audiences, lambda f: value, write)

    def _transition_ops(self) -> list[str]:
        any_enter = " OR ".join(self._entered(f) for f in self.audiences)
        any_exit = " OR ".join(self._exited(f) for f in self.audiences)
        change = "CASE WHEN d.s_key IS NULL THEN 'added' ELSE 'changed' END"
        base_writes = ", ".join(f"NULL::VARCHAR AS {ident('v:' + f.name)}, FALSE AS {ident('w:' + f.name)}"
                                for f in self.base_tracked)
        if self.style == "boolean":
            def flag(f: Field) -> str:
                return f"CASE WHEN {self._entered(f)} THEN 'true' WHEN {self._exited(f)} THEN 'false' END"
            body = payloads.upsert_user_json(self.ids, self.audiences, cur, flag, not_append=False)
            return [f"SELECT d.key, {change} AS change, 'audience_set' AS op, {body} AS payload, {base_writes}, "
                    f"{writes(self.audiences, cur, lambda f: f'({self._entered(f)} OR {self._exited(f)})')} "
                    f"FROM delta d WHERE {any_enter} OR {any_exit}"]
        enter_body = self._upsert_arrays(cur, self._entered)
        exit_body = self._partial_delete(cur, self._exited)
        return [
            f"SELECT d.key, {change} AS change, 'audience_enter' AS op, {enter_body} AS payload, {base_writes}, "
            f"{self._audience_writes(self._entered, literal('true'))} FROM delta d WHERE {any_enter}",
            f"SELECT d.key, 'changed' AS change, 'audience_exit' AS op, {exit_body} AS payload, {base_writes}, "
            f"{self._audience_writes(self._exited, 'NULL::VARCHAR')} FROM delta d WHERE {any_exit}",
        ]

    def _removed_members_sql(self) -> str:
        member = " OR ".join(f"{snap(f)} IS NOT NULL" for f in self.audiences)
        return f"SELECT s.* FROM snap s SEMI JOIN removed_keys r ON s.key = r.key WHERE {member}"

    def _removed_ops(self) -> list[str]:
        def was_member(f: Field) -> str:
            return f"({snap(f)} IS NOT NULL)"

        base_writes = ", ".join(f"NULL::VARCHAR AS {ident('v:' + f.name)}, FALSE AS {ident('w:' + f.name)}"
                                for f in self.base_tracked)
        exit_writes = writes(self.audiences, lambda f: "NULL::VARCHAR", was_member)
        if self.style == "boolean":
            body = payloads.upsert_user_json(self.ids, self.audiences, snap,
                                             lambda f: f"CASE WHEN {was_member(f)} THEN 'false' END",
                                             not_append=False)
            op = "audience_set"
        else:
            body, op = self._partial_delete(snap, was_member), "audience_exit"
        return [f"SELECT s.key, 'removed' AS change, '{op}' AS op, {body} AS payload, {base_writes}, {exit_writes} "
                f"FROM ({self._removed_members_sql()}) s"]

    # ------------------------------------------------------------ payloads
    def _arrays(self, which: Any) -> list[tuple[str, str]]:
        """(array attribute, SQL of its JSON array of the audiences where ``which(f)``)."""
        def array(elements: list[str]) -> str:
            items = ", ".join(f"CASE WHEN {which(f)} THEN {literal(e)} END" for f, e in zip(self.audiences, elements,
                                                                                        strict=True))
            return f"'[' || concat_ws(',', {items}) || ']'"

        names = [json.dumps(a.name) for a in self.audience_configs]
        if self.style == "array":
            return [(self.sync.audience_attribute, array(names))]
        ids = [str(int(a.id or 0)) for a in self.audience_configs]
        return [(TD_ATTRIBUTES[0], array(ids)), (TD_ATTRIBUTES[1], array(names))]

    def _upsert_arrays(self, id_value: Any, which: Any) -> str:
        """An upsert user object appending to the audience arrays (no ``not_append``)."""
        custom = " || ',' || ".join(f"{json_key(name)} || {arr}" for name, arr in self._arrays(which))
        return ("'{\"identifiers\":' || " + payloads.identifiers_json(self.ids, id_value)
                + " || ',\"attributes\":{\"custom\":{' || " + custom + " || '}}}'")

    def _partial_delete(self, id_value: Any, which: Any) -> str:
        """An attribute-delete user object removing elements from the audience arrays."""
        partial = " || ',' || ".join(f"{json_key(name)} || {arr}" for name, arr in self._arrays(which))
        return ("'{\"identifiers\":' || " + payloads.identifiers_json(self.ids, id_value)
                + " || ',\"custom\":{\"partial\":{' || " + partial + " || '}}}'")
