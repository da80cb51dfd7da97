"""A virtual-time asyncio event loop: time jumps to the next timer instead of passing.

Rules this module keeps:

- `loop.time()` is virtual: it starts at 0.0 and moves only when the loop has
  nothing ready to run, straight to the earliest pending timer. Nothing ever
  sleeps in real time and no real I/O is polled (the simulated network is made
  of timer callbacks), so a `sleep(3600)` costs one loop iteration.
- Time moves where asyncio would poll its selector: when nothing is ready,
  the clock advances to the timer asyncio would have waited for.
- Nothing ready and no timer pending means every task waits for something that
  can never happen: the loop raises `SimDeadlock` instead of hanging.
- An optional `time_limit_s` bounds virtual time: passing it raises
  `SimTimeLimit` (a runaway simulation ends with a clear error, never a hang).
- No wall clock, no threads, no randomness: the same program runs the same
  callbacks in the same order at the same virtual times. Timers due within
  `CLOCK_RESOLUTION_S` of now run together (asyncio's rule), with the same
  resolution on every machine (asyncio would read the host's clock).
- The scheduling rules are asyncio's own, kept exactly (FIFO ready queue,
  one batch of ready callbacks per iteration, the same timer heap and the
  same purge of cancelled timers); only the bookkeeping is leaner: handles
  are made without the debug checks, and the heap holds `(when, handle)`
  pairs, which order exactly as the handles do but compare in C.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from asyncio import base_events, events, format_helpers
from collections.abc import Callable, Coroutine
from contextvars import copy_context
from heapq import heapify, heappop, heappush
from typing import Any, TypeVar

T = TypeVar("T")

CLOCK_RESOLUTION_S = 1e-9
"""Timers due closer than this to now run in the same loop iteration."""

_MAX_TIMEOUT_S = base_events.MAXIMUM_SELECT_TIMEOUT
_PURGE_MIN_TIMERS = base_events._MIN_SCHEDULED_TIMER_HANDLES
_PURGE_MIN_FRACTION = base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION
_new = object.__new__


class SimError(RuntimeError):
    """The simulation itself cannot go on (not a fault of the simulated system)."""


class SimDeadlock(SimError):
    """No task can make progress: nothing is ready and no timer is pending."""


class SimTimeLimit(SimError):
    """Virtual time passed the loop's limit."""


class _Handle(events.Handle):
    """asyncio's Handle, made without asking the loop for debug mode (no source traceback kept)."""

    __slots__ = ()

    def __init__(
        self, callback: Callable[..., Any], args: tuple[Any, ...], loop: VirtualTimeLoop,
        context: contextvars.Context | None,
    ) -> None:
        self._context = context if context is not None else contextvars.copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None


class _TimerHandle(events.TimerHandle):
    """asyncio's TimerHandle, made the same lean way."""

    __slots__ = ()

    def __init__(
        self, when: float, callback: Callable[..., Any], args: tuple[Any, ...], loop: VirtualTimeLoop,
        context: contextvars.Context | None,
    ) -> None:
        self._context = context if context is not None else contextvars.copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None
        self._when = when
        self._scheduled = False

    def cancel(self) -> None:
        """TimerHandle.cancel with the loop's bookkeeping inlined."""
        if self._cancelled:
            return
        if self._scheduled:
            self._loop._timer_cancelled_count += 1
        self._cancelled = True
        if self._loop._debug:
            self._repr = repr(self)
        self._callback = None
        self._args = None


