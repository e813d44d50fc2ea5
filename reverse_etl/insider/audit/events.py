"""Auditing a ``user_events`` sync: are the model's events (within the TTL) still at Insider?

Events are immutable, so the only drift that matters is an event Insider no longer
holds: it expired early (Insider's TTL is shorter than ``event.ttl_days``), its
profile was deleted or unified away, or a request acknowledged was dropped later.
Model events (valid rows of ``cur``: already within the TTL) and Insider's events
are two tables of (user, event name, canonical time), compared as multisets: an
event the model has more often than Insider is drift (kind ``event``, field
``event.<name>``, the model's timestamp as the value). Events Insider holds that the
model lacks are not drift: other sources send events too.

A repair resends exactly those events: their keys leave the baseline (``found``
false in the observed rows), so the ordinary diff sees them as new.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson

from reverse_etl.diff.sqltext import ident, literal
from reverse_etl.insider.config import InsiderProject, SyncConfig
from reverse_etl.insider.modes.events import UserEvents
from reverse_etl.insider.pull.config import (
    ExportConfig,
    ExportDestination,
    ExportEvents,
    ExportWebhook,
    WantedEvent,
)

from .compare import Compared, compared_fields
from .export import request_export
from .profiles import read_answers
from .result import AuditResult


def event_key(mode: UserEvents) -> Compared:
    """How the audit finds a model event's user at Insider: the first identifier."""
    return compared_fields(mode.ids[:1], [], [])[0]


def create_model_events(con: duckdb.DuckDBPyConnection, mode: UserEvents, sample: int | None) -> None:
    """``audit_events``: key, kv, name, ts (canonical), ts_text of every valid model event
    (of ``sample`` random users, if given)."""
    kv = f"CAST(c.{ident(mode.ids[0].name)} AS JSON) ->> '$'"
    name = f"CAST(c.{ident(mode.name.name)} AS JSON) ->> '$'"
    ts = f"c.{ident(mode.timestamp.name)}"
    con.execute(f"""
        CREATE OR REPLACE TABLE audit_events AS
        SELECT c.key, {kv} AS kv, {name} AS name, audit_canon({ts}) AS ts, {ts} AS ts_text
        FROM cur c WHERE c.reason IS NULL AND {kv} IS NOT NULL""")
    if sample is not None:
        con.execute(f"""DELETE FROM audit_events WHERE kv NOT IN (
            SELECT kv FROM (SELECT DISTINCT kv FROM audit_events) ORDER BY random() LIMIT {int(sample)})""")


def _window(con: duckdb.DuckDBPyConnection) -> tuple[int, int, list[str]]:
    row = con.execute("""SELECT min(epoch(try_cast(ts_text ->> '$' AS TIMESTAMPTZ))),
                                max(epoch(try_cast(ts_text ->> '$' AS TIMESTAMPTZ))) FROM audit_events""").fetchall()[0]
    names = [n for (n,) in con.execute("SELECT DISTINCT name FROM audit_events ORDER BY name").fetchall()]
    start, end = (int(row[0]) - 1, int(row[1]) + 2) if row[0] is not None else (0, 1)
    return start, end, names


def read_sample_events(con: duckdb.DuckDBPyConnection, project: InsiderProject, key: Compared,
                       result: AuditResult) -> None:
    """``insider_events`` (kv, name, ts) and ``insider_side`` (kv, found) from profile reads."""
    start, end, names = _window(con)
    wanted = [{"event_name": n, "params": ["timestamp"]} for n in names]
    cost = 1.0 + 0.5 * len(wanted)  # Insider's documented price of a read with events
    f = key.field
    kvs = [kv for (kv,) in con.execute("SELECT DISTINCT kv FROM audit_events ORDER BY kv").fetchall()]
    bodies = [(kv, {"identifiers": {"custom": {f.insider_name: kv}} if f.custom else {f.insider_name: kv},
                    "events": {"start_date": start, "end_date": end, "wanted": wanted}}, cost) for kv in kvs]
    answers, stats = read_answers(project.config.destination, bodies) if bodies else ([], None)
    users = [{"kv": kv, "found": answer is not None} for kv, answer in answers]
    events = [{"kv": kv, "name": name, "ts": orjson.dumps(entry.get("created_date")).decode()}
              for kv, answer in answers for name, entries in ((answer or {}).get("events") or {}).items()
              for entry in entries if isinstance(entry, dict)]
    _tables(con, users, events)
    result.cost = {"profile_reads": stats.reads if stats else 0, "quota_units": stats.quota_units if stats else 0,
                   "quota_per_minute": project.config.destination.rate_limits.profile_read_per_minute,
                   "read_seconds": stats.seconds if stats else 0.0}


