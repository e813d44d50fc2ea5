"""A full audit's read: one raw data export of a segment holding the synced users.

The export is Insider's one raw export of the UTC day for the partner (the pull's
local guard and Insider's 429 both apply), requested as JSON Lines so values keep
their JSON types; the file (v1 columns ``a_<name>``, ``a_c_<name>``) is loaded
into ``insider_side`` by DuckDB directly, one row per profile. ``from_url`` audits
against a link Insider already sent today (a ``pull`` of the same segment) instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from reverse_etl.diff.sqltext import ident, literal
from reverse_etl.errors import DeliveryError
from reverse_etl.insider.config import InsiderProject
from reverse_etl.insider.pull.config import ExportConfig, ExportDestination, ExportWebhook
from reverse_etl.insider.pull.download import download_file
from reverse_etl.insider.pull.guard import DailyGuard
from reverse_etl.insider.pull.hook import HookReceiver
from reverse_etl.insider.pull.request import ExportQuotaError, build_body, send_request

from .compare import Compared


@dataclass
class ExportRead:
    """What the export cost and held."""

    requested: bool
    """False when an existing link (``from_url``) was read."""
    profiles: int = 0
    bytes: int = 0
    seconds: float = 0.0


def export_config(project: InsiderProject, sync: str, segment_id: int, fields: Sequence[Compared]) -> ExportConfig:
    """The export an audit asks for: the compared attributes of ``segment_id``, as JSON Lines.

    The hook receiver is the one an ``exports:`` entry of the same segment configures
    (its ``public_url`` behind a proxy), else a local one.
    """
    names = sorted({c.field.insider_name for c in fields})
    webhook = next((e.webhook for e in project.config.exports if e.segment_id == segment_id), ExportWebhook())
    name = "audit_" + "".join(ch if ch.isalnum() else "_" for ch in sync.lower())
    return ExportConfig(name=name, segment_id=segment_id, attributes=names, format="json",
                        destination=ExportDestination(table=name), webhook=webhook)


def request_export(project: InsiderProject, export: ExportConfig, now: datetime, *, force: bool) -> str:
    """Request the export and wait for Insider's hook: the file's link."""
    destination = project.config.destination
    guard = DailyGuard(project.state_dir, destination.partner)
    if not force:
        guard.check(export.name, now)
    with HookReceiver(export.webhook, export.name) as hook:
        try:
            send_request(destination, export, build_body(export, hook.hook_url, now), now)
        except ExportQuotaError:
            guard.record(export.name, now)
            raise
        except DeliveryError as exc:  # the pull's hint names syncs.yml; an audit's export is --segment
            hint = "check the export definition in syncs.yml"
            if hint not in str(exc):
                raise
            raise DeliveryError(str(exc).replace(hint, "check --segment: it must name a dynamic segment "
                                                       "holding the synced users")) from None
        guard.record(export.name, now)
        return hook.wait()


def load_export(con: duckdb.DuckDBPyConnection, project: InsiderProject, export: ExportConfig, url: str,
                key: Compared, fields: Sequence[Compared]) -> tuple[int, int]:
    """Download the file at ``url`` and make it ``insider_side``: (profiles, bytes)."""
    with tempfile.TemporaryDirectory(prefix="reverse-etl-audit-") as tmp:
        path = Path(tmp) / f"{export.name}.jsonl"
        size = download_file(url, path, export=export.name,
                             timeout=project.config.destination.timeout_seconds)
        # A JSON null is an absent value (SQL NULL), as in a profile read.
        columns = ", ".join(f"nullif(CAST(json -> {literal(c.export_column)} AS VARCHAR), 'null') "
                            f"AS {ident(c.field.name)}" for c in fields)
        # Event rows (e_event_name set) carry identifiers only: one row per profile is a user row.
        con.execute(f"""
            CREATE OR REPLACE TABLE insider_side AS
            SELECT kv, TRUE AS found, * EXCLUDE (kv, is_event) FROM (
              SELECT json ->> {literal(key.export_column)} AS kv,
                     coalesce(json ->> 'e_event_name', '') <> '' AS is_event, {columns}
              FROM read_ndjson_objects({literal(str(path))}))
            WHERE kv IS NOT NULL AND NOT is_event
            QUALIFY row_number() OVER (PARTITION BY kv ORDER BY kv) = 1
        """)
        rows = con.execute("SELECT count(*) FROM insider_side").fetchall()[0][0]
    return int(rows), size
