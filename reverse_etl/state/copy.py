"""Moving a project's state between stores (``reverse-etl state copy``) without losing a journal.

Each sync is copied under its lock (the flock, or the lease of an object store),
so no run is delivering meanwhile; a pending change set and its journal are
copied with it, so the first run at the destination folds what a crashed run
had acknowledged. The destination must not hold that sync's state yet.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from reverse_etl.errors import StateError
from reverse_etl.project.config import StateConfig
from reverse_etl.project.state_url import check_state_url, is_remote
from reverse_etl.state.ledger import Ledger
from reverse_etl.state.objectstore import store_for
from reverse_etl.state.remote import LOCAL_ONLY, upload_dir
from reverse_etl.state.stores import ObjectStoreLedger, open_ledger, open_sync_state


@dataclass
class CopyReport:
    """What ``state copy`` moved."""

    destination: str
    syncs: list[str] = field(default_factory=list)
    runs: int = 0
    """Ledger records copied."""


def copy_state(state_dir: Path, config: StateConfig, syncs: Sequence[str], to: str,
               *, base: Path) -> CopyReport:
    """Copy the state of ``syncs`` (and the run ledger) to ``to``: a directory or a URL.

    ``base``: the directory a relative ``to`` is relative to (the project root).
    """
    remote_to = is_remote(to)
    target = check_state_url(to).rstrip("/") if remote_to else str((base / to).resolve())
    source_name = config.url or str(state_dir)
    if target == source_name:
        raise StateError(f"state copy: {to} is where the state already lives")
    report = CopyReport(destination=target)
    for name in syncs:
        state = open_sync_state(state_dir, config, name)
        if state.remote is None and not (state.dir / "meta.json").exists() and not (state.dir / "pending.json").exists():
            continue  # never ran: nothing to copy
        with state.lock("state-copy"):
            if not any(p.name not in LOCAL_ONLY for p in state.dir.iterdir()):
                continue
            if remote_to:
                upload_dir(store_for(target), name, state.dir)
            else:
                _copy_dir(state.dir, Path(target) / name)
        report.syncs.append(name)
    report.runs = _copy_ledger(open_ledger(state_dir, config), target, remote_to)
    return report


def _copy_dir(source: Path, target: Path) -> None:
    if (target / "meta.json").exists() or (target / "pending.json").exists():
        raise StateError(f"{target} already holds state; copy into an empty directory")
    target.mkdir(parents=True, exist_ok=True)
    files = [p for p in source.iterdir() if p.is_file() and p.name not in LOCAL_ONLY]
    files.sort(key=lambda p: (p.name == "meta.json", p.name == "pending.json"))  # meta.json last
    for path in files:
        shutil.copyfile(path, target / path.name)


def _copy_ledger(source: Ledger, target: str, remote_to: bool) -> int:
    records = source.records()
    if remote_to:
        ledger: Ledger = ObjectStoreLedger(target)
        for record in records:
            ledger.append(record)
    else:
        path = Path(target) / "runs.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = path.read_bytes() if path.exists() else b""
        lines = b"".join(orjson.dumps(r.__dict__) + b"\n" for r in records)
        path.write_bytes(existing + lines)
    return len(records)
