"""The prefetch thread between the batch packer and the delivery loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from reverse_etl.insider.http.prefetch import prefetched


class Source:
    """A generator-backed source that records how far it was pulled and where it was closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.pulled = 0
        self.closed_on: str | None = None
        self.threads: set[str] = set()

    def __iter__(self) -> Iterator[int]:
        return self.items()

    def items(self) -> Iterator[int]:
        try:
            for i in range(self.n):
                self.threads.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise ValueError(f"row {i} is broken")
                self.pulled = i + 1
                yield i
        finally:
            self.closed_on = threading.current_thread().name


async def _take(source: Iterator[int], depth: int, stop_after: int | None = None) -> list[int]:
    got: list[int] = []
    async with prefetched(source, depth) as items:
        async for item in items:
            got.append(item)
            if stop_after is not None and len(got) == stop_after:
                break
    return got


def test_every_item_arrives_in_order_from_another_thread() -> None:
    source = Source(500)
    assert asyncio.run(_take(source.items(), depth=3)) == list(range(500))
    assert threading.current_thread().name not in source.threads
    assert source.closed_on is not None and source.closed_on != threading.current_thread().name


def test_an_error_in_the_source_reaches_the_consumer_after_the_items_before_it() -> None:
    source = Source(10, fail_at=4)
    got: list[int] = []

    async def consume() -> None:
        async with prefetched(source.items(), 2) as items:
            async for item in items:
                got.append(item)

    with pytest.raises(ValueError, match="row 4 is broken"):
        asyncio.run(consume())
    assert got == [0, 1, 2, 3]


def test_stopping_early_closes_the_source_on_its_thread_and_pulls_at_most_depth_ahead() -> None:
    source = Source(10_000)
    got = asyncio.run(_take(source.items(), depth=4, stop_after=3))
    assert got == [0, 1, 2]
    # the source was closed (its finally ran) before prefetched() returned ...
    assert source.closed_on is not None and source.closed_on != threading.current_thread().name
    # ... and never ran far ahead: the queue (4), the item being put, the ones consumed
    assert source.pulled <= 3 + 4 + 1


def test_a_cancelled_consumer_still_stops_and_closes_the_source() -> None:
    source = Source(10_000)

    async def main() -> None:
        async def consume() -> None:
            async with prefetched(source.items(), 2) as items:
                async for _ in items:
                    await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert source.closed_on is not None
    assert source.pulled <= 1 + 2 + 1
