"""Waits that end at a deadline: one loop timer for all of them instead of one per wait.

Rules this module keeps:

- `add(fut, deadline)`: unless `fut` is done by `deadline` (loop time), it is
  handed to `expire` at that time, as `loop.call_at(deadline, expire, fut)`
  would; a future done earlier costs nothing more.
- One timer is armed, for the earliest deadline held; when it fires, every
  wait whose deadline is at or before the one it was armed for ends, then it
  is armed for the next. Waits are kept in a heap of (deadline, order,
  future): ties end in the order they were added.
- A client request's wait costs a heap push, not a TimerHandle to create,
  cancel and compare in the loop's own heap: the loop's timers stay few.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any


class Deadlines:
    def __init__(self, expire: Callable[[asyncio.Future[Any]], None]) -> None:
        self.expire = expire
        self._heap: list[tuple[float, int, asyncio.Future[Any]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf

    def add(self, fut: asyncio.Future[Any], deadline: float) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), fut))
        if deadline < self._armed:
            self._arm(deadline)

    def __len__(self) -> int:
        return len(self._heap)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = at
        self._timer = asyncio.get_running_loop().call_at(at, self._fire)

    def _fire(self) -> None:
        limit, self._armed, self._timer = self._armed, math.inf, None
        heap = self._heap
        while heap and (heap[0][0] <= limit or heap[0][2].done()):
            fut = heapq.heappop(heap)[2]
            if not fut.done():
                self.expire(fut)
        if heap:
            self._arm(heap[0][0])
