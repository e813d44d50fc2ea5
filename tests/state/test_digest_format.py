"""The row digest's form is part of every stored snapshot: changing it resends everything.

Every snapshot holds, per row, the md5 of ``<byte length>:<text>`` per value (``N`` for
NULL), concatenated: in earlier versions as hex text, now as that md5's 16 bytes read
little-endian (DuckDB's ``md5_number``) in a ``UUID``. Whatever SQL computes it must produce exactly
that, survive a Parquet round trip bit for bit, and an old snapshot's hex must convert to exactly today's digest (or upgrading
would resend every row).
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reverse_etl.diff.compare import row_digest_sql, text_digest_sql
from reverse_etl.state import digests
from reverse_etl.state.digests import DRIFT_DIGEST, RESEND_DIGEST, from_hex_sql, to_hex_sql

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


def test_row_digests_are_the_same_md5_as_128_bits() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, a VARCHAR, b VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, a, b) for i, (a, b) in enumerate(ROWS)])
    got = con.execute(f"SELECT {row_digest_sql(['a', 'b'])} FROM t ORDER BY i").fetchall()
    assert [digest for (digest,) in got] == [uuid.UUID(bytes=bytes.fromhex(_stored_form(row))[::-1])
                                             for row in ROWS]


def test_both_spellings_of_the_digest_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    # DuckDB 1.x computes the digest from the hex text; the result must be bit for bit the same.
    if not digests._CASTS_UHUGEINT_TO_UUID:
        pytest.skip(f"DuckDB {duckdb.__version__} has only the spelled-out form")
    con = duckdb.connect()
    text = "CAST(range AS VARCHAR) || 'ü'"
    fast = digests.md5_digest_sql(text)
    monkeypatch.setattr(digests, "_CASTS_UHUGEINT_TO_UUID", False)
    spelled = digests.md5_digest_sql(text)
    assert fast != spelled
    (differ,) = con.execute(f"SELECT count(*) FILTER (WHERE {fast} <> {spelled}) FROM range(5000)").fetchone() or (1,)
    assert differ == 0
    assert digests._casts_uhugeint_to_uuid("2.0.1") and not digests._casts_uhugeint_to_uuid("1.5.5")


def test_row_digests_survive_parquet_bit_for_bit(tmp_path: Path) -> None:
    # DuckDB writes a (U)HUGEINT to Parquet as DOUBLE: 53 bits of 128 would be kept.
    con = duckdb.connect()
    path = tmp_path / "snap.parquet"
    con.execute(f"COPY (SELECT range AS i, {row_digest_sql(['CAST(range AS VARCHAR)'])} AS digest FROM range(1000)) "
                f"TO '{path}' (FORMAT parquet)")
    assert pq.read_schema(path).field("digest").type.storage_type == pa.binary(16)
    (same,) = con.execute(f"""SELECT count(*) FILTER (WHERE f.digest = {row_digest_sql(['CAST(f.i AS VARCHAR)'])})
                              FROM read_parquet('{path}') f""").fetchone() or (0,)
    assert same == 1000


def test_an_old_snapshots_hex_converts_to_todays_digest_and_back() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, a VARCHAR, b VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, a, b) for i, (a, b) in enumerate(ROWS)])
    rows = con.execute(f"""
        SELECT {from_hex_sql('h')} = d, {to_hex_sql('d')} = h, {to_hex_sql('d')}
        FROM (SELECT {text_digest_sql(['a', 'b'])} AS h, {row_digest_sql(['a', 'b'])} AS d, i FROM t) ORDER BY i
    """).fetchall()
    assert [(same, back) for same, back, _ in rows] == [(True, True)] * len(ROWS)
    assert [text for *_, text in rows] == [_stored_form(row) for row in ROWS]


def test_old_sentinels_keep_their_meaning_and_junk_is_diffed_again() -> None:
    con = duckdb.connect()
    got = con.execute(f"""
        SELECT {from_hex_sql('h')} = {RESEND_DIGEST}, {from_hex_sql('h2')} = {DRIFT_DIGEST},
               {from_hex_sql('j')} IS NULL, {from_hex_sql('n')} IS NULL, {from_hex_sql('u')} = {digests.md5_digest_sql("'x'")}
        FROM (SELECT 'full-resend' AS h, 'audit-drift' AS h2, 'not-a-digest' AS j, NULL::VARCHAR AS n,
                     upper(md5('x')) AS u)
    """).fetchone()
    assert got == (True, True, True, True, True)
