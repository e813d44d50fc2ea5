"""Files of one sync's state directory, and the atomic commit of a new snapshot.

Layout of ``<state>/<sync>/``::

    meta.json              which snapshot/rejected files are current, the
                           fingerprint of the mapping they were made under, their
                           sha256 checksums, and (after a reset) the snapshot
                           kept as ``previous`` knowledge for the next full resend
    snapshot-<run>.parquet per key, the encoded values Insider acknowledged
    overlay-<run>.parquet  the rows changed since that snapshot was written
                           (optional; see :mod:`.snapshot_files`)
    rejected-<run>.parquet rows held back, with Insider's (or our) reason
    pending.json           the run whose change set is being delivered
    pending-<run>.parquet  that change set, one row per row_id
    journal-<run>.jsonl    acknowledgements of that change set, fsynced
    lock                   flock of the running process
    tmp/                   DuckDB spill space

``meta.json`` is replaced by an atomic rename, so the snapshot and rejected files
it names always belong together; a crash at any point leaves either the old or
the new state, never a mix.

With an object-store state (``remote``, :mod:`.remote`) this directory is a
working copy: taking the lock pulls it from the store, and each durable step
(the pending change set, every journal entry, the commit) is pushed there
before it counts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from reverse_etl.errors import StateError
from reverse_etl.state import snapshot_files
from reverse_etl.state.journal import Journal
from reverse_etl.state.lock import SyncLock

if TYPE_CHECKING:
    from reverse_etl.state.lease import Lease, LeasedLock
    from reverse_etl.state.remote import SyncMirror


@dataclass(frozen=True)
class Meta:
    """Content of meta.json."""

    fingerprint: str | None = None
    snapshot: str | None = None
    rejected: str | None = None
    folded_run: str | None = None
    rows: int = 0
    """Rows of the snapshot (base and overlay together)."""
    overlay: str | None = None
    """The overlay over ``snapshot``: rows changed since it was written (see :mod:`.snapshot_files`)."""
    overlay_rows: int = 0
    """Rows (tombstones included) in ``overlay``."""
    previous: str | None = None
    """A snapshot kept by ``reset`` (not current): knowledge for the next full resend,
    which deletes values that became NULL and applies ``on_removed`` to keys that left."""
    checksums: dict[str, str] = field(default_factory=dict)
    """sha256 of each file named above (a truncated or corrupted file is detected)."""
    destination: str | None = None
    """Which destination acknowledged the snapshot (see ``run.destination.Destination.identity``);
    None for state written before destinations were recorded (taken as the current one)."""

    def files(self) -> list[str]:
        """The state files this meta names (snapshot, overlay, rejected, previous)."""
        return [n for n in (self.snapshot, self.overlay, self.rejected, self.previous) if n]


@dataclass(frozen=True)
class Pending:
    """Content of pending.json: a change set under delivery."""

    run_id: str
    fingerprint: str
    fields: list[str]
    base_snapshot: str | None = None
    """The snapshot file the change set was diffed against (None: a full resend)."""
    base_overlay: str | None = None
    """The overlay over ``base_snapshot`` it was diffed against, if any."""
    resend_base: bool = False
    """``base_snapshot`` was only knowledge for a full resend (see ``compare.load_resend_snapshot``)."""
    destination: str | None = None
    """The destination the change set was sent to."""


class SyncState:
    """Paths and atomic updates for one sync's state directory."""

    def __init__(self, state_dir: Path, sync_name: str, *, remote: SyncMirror | None = None,
                 lease_seconds: int = 60) -> None:
        self.dir = state_dir / sync_name
        self.sync_name = sync_name
        self.remote = remote
        """The object store holding the truth of this state (None: the directory is the truth)."""
        self.lease_seconds = lease_seconds
        self._lease: Lease | None = None
        self._pinned: Meta | None = None
        self._pinned_pending: Pending | None = None
        self._copies: dict[str, Path] = {}

    # ------------------------------------------------------------- paths
    @property
    def tmp_dir(self) -> Path:
        """Spill directory for DuckDB."""
        return self.dir / "tmp"

    @property
    def location(self) -> str:
        """Where the state lives, for messages: the directory or the object-store URL."""
        return self.remote.url if self.remote is not None else str(self.dir)

    def lock(self, run_id: str | None = None) -> SyncLock | LeasedLock:
        """The sync's run lock (with an object store: the flock, the lease, then a pull)."""
        local = SyncLock(self.dir / "lock", self.sync_name)
        if self.remote is None:
            return local
        from reverse_etl.state.lease import Lease, LeasedLock

        lease = Lease(self.remote.store, self.sync_name, run_id=run_id, seconds=self.lease_seconds)
        self._lease = lease
        return LeasedLock(local, lease, self.pull)

    def pull(self) -> None:
        """Bring the working copy up to date from the object store (no-op for local state)."""
        if self.remote is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.remote.pull(self.dir)

    def read_record(self, name: str) -> dict[str, Any]:
        """A sync type's own JSON record (e.g. ``segment.json``); ``{}`` when absent.

        With an object store the working copy holds it since the pull at run start.
        """
        path = self.dir / name
        return read_json(path) if path.exists() else {}

    def write_record(self, name: str, record: dict[str, Any]) -> None:
        """Replace a sync type's own record: atomically here, then in the object store
        (durable there before this returns: the record may promise a name is used)."""
        data = orjson.dumps(record, option=orjson.OPT_INDENT_2)
        _write_atomic(self.dir / name, data)
        if self.remote is not None:
            if self._lease is not None:
                self._lease.check()
            self.remote.push_record(name, data)

    def journal(self, run_id: str) -> Journal:
        """The journal writer of a run's change set (mirrored to the object store, if any)."""
        path = self.pending_paths(run_id)[1]
        remote = self.remote
        if remote is None:
            return Journal(path)

        def mirror(line: bytes) -> None:
            if self._lease is not None:
                self._lease.check()
            remote.push_journal_entry(run_id, line)

        return Journal(path, mirror)

    def path(self, name: str) -> Path:
        """A file in the state directory (or its private copy, once :meth:`pin` took one)."""
        return self._copies.get(name) or self.dir / name

    # -------------------------------------------------------------- meta
    def meta(self) -> Meta:
        """Current meta.json (empty when the sync never committed; the pinned one, if pinned)."""
        if self._pinned is not None:
            return self._pinned
        path = self.dir / "meta.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return Meta()
        try:
            raw = orjson.loads(data)
            return Meta(**raw)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise StateError(f"{path} is corrupted ({exc.__class__.__name__}); recover with "
                             f"`reverse-etl reset {self.sync_name} --forget-everything` "
                             "(the next run resends every row)") from exc

    def _read_meta_quietly(self) -> Meta | None:
        try:
            return self.meta()
        except StateError:
            return None

    def meta_missing(self) -> bool:
        """True when snapshot files exist but no meta.json names them (meta.json was lost)."""
        return not (self.dir / "meta.json").exists() and any(self.dir.glob("snapshot-*.parquet"))

    def orphan_snapshot(self) -> Path | None:
        """The newest snapshot file in the directory (meta.json lost): knowledge, not truth."""
        found = sorted(self.dir.glob("snapshot-*.parquet"))
        return found[-1] if found else None

    def snapshot_path(self) -> Path | None:
        """The current snapshot's base file, if any (see :meth:`snapshot_sql` for its rows)."""
        name = self.meta().snapshot
        return self.path(name) if name else None

    def snapshot_sql(self, columns: Sequence[str] | None = None) -> str | None:
        """SQL (a subquery) for the current snapshot's rows, base and overlay; None without one."""
        meta = self.meta()
        if not meta.snapshot:
            return None
        return snapshot_files.relation(self.path(meta.snapshot),
                                       self.path(meta.overlay) if meta.overlay else None, columns)

    def rejected_path(self) -> Path | None:
        """The current rejected-rows file, if any."""
        name = self.meta().rejected
        return self.path(name) if name else None

    def verify(self, meta: Meta, names: tuple[str | None, ...] | None = None) -> None:
        """Raise :class:`StateError` (one line: the file, the recovery command) if a file
        named by ``meta`` is missing, truncated or corrupted (its sha256 differs)."""
        for name in names if names is not None else meta.files():
            if not name:
                continue
            path = self.path(name)
            expected = meta.checksums.get(name)
            if not path.exists():
                continue  # a missing snapshot is a full resend; the caller decides
            if expected is not None and file_sha256(path) != expected:
                raise StateError(
                    f"state file {self.dir / name} is truncated or corrupted (checksum mismatch); "
                    f"recover with `reverse-etl reset {self.sync_name} --forget-everything` "
                    "(the next run resends every row but cannot clear NULLs or users who left)")

    def pin(self, into: Path, attempts: int = 5) -> Meta:
        """Read the state once, for a reader without the lock (``plan``).

        The files meta.json names are hard-linked (or copied) into ``into``, so a run
        that commits meanwhile and deletes them cannot break the reader; should a file
        vanish between reading meta.json and linking it, meta.json is read again.
        """
        if self.remote is not None:
            return self._pin_remote(into)
        for _ in range(attempts):
            self._pinned, self._copies = None, {}
            meta = self.meta()
            names = meta.files()
            pending = self.pending()
            if pending is not None:
                names += [p.name for p in self.pending_paths(pending.run_id)]
                names += [n for n in (pending.base_snapshot, pending.base_overlay) if n]
            copies: dict[str, Path] = {}
            missing = False
            for name in dict.fromkeys(names):
                target = into / f"pinned-{name}"
                try:
                    try:
                        os.link(self.dir / name, target)
                    except FileNotFoundError:
                        raise
                    except OSError:
                        shutil.copyfile(self.dir / name, target)
                except FileNotFoundError:
                    missing = True
                    continue
                copies[name] = target
            if missing and self._read_meta_quietly() != meta:
                continue  # a run committed meanwhile: read its state instead
            self._copies = copies
            self._pinned = meta
            self._pinned_pending = pending
            return meta
        raise StateError(f"sync {self.sync_name!r}: its state kept changing while it was read; try again")

    def _pin_remote(self, into: Path) -> Meta:
        assert self.remote is not None
        self._pinned, self._copies = None, {}
        copies = self.remote.pull(into, pinned=True)
        meta_path, pending_path = into / "pinned-meta.json", into / "pinned-pending.json"
        saved = self.dir
        self.dir = into / "pinned-dir"  # parse the pinned copies with the ordinary readers
        self.dir.mkdir(exist_ok=True)
        try:
            for src, name in ((meta_path, "meta.json"), (pending_path, "pending.json")):
                if src.exists():
                    shutil.copyfile(src, self.dir / name)
            meta, pending = self.meta(), self.pending()
        finally:
            self.dir = saved
        self._copies = copies
        self._pinned, self._pinned_pending = meta, pending
        return meta

    def pending(self) -> Pending | None:
        """The change set left by an unfinished run, if any."""
        if self._pinned is not None:
            return self._pinned_pending
        path = self.dir / "pending.json"
        try:
            return Pending(**orjson.loads(path.read_bytes()))
        except FileNotFoundError:
            return None

    def pending_paths(self, run_id: str) -> tuple[Path, Path]:
        """(change set parquet, journal) of a run."""
        names = f"pending-{run_id}.parquet", f"journal-{run_id}.jsonl"
        return self.path(names[0]), self.path(names[1])

    # ----------------------------------------------------------- updates
    def prepare(self) -> None:
        """Create the directories a run needs."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def begin_pending(self, pending: Pending) -> None:
        """Declare a change set as under delivery (after its parquet is written)."""
        _write_atomic(self.dir / "pending.json", orjson.dumps(pending.__dict__))
        if self.remote is not None:
            self.remote.push_pending(self.dir, pending.run_id)

    def commit(self, meta: Meta) -> None:
        """Make ``meta`` current, then drop files no longer named by it.

        The checksums of the files it names are recorded in it (kept for a file
        that was not rewritten, computed for a new one).
        """
        checksums = {}
        for name in meta.files():
            _fsync_file(self.dir / name)
            checksums[name] = meta.checksums.get(name) or file_sha256(self.dir / name)
        meta = replace(meta, checksums=checksums)
        _write_atomic(self.dir / "meta.json", orjson.dumps(meta.__dict__))
        self._publish(meta)
        self.clear_pending(local_only=True)
        self._remove_unreferenced(meta)

    def _publish(self, meta: Meta) -> None:
        """Push a committed meta.json (and the files it names) to the object store, if any."""
        if self.remote is not None:
            if self._lease is not None:
                self._lease.check()
            self.remote.push_state(self.dir, meta.files())

    def clear_pending(self, *, local_only: bool = False) -> None:
        """Forget a change set once it has been folded (or was never sent)."""
        if self.remote is not None and not local_only:
            self.remote.clear()
        (self.dir / "pending.json").unlink(missing_ok=True)
        for path in self.dir.glob("pending-*.parquet"):
            path.unlink(missing_ok=True)
        for path in self.dir.glob("journal-*.jsonl"):
            path.unlink(missing_ok=True)

    def reset(self, *, forget_everything: bool = False) -> str | None:
        """Forget the sync's snapshot: the next run resends every row.

        Unless ``forget_everything``, the snapshot is kept aside as ``previous``
        (meta.json), so that resend still deletes values that became NULL and applies
        ``on_removed`` to users who left the model. Returns what the next run will do
        (None when there was no state).
        """
        if not self.dir.exists() or all(c.name == "lock" for c in self.dir.iterdir()):
            return None  # never ran (taking the lock made only the lock file)
        keep: str | None = None
        if not forget_everything:
            try:
                meta = self.meta()
            except StateError:
                meta = Meta()
            candidate = meta.snapshot or meta.previous
            if candidate and (self.dir / candidate).exists():
                try:
                    self.verify(meta, (candidate, meta.overlay if candidate == meta.snapshot else None))
                    keep = candidate
                except StateError:
                    keep = None
            if keep is not None and keep == meta.snapshot and meta.overlay:
                # ``previous`` is one file: the base with its overlay applied.
                keep = self._compacted(keep, meta.overlay)
        for child in self.dir.iterdir():
            if child.name in ("lock", keep):
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        if keep is not None:
            kept = Meta(previous=keep, checksums={keep: file_sha256(self.dir / keep)})
            _write_atomic(self.dir / "meta.json", orjson.dumps(kept.__dict__))
            self._publish(kept)
            return ("snapshot kept aside: the next run resends every row, deletes values that became "
                    "NULL and applies on_removed to users who left the model")
        # A marker, so the next run says why nothing is known (not a "first run").
        forgotten = Meta(folded_run="reset --forget-everything")
        _write_atomic(self.dir / "meta.json", orjson.dumps(forgotten.__dict__))
        self._publish(forgotten)
        return ("everything forgotten: the next run resends every row; values that became NULL and "
                "users who left cannot be cleared")

    def _compacted(self, base: str, overlay: str) -> str | None:
        """A new snapshot file holding ``base`` with ``overlay`` applied (None if unreadable)."""
        name = base.removesuffix(".parquet") + "-compacted.parquet"
        if not (self.dir / overlay).exists():
            return None
        try:
            snapshot_files.compact(self.dir / base, self.dir / overlay, self.dir / name)
        except duckdb.Error:
            return None
        return name

    def _remove_unreferenced(self, meta: Meta) -> None:
        keep = set(meta.files())
        for pattern in ("snapshot-*.parquet", "overlay-*.parquet", "rejected-*.parquet"):
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


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    """Read a small JSON file."""
    return dict(orjson.loads(path.read_bytes()))
