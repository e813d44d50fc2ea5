"""Running a blocking iterator on a worker thread, a few items ahead of an event loop.

The delivery loop's batches come from DuckDB reads and Arrow joins (see
``batching.pack``). Pulled on the loop's own thread, every chunk read stalls
all requests in flight; pulled here, they overlap the network. The queue
between the two holds at most ``depth`` items, so memory stays bounded, and
the source is only ever advanced by one thread at a time and closed on the
thread that ran it (a DuckDB cursor opened inside it is closed there too).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.05
"""How often a worker waiting for room in the queue looks whether the consumer stopped."""


class _End:
    """The last item of the queue: the source ran out, or raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Worker(Generic[T]):
    """Feeds ``source`` into ``queue`` from a worker thread until it ends or ``stop`` is set.

    ``room`` counts the free places of the queue: the worker takes one before it
    pulls an item, the consumer gives one back as it takes an item. Handing an
    item over never waits for the loop to run (no round trip through a future), so
    the two threads do not take turns at the GIL for every item.
    """

    def __init__(self, source: Iterator[T], depth: int, loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.loop = loop
        self.queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self.room = threading.Semaphore(depth)
        self.stop = threading.Event()

    def run(self) -> None:
        end = _End()
        try:
            items = iter(self.source)
            while self._take_room():
                try:
                    item = next(items)
                except StopIteration:
                    break
                self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except BaseException as error:  # handed to the consumer, raised there
            end = _End(error)
        finally:
            close = getattr(self.source, "close", None)
            if callable(close):
                close()  # on this thread: generators release what they opened here
        self.loop.call_soon_threadsafe(self.queue.put_nowait, end)

    def _take_room(self) -> bool:
        """Wait for a free place in the queue; False once the consumer has stopped."""
        while not self.room.acquire(timeout=_POLL_SECONDS):
            if self.stop.is_set():
                return False
        return not self.stop.is_set()


@asynccontextmanager
async def prefetched(source: Iterator[T], depth: int) -> AsyncIterator[AsyncIterator[T]]:
    """Iterate ``source`` on a worker thread, at most ``depth`` items ahead of the consumer.

    Yields an async iterator over the items; an error raised by ``source`` is
    raised by it, in order. Leaving the context (done, halted, cancelled)
    stops the worker and waits for it, so the source is closed before this
    returns.
    """
    loop = asyncio.get_running_loop()
    worker = _Worker(source, max(1, depth), loop)
    done = loop.run_in_executor(None, worker.run)

    async def items() -> AsyncIterator[T]:
        while True:
            item = await worker.queue.get()
            worker.room.release()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    try:
        yield items()
    finally:
        worker.stop.set()
        worker.room.release()  # wakes a worker waiting for room now, not at its next poll
        await asyncio.shield(done)
