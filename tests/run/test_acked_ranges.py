"""The acknowledged row ids a commit folds are exactly the journal's ranges."""

from __future__ import annotations

import itertools

import duckdb

from reverse_etl.run.commit import acked_table


def test_acked_ids_are_exactly_the_ranges_however_many_and_in_whatever_order() -> None:
    # 2,500 one-id requests with a gap after each (a rejected row), some answered twice
    # and out of order, plus one long run of contiguous requests.
    gappy = [(i * 2, i * 2) for i in range(2_500)]
    contiguous = [(10_000 + i * 1_000, 10_000 + i * 1_000 + 999) for i in range(50)]
    ranges = list(reversed(gappy)) + gappy[:10] + contiguous + [(10_500, 12_000)]
    con = duckdb.connect()
    spans = acked_table(con, ranges)
    # Merged: sorted, and no two ranges touch (the fold tests a few of them directly).
    assert all(last + 1 < next_first for (_, last), (next_first, _) in itertools.pairwise(spans))
    assert len(spans) == 2_501  # the 2,500 gappy ids, and one for the contiguous run
    got = [row_id for (row_id,) in con.execute("SELECT row_id FROM acked ORDER BY row_id").fetchall()]
    assert got == sorted({i for first, last in ranges for i in range(first, last + 1)})
    assert acked_table(con, []) == []
    assert con.execute("SELECT count(*) FROM acked").fetchone() == (0,)
