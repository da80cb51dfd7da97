"""The node loop's event queue: asyncio.Queue's put_nowait/get/get_nowait/empty for one consumer, leaner.

Rules this module keeps:

- Unbounded FIFO; `put_nowait` never blocks and never raises.
- One consumer at a time (the node's `_run` task). `get` waits on a single
  future that the next `put_nowait` completes, the way asyncio.Queue wakes
  its first getter: the consumer is woken at the same moment and in the same
  order as with asyncio.Queue (a simulated schedule does not move), without
  Queue's bookkeeping for many getters, putters and task_done.
- A `get` that is cancelled while waiting leaves the queue as it was.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def get_nowait(self) -> T:
        """The oldest item; raises asyncio.QueueEmpty when there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> T:
        items = self._items
        while not items:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if self._waiter is waiter:
                    self._waiter = None
                raise
        return items.popleft()
