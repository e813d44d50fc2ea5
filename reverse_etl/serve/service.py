"""The service behind ``reverse-etl serve``: a project, its run queue, scheduler and metrics.

It reaches runs, the ledger and the state only through :mod:`reverse_etl.api`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reverse_etl import api
from reverse_etl.project.selection import select_syncs
from reverse_etl.run.events import Hook, RunEvent, RunStarted
from reverse_etl.serve.audits import AUDIT_PREFIX, audit_schedules, execute_audit
from reverse_etl.serve.auth import Secrets
from reverse_etl.serve.clock import Clock, SystemClock
from reverse_etl.serve.metrics import LedgerCollector, ServerMetrics
from reverse_etl.serve.queue import QueuedRun, RunQueue
from reverse_etl.serve.scheduler import Scheduler, plans_for, utc
from reverse_etl.state import RunRecord

log = logging.getLogger("reverse_etl.serve")

STALENESS_EVERY = timedelta(minutes=5)
"""How often the scheduler's tick checks ``alerts.stale_after_hours`` (clock time)."""


@dataclass
class ServeOptions:
    """How ``reverse-etl serve`` runs (the CLI's options)."""

    project_dir: Path
    target: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    token_env: str = "REVERSE_ETL_SERVE_TOKEN"
    dbt_cloud_secret_env: str = "REVERSE_ETL_DBT_CLOUD_SECRET"
    github_secret_env: str = "REVERSE_ETL_GITHUB_SECRET"
    dbt_cloud_token_env: str = "DBT_CLOUD_API_TOKEN"
    dbt_cloud_url: str = "https://cloud.getdbt.com"
    traces: str | None = None
    """``otlp`` or ``console``: export OpenTelemetry traces of runs (None: no tracing)."""
    schedules: bool = True
    """False: accept triggers only (``--no-schedules``)."""
    environ: Mapping[str, str] | None = None
    """Variables for the project (None: the process environment)."""
    hooks: Sequence[Hook] = field(default_factory=tuple)
    """Extra run hooks (e.g. a tracer in tests)."""


