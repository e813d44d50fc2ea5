"""Packing encoded items into request-sized batches, lazily and without per-item Python.

The engine hands over ``(row_ids, items)`` chunks of any size; items are
already-encoded JSON texts: a pyarrow string/binary array (what the engine's
delivery stage reads from DuckDB), or a list (or numpy array, or any sequence)
of ``str``/``bytes``. This module cuts them into :class:`Batch` objects that
respect Insider's per-request limits (users and body bytes, wrapper included)
and builds request bodies by joining bytes, so no row is ever parsed or
re-serialised on the hot path.

How a chunk is cut: its items' byte sizes come from the Arrow offsets (numpy), the
items are joined with commas once (``binary_join``), and each batch is found
by a binary search over the running total of ``size + 1`` (the comma), so the
Python work is per *batch*, not per item. A batch holds its slice of that
joined text; the list of its items is built only when someone asks for it
(verifying a lost answer).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

USERS_OPEN = b'{"users":['
USERS_CLOSE = b"]}"
USERS_CLOSE_SKIP_HOOK = b'],"skip_hook":true}'


class Batch:
    """The rows of one request: their ids and encoded items, in order.

    Built from lists (``Batch(row_ids, items)``), a batch holds those lists,
    and they may be appended to. Built by :func:`pack`, it holds its items
    joined with commas (``joined``) and each item's size; ``items`` then
    splits them on first use (and the batch holds the list from then on).
    """

    __slots__ = ("_items", "_joined", "_sizes", "row_ids")

    def __init__(self, row_ids: list[int], items: list[bytes] | None = None, *,
                 joined: bytes | None = None, sizes: list[int] | None = None) -> None:
        self.row_ids = row_ids
        if items is None and joined is None:
            items = []
        elif items is None and sizes is None:
            raise ValueError("a batch built from joined items needs their sizes")
        self._items = items
        self._joined = None if items is not None else joined
        self._sizes = None if items is not None else sizes

    @property
    def items(self) -> list[bytes]:
        """The encoded items (built from the joined text on first use)."""
        if self._items is None:
            joined, sizes = self._joined or b"", self._sizes or []
            items: list[bytes] = []
            start = 0
            for size in sizes:
                items.append(joined[start:start + size])
                start += size + 1
            self._items, self._joined, self._sizes = items, None, None
        return self._items

    @items.setter
    def items(self, items: list[bytes]) -> None:
        self._items, self._joined, self._sizes = items, None, None

    @property
    def joined(self) -> bytes:
        """The items joined with commas: what goes between ``[`` and ``]`` of a bulk body."""
        if self._items is not None:
            return b",".join(self._items)
        return self._joined or b""

    @property
    def sizes(self) -> list[int]:
        """Each item's size in bytes."""
        if self._items is not None:
            return list(map(len, self._items))
        return self._sizes or []

    def first(self) -> bytes:
        """The first item (the whole body of a one-per-request endpoint)."""
        if self._items is not None:
            return self._items[0]
        return (self._joined or b"")[:(self._sizes or [0])[0]]

    def __len__(self) -> int:
        return len(self.row_ids)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return (self.row_ids == other.row_ids and self.sizes == other.sizes
                and self.joined == other.joined)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return f"Batch(row_ids={self.row_ids!r}, items={self.items!r})"

    def halves(self) -> tuple[Batch, Batch]:
        """Split in two (for bisecting a refused request); needs at least two rows."""
        mid = len(self.row_ids) // 2
        if self._items is not None or mid == 0:
            items = self.items
            return (
                Batch(self.row_ids[:mid], items[:mid]),
                Batch(self.row_ids[mid:], items[mid:]),
            )
        joined, sizes = self._joined or b"", self._sizes or []
        cut = sum(sizes[:mid]) + mid  # where item ``mid`` starts
        return (
            Batch(self.row_ids[:mid], joined=joined[:cut - 1], sizes=sizes[:mid]),
            Batch(self.row_ids[mid:], joined=joined[cut:], sizes=sizes[mid:]),
        )


@dataclass(frozen=True, slots=True)
class Oversize:
    """A single item too large to fit any request: a rejected row, never sent."""

    row_id: int
    reason: str


def wrapper_bytes(*, bulk: bool, skip_hook: bool) -> int:
    """Bytes a request body adds around its items (commas not included)."""
    if not bulk:
        return 0
    return len(USERS_OPEN) + len(USERS_CLOSE_SKIP_HOOK if skip_hook else USERS_CLOSE)


def build_body(batch: Batch, *, bulk: bool, skip_hook: bool) -> bytes:
    """The request body: ``{"users":[i1,i2,...]}`` for bulk endpoints, the item itself otherwise."""
    if not bulk:
        return batch.first()
    close = USERS_CLOSE_SKIP_HOOK if skip_hook else USERS_CLOSE
    return b"".join((USERS_OPEN, batch.joined, close))


def _as_list(values: Any) -> list[Any]:
    # numpy and pyarrow arrays turn into plain Python values through tolist()/to_pylist();
    # list() would leave numpy/arrow scalars that the engine's journal cannot write.
    if isinstance(values, list):
        return values
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return list(values.to_pylist())
    tolist = getattr(values, "tolist", None)
    if callable(tolist):
        result = tolist()
        if isinstance(result, list):
            return result
    return list(values)


