"""Which simulated node owns a task, and the gate that freezes a paused or dead node.

Rules this module keeps:

- Every task created while a node's runtime is current (its handlers, what
  it spawns, and whatever those create: gather, wait_for, create_task)
  belongs to that node: the loop's task factory reads the owner from a
  context variable that tasks inherit, registers the task with its owner
  and wraps its coroutine in a gate.
- The gate stands between the task and its coroutine at every step. While
  the owner is paused the coroutine does not run: the step waits (in FIFO
  order) until resume, with the value or exception it was to receive. This
  freezes timers, replies, handlers and internal wake-ups alike, as SIGSTOP
  does. A cancellation that arrives while paused is held until resume.
- Once the owner is dead (crashed or shut down) the coroutine only ever
  receives CancelledError; a coroutine that swallows it and keeps going is
  closed, and one that never started is closed without running (no "never
  awaited" warning). A dead node's code never runs again.
- An owned task is forgotten by its owner when its coroutine finishes, by the
  gate itself rather than by a done callback; the gate then tells the loop
  (`VirtualTimeLoop.note_task_done`) so that the next iteration is scheduled
  exactly as if that callback were in the ready queue.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import functools
from collections.abc import Coroutine
from typing import Any, Protocol

from systems.runtime.api import Log
from systems.runtime.common import log_task_failure

_MAX_SWALLOWED_CANCELS = 3


class GateOwner(Protocol):
    """What the gate and the task factory need from a node runtime."""

    dead: bool
    paused: bool

    def gate_waiter(self) -> asyncio.Future[None]:
        """A fresh future completed when the owner resumes (or dies)."""
        ...

    def own_task(self, task: asyncio.Task[Any], gate: object) -> None:
        """Track `task`, which runs behind `gate`, until `forget(gate)`."""
        ...

    def forget(self, gate: object) -> None: ...


CURRENT: contextvars.ContextVar[GateOwner | None] = contextvars.ContextVar("sim_owner", default=None)


class _Gate:
    """The coroutine an owned task runs in place of `coro`: each step passes through the gate.

    A coroutine-shaped object (send/throw/close) rather than a generator, so a
    step costs one call and no extra coroutine frame.
    """

    __slots__ = ("_coro", "_held", "_loop", "_owner", "_started", "_swallowed", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], owner: GateOwner, loop: Any) -> None:
        self._coro = coro
        self._owner = owner
        self._loop = loop
        self._started = False
        self._swallowed = 0
        self._waiting = False
        """True while the task waits on a pause waiter (what it was to receive is in `_held`)."""
        self._held: BaseException | None = None

    def send(self, value: Any, error: BaseException | None = None) -> Any:
        """One step of the task (asyncio calls send(None); throw comes here with the error)."""
        owner = self._owner
        if self._waiting:  # woken from a pause waiter: its result is dropped, an exception is held instead
            if error is not None:
                self._held = error
            value, error = None, self._held
            if not owner.paused or owner.dead:
                self._waiting = False
                self._held = None
        if owner.paused and not owner.dead:
            if not self._waiting:
                self._waiting = True
                self._held = error
            waiter = owner.gate_waiter()
            waiter._asyncio_future_blocking = True  # what `yield from waiter` would set
            return waiter
        coro = self._coro
        try:
            if owner.dead:
                if not self._started or self._swallowed >= _MAX_SWALLOWED_CANCELS:
                    coro.close()
                    raise asyncio.CancelledError()
                if not isinstance(error, asyncio.CancelledError):
                    value, error = None, asyncio.CancelledError()
                self._swallowed += 1
            self._started = True
            if error is not None:
                return coro.throw(error)
            return coro.send(value)
        except BaseException:  # returned or raised: the task is done with this step
            owner.forget(self)
            self._loop.note_task_done()
            raise

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        error = typ if isinstance(typ, BaseException) else (typ() if val is None else val)
        return self.send(None, error)

    def close(self) -> None:
        self._coro.close()

    # What asyncio reads to name a task's coroutine and print its stack: the gated coroutine's.
    @property
    def __name__(self) -> str:  # type: ignore[override]
        return getattr(self._coro, "__name__", "_Gate")

    @property
    def cr_frame(self) -> Any:
        return getattr(self._coro, "cr_frame", None)

    @property
    def cr_code(self) -> Any:
        return getattr(self._coro, "cr_code", None)

    @property
    def cr_running(self) -> bool:
        return bool(getattr(self._coro, "cr_running", False))


collections.abc.Coroutine.register(_Gate)


def task_factory(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any],
    context: contextvars.Context | None = None,
    **kwargs: Any,
) -> asyncio.Task[Any]:
    """The loop's task factory: tasks created on behalf of a node are gated and owned by it."""
    owner = context.get(CURRENT) if context is not None else CURRENT.get()
    if owner is None:
        return asyncio.Task(coro, loop=loop, context=context, **kwargs)
    gate = _Gate(coro, owner, loop)
    task = asyncio.Task(gate, loop=loop, context=context, **kwargs)  # type: ignore[arg-type]
    owner.own_task(task, gate)
    return task


def owner_context(owner: GateOwner | None) -> contextvars.Context:
    """An empty context with CURRENT set to `owner`: `.copy()` it for each task started from nothing."""
    context = contextvars.Context()
    context.run(CURRENT.set, owner)
    return context


def create_owned_task(
    loop: asyncio.AbstractEventLoop, owner: GateOwner | None, coro: Coroutine[Any, Any, Any], name: str = "",
    *, log: Log | None = None, context: contextvars.Context | None = None,
) -> asyncio.Task[Any]:
    """Create a task on behalf of `owner`, whatever context the caller runs in.

    With `log`, an exception escaping the task is logged there (api.Runtime.spawn). A caller
    that has a fresh context with CURRENT already set to `owner` may hand it in as `context`.
    """
    if owner is None:
        token = CURRENT.set(None)
        try:
            task = loop.create_task(coro, name=name or None)
        finally:
            CURRENT.reset(token)
        if log is not None:
            task.add_done_callback(functools.partial(log_task_failure, log))
        return task
    # What loop.create_task would do with CURRENT set to `owner`, minus the detour through the factory.
    if context is None:
        context = contextvars.copy_context()
        if context.get(CURRENT) is not owner:
            context.run(CURRENT.set, owner)
    gate = _Gate(coro, owner, loop)
    task = asyncio.Task(gate, loop=loop, context=context)  # type: ignore[arg-type]
    if name:
        task.set_name(name)
    owner.own_task(task, gate)
    if log is not None:
        task.add_done_callback(functools.partial(log_task_failure, log))
    return task
