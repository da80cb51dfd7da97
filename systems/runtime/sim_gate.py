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
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, Protocol

_MAX_SWALLOWED_CANCELS = 3


class GateOwner(Protocol):
    """What the gate and the task factory need from a node runtime."""

    dead: bool
    paused: bool

    def gate_waiter(self) -> asyncio.Future[None]:
        """A fresh future completed when the owner resumes (or dies)."""
        ...

    def own_task(self, task: asyncio.Task[Any]) -> None: ...


CURRENT: contextvars.ContextVar[GateOwner | None] = contextvars.ContextVar("sim_owner", default=None)


class _Gate:
    __slots__ = ("_coro", "_owner")

    def __init__(self, coro: Coroutine[Any, Any, Any], owner: GateOwner) -> None:
        self._coro = coro
        self._owner = owner

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        owner = self._owner
        value: Any = None
        error: BaseException | None = None
        swallowed = 0
        started = False
        try:
            while True:
                while owner.paused and not owner.dead:
                    try:
                        yield from owner.gate_waiter().__await__()
                    except GeneratorExit:
                        raise
                    except BaseException as e:  # held until resume
                        value, error = None, e
                if owner.dead:
                    if not started or swallowed >= _MAX_SWALLOWED_CANCELS:
                        coro.close()
                        raise asyncio.CancelledError()
                    if not isinstance(error, asyncio.CancelledError):
                        value, error = None, asyncio.CancelledError()
                    swallowed += 1
                started = True
                try:
                    out = coro.throw(error) if error is not None else coro.send(value)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                try:
                    value = yield out
                except GeneratorExit:
                    raise
                except BaseException as e:
                    error = e
        except GeneratorExit:
            coro.close()
            raise


async def gated(coro: Coroutine[Any, Any, Any], owner: GateOwner) -> Any:
    return await _Gate(coro, owner)


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
    task = asyncio.Task(gated(coro, owner), loop=loop, context=context, **kwargs)
    # A task cancelled before its first step never runs `gated`, so nobody would close `coro`.
    task.add_done_callback(lambda _t: coro.close())
    owner.own_task(task)
    return task


def create_owned_task(
    loop: asyncio.AbstractEventLoop, owner: GateOwner | None, coro: Coroutine[Any, Any, Any], name: str = ""
) -> asyncio.Task[Any]:
    """Create a task on behalf of `owner`, whatever context the caller runs in."""
    token = CURRENT.set(owner)
    try:
        task = loop.create_task(coro, name=name or None)
    finally:
        CURRENT.reset(token)
    return task