class VirtualTimeLoop(asyncio.BaseEventLoop):
    """An asyncio loop with a virtual clock. Only timers and callbacks; no sockets, no threads."""

    def __init__(self, *, time_limit_s: float | None = None) -> None:
        super().__init__()
        self._now = 0.0
        self._clock_resolution = CLOCK_RESOLUTION_S
        self.time_limit_s = time_limit_s
        self.advances = 0
        """How many times the clock jumped (a cheap progress figure)."""
        self._task_done = False
        """A task finished in this iteration (see note_task_done)."""
        self.create_future = functools.partial(asyncio.Future, loop=self)  # type: ignore[method-assign]
        """BaseEventLoop.create_future, without a Python frame per future."""

    def note_task_done(self) -> None:
        """A task finished without a done callback of its own (sim_gate's owned tasks).

        asyncio would run its done callbacks in the next iteration, and an iteration with
        anything ready does not move the clock; the next iteration keeps to that.
        """
        self._task_done = True

    def time(self) -> float:
        return self._now

    # -- scheduling: BaseEventLoop's methods, same semantics, leaner --------------------------
    def call_soon(self, callback: Callable[..., Any], *args: Any, context: contextvars.Context | None = None) -> Any:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            return super().call_soon(callback, *args, context=context)
        # _Handle(callback, args, self, context), its __init__ inlined (one frame fewer per callback)
        handle = _new(_Handle)
        handle._context = context if context is not None else copy_context()
        handle._loop = self
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        self._ready.append(handle)
        return handle

    def call_at(
        self, when: float, callback: Callable[..., Any], *args: Any, context: contextvars.Context | None = None
    ) -> Any:
        if when is None:
            raise TypeError("when cannot be None")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        # _TimerHandle(when, callback, args, self, context), its __init__ inlined
        timer = _new(_TimerHandle)
        timer._context = context if context is not None else copy_context()
        timer._loop = self
        timer._callback = callback
        timer._args = args
        timer._cancelled = False
        timer._repr = None
        timer._source_traceback = None
        timer._when = when
        # (when, timer) < (when2, timer2) exactly when timer < timer2 (both compare `when` only),
        # so the heap keeps asyncio's order, ties included, while comparing floats in C.
        heappush(self._scheduled, (when, timer))
        timer._scheduled = True
        return timer

    def call_later(
        self, delay: float, callback: Callable[..., Any], *args: Any, context: contextvars.Context | None = None
    ) -> Any:
        if delay is None:
            raise TypeError("delay must not be None")
        return self.call_at(self._now + delay, callback, *args, context=context)

    def _run_once(self) -> None:
        """Iterations of BaseEventLoop._run_once, step for step, until the loop is stopping.

        run_forever calls _run_once until `_stopping` is set; running the iterations here
        instead is the same sequence without a call per iteration. The selector poll is inlined.
        """
        if self._debug:
            return self._run_once_debug()
        ready = self._ready
        popleft = ready.popleft
        while True:
            scheduled: list[tuple[float, Any]] = self._scheduled
            count = len(scheduled)
            if count > _PURGE_MIN_TIMERS and self._timer_cancelled_count / count > _PURGE_MIN_FRACTION:
                scheduled = self._purge_cancelled()
            else:
                while scheduled and scheduled[0][1]._cancelled:
                    self._timer_cancelled_count -= 1
                    heappop(scheduled)[1]._scheduled = False

            if self._task_done:
                self._task_done = False
            elif not ready and not self._stopping:
                if not scheduled:
                    self._advance(None)
                when = scheduled[0][0]
                ahead = when - self._now
                limit = self.time_limit_s
                if 0 < ahead <= _MAX_TIMEOUT_S and (limit is None or when <= limit):
                    # What _advance(ahead) does then, inlined: land exactly on the earliest timer.
                    self._now = when
                    self.advances += 1
                else:
                    self._advance(min(max(0, ahead), _MAX_TIMEOUT_S))

            end_time = self._now + self._clock_resolution
            while scheduled and scheduled[0][0] < end_time:
                timer = heappop(scheduled)[1]
                timer._scheduled = False
                ready.append(timer)

            for _ in range(len(ready)):
                handle = popleft()
                if handle._cancelled:
                    continue
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # what Handle._run does
                    self._callback_failed(handle, exc)
            if self._stopping:
                return

    def _purge_cancelled(self) -> list[tuple[float, Any]]:
        """Rebuild the heap without its cancelled timers (asyncio does it when they are most of it)."""
        kept = []
        for entry in self._scheduled:
            if entry[1]._cancelled:
                entry[1]._scheduled = False
            else:
                kept.append(entry)
        heapify(kept)
        self._scheduled = kept
        self._timer_cancelled_count = 0
        return kept

    def _run_once_debug(self) -> None:
        """One iteration, the plain way (asyncio debug mode: every handle through Handle._run)."""
        scheduled: list[tuple[float, Any]] = self._scheduled
        count = len(scheduled)
        if count > _PURGE_MIN_TIMERS and self._timer_cancelled_count / count > _PURGE_MIN_FRACTION:
            scheduled = self._purge_cancelled()
        else:
            while scheduled and scheduled[0][1]._cancelled:
                self._timer_cancelled_count -= 1
                heappop(scheduled)[1]._scheduled = False
        ready = self._ready
        if self._task_done:
            self._task_done = False
        elif not ready and not self._stopping:
            if not scheduled:
                self._advance(None)
            self._advance(min(max(0, scheduled[0][0] - self._now), _MAX_TIMEOUT_S))
        end_time = self._now + self._clock_resolution
        while scheduled and scheduled[0][0] < end_time:
            timer = heappop(scheduled)[1]
            timer._scheduled = False
            ready.append(timer)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                self._current_handle = handle
                try:
                    handle._run()
                finally:
                    self._current_handle = None

    def _callback_failed(self, handle: Any, exc: BaseException) -> None:
        cb = format_helpers._format_callback_source(handle._callback, handle._args)
        context = {"message": f"Exception in callback {cb}", "exception": exc, "handle": handle}
        if handle._source_traceback:
            context["source_traceback"] = handle._source_traceback
        self.call_exception_handler(context)

    def _advance(self, timeout: float | None) -> None:
        if timeout is None:
            raise SimDeadlock(self._deadlock_message())
        if timeout <= 0:
            return
        scheduled = self._scheduled
        if scheduled and scheduled[0][0] - self._now <= timeout + 1e-9:
            target = max(self._now, scheduled[0][0])  # land exactly on the timer's deadline
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