def _as_binary(values: Any) -> pa.Array:
    """The items as one pyarrow binary (or large binary) array, zero-copy where they are Arrow text."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        # str items become their UTF-8 bytes, bytes stay as they are
        return pa.array(_as_list(values), type=pa.binary())
    kind = values.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        array = values
    elif pa.types.is_string(kind):
        array = values.cast(pa.binary())
    else:  # large_string, string/binary views, ...
        array = values.cast(pa.large_binary())
    if array.null_count:
        raise ValueError(f"a chunk has {array.null_count} null items; every row needs an encoded item")
    return array


_COMMA = pa.Array.from_buffers(pa.binary(), 1, [None, pa.py_buffer(np.array([0, 1], np.int32)), pa.py_buffer(b",")])
"""The separator as a one-item Arrow array (see :func:`_join`)."""


def _lengths(items: pa.Array) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Each item's byte size, read off the array's offsets buffer.

    Through numpy buffers, not ``to_numpy()`` or kernels given Python scalars:
    those make pyarrow import pandas, ~0.35 s of every delivering run.
    """
    width = np.int64 if pa.types.is_large_binary(items.type) else np.int32
    offsets = np.frombuffer(items.buffers()[1], dtype=width, count=len(items) + 1, offset=items.offset * np.dtype(width).itemsize)
    return np.diff(offsets).astype(np.int64)


def _join(items: pa.Array) -> bytes:
    """``b",".join(items)`` in one Arrow kernel call."""
    # Arrays built from buffers: ``pa.array`` or a Python scalar argument would make
    # pyarrow import pandas, ~0.35 s of every delivering run.
    offsets = pa.Array.from_buffers(pa.int32(), 2, [None, pa.py_buffer(np.array([0, len(items)], np.int32))])
    one_list = pa.ListArray.from_arrays(offsets, items)
    joined = pc.binary_join(one_list, _COMMA)[0].as_py()
    return joined if isinstance(joined, bytes) else bytes(joined)


class _Pending:
    """The batch being filled: pieces of one or more chunks (each already joined)."""

    __slots__ = ("count", "ids", "parts", "sizes", "used")

    def __init__(self) -> None:
        self.ids: list[list[int]] = []
        self.parts: list[bytes] = []
        self.sizes: list[list[int]] = []
        self.count = 0
        self.used = -1  # body bytes of the items and commas so far; -1: the first item has no comma

    def reset(self) -> None:
        self.ids, self.parts, self.sizes, self.count, self.used = [], [], [], 0, -1

    def add(self, ids: list[int], part: bytes, sizes: list[int], used: int) -> None:
        self.ids.append(ids)
        self.parts.append(part)
        self.sizes.append(sizes)
        self.count += len(ids)
        self.used += used

    def flush(self) -> Batch:
        if len(self.parts) == 1:
            batch = Batch(self.ids[0], joined=self.parts[0], sizes=self.sizes[0])
        else:
            batch = Batch(list(chain.from_iterable(self.ids)), joined=b",".join(self.parts),
                          sizes=list(chain.from_iterable(self.sizes)))
        self.reset()
        return batch


def pack(
    chunks: Iterable[tuple[Sequence[int], Sequence[str | bytes]]],
    *,
    bulk: bool,
    max_users: int,
    max_bytes: int,
    skip_hook: bool = False,
) -> Generator[Batch | Oversize, None, None]:
    """Yield batches (and oversize rows) from ``chunks``, pulling one chunk at a time.

    Bulk batches hold at most ``max_users`` items and a body of at most
    ``max_bytes`` bytes counting the wrapper and the commas; one-per-request
    endpoints get batches of exactly one item. A batch may span chunk
    boundaries, so small chunks still fill requests. A batch is yielded when
    the item after it does not fit (or the input ends); an oversize row when
    it is reached. Items may be a pyarrow string/binary array or a sequence of
    ``str``/``bytes``.
    """
    per_request = max_users if bulk else 1
    wrapper = wrapper_bytes(bulk=bulk, skip_hook=skip_hook)
    room = max_bytes - wrapper  # bytes available for items and their commas
    pending = _Pending()
    for chunk_ids, chunk_items in chunks:
        row_ids = _as_list(chunk_ids)
        items = _as_binary(chunk_items)
        if len(row_ids) != len(items):
            raise ValueError(
                f"a chunk has {len(row_ids)} row ids but {len(items)} items; they must pair up"
            )
        if not row_ids:
            continue
        lengths = _lengths(items)
        sizes: list[int] = lengths.tolist()
        # starts[k]: where item k starts in ``joined``; starts[n] is one past its end (+1)
        starts: list[int] = [0, *np.cumsum(lengths + 1).tolist()]
        joined = _join(items)
        oversize: list[int] = np.flatnonzero(lengths > room).tolist()
        lo = 0
        for hi in [*oversize, len(sizes)]:
            # items lo..hi-1 each fit a request alone
            while lo < hi:
                limit = min(hi, lo + per_request - pending.count)
                # the most items from ``lo`` whose sizes and commas still fit the room
                end = bisect_right(starts, starts[lo] + room - pending.used, lo, limit + 1) - 1
                if end > lo:
                    pending.add(row_ids[lo:end], joined[starts[lo]:starts[end] - 1], sizes[lo:end],
                                starts[end] - starts[lo])
                    lo = end
                if lo < hi:  # item ``lo`` does not fit the batch: it is complete
                    yield pending.flush()
            if hi < len(sizes):
                size = sizes[hi]
                yield Oversize(
                    int(row_ids[hi]),
                    f"encoded {'user object' if bulk else 'request body'} is {size:,} bytes; "
                    f"a request body may hold at most {max_bytes:,} bytes",
                )
                lo = hi + 1
    if pending.count:
        yield pending.flush()
