"""What every orchestrator step does: run syncs, judge the result, explain a failure in one line.

An orchestrator step fails when a sync failed or was interrupted, and (unless
``fail_on_partial`` is False) when some of its rows were refused. The reason is
the line the CLI would print (``sync: outcome: message``), redacted, so the
orchestrator's UI shows the same words as ``reverse-etl run``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reverse_etl import api
from reverse_etl.errors import ReverseEtlError
from reverse_etl.redact import redact, redact_value
from reverse_etl.run.results import RunResult, SyncResult

__all__ = ["StepFailed", "failure_reason", "load_structure", "run_step", "summary"]

UNSET = "unset-when-loading-definitions"
"""The value of environment variables that are not set while only the project's shape is read."""


class StepFailed(RuntimeError):
    """A reverse_etl step failed; ``str()`` is the tool's one-line reason (redacted).

    ``result`` is the run's result when the syncs ran (None when the project
    could not even be loaded), ``exit_code`` the CLI's exit code for it.
    """

    def __init__(self, reason: str, result: RunResult | None = None, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result
        self.exit_code = exit_code


def sync_line(sync: SyncResult) -> str:
    """``name: outcome: message`` for one sync (redacted)."""
    return redact(f"{sync.sync}: {sync.outcome}: {sync.message or 'no message'}")


def failure_reason(result: RunResult, *, fail_on_partial: bool = True) -> str | None:
    """Why the step fails (the failed syncs' lines joined by ``; ``), None when it succeeds."""
    failing = [s for s in result.syncs
               if s.outcome in ("failed", "interrupted") or (fail_on_partial and s.outcome == "partial")]
    if not failing:
        return None
    return "; ".join(sync_line(s) for s in failing)


def summary(result: RunResult) -> dict[str, Any]:
    """The run result as plain JSON-ready data (what goes to XCom or a task's return value).

    ``exit_code``, ``target`` and per sync: ``sync, run_id, outcome, counts,
    seconds, message, failure, requests, full_resend_reason, notes``; redacted.
    Plan samples are left out: they hold row values, which an orchestrator
    stores in its own database.
    """
    syncs = [{"sync": s.sync, "run_id": s.run_id, "outcome": s.outcome, "counts": dict(s.counts),
              "seconds": dict(s.seconds), "message": s.message, "failure": s.failure,
              "requests": s.requests, "full_resend_reason": s.full_resend_reason,
              "notes": list(s.notes)} for s in result.syncs]
    data: dict[str, Any] = redact_value({"exit_code": result.exit_code, "target": result.target,
                                         "syncs": syncs})
    return data


def run_step(project_dir: str | Path, *, select: Sequence[str] = (), exclude: Sequence[str] = (),
             target: str | None = None, dbt_run_results: str | Path | None = None,
             full_refresh: bool = False, fail_on_partial: bool = True,
             environ: Mapping[str, str] | None = None) -> RunResult:
    """Run the syncs; raise :class:`StepFailed` with the one-line reason when the step must fail.

    A project that cannot be loaded (bad syncs.yml, unknown selector, unset
    variable) raises :class:`StepFailed` with the tool's own message, never a traceback's.
    """
    try:
        result = api.run(project_dir, select=list(select), exclude=list(exclude), target=target,
                         dbt_run_results=dbt_run_results, full_refresh=full_refresh, environ=environ)
    except ReverseEtlError as exc:
        raise StepFailed(redact(str(exc)), None, getattr(exc, "exit_code", 1)) from None
    reason = failure_reason(result, fail_on_partial=fail_on_partial)
    if reason is not None:
        raise StepFailed(reason, result, result.exit_code)
    return result


class _WithPlaceholders(Mapping[str, str]):
    """The real environment, with :data:`UNSET` for every variable it lacks."""

    def __init__(self, real: Mapping[str, str]) -> None:
        self.real = real

    def __getitem__(self, key: str) -> str:
        return self.real.get(key, UNSET)

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.real)

    def __len__(self) -> int:
        return len(self.real)


def load_structure(project_dir: str | Path, *, target: str | None = None,
                   environ: Mapping[str, str] | None = None) -> api.Project:
    """The project, for its shape (syncs, tags, models) only.

    Orchestrators read definitions where the secrets may not be set (a Dagster
    code server, an Airflow DAG parser), so a missing variable is tolerated
    here; runs still load the project with the real environment.
    """
    try:
        return api.load_project(project_dir, environ, target)
    except ReverseEtlError as first:
        try:
            real = environ if environ is not None else os.environ
            return api.load_project(project_dir, _WithPlaceholders(real), target)
        except ReverseEtlError:
            raise StepFailed(redact(str(first))) from None
