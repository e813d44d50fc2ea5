"""Progress of ``reverse-etl pull`` for the CLI: a rich bar on a terminal, plain lines elsewhere.

The core (:func:`reverse_etl.insider.pull.pull`) never prints; it calls
``progress(stage, done, total)``. Stage ``download`` counts bytes (``total`` is
None while the size is unknown); any other stage is a status line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .download import ProgressCallback


@contextmanager
def pull_reporter(enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """Yield a progress callback writing to stderr (None when disabled)."""
    if not enabled:
        yield None
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                      transient=True) as bar:
            task: list[TaskID] = []

            def update(stage: str, done: int, total: int | None) -> None:
                if stage != "download":
                    bar.console.print(stage)
                    return
                if not task:
                    task.append(bar.add_task("download", total=total))
                bar.update(task[0], completed=done, total=total)

            yield update
        return
    last = {"t": 0.0}

    def log(stage: str, done: int, total: int | None) -> None:
        if stage != "download":
            print(stage, file=sys.stderr, flush=True)
            return
        now = time.monotonic()
        finished = total is not None and done >= total
        if finished or now - last["t"] >= 5:
            last["t"] = now
            of = f" of {total:,}" if total is not None else ""
            print(f"download: {done:,}{of} bytes", file=sys.stderr, flush=True)

    yield log
