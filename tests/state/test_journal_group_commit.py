"""The journal writer: group commits on a writer thread, failures surfaced, nothing lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reverse_etl.state import Journal
from reverse_etl.state.journal import read_journal


def test_everything_appended_is_in_the_file_once_close_returns(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    for start in range(0, 10_000, 100):
        ranges = journal.append(list(range(start, start + 100)), rejected={start + 100_000: "bad email"})
        assert ranges == [(start, start + 99)]
    journal.close()
    contents = read_journal(path)
    assert sorted(contents.acked_ranges) == [(s, s + 99) for s in range(0, 10_000, 100)]
    assert len(contents.rejected) == 100 and contents.rejected[100_000] == "bad email"


def test_sync_waits_until_the_lines_are_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append([1, 2, 3], failed={4: "gave up"})
    journal.sync()
    contents = read_journal(path)  # read while the journal is still open
    assert contents.acked_ranges == [(1, 3)] and contents.failed == {4: "gave up"}
    journal.close()


def test_the_mirror_gets_every_line_in_order_in_groups(tmp_path: Path) -> None:
    mirrored: list[bytes] = []
    threads: set[str] = set()

    def mirror(data: bytes) -> None:
        threads.add(threading.current_thread().name)
        mirrored.append(data)

    journal = Journal(tmp_path / "journal.jsonl", mirror)
    for i in range(300):
        journal.append([i])
    journal.close()
    lines = b"".join(mirrored).splitlines()
    assert lines == (tmp_path / "journal.jsonl").read_bytes().splitlines()
    assert lines == [b'{"a":[[%d,%d]]}' % (i, i) for i in range(300)]
    assert threading.current_thread().name not in threads  # the PUTs never block the caller


def test_a_failing_mirror_is_raised_to_the_caller_and_stops_the_journal(tmp_path: Path) -> None:
    def mirror(data: bytes) -> None:
        raise OSError("the bucket refused the write")

    journal = Journal(tmp_path / "journal.jsonl", mirror)
    journal.append([1])
    with pytest.raises(OSError, match="bucket refused"):
        journal.sync()
    with pytest.raises(OSError, match="bucket refused"):
        journal.append([2])
    with pytest.raises(OSError, match="bucket refused"):
        journal.close()
