"""Write every spooled run to the warehouse, oldest first; keep what could not be written."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reverse_etl.project.config import Project
from reverse_etl.redact import redact
from reverse_etl.run.results import SyncResult
from reverse_etl.writeback import tables
from reverse_etl.writeback.capture import PARTIAL_SUFFIX, spool_dir
from reverse_etl.writeback.sinks import Sink, open_sink

log = logging.getLogger("reverse_etl.writeback")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def ready_runs(state_dir: Path) -> list[Path]:
    """Spooled runs waiting for the warehouse, oldest first (run ids sort by time)."""
    spool = spool_dir(state_dir)
    if not spool.is_dir():
        return []
    return sorted(p for p in spool.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL_SUFFIX))


def flush_spool(project: Project[Any], results: Sequence[SyncResult] = ()) -> dict[str, str]:
    """Write each spooled run to the source warehouse; return run id → why it was not written.

    A written run leaves the spool; one that failed stays for the next flush and
    its result (if among ``results``) gets a note. Never raises.
    """
    config = project.config.writeback
    pending = ready_runs(project.state_dir)
    if config is None or not pending:
        return {}
    by_run = {r.run_id: r for r in results}
    failed: dict[str, str] = {}
    named = tables.table_names(config)
    sink: Sink | None = None
    try:
        sink = open_sink(project.config.source, project.root)
        sink.ensure(config.schema_, {name: columns for name, columns in named.values()})
        for entry in pending:
            files = {named[stem][0]: entry / f"{stem}.parquet" for stem in named
                     if (entry / f"{stem}.parquet").exists()}
            try:
                sink.replace_run(config.schema_, entry.name, files)
            except Exception as exc:  # any driver's error: the run stands, the entry is retried
                failed[entry.name] = _one_line(exc)
                continue
            shutil.rmtree(entry, ignore_errors=True)
    except Exception as exc:  # cannot connect or create the tables: every entry waits
        reason = _one_line(exc)
        failed.update({e.name: reason for e in pending if e.name not in failed and e.exists()})
    finally:
        if sink is not None:
            try:
                sink.close()
            except Exception as exc:  # closing must not hide what was written
                log.warning("write-back: closing the warehouse connection failed: %s", _one_line(exc))
    for run_id, reason in failed.items():
        line = f"write-back of run {run_id} to the warehouse failed (kept, retried next run): {reason}"
        log.warning("%s", line)
        if run_id in by_run:
            by_run[run_id].notes.append(line)
    return failed
