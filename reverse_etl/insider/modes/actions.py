"""One-user actions: delete_pii (anonymize), delete_users, delete_identifiers.

Each row that is new (or changed) since the snapshot triggers its action once;
the snapshot remembers acknowledged rows so a rerun does not repeat them. Rows
leaving the model are forgotten (an action is never undone).
"""

from __future__ import annotations

import duckdb

from reverse_etl.diff.sqltext import literal
from reverse_etl.insider import payloads
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.fields import identifier_fields
from reverse_etl.insider.modes.base import Mode, cur, once_per_row

_ENDPOINTS = {"delete_pii": "ANONYMIZE", "delete_users": "USER_DELETE",
              "delete_identifiers": "IDENTITY_DELETE"}


class UserAction(Mode):
    """``operation: delete_pii | delete_users | delete_identifiers``."""

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        ids, _ = identifier_fields(sync)
        self.fields = self.tracked = ids
        self.key_field = ids[0]
        self.op = sync.operation
        self.deliveries = (((self.op,), _ENDPOINTS[self.op]),)

    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        body = payloads.identifiers_body_json(self.fields, cur)
        once_per_row(con, self.tracked, literal(self.op), body)
