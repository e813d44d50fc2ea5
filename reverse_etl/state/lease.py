"""One run per sync across hosts: a lease object taken with a conditional write.

``<sync>/lease.json`` is created with *create only if absent*; while the run
lives a background thread renews it with *replace only this version* every
third of its term. Another host may take it over only once it has expired
(``renewed_at + seconds`` is past, judged by its own clock: hosts are expected to
keep NTP time), again with a conditional write, so two runs can never both win.
A run that lost its lease notices at its next renewal, and its commit (a
conditional write of ``meta.json``) fails instead of overwriting the winner's.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

from reverse_etl.errors import LockedError, StateError
from reverse_etl.state.lock import SyncLock
from reverse_etl.state.objectstore import Conflict, ObjectStore

DEFAULT_LEASE_SECONDS = 60


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Lease:
    """The lease of one sync in an object store; a context manager like :class:`SyncLock`."""

    def __init__(self, store: ObjectStore, sync_name: str, *, run_id: str | None = None,
                 seconds: int = DEFAULT_LEASE_SECONDS) -> None:
        self.store = store
        self.path = f"{sync_name}/lease.json"
        self.sync_name = sync_name
        self.run_id = run_id or "-"
        self.seconds = seconds
        self._etag: str | None = None
        self._since = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        """Set when a renewal found the lease taken over (the run's commit then fails)."""

    def _body(self) -> bytes:
        return orjson.dumps({"host": socket.gethostname(), "pid": os.getpid(), "run_id": self.run_id,
                             "since": self._since, "renewed_at": time.time(), "seconds": self.seconds})

    def acquire(self) -> None:
        """Take the lease or raise :class:`LockedError` naming its holder."""
        self._since = _now()
        try:
            self._etag = self.store.put(self.path, self._body(), create=True)
        except Conflict:
            self._take_over()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.sync_name}",
                                        daemon=True)
        self._thread.start()

    def _take_over(self) -> None:
        blob = self.store.get(self.path)
        if blob is None:  # released meanwhile: try once more from scratch
            try:
                self._etag = self.store.put(self.path, self._body(), create=True)
                return
            except Conflict:
                blob = self.store.get(self.path)
        holder = _parse(blob.data if blob else b"")
        expires = float(holder.get("renewed_at", 0)) + float(holder.get("seconds", self.seconds))
        if blob is None or time.time() < expires:
            raise LockedError(
                f"sync {self.sync_name!r} is already running ({describe(holder)}; lease "
                f"{self.store.url}/{self.path} expires in {max(0, round(expires - time.time()))}s "
                "unless renewed); wait for that run to finish, one run per sync at a time")
        try:  # expired: take it, but only if nobody renewed or took it meanwhile
            self._etag = self.store.put(self.path, self._body(), if_etag=blob.etag)
        except Conflict:
            raise LockedError(f"sync {self.sync_name!r}: another run took over the expired lease "
                              f"{self.store.url}/{self.path} first") from None

    def _renew_loop(self) -> None:
        interval = max(0.5, self.seconds / 3)
        while not self._stop.wait(interval):
            try:
                self._etag = self.store.put(self.path, self._body(), if_etag=self._etag)
            except Conflict:
                self.lost = True
                return
            except StateError:
                continue  # a network blip: try again; the lease lasts three intervals

    def check(self) -> None:
        """Raise :class:`LockedError` if the lease was lost (taken over after it expired)."""
        if self.lost:
            raise LockedError(f"sync {self.sync_name!r}: this run's lease {self.store.url}/{self.path} "
                              "expired and was taken over by another run; this run stops here")

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._etag is not None and not self.lost:
            try:
                blob = self.store.get(self.path)
                if blob is not None and blob.etag == self._etag:
                    self.store.delete([self.path])
            except StateError:
                pass  # unreachable: the lease expires by itself
        self._etag = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    """``run <id>, pid <pid> on <host> since <time>`` of a lease's holder."""
    return (f"run {holder.get('run_id', '?')}, pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')} since {holder.get('since', '?')}")


class LeasedLock:
    """The lock of an object-store state: the working copy's flock, then the lease.

    Taking it also brings the working copy up to date (``on_acquired``): what the
    lock protects is the state, and the state's truth is in the store.
    """

    def __init__(self, local: SyncLock, lease: Lease, on_acquired: Callable[[], None]) -> None:
        self.local = local
        self.lease = lease
        self.on_acquired = on_acquired

    def acquire(self) -> None:
        """Take both locks and pull the state, or raise (releasing what was taken)."""
        self.local.acquire()
        try:
            self.lease.acquire()
            self.on_acquired()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Release the lease, then the flock (idempotent)."""
        try:
            self.lease.release()
        finally:
            self.local.release()

    def __enter__(self) -> LeasedLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
