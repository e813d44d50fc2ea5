"""What one alert says: which sync, what happened, the counts, and what to run next.

Every text an alert carries passes through :func:`reverse_etl.redact.redact`
when it is rendered, so a secret in a run's error message never leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reverse_etl.redact import redact, redact_value
from reverse_etl.run.results import SyncResult

AlertKind = Literal["failed", "partial", "stale", "drift"]

SHOWN_COUNTS = ("to_send", "acked", "rejected", "failed", "invalid", "held_back", "added", "changed", "removed")
"""The counts an alert lists (those the run has), in this order."""


@dataclass(frozen=True)
class Alert:
    """One alert about one sync."""

    kind: AlertKind
    sync: str
    summary: str
    """One line: what happened."""
    command: str
    """What to run to investigate, e.g. ``reverse-etl rejected customers``."""
    run_id: str | None = None
    outcome: str | None = None
    failure: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    target: str | None = None
    project: str | None = None
    last_success: str | None = None
    """Stale alerts: when the sync last succeeded (None: never)."""

    @property
    def title(self) -> str:
        """A short heading: ``reverse-etl: sync 'customers' failed``."""
        where = f" [{self.target}]" if self.target else ""
        what = {"failed": "failed", "partial": "rejected rows", "stale": "is stale",
                "drift": "has drifted at Insider"}[self.kind]
        return redact(f"reverse-etl{where}: sync {self.sync!r} {what}")

    def lines(self) -> list[str]:
        """The alert as plain text lines (email bodies, Slack text)."""
        out = [self.summary]
        if self.counts:
            out.append("counts: " + ", ".join(f"{k}={v}" for k, v in self.counts.items()))
        if self.run_id:
            out.append(f"run: {self.run_id}" + (f" ({self.outcome})" if self.outcome else ""))
        if self.kind == "stale":
            out.append(f"last success: {self.last_success or 'never'}")
        if self.project:
            out.append(f"project: {self.project}")
        out.append(f"investigate: {self.command}")
        return [redact(line) for line in out]

    def text(self) -> str:
        """Title and lines as one text."""
        return "\n".join([self.title, *self.lines()])

    def to_json(self) -> dict[str, Any]:
        """The generic webhook's JSON body."""
        body = {
            "source": "reverse_etl", "kind": self.kind, "sync": self.sync, "title": self.title,
            "summary": self.summary, "run_id": self.run_id, "outcome": self.outcome,
            "failure": self.failure, "counts": self.counts, "target": self.target,
            "project": self.project, "last_success": self.last_success, "command": self.command,
            "text": self.text(),
        }
        redacted: dict[str, Any] = redact_value(body)
        return redacted


def _shown_counts(result: SyncResult) -> dict[str, int]:
    return {k: int(result.counts[k]) for k in SHOWN_COUNTS if k in result.counts}


def _command(sync: str, target: str | None, verb: str) -> str:
    flag = f" --target {target}" if target else ""
    return f"reverse-etl {verb} {sync}{flag}"


def failure_alert(result: SyncResult, *, target: str | None = None, project: str | None = None) -> Alert:
    """The alert for a failed (or interrupted) run."""
    kind = result.failure or "internal"
    has_rejects = result.counts.get("rejected", 0) or result.counts.get("failed", 0)
    return Alert(
        kind="failed", sync=result.sync, run_id=result.run_id, outcome=result.outcome, failure=kind,
        summary=f"run {result.outcome} ({kind}): {result.message or 'no message'}",
        command=_command(result.sync, target, "rejected" if has_rejects else "history"),
        counts=_shown_counts(result), target=target, project=project)


def partial_alert(result: SyncResult, ratio: float, *, target: str | None = None,
                  project: str | None = None) -> Alert:
    """The alert for a partial run whose refused rows passed ``ratio``."""
    refused = result.counts.get("rejected", 0) + result.counts.get("failed", 0)
    sent = result.counts.get("to_send", 0)
    share = f" ({refused / sent:.1%} of {sent} sent, above {ratio:g})" if sent else ""
    return Alert(
        kind="partial", sync=result.sync, run_id=result.run_id, outcome=result.outcome,
        summary=f"{refused} row(s) rejected or failed{share}: {result.message or ''}".rstrip(": "),
        command=_command(result.sync, target, "rejected"), counts=_shown_counts(result),
        target=target, project=project)


def stale_alert(sync: str, hours: float, last_success: str | None, *, last_run: str | None = None,
                target: str | None = None, project: str | None = None) -> Alert:
    """The alert for a sync with no success within ``hours``."""
    since = f"since {last_success}" if last_success else "ever"
    return Alert(
        kind="stale", sync=sync, run_id=last_run, last_success=last_success,
        summary=f"no successful run {since} (stale after {hours:g} h)",
        command=_command(sync, target, "history"), target=target, project=project)


def drift_alert(sync: str, drifted: int, checked: int, threshold: float, counts: dict[str, int], *,
                method: str, target: str | None = None, project: str | None = None) -> Alert:
    """The alert for an audit whose drifted share of the users checked passed ``threshold``."""
    share = f"{drifted / checked:.1%} of {checked} checked" if checked else f"{checked} checked"
    above = f", above {threshold:g}" if threshold else ""
    flag = f" --target {target}" if target else ""
    sample = "--full --segment ID" if method == "full" else "--sample N"
    return Alert(
        kind="drift", sync=sync, counts=dict(counts),
        summary=f"{drifted} user(s) differ at Insider ({share}{above}, {method} audit)",
        command=f"reverse-etl audit {sync} {sample}{flag} (add --repair to fix)",
        target=target, project=project)
