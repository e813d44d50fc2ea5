"""A sync's state in an object store, and the local working copy DuckDB reads.

The object store is the durable truth; the local directory (a cache beside the
project) is what DuckDB reads and writes by path. Objects of ``<url>/<sync>/``::

    meta.json                   as locally; replaced only with If-Match (its e-tag)
    snapshot-<run>.parquet      immutable once written (names are unique per run)
    overlay-<run>.parquet       likewise (see ``snapshot_files``)
    rejected-<run>.parquet
    pending.json                the change set under delivery ...
    pending-<run>.parquet       ... uploaded before the first request is sent
    journal-<run>/<n>.json      one object per acknowledged request, created with
                                If-None-Match before the next request is handled
    lease.json                  the run lease (:mod:`.lease`)
    <name>.json                 a sync type's own record (e.g. ``segment.json``),
                                written through :meth:`push_record`

:meth:`SyncMirror.pull` (under the lease, at run start) makes the working copy
equal to the store, assembling the journal objects into ``journal-<run>.jsonl``;
the durable steps push: :meth:`push_pending`, :meth:`push_journal_entry` and, at
commit, :meth:`push_state` (new files first, then ``meta.json`` conditionally,
then the pending change set and unreferenced files are deleted).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from reverse_etl.errors import LockedError, StateError
from reverse_etl.state.objectstore import Conflict, ObjectStore

LOCAL_ONLY = {"lock", "tmp"}
"""Entries of the working copy that never go to the store."""


class SyncMirror:
    """Pull and push one sync's state between an object store and a local directory."""

    def __init__(self, store: ObjectStore, sync_name: str) -> None:
        self.store = store
        self.sync_name = sync_name
        self.prefix = f"{sync_name}/"
        self._meta_etag: str | None = None
        self._remote: set[str] = set()
        self._journal_seq: dict[str, int] = {}

    @property
    def url(self) -> str:
        """URL of the sync's state."""
        return f"{self.store.url}/{self.sync_name}"

    def _names(self) -> list[str]:
        return [p.removeprefix(self.prefix) for p in self.store.list(self.prefix)]

    # ------------------------------------------------------------------ pull
    def pull(self, local: Path, *, pinned: bool = False) -> dict[str, Path]:
        """Make ``local`` hold the store's state; returns name → local file.

        ``pinned``: a reader's private copy (``plan``): files are named
        ``pinned-<name>`` and nothing else in ``local`` is touched.
        """
        local.mkdir(parents=True, exist_ok=True)
        names = self._names()
        self._remote = set(names)
        meta_blob = self.store.get(self.prefix + "meta.json")
        pending_blob = self.store.get(self.prefix + "pending.json") if "pending.json" in names else None
        self._meta_etag = meta_blob.etag if meta_blob else None
        meta = _loads(meta_blob.data) if meta_blob else {}
        checksums: dict[str, str] = dict(meta.get("checksums") or {})
        wanted = [meta.get(k) for k in ("snapshot", "overlay", "rejected", "previous")]
        pending = _loads(pending_blob.data) if pending_blob else None
        if pending is not None:
            wanted += [f"pending-{pending['run_id']}.parquet", pending.get("base_snapshot"),
                       pending.get("base_overlay")]
        wanted += [n for n in names if _is_record(n)]
        if meta_blob is None:  # meta.json lost: the newest snapshot is knowledge (baseline)
            wanted += [n for n in names if n.startswith("snapshot-")][-1:]
        out: dict[str, Path] = {}

        def target(name: str) -> Path:
            return local / (f"pinned-{name}" if pinned else name)

        for name in dict.fromkeys(n for n in wanted if n):
            if name not in self._remote:
                continue  # a missing file: the baseline decides (a full resend)
            path = target(name)
            expected = checksums.get(name)
            if not (path.exists() and expected and _sha256(path) == expected):
                self.store.download(self.prefix + name, path)
            out[name] = path
        if pending is not None:
            run_id = pending["run_id"]
            journal = target(f"journal-{run_id}.jsonl")
            entries = sorted(n for n in names if n.startswith(f"journal-{run_id}/"))
            lines = b""
            for entry in entries:
                blob = self.store.get(self.prefix + entry)
                if blob is not None:
                    lines += blob.data.rstrip(b"\n") + b"\n"
            journal.write_bytes(lines)
            out[journal.name.removeprefix("pinned-")] = journal
        if pinned:
            for name, blob in (("meta.json", meta_blob), ("pending.json", pending_blob)):
                _write_or_remove(target(name), blob.data if blob else None)
            return out
        _write_or_remove(local / "meta.json", meta_blob.data if meta_blob else None)
        _write_or_remove(local / "pending.json", pending_blob.data if pending_blob else None)
        keep = {p.name for p in out.values()} | {"meta.json", "pending.json"} | LOCAL_ONLY
        for child in local.iterdir():
            if child.name not in keep and child.is_file():
                child.unlink()
        return out

    # ------------------------------------------------------------------ push
    def push_pending(self, local: Path, run_id: str) -> None:
        """Upload a change set (its parquet, then ``pending.json``) before it is sent."""
        name = f"pending-{run_id}.parquet"
        self.store.put(self.prefix + name, (local / name).read_bytes())
        self.store.put(self.prefix + "pending.json", (local / "pending.json").read_bytes())
        self._remote |= {name, "pending.json"}
        self._journal_seq[run_id] = 0

    def push_journal_entry(self, run_id: str, line: bytes) -> None:
        """Store one journal entry as its own object; durable when this returns."""
        seq = self._journal_seq.get(run_id, 0)
        name = f"journal-{run_id}/{seq:08d}.json"
        try:
            self.store.put(self.prefix + name, line, create=True)
        except Conflict as exc:
            raise LockedError(f"sync {self.sync_name!r}: journal entry {self.url}/{name} exists already; "
                              "another run is writing this sync's state") from exc
        self._journal_seq[run_id] = seq + 1

    def push_record(self, name: str, data: bytes) -> None:
        """Store a sync type's own record (replacing it); durable when this returns."""
        self.store.put(self.prefix + name, data)
        self._remote.add(name)

    def push_state(self, local: Path, files: list[str]) -> None:
        """Publish a new ``meta.json`` (naming ``files``) and drop what it no longer names.

        New files go first; ``meta.json`` is replaced only if nobody else replaced it
        since :meth:`pull` (else :class:`LockedError`: the lease was lost).
        """
        for name in files:
            if name not in self._remote:
                self.store.put(self.prefix + name, local / name)
                self._remote.add(name)
        data = (local / "meta.json").read_bytes()
        try:
            if self._meta_etag is None:
                self._meta_etag = self.store.put(self.prefix + "meta.json", data, create=True)
            else:
                self._meta_etag = self.store.put(self.prefix + "meta.json", data, if_etag=self._meta_etag)
        except Conflict as exc:
            raise LockedError(f"sync {self.sync_name!r}: {self.url}/meta.json was changed by another run "
                              "(this run's lease expired); its acknowledgements stay in its journal "
                              "for the next run to fold") from exc
        self._remote.add("meta.json")
        self.clear(keep=set(files))

    def clear(self, keep: set[str] | None = None) -> None:
        """Delete the pending change set, its journal, and (with ``keep``) files not named."""
        names = self._names()
        drop = [n for n in names if n == "pending.json" or n.startswith(("pending-", "journal-"))]
        if keep is not None:
            drop += [n for n in names if n.startswith(("snapshot-", "overlay-", "rejected-")) and n not in keep]
        self.store.delete([self.prefix + n for n in drop])
        self._remote -= set(drop)

    def wipe(self) -> None:
        """Delete every object of the sync except its lease (``reset``)."""
        names = [n for n in self._names() if n != "lease.json"]
        self.store.delete([self.prefix + n for n in names])
        self._remote = set()


