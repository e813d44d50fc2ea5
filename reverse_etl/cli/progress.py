"""Progress for the CLI: a rich bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from reverse_etl.api import ProgressCallback


@contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """Yield a progress callback suited to stderr (or None when disabled)."""
    if not enabled:
        yield None
        return
    if sys.stderr.isatty():
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), transient=True) as bar:
            tasks: dict[str, TaskID] = {}

            def update(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            yield update
        return
    last = {"t": 0.0}

    def log(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last["t"] >= 5:
            last["t"] = now
            print(f"{stage}: {done}/{total} rows", file=sys.stderr, flush=True)

    yield log
