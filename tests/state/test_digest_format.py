"""The row digest's text form is part of every stored snapshot: changing it resends everything.

Snapshots written by earlier versions hold md5 of ``<byte length>:<text>`` per value
(``N`` for NULL), concatenated. Whatever SQL computes it must produce exactly that.
"""

from __future__ import annotations

import hashlib

import duckdb

from reverse_etl.diff.compare import text_digest_sql

ROWS = [(None, "1"), ("", "2"), ("a:b", None), (None, None), ("N", "4"), ("ü€", ""), ("3:abc", "x")]


def _stored_form(values: tuple[str | None, ...]) -> str:
    text = "".join("N" if v is None else f"{len(v.encode())}:{v}" for v in values)
    return hashlib.md5(text.encode()).hexdigest()


def test_digests_match_the_form_stored_snapshots_hold() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, a VARCHAR, b VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, a, b) for i, (a, b) in enumerate(ROWS)])
    got = con.execute(f"SELECT {text_digest_sql(['a', 'b'])} FROM t ORDER BY i").fetchall()
    assert [digest for (digest,) in got] == [_stored_form(row) for row in ROWS]


def test_values_cannot_fake_a_boundary() -> None:
    con = duckdb.connect()
    left, right = con.execute(
        f"SELECT {text_digest_sql(['$$ab$$', '$$c$$'])}, {text_digest_sql(['$$a$$', '$$bc$$'])}").fetchone() or ("", "")
    assert left != right
