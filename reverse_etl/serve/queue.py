"""The run queue: one worker, one run at a time, overlapping triggers coalesced.

A trigger for a sync that already has a run *waiting* joins that run (the caller
gets its id back, and the trigger is listed on it); a trigger for a sync that is
*running* queues exactly one follow-up run, so the change that caused the
trigger is never missed and never dropped. One worker thread runs everything in
order: together with the sync's state lock (taken by every run, CLI or serve)
no sync ever runs twice at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("reverse_etl.serve")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class QueuedRun:
    """One run the server accepted: waiting, running or finished."""

    id: str
    sync: str
    triggers: list[str]
    """Who asked for it: ``api``, ``schedule``, ``catch-up``, ``dbt-cloud``, ``github`` (one per trigger)."""
    requested_at: str = field(default_factory=_now)
    status: str = "queued"
    """queued | running | finished"""
    dbt_run_results: Path | None = None
    """Run only if dbt rebuilt the sync's model (a dbt Cloud job's artifact); None: run unconditionally."""
    started_at: str | None = None
    finished_at: str | None = None
    run_id: str | None = None
    """The run id in the ledger (``reverse-etl history``), once the run has started."""
    outcome: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``GET /api/runs/{id}``."""
        return {"id": self.id, "sync": self.sync, "status": self.status, "triggers": list(self.triggers),
                "requested_at": self.requested_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "run_id": self.run_id, "outcome": self.outcome,
                "counts": dict(self.counts), "message": self.message}


Executor = Callable[[QueuedRun], None]
"""Runs one queued run, filling in run_id, outcome, counts and message."""


class RunQueue:
    """Accepts triggers and runs them one by one on a worker thread."""

    def __init__(self, execute: Executor, *, keep: int = 1000) -> None:
        self._execute = execute
        self._cond = threading.Condition()
        self._waiting: deque[QueuedRun] = deque()
        self._pending: dict[str, QueuedRun] = {}
        self._running: QueuedRun | None = None
        self._runs: dict[str, QueuedRun] = {}
        self._keep = keep
        self._stop = False
        self._thread: threading.Thread | None = None
        self.coalesced = 0
        """How many triggers joined a run that was already waiting."""

    def submit(self, sync: str, trigger: str, *, dbt_run_results: Path | None = None) -> tuple[QueuedRun, bool]:
        """Queue a run of ``sync`` (or join the one waiting); returns (run, joined)."""
        with self._cond:
            waiting = self._pending.get(sync)
            if waiting is not None:
                waiting.triggers.append(trigger)
                # An unconditional trigger wins over a dbt-gated one; two gated ones: the newest artifact.
                if waiting.dbt_run_results is not None:
                    waiting.dbt_run_results = dbt_run_results
                self.coalesced += 1
                return waiting, True
            run = QueuedRun(id="q" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3),
                            sync=sync, triggers=[trigger], dbt_run_results=dbt_run_results)
            self._pending[sync] = run
            self._waiting.append(run)
            self._runs[run.id] = run
            self._forget_old()
            self._cond.notify_all()
            return run, False

    def get(self, run_id: str) -> QueuedRun | None:
        """A run by its queue id, or by the ledger run id it got once started."""
        with self._cond:
            found = self._runs.get(run_id)
            if found is None:
                found = next((r for r in self._runs.values() if r.run_id == run_id), None)
            return found

    def state(self, sync: str) -> tuple[QueuedRun | None, QueuedRun | None]:
        """(running, waiting) runs of ``sync``."""
        with self._cond:
            running = self._running if self._running is not None and self._running.sync == sync else None
            return running, self._pending.get(sync)

    @property
    def depth(self) -> int:
        """Runs waiting (not counting the one running)."""
        with self._cond:
            return len(self._waiting)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._work, name="reverse-etl-runs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the running run finish, then stop (waiting runs are not started)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_pending(self) -> int:
        """Run everything waiting on the calling thread (tests without a worker); returns how many."""
        done = 0
        while (run := self._take(block=False)) is not None:
            self._run(run)
            done += 1
        return done

    def _take(self, block: bool = True) -> QueuedRun | None:
        with self._cond:
            while not self._waiting:
                if self._stop or not block:
                    return None
                self._cond.wait()
            if self._stop:
                return None
            run = self._waiting.popleft()
            del self._pending[run.sync]
            self._running = run
            run.status, run.started_at = "running", _now()
            return run

    def _work(self) -> None:
        while (run := self._take()) is not None:
            self._run(run)

    def _run(self, run: QueuedRun) -> None:
        try:
            self._execute(run)
        except Exception as exc:  # the worker must survive anything a run does
            log.error("run of %s (%s) ended with an internal error: %s: %s", run.sync, run.id,
                      type(exc).__name__, exc)
            run.outcome = run.outcome or "failed"
            run.message = run.message or f"internal error ({type(exc).__name__}); see the server log"
        finally:
            with self._cond:
                run.status, run.finished_at = "finished", _now()
                self._running = None
            run.done.set()

    def _forget_old(self) -> None:
        while len(self._runs) > self._keep:
            oldest = next(iter(self._runs))
            if self._runs[oldest].status != "finished":
                break
            del self._runs[oldest]
