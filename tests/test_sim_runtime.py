"""The simulator: virtual time, determinism, network faults, RPC errors, disk crashes, pause."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import systems.echo as echo
from harness.backends.base import LinkFault
from systems.runtime.api import NodeConfig, RemoteError, RpcTimeout, Runtime, Unreachable
from systems.runtime.sim import (
    JOURNAL_FIELDS,
    DiskStore,
    DiskView,
    Journal,
    MessageNotEncodable,
    NetConfig,
    Network,
    SimDeadlock,
    SimRuntime,
    SimTimeLimit,
    SimWorld,
    VirtualTimeLoop,
    run,
)

REPO = Path(__file__).resolve().parent.parent
NODES = ["n1", "n2", "n3"]


def in_world(
    body: Callable[[SimWorld, SimRuntime], Awaitable[Any]],
    *,
    seed: int = 1,
    nodes: list[str] | None = None,
    main: Callable[[Runtime, NodeConfig], Awaitable[None]] = echo.start_node,
    **kw: Any,
) -> tuple[Any, SimWorld]:
    """Start `main` on every node of a fresh world, run `body(world, client)`, tear down."""
    world = SimWorld(seed, nodes or NODES, **kw)

    async def go() -> Any:
        for n in world.nodes:
            await world.start(n, main, NodeConfig("test", seed=seed))
        return await body(world, world.client())

    return world.run(go()), world


async def recorder(rt: Runtime, config: NodeConfig) -> None:
    """A test system: remembers one-way `note`s, ticks a counter, answers `slow` after 5 s."""
    state: dict[str, Any] = {"notes": [], "ticks": 0}

    async def note(src: str, msg: Any) -> None:
        state["notes"].append([src, msg, rt.now()])

    async def seen(src: str, msg: Any) -> Any:
        return state["notes"]

    async def ticks(src: str, msg: Any) -> Any:
        return state["ticks"]

    async def tell(src: str, msg: Any) -> Any:
        rt.send(msg["to"], "note", msg["msg"])
        return True

    async def slow(src: str, msg: Any) -> Any:
        await rt.sleep(5.0)
        return "done"

    async def boom(src: str, msg: Any) -> Any:
        raise ValueError("boom")

    async def refuse(src: str, msg: Any) -> Any:
        raise RemoteError("not the leader", code="not-leader", definite=True)

    async def bad_reply(src: str, msg: Any) -> Any:
        return {1, 2}

    async def ticker() -> None:
        while True:
            await rt.sleep(1.0)
            state["ticks"] += 1

    for name, h in [("note", note), ("seen", seen), ("ticks", ticks), ("tell", tell), ("slow", slow),
                    ("boom", boom), ("refuse", refuse), ("bad_reply", bad_reply)]:
        rt.serve(name, h)
    rt.spawn(ticker(), name="ticker")


# -- the loop -----------------------------------------------------------------------------------

def test_virtual_time_jumps_to_the_next_timer() -> None:
    async def main() -> tuple[float, float, int]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600)
        return t0, loop.time(), loop.advances  # type: ignore[attr-defined]

    t0, t1, advances = run(main())
    assert t0 == 0.0
    assert t1 == 3600.0
    assert advances == 1  # one jump, no polling in between


def test_timers_fire_in_order_at_their_exact_times() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []

        async def at(name: str, s: float) -> None:
            await asyncio.sleep(s)
            fired.append((name, loop.time()))

        await asyncio.gather(at("c", 2.5), at("a", 0.001), at("b", 1.0), at("d", 100000.0))
        return fired

    assert run(main()) == [("a", 0.001), ("b", 1.0), ("c", 2.5), ("d", 100000.0)]


def test_deadlock_is_an_error_not_a_hang() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(SimDeadlock, match="deadlock"):
        run(main())


def test_world_deadlock_is_reported_even_with_a_paused_node_holding_tasks() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        world.pause("n1")
        waiter = asyncio.get_running_loop().create_future()
        await waiter  # nothing can ever complete it

    with pytest.raises(SimDeadlock):
        in_world(body)


def test_time_limit_ends_a_runaway_simulation() -> None:
    async def main() -> None:
        while True:
            await asyncio.sleep(1.0)

    with pytest.raises(SimTimeLimit):
        run(main(), time_limit_s=50.0)


class _AsyncioReference(asyncio.BaseEventLoop):
    """asyncio's own scheduling (BaseEventLoop._run_once, call_soon, call_at) on a virtual clock:
    what VirtualTimeLoop must do step for step, only faster."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._clock_resolution = 1e-9
        self._selector = self

    def time(self) -> float:
        return self._now

    def select(self, timeout: float | None) -> list[Any]:
        if timeout is None:
            raise SimDeadlock("reference deadlock")
        if timeout > 0:
            if self._scheduled and self._scheduled[0]._when - self._now <= timeout + 1e-9:
                self._now = max(self._now, self._scheduled[0]._when)
            else:
                self._now += timeout
        return []

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass


