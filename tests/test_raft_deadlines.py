"""systems.raft.deadlines: waits that end at their deadline, one loop timer for all of them."""

from __future__ import annotations

import asyncio
from typing import Any

from systems.raft.deadlines import Deadlines


def run(body: Any) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 10.0))


def test_waits_end_in_deadline_order_and_a_done_one_is_never_expired() -> None:
    async def body() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        ended: list[str] = []
        names: dict[asyncio.Future[Any], str] = {}

        def expire(fut: asyncio.Future[Any]) -> None:
            ended.append(names[fut])
            fut.set_result("expired")

        d = Deadlines(expire)
        late, early, answered = loop.create_future(), loop.create_future(), loop.create_future()
        names.update({late: "late", early: "early", answered: "answered"})
        now = loop.time()
        d.add(late, now + 0.06)
        d.add(answered, now + 0.03)
        d.add(early, now + 0.01)  # earlier than the armed timer: re-armed for it
        answered.set_result("ok")
        assert await late == "expired"
        assert answered.result() == "ok"
        return ended, len(d)

    ended, left = run(body)
    assert ended == ["early", "late"]
    assert left == 0


def test_equal_deadlines_end_together_in_the_order_added() -> None:
    async def body() -> list[int]:
        loop = asyncio.get_running_loop()
        ended: list[int] = []
        futs = [loop.create_future() for _ in range(5)]
        d = Deadlines(lambda f: (ended.append(futs.index(f)), f.set_result(None)))
        at = loop.time() + 0.02
        for f in futs:
            d.add(f, at)
        await asyncio.gather(*futs)
        return ended

    assert run(body) == [0, 1, 2, 3, 4]


def test_a_wait_added_after_the_timer_fired_gets_its_own() -> None:
    async def body() -> int:
        loop = asyncio.get_running_loop()
        count = 0

        def expire(f: asyncio.Future[Any]) -> None:
            nonlocal count
            count += 1
            f.set_result(None)

        d = Deadlines(expire)
        first = loop.create_future()
        d.add(first, loop.time() + 0.01)
        await first
        second = loop.create_future()
        d.add(second, loop.time() + 0.01)
        await second
        return count

    assert run(body) == 2
