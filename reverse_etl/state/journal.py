"""The delivery journal: one fsynced line per request Insider answered for good.

A run writes its change set to ``pending.parquet`` (each row with a ``row_id``)
before it sends anything, then appends to ``journal.jsonl`` as each request
finishes: which row ids Insider acknowledged and which it rejected (with its
reason). If the process dies, the next run folds ``pending`` + ``journal`` into
the snapshot before diffing, so nothing acknowledged is resent and nothing
unacknowledged is forgotten.
"""

from __future__ import annotations

import os
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
    """Append-only, fsync-per-entry writer.

    ``mirror`` (an object-store state) stores each entry durably elsewhere too,
    before :meth:`append` returns.
    """

    def __init__(self, path: Path, mirror: Callable[[bytes], None] | None = None) -> None:
        self.path = path
        self.mirror = mirror
        self._file = open(path, "ab")  # noqa: SIM115 - closed in close()

    def append(
        self,
        acked: Iterable[int],
        rejected: dict[int, str] | None = None,
        failed: dict[int, str] | None = None,
    ) -> list[tuple[int, int]]:
        """Record one finished request; durable when this returns. Returns the acknowledged
        ids as the inclusive ranges written."""
        ranges = to_ranges(acked)
        entry: dict[str, object] = {"a": ranges}
        if rejected:
            entry["r"] = {str(k): v for k, v in rejected.items()}
        if failed:
            entry["f"] = {str(k): v for k, v in failed.items()}
        line = orjson.dumps(entry) + b"\n"
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())
        if self.mirror is not None:
            self.mirror(line)
        return ranges

    def close(self) -> None:
        """Close the file."""
        self._file.close()


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
