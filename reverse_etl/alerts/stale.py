"""Staleness: a sync with no successful run within ``stale_after_hours``.

Checked at the end of every run of any sync of the project (so a sync that
stopped running is noticed when another one runs), and callable on a timer by a
long-running process (:func:`check_staleness` takes the clock as ``now``). One
alert per stale spell: the sync's last success is remembered in
``<state>/alerts-stale.json`` and a new success ends the spell.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reverse_etl.alerts.message import Alert, stale_alert
from reverse_etl.alerts.send import send_everywhere
from reverse_etl.project.config import Project
from reverse_etl.state.ledger import Ledger, RunRecord
from reverse_etl.state.stores import open_ledger

log = logging.getLogger("reverse_etl.alerts")

DELIVERED_OUTCOMES = ("success", "partial")
"""Outcomes that count as a success here: a partial run delivered (its refusals alert on their own)."""
MEMORY_FILE = "alerts-stale.json"


def _parse(ts: str) -> datetime | None:
    try:
        return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def stale_syncs(records: Sequence[RunRecord], syncs: Sequence[str], hours: float,
                now: datetime) -> list[tuple[str, str | None, str, RunRecord]]:
    """(sync, last success or None, the time the spell started, last run) of each stale sync.

    A sync that never ran is not judged (nothing says it should have); one that
    ran but never succeeded is stale ``hours`` after its first run.
    """
    limit = timedelta(hours=hours)
    out = []
    for name in syncs:
        runs = [r for r in records if r.sync == name and r.outcome != "planned"]
        if not runs:
            continue
        successes = [r.finished_at or r.started_at for r in runs if r.outcome in DELIVERED_OUTCOMES]
        last_success = max(successes) if successes else None
        since = last_success or min(r.started_at for r in runs)
        moment = _parse(since)
        if moment is not None and now - moment > limit:
            out.append((name, last_success, since, runs[-1]))
    return out


def check_staleness(project: Project[Any], *, now: datetime | None = None,
                    ledger: Ledger | None = None, notes: list[str] | None = None) -> list[Alert]:
    """Send a stale alert for each sync of ``project`` newly stale at ``now``; return them.

    A no-op without ``alerts.stale_after_hours``. Deliveries that fail are logged
    (and appended to ``notes``, e.g. a run result's); they are retried at the
    next check, since only a delivered alert is remembered.
    """
    config = project.config.alerts
    if config is None or config.stale_after_hours is None:
        return []
    now = now or datetime.now(UTC)
    ledger = ledger or open_ledger(project.state_dir, project.config.state)
    names = [s.name for s in getattr(project.config, "syncs", [])]
    memory_path = project.state_dir / MEMORY_FILE
    memory = _read_memory(memory_path)
    stale = stale_syncs(ledger.records(), names, config.stale_after_hours, now)
    current = {name: since for name, _, since, _ in stale}
    raised = []
    for name, last_success, since, last_run in stale:
        if memory.get(name) == since:
            continue  # already alerted for this spell
        alert = stale_alert(name, config.stale_after_hours, last_success, last_run=last_run.run_id,
                            target=project.target, project=project.root.name)
        missed = send_everywhere(alert, list(config.destinations), config.timeout_seconds)
        if notes is not None:
            notes.extend(missed)
        if len(missed) < len(config.destinations):
            memory[name] = since
        raised.append(alert)
    # A sync no longer stale starts afresh: its next spell alerts again.
    memory = {k: v for k, v in memory.items() if k in current}
    _write_memory(memory_path, memory)
    return raised


def _read_memory(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_memory(path: Path, memory: dict[str, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(memory, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # losing the memory means one repeated alert at worst
        log.warning("could not remember stale alerts in %s: %s", path, exc)