def _busy_program(seed: int) -> Callable[[], Any]:
    """Timers with exact ties and sub-nanosecond near-ties, a heap mostly of cancelled timers
    (asyncio purges it), tasks that end with and without done callbacks, futures, call_soon chains."""
    import random

    async def main() -> list[tuple[float, str]]:
        loop = asyncio.get_running_loop()
        rng = random.Random(seed)
        trace: list[tuple[float, str]] = []

        def mark(label: str) -> None:
            trace.append((loop.time(), label))

        async def quick(i: int) -> int:
            mark(f"quick{i}")
            if rng.random() < 0.5:
                loop.call_at(loop.time() + rng.choice([0.0, 3e-10, 1e-9, 2e-9]), mark, f"near{i}")
            return i

        async def actor(a: int) -> None:
            for step in range(40):
                r = rng.random()
                if r < 0.3:
                    await asyncio.sleep(rng.choice([0.1, 0.2, 0.1 + 0.2, 0.3, 1e-10, 0.0]))
                elif r < 0.5:
                    doomed = [loop.call_later(rng.random() * 5, mark, "never") for _ in range(8)]
                    keep = loop.call_later(rng.random(), mark, f"kept{a}.{step}")
                    for h in doomed:
                        h.cancel()
                    if rng.random() < 0.2:
                        keep.cancel()
                elif r < 0.7:
                    t = loop.create_task(quick(a * 100 + step))
                    if rng.random() < 0.5:
                        t.add_done_callback(lambda _t, a=a, step=step: mark(f"done{a}.{step}"))
                    await asyncio.sleep(0)
                elif r < 0.85:
                    fut = loop.create_future()
                    loop.call_later(rng.choice([0.05, 0.1]), fut.set_result, step)
                    mark(f"got{a}.{await fut}")
                else:
                    loop.call_soon(mark, f"soon{a}.{step}")
                    await asyncio.sleep(0)
                mark(f"actor{a}.{step}")

        await asyncio.gather(*(actor(a) for a in range(6)))
        return trace

    return main


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_loop_schedules_exactly_as_asyncio_does(seed: int) -> None:
    def trace(loop: asyncio.AbstractEventLoop) -> list[tuple[float, str]]:
        try:
            return loop.run_until_complete(_busy_program(seed)())
        finally:
            loop.close()

    reference = trace(_AsyncioReference())
    assert len(reference) > 300 and any(label.startswith("near") for _, label in reference)
    assert trace(VirtualTimeLoop()) == reference


def test_a_task_forgotten_by_its_gate_keeps_the_clock_where_asyncio_would() -> None:
    """asyncio runs a finished task's done callbacks in the next iteration, which therefore does
    not move the clock; a timer due within the clock resolution then runs at the old time. Owned
    tasks have no done callback (the gate forgets them), and the loop must keep to the same rule."""

    async def main(rt: Runtime, config: NodeConfig) -> None:
        loop = asyncio.get_running_loop()
        seen: list[float] = []
        started: list[asyncio.Future[None]] = []

        async def quick() -> None:  # an owned task with no done callback at all
            loop.call_at(loop.time() + 4e-10, lambda: seen.append(loop.time()))

        async def probe(src: str, msg: Any) -> Any:
            before = loop.time()
            started.append(asyncio.ensure_future(quick()))
            await rt.sleep(1.0)
            return [before, seen]

        rt.serve("probe", probe)

    async def body(world: SimWorld, c: SimRuntime) -> Any:
        return await c.call("n1", "probe", None, timeout=5.0)

    (before, seen), _ = in_world(body, main=main, nodes=["n1"])
    assert seen == [before]


# -- determinism --------------------------------------------------------------------------------

