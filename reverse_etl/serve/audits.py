"""Scheduled audits: ``audit:`` of a sync, run by ``reverse-etl serve``, alerting on drift.

An audit is queued like a run (one worker, so it never overlaps a run of its
sync) under the queue name ``audit:<sync>``, and goes through
:func:`reverse_etl.api.audit` as a read-only comparison: it never repairs on its
own (repair stays an explicit ``reverse-etl audit SYNC --repair``). When the
drifted share of the users checked passes ``alert_above``, the project's
``alerts:`` destinations get one ``drift`` alert.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from reverse_etl import api
from reverse_etl.alerts.message import drift_alert
from reverse_etl.alerts.send import send_everywhere
from reverse_etl.project.schedule import AuditSchedule
from reverse_etl.serve.queue import QueuedRun

log = logging.getLogger("reverse_etl.serve")

AUDIT_PREFIX = "audit:"
"""Queue names of audits: ``audit:customers`` (a run of ``customers`` is queued as ``customers``)."""


def audit_schedules(project: Any) -> dict[str, AuditSchedule]:
    """Each sync's ``audit:`` (only the syncs that have one)."""
    return {s.name: s.audit for s in project.config.syncs if getattr(s, "audit", None) is not None}


def execute_audit(project: Any, schedule: AuditSchedule, run: QueuedRun, *,
                  environ: Mapping[str, str], target: str | None) -> None:
    """Audit ``run``'s sync as ``schedule`` says; fill in ``run``; alert when drift passes the bar."""
    sync = run.sync.removeprefix(AUDIT_PREFIX)
    full = schedule.segment is not None
    result = api.audit(project.root, sync, sample=None if full else schedule.sample,
                       segment_id=schedule.segment, environ=environ, target=target)
    run.outcome = "drifted" if result.drifted else "equal"
    run.counts = {"checked": result.checked, "drifted_users": result.drifted_users, **result.counts}
    run.message = (f"{result.drifted_users} of {result.checked} user(s) differ at Insider"
                   if result.drifted else f"{result.checked} user(s) checked, Insider equals the model")
    share = result.drifted_users / result.checked if result.checked else 0.0
    alerts = project.config.alerts
    if not result.drifted or share <= schedule.alert_above or alerts is None:
        return
    alert = drift_alert(sync, result.drifted_users, result.checked, schedule.alert_above,
                        {k: v for k, v in result.counts.items() if v}, method=result.method, target=target,
                        project=project.root.name)
    missed = send_everywhere(alert, list(alerts.destinations), alerts.timeout_seconds)
    if missed:
        run.message += "; " + "; ".join(missed)