RESERVED = {"meta.json", "pending.json", "lease.json"}


def _is_record(name: str) -> bool:
    """A top-level JSON object that is not one of the state's own: a sync type's record."""
    return name.endswith(".json") and "/" not in name and name not in RESERVED


def _loads(data: bytes) -> dict[str, Any]:
    """A small JSON object; a corrupted one reads as empty (``SyncState.meta`` reports it)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _write_or_remove(path: Path, data: bytes | None) -> None:
    if data is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def upload_dir(store: ObjectStore, sync_name: str, local: Path) -> int:
    """Publish a local sync state directory as a fresh object-store state (``state copy``).

    Data files and the pending change set first, each journal line as its own
    numbered object, ``meta.json`` last and only if the destination has none
    (else :class:`~reverse_etl.errors.StateError`). Returns the objects written.
    """
    prefix = f"{sync_name}/"
    if store.get(prefix + "meta.json") is not None:
        raise StateError(f"{store.url}/{sync_name} already holds state; copy into an empty prefix")
    written = 0
    files = sorted(p for p in local.iterdir() if p.is_file() and p.name not in LOCAL_ONLY
                   and p.name != "meta.json" and not p.name.endswith((".tmp", ".part")))
    files.sort(key=lambda p: p.name == "pending.json")  # the change set before its declaration
    for path in files:
        if path.name.startswith("journal-") and path.suffix == ".jsonl":
            run_id = path.name.removeprefix("journal-").removesuffix(".jsonl")
            lines = [line for line in path.read_bytes().splitlines() if _complete(line)]
            for seq, line in enumerate(lines):
                store.put(f"{prefix}journal-{run_id}/{seq:08d}.json", line + b"\n", create=True)
                written += 1
        else:
            store.put(prefix + path.name, path)
            written += 1
    if (local / "meta.json").exists():
        try:
            store.put(prefix + "meta.json", (local / "meta.json").read_bytes(), create=True)
        except Conflict as exc:
            raise StateError(f"{store.url}/{sync_name} already holds state; copy into an empty prefix") from exc
        written += 1
    return written


def _complete(line: bytes) -> bool:
    """A journal line that parses (a torn last line was never acknowledged to anyone)."""
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True
