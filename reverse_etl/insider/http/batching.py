"""Packing encoded items into request-sized batches, lazily.

The engine hands over ``(row_ids, items)`` chunks of any size; items are
already-encoded JSON texts (``str`` or ``bytes``). This module cuts them into
:class:`Batch` objects that respect Insider's per-request limits (users and
body bytes, wrapper included) and builds request bodies by joining bytes, so
no row is ever parsed or re-serialised on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

USERS_OPEN = b'{"users":['
USERS_CLOSE = b"]}"
USERS_CLOSE_SKIP_HOOK = b'],"skip_hook":true}'


@dataclass(slots=True)
class Batch:
    """The rows of one request: their ids and encoded items, in order."""

    row_ids: list[int]
    items: list[bytes]

    def __len__(self) -> int:
        return len(self.row_ids)

    def halves(self) -> tuple[Batch, Batch]:
        """Split in two (for bisecting a refused request); needs at least two rows."""
        mid = len(self.row_ids) // 2
        return (
            Batch(self.row_ids[:mid], self.items[:mid]),
            Batch(self.row_ids[mid:], self.items[mid:]),
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
        return batch.items[0]
    close = USERS_CLOSE_SKIP_HOOK if skip_hook else USERS_CLOSE
    return USERS_OPEN + b",".join(batch.items) + close


def _as_list(values: Any) -> list[Any]:
    # numpy and pyarrow arrays turn into plain Python values through tolist();
    # list() would leave numpy/arrow scalars that the engine's journal cannot write.
    if isinstance(values, list):
        return values
    tolist = getattr(values, "tolist", None)
    if callable(tolist):
        result = tolist()
        if isinstance(result, list):
            return result
    return list(values)


def pack(
    chunks: Iterable[tuple[Sequence[int], Sequence[str | bytes]]],
    *,
    bulk: bool,
    max_users: int,
    max_bytes: int,
    skip_hook: bool = False,
) -> Iterator[Batch | Oversize]:
    """Yield batches (and oversize rows) from ``chunks``, pulling one chunk at a time.

    Bulk batches hold at most ``max_users`` items and a body of at most
    ``max_bytes`` bytes counting the wrapper and the commas; one-per-request
    endpoints get batches of exactly one item. A batch may span chunk
    boundaries, so small chunks still fill requests.
    """
    per_request = max_users if bulk else 1
    wrapper = wrapper_bytes(bulk=bulk, skip_hook=skip_hook)
    room = max_bytes - wrapper  # bytes available for items and their commas
    ids: list[int] = []
    items: list[bytes] = []
    used = 0
    for chunk_ids, chunk_items in chunks:
        row_ids = _as_list(chunk_ids)
        texts = _as_list(chunk_items)
        if len(row_ids) != len(texts):
            raise ValueError(
                f"a chunk has {len(row_ids)} row ids but {len(texts)} items; they must pair up"
            )
        for row_id, text in zip(row_ids, texts, strict=True):
            item = text if isinstance(text, bytes) else text.encode()
            size = len(item)
            if size > room:
                yield Oversize(
                    int(row_id),
                    f"encoded {'user object' if bulk else 'request body'} is {size:,} bytes; "
                    f"a request body may hold at most {max_bytes:,} bytes",
                )
                continue
            # each item after the first costs a comma
            needed = size if not items else size + 1
            if items and (len(items) >= per_request or used + needed > room):
                yield Batch(ids, items)
                ids, items, used, needed = [], [], 0, size
            ids.append(int(row_id))
            items.append(item)
            used += needed
    if items:
        yield Batch(ids, items)
