"""Files of one sync's state directory, and the atomic commit of a new snapshot.

Layout of ``<state>/<sync>/``::

    meta.json              which snapshot/rejected files are current, and the
                           fingerprint of the mapping they were made under
    snapshot-<run>.parquet per key, the encoded values Insider acknowledged
    rejected-<run>.parquet rows held back, with Insider's (or our) reason
    pending.json           the run whose change set is being delivered
    pending-<run>.parquet  that change set, one row per row_id
    journal-<run>.jsonl    acknowledgements of that change set, fsynced
    lock                   flock of the running process
    tmp/                   DuckDB spill space

``meta.json`` is replaced by an atomic rename, so the snapshot and rejected files
it names always belong together; a crash at any point leaves either the old or
the new state, never a mix.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from reverse_etl.state.lock import SyncLock


@dataclass(frozen=True)
class Meta:
    """Content of meta.json."""

    fingerprint: str | None = None
    snapshot: str | None = None
    rejected: str | None = None
    folded_run: str | None = None
    rows: int = 0


@dataclass(frozen=True)
class Pending:
    """Content of pending.json: a change set under delivery."""

    run_id: str
    fingerprint: str
    fields: list[str]
    base_snapshot: str | None = None
    """The snapshot file the change set was diffed against (None: a full resend)."""


class SyncState:
    """Paths and atomic updates for one sync's state directory."""

    def __init__(self, state_dir: Path, sync_name: str) -> None:
        self.dir = state_dir / sync_name
        self.sync_name = sync_name

    # ------------------------------------------------------------- paths
    @property
    def tmp_dir(self) -> Path:
        """Spill directory for DuckDB."""
        return self.dir / "tmp"

    def lock(self) -> SyncLock:
        """The sync's run lock."""
        return SyncLock(self.dir / "lock", self.sync_name)

    def path(self, name: str) -> Path:
        """A file in the state directory."""
        return self.dir / name

    def pending_paths(self, run_id: str) -> tuple[Path, Path]:
        """(change set parquet, journal) of a run."""
        return self.dir / f"pending-{run_id}.parquet", self.dir / f"journal-{run_id}.jsonl"

    # -------------------------------------------------------------- meta
    def meta(self) -> Meta:
        """Current meta.json (empty when the sync never committed)."""
        path = self.dir / "meta.json"
        if not path.exists():
            return Meta()
        return Meta(**orjson.loads(path.read_bytes()))

    def snapshot_path(self) -> Path | None:
        """The current snapshot file, if any."""
        name = self.meta().snapshot
        return self.dir / name if name else None

    def rejected_path(self) -> Path | None:
        """The current rejected-rows file, if any."""
        name = self.meta().rejected
        return self.dir / name if name else None

    def pending(self) -> Pending | None:
        """The change set left by an unfinished run, if any."""
        path = self.dir / "pending.json"
        if not path.exists():
            return None
        return Pending(**orjson.loads(path.read_bytes()))

    # ----------------------------------------------------------- updates
    def prepare(self) -> None:
        """Create the directories a run needs."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def begin_pending(self, pending: Pending) -> None:
        """Declare a change set as under delivery (after its parquet is written)."""
        _write_atomic(self.dir / "pending.json", orjson.dumps(pending.__dict__))

    def commit(self, meta: Meta) -> None:
        """Make ``meta`` current, then drop files no longer named by it."""
        for name in (meta.snapshot, meta.rejected):
            if name:
                _fsync_file(self.dir / name)
        _write_atomic(self.dir / "meta.json", orjson.dumps(meta.__dict__))
        self.clear_pending()
        self._remove_unreferenced(meta)

    def clear_pending(self) -> None:
        """Forget a change set once it has been folded (or was never sent)."""
        (self.dir / "pending.json").unlink(missing_ok=True)
        for path in self.dir.glob("pending-*.parquet"):
            path.unlink(missing_ok=True)
        for path in self.dir.glob("journal-*.jsonl"):
            path.unlink(missing_ok=True)

    def reset(self) -> bool:
        """Delete all state of the sync; True when there was some."""
        existed = self.dir.exists()
        if existed:
            for child in self.dir.iterdir():
                if child.name == "lock":
                    continue
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        return existed

    def _remove_unreferenced(self, meta: Meta) -> None:
        keep = {meta.snapshot, meta.rejected}
        for pattern in ("snapshot-*.parquet", "rejected-*.parquet"):
            for path in self.dir.glob(pattern):
                if path.name not in keep:
                    path.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file, fsync, rename over ``path``, fsync the directory."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: Path) -> dict[str, Any]:
    """Read a small JSON file."""
    return dict(orjson.loads(path.read_bytes()))
