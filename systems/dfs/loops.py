"""Background rounds that outlive their own mistakes.

`every(rt, seconds, name, round)` runs `round()` every `seconds` for the
node's lifetime. An exception escaping one round is logged (`dfs-loop-failed`,
with the traceback) and the next round runs as usual: a bug met once in a
rare state must not silently stop re-replication, garbage collection or
heartbeats for good. Cancellation (the node stopping) ends the loop.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable

from systems.runtime.api import Runtime


async def every(rt: Runtime, seconds: float, name: str, round_: Callable[[], Awaitable[None]]) -> None:
    while True:
        await rt.sleep(seconds)
        try:
            await round_()
        except Exception as e:
            rt.log.error("dfs-loop-failed", loop=name, error=repr(e), traceback="".join(traceback.format_exception(e)))