def scenario(seed: int) -> str:
    """A busy run with every kind of fault; returns the journal digest."""
    net = NetConfig(loss=0.05, duplicate=0.05, reorder=True)

    async def body(world: SimWorld, c: SimRuntime) -> None:
        async def client(i: int) -> None:
            rng = c.rng
            for _ in range(30):
                node = world.nodes[rng.randrange(len(world.nodes))]
                other = world.nodes[rng.randrange(len(world.nodes))]
                try:
                    await c.call(node, "relay", {"to": other, "msg": {"i": i, "x": rng.random()}}, timeout=0.5)
                    await c.call(node, "incr", {"sync": rng.random() < 0.5}, timeout=0.5)
                except (RpcTimeout, Unreachable, RemoteError):
                    pass
                await c.sleep(rng.expovariate(20))

        async def nemesis() -> None:
            await c.sleep(0.3)
            world.partition({"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]})
            await c.sleep(0.3)
            world.heal()
            world.crash("n2")
            world.set_links({("n1", "n3"): LinkFault(drop=0.3, delay_s=0.01, jitter_s=0.01, duplicate=0.2)})
            await c.sleep(0.3)
            await world.restart("n2")
            world.pause("n3")
            await c.sleep(0.2)
            world.resume("n3")

        await asyncio.gather(nemesis(), *(client(i) for i in range(4)))

    _, world = in_world(body, seed=seed, net=net)
    return world.digest()


def test_same_seed_same_journal_and_different_seeds_differ() -> None:
    def journal(seed: int) -> tuple[str, str]:
        async def body(world: SimWorld, c: SimRuntime) -> None:
            for i in range(20):
                await c.call(world.nodes[i % 3], "relay", {"to": world.nodes[(i + 1) % 3], "msg": i})

        _, world = in_world(body, seed=seed)
        return world.journal.to_jsonl(), world.digest()

    a, b, c = journal(7), journal(7), journal(8)
    assert a == b
    assert a[1] != c[1]
    assert scenario(3) == scenario(3)
    assert scenario(3) != scenario(4)


def test_digest_is_the_same_with_or_without_the_journal_kept() -> None:
    kept = SimWorld(5, NODES, keep_journal=True)
    bare = SimWorld(5, NODES, keep_journal=False)
    for world in (kept, bare):
        async def go(world: SimWorld = world) -> None:
            for n in world.nodes:
                await world.start(n, echo.start_node, NodeConfig("test", seed=5))
            c = world.client()
            for i in range(30):
                await c.call(world.nodes[i % 3], "echo", {"i": i})
        world.run(go())
    assert kept.journal.records and not bare.journal.records
    assert kept.digest() == bare.digest()


def test_digest_covers_every_record_and_every_payload() -> None:
    record = (5, "send", "n1", "n2", "call", "echo", 1, "")

    def digest(*adds: tuple[Any, ...]) -> str:
        journal = Journal()
        for add in adds:
            journal.add(*add)
        return journal.digest()

    base = digest((record, b"ab"), (record, b"c"))
    assert base == digest((record, b"ab"), (record, b"c"))
    assert base != digest((record, b"a"), (record, b"bc"))  # payload boundaries count
    assert base != digest((record, b"ab"), (record, b"d"))
    assert base != digest((record, b"ab"), ((6, *record[1:]), b"c"))
    assert digest((record,)) != digest((record, b""))


def test_journal_lines_are_what_json_dumps_writes() -> None:
    journal = Journal()
    records = [
        (0, "send", "n1", "n2", "call", "echo", 1, ""),
        (123456789012, "drop", "cl\"ient", "n\u00e9", "reply", "we\\ird\n", 2**40, "partition"),
    ]
    for r in records:
        journal.add(r, b"x")
    want = "".join(json.dumps(dict(zip(JOURNAL_FIELDS, r, strict=True)), separators=(",", ":")) + "\n"
                   for r in records)
    assert journal.to_jsonl() == want
    assert journal.to_jsonl() == want  # formatted once, asked twice


def test_digest_does_not_depend_on_pythonhashseed() -> None:
    digests = []
    for hashseed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, __file__, "--digest", "11"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
        )
        digests.append(out.stdout.strip())
    assert len(digests[0]) == 64
    assert digests[0] == digests[1] == scenario(11)


# -- network ------------------------------------------------------------------------------------

def test_loss_acts_between_nodes_but_never_on_clients() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> tuple[Any, Any]:
        direct = await c.call("n1", "echo", "hi")
        with pytest.raises(RemoteError) as e:
            await c.call("n1", "relay", {"to": "n2", "msg": "hi", "timeout": 0.5}, timeout=2.0)
        return direct, e.value

    (direct, err), _ = in_world(body, net=NetConfig(loss=1.0))
    assert direct == "hi"
    assert err.code == "timeout" and err.definite is False


def test_grudge_drops_inbound_only() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> tuple[Any, Any]:
        world.partition({"n2": ["n1"]})  # n2 drops what n1 sends; n1 still hears n2
        await c.call("n1", "tell", {"to": "n2", "msg": "n1->n2"})
        await c.call("n2", "tell", {"to": "n1", "msg": "n2->n1"})
        await c.sleep(1.0)
        return await c.call("n2", "seen", None), await c.call("n1", "seen", None)

    (at_n2, at_n1), _ = in_world(body, main=recorder)
    assert at_n2 == []
    assert [m[:2] for m in at_n1] == [["n2", "n2->n1"]]


def test_partition_catches_frames_already_in_flight_and_heal_restores() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> tuple[Any, Any]:
        await c.call("n1", "tell", {"to": "n2", "msg": "lost"})
        world.partition({"n2": ["n1"]})  # the note is still on the wire
        await c.sleep(1.0)
        world.heal()
        await c.call("n1", "tell", {"to": "n2", "msg": "after heal"})
        await c.sleep(1.0)
        return await c.call("n2", "seen", None), world.journal.records

    (seen, records), _ = in_world(body, main=recorder, net=NetConfig(base_s=0.01))
    assert [m[1] for m in seen] == ["after heal"]
    assert any(r[1] == "drop" and r[7] == "partition" for r in records)


def test_duplication_delivers_twice() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> Any:
        await c.call("n1", "tell", {"to": "n2", "msg": "x"})
        await c.sleep(1.0)
        return await c.call("n2", "seen", None)

    seen, _ = in_world(body, main=recorder, net=NetConfig(duplicate=1.0))
    assert [m[1] for m in seen] == ["x", "x"]


def test_each_copy_of_a_duplicated_message_is_its_own_object() -> None:
    async def keeper(rt: Runtime, config: NodeConfig) -> None:
        got: list[Any] = []

        async def note(src: str, msg: Any) -> None:
            msg["n"] += len(got)  # mutating one delivery must not show in the other
            got.append(msg)

        async def seen(src: str, msg: Any) -> Any:
            return [got, len({id(m) for m in got})]

        rt.serve("note", note)
        rt.serve("seen", seen)

    async def body(world: SimWorld, c: SimRuntime) -> Any:
        sent = {"n": 10}
        world.runtimes["n1"].send("n2", "note", sent)
        sent["n"] = 99  # the sender's object is not what travels
        await c.sleep(1.0)
        return await c.call("n2", "seen", None)

    (got, distinct), _ = in_world(body, main=keeper, nodes=["n1", "n2"], net=NetConfig(duplicate=1.0))
    assert got == [{"n": 10}, {"n": 11}] and distinct == 2


def test_links_are_fifo_unless_reordering() -> None:
    def order(net: NetConfig, links: dict[tuple[str, str], LinkFault]) -> list[int]:
        async def body(world: SimWorld, c: SimRuntime) -> Any:
            world.set_links(links)
            rt = world.runtimes["n1"]
            for i in range(50):
                rt.send("n2", "note", i)
            await c.sleep(2.0)
            return [m[1] for m in await c.call("n2", "seen", None)]

        return in_world(body, main=recorder, net=net)[0]

    assert order(NetConfig(), {}) == list(range(50))
    assert sorted(order(NetConfig(reorder=True), {})) == list(range(50))
    assert order(NetConfig(reorder=True), {}) != list(range(50))
    assert order(NetConfig(), {("n1", "n2"): LinkFault(jitter_s=0.05)}) != list(range(50))


def test_network_plan_rules() -> None:
    from systems.runtime.api import derive_rng

    net = Network(frozenset(["a", "b"]), derive_rng(0, "t"), NetConfig(base_s=0.001, tail_s=0.0))
    assert net.plan("a", "b", 0.0) == [0.001]
    net.set_links({("a", "b"): LinkFault(delay_s=0.5)})
    assert net.plan("a", "b", 1.0) == [1.501]
    assert net.plan("b", "a", 1.0) == [1.001]
    net.set_links({("a", "b"): LinkFault(drop=1.0)})
    assert net.plan("a", "b", 0.0) == []
    assert net.plan("client", "b", 0.0) == [0.001]  # faults never touch clients
    net.partition({"b": ["a"]})
    assert net.cut("a", "b") and not net.cut("b", "a")
    assert not net.cut("client", "b")
    with pytest.raises(ValueError):
        net.partition({"zz": ["a"]})
    net.heal()
    assert not net.cut("a", "b") and net.plan("a", "b", 0.0) != []


# -- RPC errors ---------------------------------------------------------------------------------

def test_unreachable_when_down_timeout_when_partitioned_or_paused() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> dict[str, Any]:
        out: dict[str, Any] = {}
        world.crash("n1")
        t0 = c.now()
        with pytest.raises(Unreachable) as e:
            await c.call("n1", "echo", 1, timeout=5.0)
        out["down"] = (e.value.definite, c.now() - t0)
        with pytest.raises(Unreachable):
            await c.call("nobody", "echo", 1)
        world.partition({"n3": ["n2"]})
        with pytest.raises(RemoteError) as r:
            await c.call("n2", "relay", {"to": "n3", "msg": 1, "timeout": 0.5})
        out["partitioned"] = (r.value.code, r.value.definite)
        world.heal()
        world.pause("n2")
        t0 = c.now()
        with pytest.raises(RpcTimeout) as t:
            await c.call("n2", "echo", 1, timeout=0.7)
        out["paused"] = (t.value.definite, round(c.now() - t0, 9))
        # a node that was down when the request left, and is up when it lands, still refused it
        world.crash("n3")
        call = asyncio.ensure_future(c.call("n3", "echo", 1))
        await asyncio.sleep(0)  # the request leaves while n3 is down
        await world.restart("n3")
        with pytest.raises(Unreachable):
            await call
        return out

    out, _ = in_world(body)
    assert out["down"][0] is True and out["down"][1] < 0.1
    assert out["partitioned"] == ("timeout", False)
    assert out["paused"] == (False, 0.7)


def test_crash_mid_call_fails_the_caller_early_and_indefinitely() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> tuple[float, RpcTimeout]:
        call = asyncio.ensure_future(c.call("n1", "slow", None, timeout=60.0))
        await c.sleep(1.0)
        world.crash("n1")
        with pytest.raises(RpcTimeout) as e:
            await call
        return c.now(), e.value

    (t, err), _ = in_world(body, main=recorder)
    assert t < 1.1
    assert err.definite is False and "lost" in err.message


def test_handler_errors_travel_as_remote_errors() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> list[RemoteError]:
        errs = []
        for method in ("boom", "refuse", "bad_reply", "no-such-method"):
            with pytest.raises(RemoteError) as e:
                await c.call("n1", method, None)
            errs.append(e.value)
        return errs

    (boom, refuse, bad, unknown), world = in_world(body, main=recorder)
    assert (boom.code, boom.definite) == ("internal", False)
    assert (refuse.code, refuse.definite, refuse.message) == ("not-leader", True, "not the leader")
    assert (bad.code, bad.definite) == ("internal", False)
    assert (unknown.code, unknown.definite) == ("unknown-method", True)
    log = "\n".join(world.logs["n1"])
    assert '"handler-failed"' in log and "boom" in log and '"bad-reply"' in log


def test_an_exception_escaping_a_spawned_task_is_logged() -> None:
    async def failing(rt: Runtime, config: NodeConfig) -> None:
        async def oops() -> None:
            await rt.sleep(0.1)
            raise KeyError("lost key")

        rt.spawn(oops(), name="oops")

    async def body(world: SimWorld, c: SimRuntime) -> None:
        await c.sleep(1.0)

    _, world = in_world(body, main=failing, nodes=["n1"])
    failed = [line for line in world.logs["n1"] if '"task-failed"' in line]
    assert len(failed) == 1 and "lost key" in failed[0] and '"oops"' in failed[0]


def test_messages_must_be_msgpackable_and_are_copied() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> tuple[Any, Any]:
        with pytest.raises(MessageNotEncodable, match="msgpack"):
            await c.call("n1", "echo", {"x": object()})
        with pytest.raises(MessageNotEncodable):
            await c.call("n1", "echo", {"s": {1, 2}})
        world.runtimes["n1"].send("n2", "note", {1, 2})  # send never raises; it logs
        sent = {"k": [1, 2], 3: (4, b"x")}
        got = await c.call("n1", "echo", sent)
        return sent, got

    (sent, got), world = in_world(body)
    assert got == {"k": [1, 2], 3: [4, b"x"]}  # tuples arrive as lists, like on the real wire
    assert got["k"] is not sent["k"]
    assert world.stats["unencodable"] == 1
    assert any('"send-unencodable"' in line for line in world.logs["n1"])


# -- crash, restart, disk -----------------------------------------------------------------------

def test_crash_loses_unsynced_writes_and_restart_runs_start_node_again() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> list[Any]:
        a = await c.call("n1", "incr", {"sync": True})
        b = await c.call("n1", "incr", {"sync": False})
        rng_before = world.runtimes["n1"].rng.random()
        world.crash("n1")
        world.crash("n1")  # idempotent
        assert not world.is_up("n1")
        await world.restart("n1")
        await world.restart("n1")  # idempotent
        after = await c.call("n1", "count", None)
        return [a, b, after, rng_before, world.runtimes["n1"].rng.random(), world.runtimes["n1"].incarnation]

    (a, b, after, r1, r2, inc), world = in_world(body)
    assert isinstance(world.runtimes["n1"], Runtime) and isinstance(world.client(), Runtime)
    assert (a, b) == (1, 2)
    assert after == 1  # the synced increment survived, the unsynced one did not
    assert inc == 2 and r1 != r2
    started = [line for line in world.logs["n1"] if '"echo-started"' in line]
    assert len(started) == 2 and '"count": 1' in started[1]


def test_crash_stops_every_task_and_their_finally_blocks_cannot_reach_out() -> None:
    async def leaky(rt: Runtime, config: NodeConfig) -> None:
        async def loop() -> None:
            try:
                while True:
                    await rt.sleep(0.1)
                    rt.disk.write("beat", str(rt.now()).encode())
                    await rt.disk.sync("beat")
            finally:
                rt.disk.write("beat", b"after death")
                rt.send("n2", "note", "from beyond")

        rt.spawn(loop())
        await recorder(rt, config)

    async def body(world: SimWorld, c: SimRuntime) -> tuple[Any, Any, Any]:
        await c.sleep(1.05)
        rt = world.runtimes["n1"]
        world.crash("n1")
        await c.sleep(1.0)
        return rt.tasks, world.stores["n1"].current.get("beat"), await c.call("n2", "seen", None)

    (tasks, beat, seen), _ = in_world(body, main=leaky)
    assert tasks == []
    assert beat is not None and bytes(beat) != b"after death"
    assert [m for m in seen if m[1] == "from beyond"] == []


def test_crash_before_tasks_start_leaves_no_unawaited_coroutines() -> None:
    unraisable: list[str] = []

    async def dying(rt: Runtime, config: NodeConfig) -> None:
        async def later() -> None:
            pass

        async def loop() -> None:
            try:
                while True:
                    await rt.sleep(1.0)
            finally:
                rt.spawn(later())  # spawned by a dying node: must be closed, not leaked

        rt.spawn(loop())

    async def body(world: SimWorld, c: SimRuntime) -> None:
        await c.sleep(1.5)
        world.runtimes["n1"].spawn(asyncio.sleep(1.0))  # created, never started: the crash comes first
        world.crash("n1")
        await c.sleep(1.0)

    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(str(u.exc_value))
    try:
        in_world(body, main=dying, nodes=["n1"])
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert unraisable == []


def test_disk_semantics() -> None:
    store = DiskStore()
    alive = [True]
    disk = DiskView(store, lambda: alive[0], sync_s=0.01)

    async def main() -> float:
        disk.write("a", b"1")
        disk.append("log", b"xy")
        await disk.sync("a")
        await disk.sync("log")
        disk.append("log", b"z")
        disk.write("a", b"2")
        disk.truncate("log", 1)
        assert disk.read("log") == b"x" and disk.read("a") == b"2"
        disk.write("gone", b"g")
        await disk.sync("gone")
        disk.delete("gone")
        assert disk.list() == ["a", "log"]
        assert store.unsynced() == ["a", "gone", "log"]
        await disk.sync("a")  # any sync makes the delete durable
        return asyncio.get_running_loop().time()

    t = run(main())
    assert t == pytest.approx(0.04)
    store.crash()
    assert disk.read("a") == b"2" and disk.read("log") == b"xy" and disk.read("gone") is None
    alive[0] = False
    disk.write("a", b"dead")  # a dead incarnation cannot write
    assert disk.read("a") == b"2"
    for bad in ("../etc/passwd", "/abs", "a//b", ".hidden", ""):
        with pytest.raises(ValueError):
            disk.read(bad)
    alive[0] = True
    disk.truncate("new", 3)  # like ftruncate: creates and zero-fills
    assert disk.read("new") == b"\x00\x00\x00"


# -- pause --------------------------------------------------------------------------------------

def test_pause_freezes_timers_and_queues_messages_until_resume() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> dict[str, Any]:
        out: dict[str, Any] = {}
        await c.sleep(3.5)
        world.pause("n2")
        world.runtimes["n1"].send("n2", "note", "while paused")
        with pytest.raises(RpcTimeout):
            await c.call("n2", "ticks", None, timeout=5.0)
        resumed_at = c.now()
        world.resume("n2")
        out["resumed_at"] = resumed_at
        out["ticks_after"] = await c.call("n2", "ticks", None)
        out["seen"] = await c.call("n2", "seen", None)
        return out

    out, _ = in_world(body, main=recorder)
    # 3 ticks before the pause, none during 5 s of pause, the held timer fires on resume
    assert out["ticks_after"] == 4
    assert [m[1] for m in out["seen"]] == ["while paused"]
    assert out["seen"][0][2] >= out["resumed_at"]  # handled after resume, not before


def test_paused_node_resumes_in_arrival_order() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> Any:
        world.pause("n2")
        for i in range(10):
            world.runtimes["n1"].send("n2", "note", i)
        await c.sleep(1.0)
        world.resume("n2")
        return await c.call("n2", "seen", None)

    seen, _ = in_world(body, main=recorder)
    assert [m[1] for m in seen] == list(range(10))


def test_tasks_made_by_asyncio_helpers_belong_to_the_node() -> None:
    """wait_for, gather and create_task inside a node are frozen by pause and stopped by crash."""

    async def helpers(rt: Runtime, config: NodeConfig) -> None:
        state = {"timeouts": 0, "gathered": 0}
        never = asyncio.Event()

        async def waiter() -> None:
            while True:
                try:
                    await asyncio.wait_for(never.wait(), timeout=1.0)
                except TimeoutError:
                    state["timeouts"] += 1

        async def gatherer() -> None:
            while True:
                await asyncio.gather(rt.sleep(0.5), asyncio.create_task(rt.sleep(0.5)))
                state["gathered"] += 1

        async def counts(src: str, msg: Any) -> Any:
            return state

        rt.serve("counts", counts)
        rt.spawn(waiter())
        rt.spawn(gatherer())

    async def body(world: SimWorld, c: SimRuntime) -> list[Any]:
        await c.sleep(3.2)
        before = await c.call("n1", "counts", None)
        world.pause("n1")
        await c.sleep(10.0)
        world.resume("n1")
        after = await c.call("n1", "counts", None)
        rt = world.runtimes["n1"]
        world.crash("n1")
        await c.sleep(0.001)
        return [before, after, rt.tasks]

    (before, after, tasks), _ = in_world(body, main=helpers, nodes=["n1"])
    assert before == {"timeouts": 3, "gathered": 6}
    assert after["timeouts"] <= 4 and after["gathered"] <= 7  # at most the held timers fired on resume
    assert tasks == []


def test_a_node_task_shows_its_own_coroutine_in_repr_and_stack() -> None:
    async def main(rt: Runtime, config: NodeConfig) -> None:
        async def forever_waiting() -> None:
            await rt.sleep(100.0)

        task = rt.spawn(forever_waiting(), name="waiter")

        async def look(src: str, msg: Any) -> Any:
            return [repr(task), [f.f_code.co_name for f in task.get_stack()]]

        rt.serve("look", look)

    async def body(world: SimWorld, c: SimRuntime) -> Any:
        return await c.call("n1", "look", None)

    (text, stack), _ = in_world(body, main=main, nodes=["n1"])
    assert "forever_waiting()" in text and "name='waiter'" in text
    assert stack == ["forever_waiting"]


if __name__ == "__main__" and sys.argv[1:2] == ["--digest"]:
    print(scenario(int(sys.argv[2])))
