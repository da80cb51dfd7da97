"""A virtual-time asyncio event loop: time jumps to the next timer instead of passing.

Rules this module keeps:

- `loop.time()` is virtual: it starts at 0.0 and moves only when the loop has
  nothing ready to run, straight to the earliest pending timer. Nothing ever
  sleeps in real time and no real I/O is polled (the simulated network is made
  of timer callbacks), so a `sleep(3600)` costs one loop iteration.
- The loop's selector is where time moves: asyncio asks it to wait `timeout`
  seconds and it advances the clock to the timer that caused the wait.
- Nothing ready and no timer pending means every task waits for something that
  can never happen: the loop raises `SimDeadlock` instead of hanging.
- An optional `time_limit_s` bounds virtual time: passing it raises
  `SimTimeLimit` (a runaway simulation ends with a clear error, never a hang).
- No wall clock, no threads, no randomness: the same program runs the same
  callbacks in the same order at the same virtual times.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SimError(RuntimeError):
    """The simulation itself cannot go on (not a fault of the simulated system)."""


class SimDeadlock(SimError):
    """No task can make progress: nothing is ready and no timer is pending."""


class SimTimeLimit(SimError):
    """Virtual time passed the loop's limit."""


class _VirtualSelector:
    """Stands where asyncio's selector stands; `select(timeout)` advances the clock."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        self._loop._advance(timeout)
        return []

    def close(self) -> None:
        pass


class VirtualTimeLoop(asyncio.BaseEventLoop):
    """An asyncio loop with a virtual clock. Only timers and callbacks; no sockets, no threads."""

    def __init__(self, *, time_limit_s: float | None = None) -> None:
        super().__init__()
        self._now = 0.0
        self.time_limit_s = time_limit_s
        self._selector = _VirtualSelector(self)
        self.advances = 0
        """How many times the clock jumped (a cheap progress figure)."""

    def time(self) -> float:
        return self._now

    def _advance(self, timeout: float | None) -> None:
        if timeout is None:
            raise SimDeadlock(self._deadlock_message())
        if timeout <= 0:
            return
        scheduled = self._scheduled
        if scheduled and scheduled[0]._when - self._now <= timeout + 1e-9:
            target = max(self._now, scheduled[0]._when)  # land exactly on the timer's deadline
        else:
            target = self._now + timeout
        if self.time_limit_s is not None and target > self.time_limit_s:
            self._now = max(self._now, self.time_limit_s)
            raise SimTimeLimit(f"virtual time passed the limit of {self.time_limit_s:g} s")
        self._now = target
        self.advances += 1

    def _deadlock_message(self) -> str:
        names = sorted(t.get_name() for t in asyncio.all_tasks(self) if not t.done())
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        return (
            f"simulation deadlock at t={self._now:.6f}s: no callback is ready and no timer is pending; "
            f"{len(names)} task(s) wait forever: {shown}"
        )

    # The selector-loop hooks BaseEventLoop leaves abstract; the sim has no I/O and no threads.
    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass


def _cancel_all(loop: VirtualTimeLoop) -> None:
    """Cancel every task left on the loop and let them finish (like asyncio.run does)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not pending:
        return
    for t in pending:
        t.cancel()
    with contextlib.suppress(SimError):  # a task that refuses to die; the loop is closed anyway
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def run(coro: Coroutine[Any, Any, T], *, time_limit_s: float | None = None) -> T:
    """Run `coro` to completion on a fresh virtual-time loop, then cancel what is left and close."""
    loop = VirtualTimeLoop(time_limit_s=time_limit_s)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_all(loop)
        finally:
            loop.close()
