"""user_events: each new event row becomes one Insider event, sent once.

Events are immutable, so the snapshot keeps only event keys (and their time,
for the TTL): a key already acknowledged is never resent, even after it leaves
the model, until it ages out of the event TTL. The key is the ``event.key``
column, or else a digest of the user, name, time and parameters. Events older
than the TTL are rejected rows (Insider would silently drop them).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from reverse_etl.diff.compare import text_digest_sql
from reverse_etl.diff.sqltext import ident, literal, trimmed_text_sql
from reverse_etl.insider import payloads
from reverse_etl.insider.config import EventMapping, SyncConfig
from reverse_etl.insider.fields import Field, identifier_fields, param_field, timestamp_sql
from reverse_etl.insider.modes.base import Mode, cur, numbered, writes

# insider-api.md §1: parameters these events must carry.
REQUIRED_PARAMS = {
    "purchase": ("event_group_id", "currency", "unit_sale_price", "quantity"),
    "cart_page_view": ("event_group_id", "currency", "unit_sale_price"),
}


class UserEvents(Mode):
    """``mode: user_events``."""

    deliveries = ((("upsert",), "UPSERT"),)

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        assert sync.event is not None
        self.event: EventMapping = sync.event
        self.ids, _ = identifier_fields(sync)
        self.name = Field("event", "event_name", False, self.event.name_column, constant=self.event.name)
        self.timestamp = Field("event", "timestamp", False, self.event.timestamp)
        self.params = [param_field(name, column) for name, column in self.event.params.items()]
        self.key_column = Field("event", "key", False, self.event.key) if self.event.key else None
        self.fields = [*self.ids, self.name, self.timestamp, *self.params]
        self.tracked = [self.timestamp]
        self.columns_only = [self.key_column] if self.key_column else []

    @property
    def key_label(self) -> str:
        return f"event key ({self.event.key})" if self.event.key else "event digest"

    def key_sql(self, column_of: Callable[[Field], str], value_of: Callable[[Field], str],
                *, portable: bool = False) -> str:
        if self.key_column is not None:
            return trimmed_text_sql(column_of(self.key_column), portable=portable)
        return text_digest_sql([value_of(f) for f in self.fields])

    def row_reasons(self, column_of: Callable[[Field], str], type_of: Callable[[Field], str],
                    value_of: Callable[[Field], str]) -> list[str]:
        reasons = []
        ts = timestamp_sql(column_of(self.timestamp), type_of(self.timestamp))
        ttl = int(self.event.ttl_days)
        reasons.append(
            f"CASE WHEN {ts} < timezone('UTC', now()) - INTERVAL {ttl} DAY THEN "
            f"{literal(f'event.timestamp: older than the {ttl}-day event TTL; Insider would drop it: ')} "
            f"|| strftime({ts}, '%Y-%m-%dT%H:%M:%SZ') END")
        params = {p.insider_name: p for p in self.params if not p.custom}
        name_value = value_of(self.name)
        for event, required in REQUIRED_PARAMS.items():
            missing = [f"CASE WHEN {value_of(params[p])} IS NULL THEN {literal(p)} END" if p in params
                       else literal(p) for p in required]
            needs = f"event {event} needs {', '.join(required)}; missing: "
            reasons.append(
                f"CASE WHEN {name_value} = {literal(chr(34) + event + chr(34))} "
                f"AND concat_ws(', ', {', '.join(missing)}) <> '' THEN "
                f"{literal(needs)} "
                f"|| concat_ws(', ', {', '.join(missing)}) END")
        return reasons

    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        body = payloads.event_user_json(self.ids, cur, cur(self.name), cur(self.timestamp), self.params, cur)
        numbered(con, f"""
          SELECT d.key, CASE WHEN d.s_key IS NULL THEN 'added' ELSE 'changed' END AS change,
                 CASE WHEN d.s_key IS NULL THEN 'upsert' ELSE 'noop' END AS op,
                 CASE WHEN d.s_key IS NULL THEN {body} END AS payload,
                 {writes(self.tracked, cur, lambda f: "TRUE")}
          FROM delta d
        """)

    def prune_sql(self) -> str:
        ts = f"try_cast(json_extract_string({ident(self.timestamp.name)}, '$') AS TIMESTAMP)"
        return f"{ts} < timezone('UTC', now()) - INTERVAL {int(self.event.ttl_days)} DAY"