class Service:
    """One project served: triggers go into the queue; the scheduler adds its own."""

    def __init__(self, options: ServeOptions, clock: Clock | None = None) -> None:
        self.options = options
        self.environ: Mapping[str, str] = options.environ if options.environ is not None else os.environ
        self.clock = clock or SystemClock()
        self.project = api.load_project(options.project_dir, self.environ, options.target)
        self.secrets = Secrets.from_env(self.environ, options.token_env, options.dbt_cloud_secret_env,
                                        options.github_secret_env)
        self.queue = RunQueue(self._execute)
        config = self.project.config
        tag_schedules = [([s.name for s in select_syncs(config.syncs, [ts.select])], ts)
                         for ts in config.schedules]
        self.plans = plans_for([(s.name, s.tags, s.schedule) for s in config.syncs], tag_schedules)
        self.scheduler = Scheduler(self.plans, self.submit, self.clock, self._last_started,
                                   on_tick=self._check_staleness)
        self._staleness_checked: datetime | None = None
        self.audits = audit_schedules(self.project)
        self.last_audit: dict[str, QueuedRun] = {}
        # Audits have their own plans (a sync may be both run and audited on schedules of its
        # own); they are not caught up after downtime: the next slot audits the same state.
        self.audit_scheduler = Scheduler(
            plans_for([(name, (), schedule) for name, schedule in self.audits.items()], []),
            lambda sync, trigger: self.submit(AUDIT_PREFIX + sync, trigger), self.clock, lambda _: None)
        self.metrics = ServerMetrics(LedgerCollector(self.history, self.sync_names, self.scheduler.missed_total))
        self.hooks: list[Hook] = [self.metrics.hook, *options.hooks]
        if options.traces:
            from reverse_etl.serve.tracing import tracer_provider, tracing_hook

            self.hooks.append(tracing_hook(tracer_provider(options.traces)))
        self._artifacts = tempfile.TemporaryDirectory(prefix="reverse_etl_serve_")

    # -------------------------------------------------------------- reading
    def sync_names(self) -> list[str]:
        """The project's syncs, in config order."""
        return [s.name for s in self.project.config.syncs]

    def history(self, sync: str | None = None) -> list[RunRecord]:
        """Every ledger record (of one sync), oldest first."""
        return api.history(self.options.project_dir, sync, 0, environ=self.environ, target=self.options.target)

    def record(self, run_id: str) -> RunRecord | None:
        """The ledger record of ``run_id``."""
        return next((r for r in reversed(self.history()) if r.run_id == run_id), None)

    def select(self, selectors: Sequence[str]) -> list[str]:
        """Sync names chosen by selectors (UsageError for one that matches nothing)."""
        return [s.name for s in select_syncs(self.project.config.syncs, list(selectors))]

    def _last_started(self, sync: str) -> datetime | None:
        records = self.history(sync)
        if not records:
            return None
        return utc(datetime.strptime(records[-1].started_at, "%Y-%m-%dT%H:%M:%SZ"))

    def _check_staleness(self, now: datetime) -> None:
        """Alert on syncs with no success within ``alerts.stale_after_hours``, every few minutes.

        Runs raise their own alerts; this catches a sync that stopped running while
        nothing else ran either (the end-of-run check alone would never fire then).
        """
        if self._staleness_checked is not None and now - self._staleness_checked < STALENESS_EVERY:
            return
        self._staleness_checked = now
        from reverse_etl.alerts import check_staleness

        check_staleness(self.project, now=now)

    # -------------------------------------------------------------- running
    def submit(self, sync: str, trigger: str, *, dbt_run_results: Path | None = None) -> tuple[QueuedRun, bool]:
        """Queue a run of ``sync`` (coalesced with one already waiting)."""
        run, joined = self.queue.submit(sync, trigger, dbt_run_results=dbt_run_results)
        self.metrics.triggers.labels(trigger).inc()
        if joined:
            self.metrics.coalesced.inc()
        self.metrics.queue_depth.set(self.queue.depth)
        return run, joined

    def _execute(self, run: QueuedRun) -> None:
        self.metrics.queue_depth.set(self.queue.depth)
        if run.sync.startswith(AUDIT_PREFIX):
            audited = run.sync.removeprefix(AUDIT_PREFIX)
            try:
                execute_audit(self.project, self.audits[audited], run, environ=self.environ,
                              target=self.options.target)
            finally:
                self.last_audit[audited] = run
            return

        def learn_run_id(event: RunEvent) -> None:
            if isinstance(event, RunStarted) and event.sync == run.sync:
                run.run_id = event.run_id

        result = api.run(self.options.project_dir, select=[run.sync], hooks=[learn_run_id, *self.hooks],
                         dbt_run_results=run.dbt_run_results, environ=self.environ, target=self.options.target)
        if not result.syncs:
            run.outcome, run.message = "skipped", "the sync was not selected"
            return
        sync = result.syncs[0]
        run.run_id = sync.run_id or run.run_id
        run.outcome, run.counts, run.message = sync.outcome, dict(sync.counts), sync.message

    def artifacts_dir(self) -> Path:
        """Where fetched dbt Cloud artifacts are kept while the server runs."""
        return Path(self._artifacts.name)

    def start(self) -> None:
        """Start the worker and (unless disabled) the scheduler."""
        self.queue.start()
        if self.options.schedules:
            self.scheduler.start()
            self.audit_scheduler.start()

    def stop(self) -> None:
        """Stop the scheduler, let the running run finish, stop the worker."""
        self.scheduler.stop()
        self.audit_scheduler.stop()
        self.queue.stop()
        self._artifacts.cleanup()

    # -------------------------------------------------------------- overview
    def _audit_line(self, sync: str) -> str | None:
        """``audited 2026-03-01T04:00:02Z: 3 of 500 user(s) differ at Insider; next ...``."""
        if sync not in self.audits:
            return None
        last = self.last_audit.get(sync)
        nxt = self.audit_scheduler.next_run(sync)
        parts = [f"audited {last.finished_at or last.started_at}: {last.message or last.outcome}"
                 if last else "not audited yet"]
        if nxt is not None:
            parts.append(f"next audit {nxt:%Y-%m-%dT%H:%M:%SZ}")
        return "; ".join(parts)

    def overview(self) -> list[dict[str, Any]]:
        """One row per sync: last outcome, last success, next run, rows sent, rejected, queue state."""
        records = self.history()
        rows = []
        for sync in self.project.config.syncs:
            mine = [r for r in records if r.sync == sync.name]
            last = mine[-1] if mine else None
            success = next((r for r in reversed(mine) if r.outcome == "success"), None)
            try:
                rejected, _ = api.rejected_rows(self.options.project_dir, sync.name, 0, environ=self.environ,
                                                target=self.options.target)
            except Exception as exc:  # one sync's broken state must not take the page down
                log.warning("rejected rows of %s unreadable: %s", sync.name, exc)
                rejected = -1
            running, waiting = self.queue.state(sync.name)
            plan = next((p for p in self.plans if p.sync == sync.name), None)
            nxt = self.scheduler.next_run(sync.name)
            rows.append({
                "sync": sync.name, "mode": sync.mode, "tags": list(sync.tags),
                "schedule": plan.describe() if plan else None,
                "next_run": nxt.strftime("%Y-%m-%dT%H:%M:%SZ") if nxt else None,
                "last_run": last.run_id if last else None,
                "last_outcome": last.outcome if last else None,
                "last_started_at": last.started_at if last else None,
                "last_error": last.error if last else None,
                "last_success": success.finished_at if success else None,
                "rows_sent": int(last.counts.get("to_send", 0)) if last else 0,
                "rows_acked": int(last.counts.get("acked", 0)) if last else 0,
                "rejected": rejected,
                "runs": len(mine),
                "state": "running" if running else ("queued" if waiting else "idle"),
                "missed": [m.describe() for m in self.scheduler.missed.get(sync.name, [])],
                "audit": self._audit_line(sync.name),
            })
        return rows
