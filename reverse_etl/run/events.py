"""Run events and the hooks that receive them.

The runner announces what happens (a run started, a stage finished, rows were
sent, the run finished with its result); hooks turn that into progress bars,
alerts, write-back or metrics without the runner knowing about any of them.
A hook that raises is logged and never fails or hides the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reverse_etl.run.results import SyncResult

log = logging.getLogger("reverse_etl.run")


@dataclass(frozen=True)
class RunStarted:
    """A sync run (or plan) began."""

    sync: str
    run_id: str
    started_at: str
    dry_run: bool = False


@dataclass(frozen=True)
class StageFinished:
    """One stage (source, diff, deliver, commit) of a run ended."""

    sync: str
    run_id: str
    stage: str
    seconds: float
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RowsSent:
    """Delivery progress: ``done`` of ``total`` operations settled."""

    sync: str
    run_id: str
    done: int
    total: int


@dataclass(frozen=True)
class WorkspaceSettled:
    """A run's delivery and commit are done; its DuckDB workspace is still open.

    ``connection`` holds the run's tables (:mod:`reverse_etl.diff.tables`:
    ``changes``, ``acked``, ``outcome``, ``new_rej``) until the hooks return: a
    hook may read them (e.g. to copy a change log out), never change them.
    ``result`` is the run's result so far.
    """

    result: SyncResult
    connection: Any


@dataclass(frozen=True)
class RunFinished:
    """A run ended, however it ended; ``result`` is what the ledger records."""

    result: SyncResult


RunEvent = RunStarted | StageFinished | RowsSent | WorkspaceSettled | RunFinished
Hook = Callable[[RunEvent], None]
"""A receiver of run events."""


class Hooks:
    """The registered hooks of a run; :meth:`emit` never raises."""

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self._hooks = list(hooks)

    def add(self, hook: Hook) -> None:
        """Register ``hook`` for the following events."""
        self._hooks.append(hook)

    def emit(self, event: RunEvent) -> None:
        """Give ``event`` to every hook; a failing hook is logged and skipped."""
        for hook in self._hooks:
            try:
                hook(event)
            except Exception as exc:  # a hook must never fail or hide the run
                name = getattr(hook, "__qualname__", type(hook).__name__)
                log.warning("run hook %s failed on %s: %s: %s", name, type(event).__name__,
                            type(exc).__name__, exc)


def progress_hook(callback: Callable[[str, int, int], None]) -> Hook:
    """A hook that reports delivery progress as ``callback(description, done, total)``."""

    def on_event(event: RunEvent) -> None:
        if isinstance(event, RowsSent):
            callback(f"{event.sync}: sending", event.done, event.total)

    return on_event
