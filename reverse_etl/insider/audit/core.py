"""One audit: encode the model as a run does, read Insider's side, compare, and maybe repair.

The model side is the runner's own encoding (:meth:`SyncRunner.encode_all`), so a
value is audited exactly as a run would send it. Insider's side is a table built
from profile reads (a sample, within the read quota) or from one raw export
(everything, once per UTC day). A repair (or its dry run) is handed back to the
caller as a :class:`~.repair.Rebase` for a normal run of the sync.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from reverse_etl.diff.workspace import engine_connection
from reverse_etl.errors import ConfigError, UsageError
from reverse_etl.insider.config import InsiderProject, SyncConfig
from reverse_etl.insider.modes.attributes import UpsertAttributes
from reverse_etl.insider.modes.ecommerce import EcommerceEvents
from reverse_etl.insider.modes.events import UserEvents
from reverse_etl.run.outcome import new_run_id
from reverse_etl.run.results import SyncResult
from reverse_etl.run.runner import SyncRunner

from .compare import (
    Compared,
    compared_fields,
    create_drift,
    create_population,
    drift_counts,
    drift_examples,
    install_macros,
)
from .events import audit_events, write_observed_events
from .export import export_config, load_export, request_export
from .profiles import read_profiles
from .repair import Rebase, write_observed
from .result import AuditResult

Deliver = Callable[[Rebase, bool], SyncResult]
"""deliver(rebase, repair): a run (``repair``) or a plan of the sync with that rebase."""


def _events_mode(mode: object) -> UserEvents | None:
    # The ecommerce preset reshapes rows (one event per product): not audited yet.
    return mode if isinstance(mode, UserEvents) and not isinstance(mode, EcommerceEvents) else None


def _fields(sync: SyncConfig, mode: object) -> tuple[Compared, list[Compared], list[str]]:
    """(key, compared fields, boolean audience field names) of an auditable sync."""
    if not isinstance(mode, UpsertAttributes):
        raise ConfigError(f"sync {sync.name!r}: audit compares user attributes and events; mode {sync.mode!r} "
                          f"with operation {sync.operation!r} is not audited (audit a user_attributes upsert or "
                          "replace_attributes sync, or a user_events sync)")
    audiences = list(getattr(mode, "audiences", []))
    if audiences and sync.audience_delivery != "boolean":
        raise ConfigError(f"sync {sync.name!r}: audit compares boolean audiences only; "
                          f"audience_delivery {sync.audience_delivery!r} is not audited yet")
    fields = compared_fields(mode.ids, mode.attrs, audiences)
    key = next(c for c in fields if c.field == mode.ids[0])  # the mode keys users by its first identifier
    return key, fields, [a.name for a in audiences]


def audit_sync(project: InsiderProject, sync: SyncConfig, runner: SyncRunner, *, sample: int | None = None,
               segment_id: int | None = None, from_url: str | None = None, force: bool = False,
               examples: int = 5, repair: bool = False, deliver: Deliver | None = None,
               clock: Callable[[], datetime] | None = None) -> AuditResult:
    """Audit ``sync`` (see the module docstring): ``sample`` users, or all (``segment_id``/``from_url``).

    With drift and ``deliver``, the repair is planned (``repair`` False) or run.
    """
    started = time.perf_counter()
    events_mode = _events_mode(runner.mode)
    key, fields, audiences = _fields(sync, runner.mode) if events_mode is None else (None, [], [])
    full = sample is None
    if full and segment_id is None and from_url is None:
        raise UsageError("a full audit reads Insider's raw export of a segment: give --segment ID "
                         "(a dynamic segment holding every synced user) or --from-url LINK; "
                         "or audit a sample with --sample N")
    if sample is not None and sample <= 0:
        raise UsageError(f"--sample must be a positive number of users, got {sample}")
    result = AuditResult(sync=sync.name, method="full" if full else "sample")
    spill = tempfile.TemporaryDirectory(prefix="reverse_etl_audit_")
    try:
        con = engine_connection(Path(spill.name), runner.state_config.memory_limit, runner.state_config.threads)
        try:
            encoded = SyncResult(sync=sync.name, run_id=new_run_id(), outcome="planned")
            runner.encode_all(con, encoded)
            install_macros(con)
            result.invalid_rows = int(encoded.counts.get("invalid", 0))
            observed = Path(spill.name) / "observed.parquet"
            if events_mode is not None:
                audit_events(con, project, sync, events_mode, sample=sample, segment_id=segment_id,
                             from_url=from_url, force=force, clock=clock, tmp=Path(spill.name), result=result)
                _summarise(con, result, examples)
                result.drifted_users = _scalar(con, "SELECT count(DISTINCT e.kv) FROM audit_events e "
                                                    "JOIN audit_drift d ON d.key = e.key")
                if result.drifted and deliver is not None:
                    write_observed_events(con, events_mode, observed)
            else:
                assert key is not None
                _audit_attributes(con, project, sync, runner, key, fields, audiences, sample=sample,
                                  segment_id=segment_id, from_url=from_url, force=force, clock=clock,
                                  examples=examples, observed=observed if deliver is not None else None,
                                  result=result)
        finally:
            con.close()
        if result.drifted and deliver is not None:
            result.repair = deliver(Rebase(observed, tuple(runner.tracked)), repair)
            result.repaired = repair
    finally:
        spill.cleanup()
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _summarise(con: duckdb.DuckDBPyConnection, result: AuditResult, examples: int) -> None:
    result.counts, result.fields, result.drifted_users = drift_counts(con)
    result.examples = drift_examples(con, examples)


def _audit_attributes(con: duckdb.DuckDBPyConnection, project: InsiderProject, sync: SyncConfig,
                      runner: SyncRunner, key: Compared, fields: list[Compared], audiences: list[str], *,
                      sample: int | None, segment_id: int | None, from_url: str | None, force: bool,
                      clock: Callable[[], datetime] | None, examples: int, observed: Path | None,
                      result: AuditResult) -> None:
    """A user_attributes sync's audit into ``result`` (and the observed rows of a repair)."""
    full = sample is None
    create_population(con, key.field, fields, sync.on_removed in ("delete_user", "clear_attributes"),
                      sample)
    result.model_rows = _scalar(con, "SELECT count(*) FROM cur WHERE reason IS NULL")
    result.checked = _scalar(con, "SELECT count(*) FROM audit_population")
    if full:
        used = fields
        _read_export(con, project, sync, key, fields, segment_id, from_url, force, clock, result)
    else:
        used = [c for c in fields if c.read_name is not None or c is key]
        result.not_compared = [c.field.label for c in fields if c not in used]
        _read_sample(con, project, key, used, result)
    result.found = _scalar(con, "SELECT count(*) FROM audit_population p JOIN insider_side i "
                                "ON i.kv = p.kv WHERE i.found")
    if full:  # profiles of the segment the model does not have: reported, not drift
        result.not_in_model = _scalar(con, "SELECT count(*) FROM insider_side i WHERE NOT EXISTS "
                                           "(SELECT 1 FROM audit_population p WHERE p.kv = i.kv)")
    create_drift(con, key.field, used, sync.on_removed)
    _summarise(con, result, examples)
    if result.drifted and observed is not None:
        write_observed(con, runner.tracked, audiences, observed)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def _read_sample(con: duckdb.DuckDBPyConnection, project: InsiderProject, key: Compared,
                 used: list[Compared], result: AuditResult) -> None:
    kvs = [kv for (kv,) in con.execute("SELECT kv FROM audit_population ORDER BY kv").fetchall()]
    config = project.config.destination
    rows, stats = read_profiles(config, key, kvs, used)
    schema = pa.schema([("kv", pa.string()), ("found", pa.bool_()),
                        *((c.field.name, pa.string()) for c in used if c.read_name is not None)])
    table = pa.Table.from_pylist(rows, schema=schema)
    con.register("audit_reads", table)
    con.execute("CREATE OR REPLACE TABLE insider_side AS SELECT * FROM audit_reads")
    con.unregister("audit_reads")
    per_minute = config.rate_limits.profile_read_per_minute
    result.cost = {"profile_reads": stats.reads, "quota_units": stats.quota_units,
                   "quota_per_minute": per_minute, "read_seconds": stats.seconds}


def _read_export(con: duckdb.DuckDBPyConnection, project: InsiderProject, sync: SyncConfig, key: Compared,
                 fields: list[Compared], segment_id: int | None, from_url: str | None, force: bool,
                 clock: Callable[[], datetime] | None, result: AuditResult) -> None:
    export = export_config(project, sync.name, segment_id or 1, fields)
    requested = from_url is None
    started = time.perf_counter()
    url = from_url or request_export(project, export, (clock or (lambda: datetime.now(UTC)))(), force=force)
    profiles, size = load_export(con, project, export, url, key, fields)
    cost: dict[str, Any] = {"raw_exports": int(requested), "segment_id": segment_id, "export_profiles": profiles,
                            "export_bytes": size, "export_seconds": round(time.perf_counter() - started, 3)}
    result.cost = cost
    if not requested:
        result.notes.append("read an export link Insider had already sent (--from-url): no new export "
                            "was requested")