def _tables(con: duckdb.DuckDBPyConnection, users: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    con.execute("CREATE OR REPLACE TABLE insider_side (kv VARCHAR, found BOOLEAN)")
    con.execute("CREATE OR REPLACE TABLE insider_events (kv VARCHAR, name VARCHAR, ts VARCHAR)")
    if users:
        con.executemany("INSERT INTO insider_side VALUES (?, ?)", [(u["kv"], u["found"]) for u in users])
    if events:
        con.executemany("INSERT INTO insider_events VALUES (?, ?, audit_canon(?))",
                        [(e["kv"], e["name"], e["ts"]) for e in events])


def export_events_config(project: InsiderProject, sync: SyncConfig, segment_id: int, key: Compared,
                         con: duckdb.DuckDBPyConnection) -> ExportConfig:
    """The raw export of the model's event names over the model's time window."""
    start, end, names = _window(con)

    def iso(epoch: int) -> str:
        return datetime.fromtimestamp(epoch, UTC).isoformat()

    webhook = next((e.webhook for e in project.config.exports if e.segment_id == segment_id), ExportWebhook())
    name = "audit_" + "".join(ch if ch.isalnum() else "_" for ch in sync.name.lower())
    events = ExportEvents(start=iso(start), end=iso(end + int(timedelta(seconds=1).total_seconds())),
                          wanted=[WantedEvent(name=n, params=["timestamp"]) for n in names])
    return ExportConfig(name=name, segment_id=segment_id, attributes=[key.field.insider_name], events=events,
                        format="json", destination=ExportDestination(table=name), webhook=webhook)


def load_export_events(con: duckdb.DuckDBPyConnection, path: Path, key: Compared) -> int:
    """``insider_events`` and ``insider_side`` from an export file (JSON Lines): profiles."""
    src = f"read_ndjson_objects({literal(str(path))})"
    kv = f"json ->> {literal(key.export_column)}"
    con.execute(f"""CREATE OR REPLACE TABLE insider_side AS
        SELECT DISTINCT {kv} AS kv, TRUE AS found FROM {src} WHERE {kv} IS NOT NULL""")
    con.execute(f"""CREATE OR REPLACE TABLE insider_events AS
        SELECT {kv} AS kv, json ->> 'e_event_name' AS name, audit_canon(CAST(json -> 'e_timestamp' AS VARCHAR)) AS ts
        FROM {src} WHERE {kv} IS NOT NULL AND coalesce(json ->> 'e_event_name', '') <> ''""")
    return int(con.execute("SELECT count(*) FROM insider_side").fetchall()[0][0])


def create_event_drift(con: duckdb.DuckDBPyConnection) -> None:
    """``audit_drift``: model events Insider holds fewer of (multiset difference)."""
    con.execute("""
        CREATE OR REPLACE TABLE audit_drift AS
        WITH m AS (SELECT *, row_number() OVER (PARTITION BY kv, name, ts ORDER BY key) AS n FROM audit_events),
             i AS (SELECT kv, name, ts, row_number() OVER (PARTITION BY kv, name, ts) AS n FROM insider_events)
        SELECT m.key, 'event' AS kind, 'event.' || m.name AS field, m.ts_text AS model_value,
               NULL::VARCHAR AS insider_value
        FROM m WHERE NOT EXISTS (SELECT 1 FROM i WHERE i.kv = m.kv AND i.name = m.name
                                  AND i.ts IS NOT DISTINCT FROM m.ts AND i.n = m.n)""")


def write_observed_events(con: duckdb.DuckDBPyConnection, mode: UserEvents, path: Path) -> None:
    """The observed rows of a repair: each missing event's key, not found (so it is resent)."""
    cols = ", ".join(f"c.{ident(f.name)}" for f in mode.tracked)
    con.execute(f"""COPY (SELECT DISTINCT c.key, FALSE AS found, {cols} FROM cur c
                          WHERE c.key IN (SELECT key FROM audit_drift)) TO {literal(str(path))} (FORMAT parquet)""")


def audit_events(con: duckdb.DuckDBPyConnection, project: InsiderProject, sync: SyncConfig, mode: UserEvents,
                 *, sample: int | None, segment_id: int | None, from_url: str | None, force: bool,
                 clock: Callable[[], datetime] | None, tmp: Path, result: AuditResult) -> None:
    """Fill ``audit_drift`` for an events sync, and ``result``'s sizes and cost (``tmp``: for the file)."""
    from reverse_etl.insider.pull.download import download_file

    key = event_key(mode)
    create_model_events(con, mode, sample)
    result.model_rows = int(con.execute("SELECT count(*) FROM cur WHERE reason IS NULL").fetchall()[0][0])
    result.checked = int(con.execute("SELECT count(*) FROM audit_events").fetchall()[0][0])
    if sample is not None:
        read_sample_events(con, project, key, result)
    else:
        export = export_events_config(project, sync, segment_id or 1, key, con)
        url = from_url or request_export(project, export, (clock or (lambda: datetime.now(UTC)))(), force=force)
        path = tmp / "audit-events.jsonl"
        size = download_file(url, path, export=export.name, timeout=project.config.destination.timeout_seconds)
        profiles = load_export_events(con, path, key)
        result.cost = {"raw_exports": int(from_url is None), "segment_id": segment_id,
                       "export_profiles": profiles, "export_bytes": size}
    result.notes.append("an events sync: checked counts the model's events (within the TTL), found the users "
                        "Insider holds")
    result.found = int(con.execute("SELECT count(*) FROM insider_side WHERE found").fetchall()[0][0])
    create_event_drift(con)
