"""The run hook that raises alerts at the end of every run (CLI, API, and later ``serve``)."""

from __future__ import annotations

from typing import Any

from reverse_etl.alerts.rules import alert_for_run
from reverse_etl.alerts.send import send_everywhere
from reverse_etl.alerts.stale import check_staleness
from reverse_etl.project.config import Project
from reverse_etl.run.events import Hook, RunEvent, RunFinished
from reverse_etl.state.ledger import Ledger


def alert_hook(project: Project[Any], ledger: Ledger | None = None) -> Hook | None:
    """A hook sending ``project``'s alerts, or None when it configures none.

    On each finished run: its failure or partial alert (if any), then the
    staleness check over every sync of the project. Missed deliveries become
    notes on the run's result; the outcome and exit code never change.
    """
    config = project.config.alerts
    if config is None:
        return None

    def on_event(event: RunEvent) -> None:
        if not isinstance(event, RunFinished):
            return
        result = event.result
        if result.outcome in ("planned", "skipped"):
            return
        alert = alert_for_run(result, config, target=project.target, project=project.root.name)
        if alert is not None:
            result.notes.extend(send_everywhere(alert, list(config.destinations), config.timeout_seconds))
        check_staleness(project, ledger=ledger, notes=result.notes)

    return on_event
