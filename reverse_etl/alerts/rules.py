"""Which finished runs alert: failures, and partial runs above the rejected-row ratio."""

from __future__ import annotations

from reverse_etl.alerts.message import Alert, failure_alert, partial_alert
from reverse_etl.project.operate import AlertsConfig
from reverse_etl.run.results import SyncResult


def alert_for_run(result: SyncResult, config: AlertsConfig, *, target: str | None = None,
                  project: str | None = None) -> Alert | None:
    """The alert a finished run raises under ``config``, or None.

    Plans and skipped runs never alert. A partial run alerts when its rejected
    and failed rows are more than ``rejected_ratio`` of the rows it sent (with
    ``rejected_ratio: 0``, every partial run alerts).
    """
    if result.outcome in ("failed", "interrupted"):
        return failure_alert(result, target=target, project=project) if config.on_failure else None
    if result.outcome != "partial" or config.rejected_ratio is None:
        return None
    refused = result.counts.get("rejected", 0) + result.counts.get("failed", 0)
    sent = result.counts.get("to_send", 0)
    # 0 means any partial run (invalid or held-back rows too); above 0, the share of rows sent.
    if config.rejected_ratio > 0 and not (sent and refused / sent > config.rejected_ratio):
        return None
    return partial_alert(result, config.rejected_ratio, target=target, project=project)
