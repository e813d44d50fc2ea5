"""``mode: user_audiences``: Treasure Data's export mode, APPEND / REPLACE / REMOVE.

Each model row names a user and audiences as two equal-length arrays,
``td_audience_id`` (numbers) and ``td_audience_name`` (strings); a scalar pair
is a one-audience list. A row new or changed since the snapshot is sent once:

- ``append``: upsert of both arrays (Insider appends them);
- ``replace``: the same with ``"not_append": true`` (the arrays become these);
- ``remove``: attribute delete of those elements from both arrays (``partial``).

Rows leaving the model are forgotten: nothing is undone.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from reverse_etl.diff.sqltext import literal
from reverse_etl.insider import payloads
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.fields import Field, attribute_fields, identifier_fields
from reverse_etl.insider.modes.base import Mode, cur, once_per_row

_NUMBER_TYPES = "['BIGINT', 'UBIGINT', 'DOUBLE']"


def _as_array(value: str) -> str:
    """An encoded value as a JSON array (a scalar becomes a one-element array)."""
    return f"CASE WHEN starts_with({value}, '[') THEN {value} ELSE '[' || {value} || ']' END"


def _element_types(array: str) -> str:
    return (f"list_distinct(list_transform(CAST(json_extract(CAST({array} AS JSON), '$[*]') AS JSON[]), "
            f"lambda x: json_type(x)))")


class UserAudiences(Mode):
    """``mode: user_audiences`` with ``operation: append | replace | remove``."""

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        self.ids, _ = identifier_fields(sync)
        attrs = {f.insider_name: f for f in attribute_fields(sync, [])}
        self.audience_ids, self.audience_names = attrs["td_audience_id"], attrs["td_audience_name"]
        self.fields = self.tracked = [*self.ids, self.audience_ids, self.audience_names]
        self.key_field = self.ids[0]
        self.op = {"append": "upsert", "replace": "upsert", "remove": "delete_attributes"}[sync.operation]
        endpoint = "UPSERT" if self.op == "upsert" else "ATTRIBUTE_DELETE"
        self.deliveries = (((self.op,), endpoint),)

    def row_reasons(self, column_of: Callable[[Field], str], type_of: Callable[[Field], str],
                    value_of: Callable[[Field], str]) -> list[str]:
        ids, names = _as_array(value_of(self.audience_ids)), _as_array(value_of(self.audience_names))
        return [
            f"CASE WHEN {value_of(self.audience_ids)} IS NULL OR {value_of(self.audience_names)} IS NULL THEN "
            f"{literal('td_audience_id and td_audience_name are both required')} END",
            f"CASE WHEN json_array_length(CAST({ids} AS JSON)) <> json_array_length(CAST({names} AS JSON)) THEN "
            f"{literal('td_audience_id and td_audience_name must have equal length: ')} || {ids} || ' vs ' || {names} END",
            f"CASE WHEN NOT list_has_all({_NUMBER_TYPES}, {_element_types(ids)}) THEN "
            f"{literal('td_audience_id must hold numbers: ')} || {ids} END",
            f"CASE WHEN NOT list_has_all(['VARCHAR'], {_element_types(names)}) THEN "
            f"{literal('td_audience_name must hold strings: ')} || {names} END",
        ]

    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        arrays = [self.audience_ids, self.audience_names]

        def array_of(f: Field) -> str:
            return _as_array(cur(f))

        if self.op == "upsert":
            body = payloads.upsert_user_json(self.ids, arrays, cur, array_of,
                                             not_append=self.sync.operation == "replace")
        else:
            body = payloads.attribute_delete_json(self.ids, cur, arrays, lambda f: "FALSE", array_of)
        once_per_row(con, self.tracked, literal(self.op), body)
