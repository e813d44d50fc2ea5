"""The delivery journal: one line per request Insider answered for good, fsynced in groups.

A run writes its change set to ``pending.parquet`` (each row with a ``row_id``)
before it sends anything, then appends to ``journal.jsonl`` as each request
finishes: which row ids Insider acknowledged and which it rejected (with its
reason). If the process dies, the next run folds ``pending`` + ``journal`` into
the snapshot before diffing, so nothing acknowledged is resent and nothing
unacknowledged is forgotten.

Lines are written by a writer thread in group commits: whatever arrived while
the last fsync ran goes out in the next write and fsync. The delivery loop
never waits for the disk (or, with an object-store state, for a PUT per
request), and an answer is durable within one fsync of arriving: the same
window a crash between Insider's answer and a synchronous fsync always had,
at most one fsync wider.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson


@dataclass
class JournalContents:
    """What a journal file says: acknowledged row ids and rejected row reasons."""

    acked_ranges: list[tuple[int, int]] = field(default_factory=list)
    """Inclusive (first, last) row-id ranges."""
    rejected: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


class Journal:
    """Append-only journal writer with group commit on a writer thread.

    ``mirror`` (an object-store state) stores each group of entries durably
    elsewhere too, after the local fsync. :meth:`sync` and :meth:`close` return
    once everything appended is durable; a write or mirror failure is raised
    by the next :meth:`append`, :meth:`sync` or :meth:`close`.
    """

    def __init__(self, path: Path, mirror: Callable[[bytes], None] | None = None) -> None:
        self.path = path
        self.mirror = mirror
        self._file = open(path, "ab")  # noqa: SIM115 - closed in close()
        self._lock = threading.Condition()
        self._queued: list[bytes] = []
        self._appended = 0  # lines handed to append()
        self._durable = 0  # lines written, fsynced and mirrored
        self._error: BaseException | None = None
        self._closing = False
        self._writer = threading.Thread(target=self._write_groups, name="reverse-etl-journal", daemon=True)
        self._writer.start()

    def append(
        self,
        acked: Iterable[int],
        rejected: dict[int, str] | None = None,
        failed: dict[int, str] | None = None,
    ) -> list[tuple[int, int]]:
        """Record one finished request (durable within one group commit). Returns the
        acknowledged ids as the inclusive ranges written."""
        ranges = to_ranges(acked)
        entry: dict[str, object] = {"a": ranges}
        if rejected:
            entry["r"] = {str(k): v for k, v in rejected.items()}
        if failed:
            entry["f"] = {str(k): v for k, v in failed.items()}
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            self._raise_failure()
            if self._closing:
                raise ValueError(f"journal {self.path} is closed")
            self._queued.append(line)
            self._appended += 1
            self._lock.notify_all()
        return ranges

    def sync(self) -> None:
        """Wait until every line appended so far is durable."""
        with self._lock:
            target = self._appended
            self._lock.wait_for(lambda: self._durable >= target or self._error is not None)
            self._raise_failure()

    def close(self) -> None:
        """Make everything appended durable, stop the writer, close the file."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._writer.join()
        self._file.close()
        with self._lock:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_groups(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: bool(self._queued) or self._closing)
                if not self._queued:
                    return  # closing, and nothing left to write
                group, self._queued = self._queued, []
            try:
                data = b"".join(group)
                self._file.write(data)
                self._file.flush()
                os.fsync(self._file.fileno())
                if self.mirror is not None:
                    self.mirror(data)
            except BaseException as error:  # raised to the delivery by its next call
                with self._lock:
                    self._error = error
                    self._lock.notify_all()
                return
            with self._lock:
                self._durable += len(group)
                self._lock.notify_all()


def read_journal(path: Path) -> JournalContents:
    """Read a journal; a torn last line (crash mid-write) is ignored."""
    contents = JournalContents()
    if not path.exists():
        return contents
    for line in path.read_bytes().splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # only the last line can be torn; it was never acknowledged to us
        contents.acked_ranges.extend((int(start), int(end)) for start, end in entry.get("a", []))
        contents.rejected.update({int(k): v for k, v in entry.get("r", {}).items()})
        contents.failed.update({int(k): v for k, v in entry.get("f", {}).items()})
    return contents


def to_ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Row ids → sorted inclusive (first, last) ranges; batches are mostly contiguous.

    The normal case, ids already ascending without a gap, is recognised by one
    list comparison (no sort, no Python loop); anything else takes the loop.
    """
    if isinstance(ids, range) and ids.step == 1:
        return [(ids.start, ids.stop - 1)] if ids else []
    ids = ids if isinstance(ids, list) else list(ids)
    if not ids:
        return []
    first, last = ids[0], ids[-1]
    if (type(first) is int and type(last) is int and last - first == len(ids) - 1
            and ids == list(range(first, last + 1))):
        return [(first, last)]
    ranges: list[tuple[int, int]] = []
    for row_id in sorted(ids):
        if ranges and ranges[-1][1] == row_id - 1:
            ranges[-1] = (ranges[-1][0], row_id)
        else:
            ranges.append((row_id, row_id))
    return ranges
