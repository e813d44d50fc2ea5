"""Packing items into request bodies: limits, wrapper bytes, laziness."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from reverse_etl.insider.http.batching import Batch, Oversize, build_body, pack, wrapper_bytes


def _items(n: int, width: int = 10) -> list[str]:
    return ['{"k":"' + "x" * (width - 8) + '"}' for _ in range(n)]


def test_user_limit_and_order() -> None:
    units = list(pack([(range(25), _items(25))], bulk=True, max_users=10, max_bytes=5_000_000))
    assert [len(u) for u in units if isinstance(u, Batch)] == [10, 10, 5]
    assert [r for u in units if isinstance(u, Batch) for r in u.row_ids] == list(range(25))


def test_byte_limit_counts_wrapper_and_commas() -> None:
    items = _items(100, width=10)
    for skip_hook in (False, True):
        limit = wrapper_bytes(bulk=True, skip_hook=skip_hook) + 10 * 5 + 4  # exactly 5 items
        batches = [
            u
            for u in pack(
                [(range(100), items)],
                bulk=True,
                max_users=1000,
                max_bytes=limit,
                skip_hook=skip_hook,
            )
            if isinstance(u, Batch)
        ]
        assert all(len(b) == 5 for b in batches)
        for b in batches:
            body = build_body(b, bulk=True, skip_hook=skip_hook)
            assert len(body) == limit
            parsed = orjson.loads(body)
            assert len(parsed["users"]) == 5
            assert parsed.get("skip_hook", False) is skip_hook


def test_batches_span_chunks_and_accept_bytes() -> None:
    chunks = [([1, 2], [b'{"a":1}', b'{"a":2}']), ([3], ['{"a":3}'])]
    (batch,) = pack(chunks, bulk=True, max_users=10, max_bytes=5_000_000)
    assert isinstance(batch, Batch)
    assert build_body(batch, bulk=True, skip_hook=False) == b'{"users":[{"a":1},{"a":2},{"a":3}]}'


def test_multibyte_text_counted_in_bytes() -> None:
    item = '{"n":"' + "é" * 100 + '"}'  # 108 characters, 208 bytes
    wrapper = wrapper_bytes(bulk=True, skip_hook=False)
    units = list(
        pack([([1, 2], [item, item])], bulk=True, max_users=10, max_bytes=wrapper + 2 * 208)
    )  # no room for the comma
    assert [len(u) for u in units if isinstance(u, Batch)] == [1, 1]


def test_oversize_item_is_rejected_not_sent() -> None:
    big = '{"x":"' + "y" * 2000 + '"}'
    units = list(
        pack([([1, 2, 3], ['{"a":1}', big, '{"a":3}'])], bulk=True, max_users=10, max_bytes=1000)
    )
    oversize = [u for u in units if isinstance(u, Oversize)]
    assert [o.row_id for o in oversize] == [2]
    assert "2,008 bytes" in oversize[0].reason and "1,000" in oversize[0].reason
    assert [r for u in units if isinstance(u, Batch) for r in u.row_ids] == [1, 3]


def test_one_per_request_endpoints_send_the_item_as_body() -> None:
    units = list(
        pack(
            [([7, 8], ['{"identifiers":{"uuid":"a"}}', '{"x":1}'])],
            bulk=False,
            max_users=1000,
            max_bytes=5_000_000,
        )
    )
    assert all(isinstance(u, Batch) and len(u) == 1 for u in units)
    first = units[0]
    assert isinstance(first, Batch)
    assert build_body(first, bulk=False, skip_hook=True) == b'{"identifiers":{"uuid":"a"}}'


def test_numpy_like_row_ids_become_ints() -> None:
    class Array(list[int]):
        def tolist(self) -> list[int]:
            return list(self)

    (batch,) = pack([(Array([5, 6]), ["{}", "{}"])], bulk=True, max_users=10, max_bytes=5000)
    assert isinstance(batch, Batch) and batch.row_ids == [5, 6]


def test_mismatched_chunk_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 row ids but 1 items"):
        list(pack([([1, 2], ["{}"])], bulk=True, max_users=10, max_bytes=5000))


def test_pack_pulls_chunks_lazily() -> None:
    pulled = 0

    def chunks() -> Iterator[tuple[list[int], list[str]]]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield [i], ["{}"]

    units = pack(chunks(), bulk=True, max_users=10, max_bytes=5000)
    next(units)
    assert pulled == 11  # the 11th item is what told the first batch it was full


def test_halves() -> None:
    left, right = Batch([1, 2, 3], [b"a", b"b", b"c"]).halves()
    assert (left.row_ids, right.row_ids) == ([1], [2, 3])
    assert (left.items, right.items) == ([b"a"], [b"b", b"c"])
