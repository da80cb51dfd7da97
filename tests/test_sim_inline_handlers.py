"""sim_world.never_suspends: which handlers the sim may run without a task of their own.

Only a coroutine function whose own code has no await, async for or async with can be run to its
end in one step; anything the check cannot see into (partials, wrappers, plain callables) is
refused, so it keeps its task. (That both ways give the same schedule is pinned by
tests/test_sim_schedules.py; pause, crash and arrival order by tests/test_sim_runtime.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import weakref
from typing import Any

from systems.runtime.sim_world import never_suspends


async def plain(src: str, msg: Any) -> Any:
    return {"echo": msg, "n": len(str(msg))}


async def awaits(src: str, msg: Any) -> Any:
    await asyncio.sleep(0)
    return msg


async def iterates(src: str, msg: Any) -> Any:
    async for x in msg:
        return x
    return None


async def enters(src: str, msg: Any) -> Any:
    async with contextlib.AsyncExitStack():
        return msg


class Node:
    async def on_msg(self, src: str, msg: Any) -> Any:
        return [x for x in msg]  # a comprehension is its own code, and cannot suspend either

    async def on_call(self, src: str, msg: Any) -> Any:
        return await plain(src, msg)


def sync_handler(src: str, msg: Any) -> Any:
    return msg


def test_only_coroutine_code_without_a_suspension_point_is_run_inline() -> None:
    node = Node()
    assert never_suspends(plain)
    assert never_suspends(node.on_msg)
    for handler in (awaits, iterates, enters, node.on_call):
        assert not never_suspends(handler), handler


def test_what_it_cannot_see_into_keeps_its_task() -> None:
    assert not never_suspends(functools.partial(plain, "n1"))
    assert not never_suspends(lambda src, msg: plain(src, msg))
    assert not never_suspends(sync_handler)


class World:
    """Stands for everything a run's closures reach (a sim world is tens of MB)."""


def test_judging_a_closure_keeps_nothing_it_reaches_alive() -> None:
    """A run's per-run closures (e.g. mapreduce's guarded handlers) are judged and then dropped
    with the run: the judgement must not hold them, or a 1,000-seed sweep keeps every world."""
    judged = []
    for _ in range(3):
        world = World()

        async def handler(src: str, msg: Any, world: World = world) -> Any:
            return world

        judged.append(never_suspends(handler))
        gone = weakref.ref(world)
        del world, handler
        gc.collect()
        assert gone() is None
    assert judged == [True, True, True]
