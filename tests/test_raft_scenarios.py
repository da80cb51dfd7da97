"""Raft KV scenarios in the deterministic simulator, after MIT 6.5840's lab tests.

Every scenario runs whole nodes (node.py over the sim runtime) with a seed;
waits are bounded in virtual time (`until`), never in wall-clock time.
Planted bugs are shown to break the property the healthy code keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from checkers import raft_safety
from harness.backends.base import LinkFault
from systems.raft import DEFAULT_OPTIONS, start_node
from systems.raft.client import RaftClient
from systems.runtime.api import NodeConfig, RpcError
from systems.runtime.sim import NetConfig, SimRuntime, SimWorld

pytestmark = pytest.mark.sim

NODES5 = [f"n{i}" for i in range(1, 6)]
NODES3 = NODES5[:3]


def run(
    body: Callable[[SimWorld, SimRuntime], Awaitable[Any]],
    *,
    nodes: list[str] = NODES5,
    seed: int = 1,
    bugs: tuple[str, ...] = (),
    options: dict[str, Any] | None = None,
    net: NetConfig | None = None,
) -> Any:
    world = SimWorld(seed, nodes, net=net, time_limit_s=3600, keep_journal=False)
    config = NodeConfig("raft", bugs=bugs, options={**DEFAULT_OPTIONS, **(options or {})}, seed=seed)

    async def go() -> Any:
        for n in nodes:
            await world.start(n, start_node, config)
        return await body(world, world.client())

    return world.run(go())


async def until(c: SimRuntime, cond: Callable[[], Awaitable[bool]], within_s: float, step_s: float = 0.05) -> bool:
    deadline = c.now() + within_s
    while c.now() < deadline:
        if await cond():
            return True
        await c.sleep(step_s)
    return await cond()


async def statuses(c: SimRuntime, world: SimWorld) -> dict[str, dict[str, Any]]:
    out = {}
    for n in world.nodes:
        if world.is_up(n):
            with contextlib.suppress(RpcError):
                out[n] = await c.call(n, "status", None, timeout=0.5)
    return out


async def leaders(c: SimRuntime, world: SimWorld, among: list[str] | None = None) -> list[tuple[int, str]]:
    st = await statuses(c, world)
    return sorted((s["term"], n) for n, s in st.items() if s["role"] == "leader" and (among is None or n in among))


async def one_leader(c: SimRuntime, world: SimWorld, among: list[str] | None = None, within_s: float = 10) -> str:
    found: list[str] = []

    async def cond() -> bool:
        ls = await leaders(c, world, among)
        found[:] = [ls[-1][1]] if ls else []
        return bool(ls)

    assert await until(c, cond, within_s), "no leader elected"
    return found[0]


def isolate(world: SimWorld, group: list[str]) -> None:
    """Cut `group` from everyone else, both ways (clients still reach every node)."""
    rest = [n for n in world.nodes if n not in group]
    grudge = {n: list(rest) for n in group}
    grudge.update({n: list(group) for n in rest})
    world.partition(grudge)


async def converged(c: SimRuntime, world: SimWorld, within_s: float = 20) -> dict[str, dict[str, Any]]:
    """Wait until every live node applied the same prefix (same index, same digest)."""
    last: dict[str, dict[str, Any]] = {}

    async def cond() -> bool:
        st = await statuses(c, world)
        last.clear()
        last.update(st)
        pairs = {(s["last_applied"], s["applied_digest"]) for s in st.values()}
        return len(st) == sum(world.is_up(n) for n in world.nodes) and len(pairs) == 1

    assert await until(c, cond, within_s), f"nodes did not converge: {last}"
    return last


# ---------------------------------------------------------------- elections


def test_initial_election_and_no_spurious_reelection() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        leader = await one_leader(c, world, within_s=5)
        term = (await leaders(c, world))[-1][0]
        await c.sleep(5)  # no faults: the leader keeps its term
        assert await leaders(c, world) == [(term, leader)]
        st = await statuses(c, world)
        assert {s["term"] for s in st.values()} == {term}
        assert {s["leader"] for s in st.values()} == {leader}

    run(body, nodes=NODES3)


def test_reelection_after_leader_disconnect_and_rejoin() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        old = await one_leader(c, world)
        isolate(world, [old])
        rest = [n for n in world.nodes if n != old]
        new = await one_leader(c, world, among=rest)
        assert new != old
        await c.sleep(3)  # check-quorum: the cut-off leader steps down by itself
        assert [n for _, n in await leaders(c, world)] == [new]
        world.heal()
        await c.sleep(2)
        ls = await leaders(c, world)
        assert len(ls) == 1, ls

    run(body, nodes=NODES3)


@pytest.mark.parametrize("probe", [True, False])
def test_a_crashed_leader_is_replaced_before_any_election_timeout_when_followers_probe(probe: bool) -> None:
    """A crashed leader's port refuses connections: followers that miss two heartbeats probe it and
    campaign (pre-vote) at once. No election timer can fire sooner than 10 ticks after the last
    heartbeat, so a leader within 0.7 s of virtual time is the probe's doing; without it, none."""

    async def body(world: SimWorld, c: SimRuntime) -> None:
        old = await one_leader(c, world)
        await c.sleep(1)
        world.crash(old)
        rest = [n for n in world.nodes if n != old]

        async def replaced() -> bool:
            return bool(await leaders(c, world, among=rest))

        assert await until(c, replaced, within_s=0.7, step_s=0.01) is probe
        await one_leader(c, world, among=rest)

    run(body, nodes=NODES3, options={"probe_leader_ticks": 2 if probe else 0})


# ---------------------------------------------------------------- agreement


def test_no_agreement_without_a_majority_then_progress_after_heal() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        leader = await one_leader(c, world)
        kv = RaftClient(c, world.nodes, home=leader)
        assert (await kv.request("put", "x", 1)).type == "ok"
        followers = [n for n in world.nodes if n != leader]
        cut = followers[:3]
        grudge: dict[str, list[str]] = {n: [m for m in world.nodes if m != n] for n in cut}
        for n in world.nodes:
            if n not in cut:
                grudge[n] = list(cut)
        world.partition(grudge)
        out = await kv.request("put", "x", 2, timeout_s=3)
        assert out.type == "info"  # appended by the leader, never committed (yet)
        st = await statuses(c, world)
        assert st[leader]["last_applied"] == st[leader]["commit_index"] < st[leader]["last_index"]
        world.heal()
        assert (await kv.request("put", "x", 3, timeout_s=10)).type == "ok"
        got = await kv.request("get", "x")
        assert got.type == "ok" and got.value == 3
        await converged(c, world)

    run(body)


def test_partitioned_leader_rejoins_and_its_uncommitted_entry_is_overwritten() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        old = await one_leader(c, world)
        kv = RaftClient(c, world.nodes, home=old)
        assert (await kv.request("put", "k", "a")).type == "ok"
        isolate(world, [old])
        stuck = await RaftClient(c, [old], home=old).request("put", "k", "lost", timeout_s=1)
        assert stuck.type == "info"
        rest = [n for n in world.nodes if n != old]
        await one_leader(c, world, among=rest)
        assert (await RaftClient(c, rest).request("put", "k", "b", timeout_s=5)).type == "ok"
        world.heal()
        await converged(c, world)
        got = await kv.request("get", "k", timeout_s=5)
        assert got.type == "ok" and got.value == "b"

    run(body)


def test_minority_partition_makes_no_progress_then_completes_after_heal() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        await one_leader(c, world)
        minority, majority = world.nodes[:2], world.nodes[2:]
        isolate(world, minority)
        await one_leader(c, world, among=majority)
        before = {n: s["commit_index"] for n, s in (await statuses(c, world)).items()}
        kv = RaftClient(c, world.nodes)
        for i in range(10):
            assert (await kv.request("put", f"k{i}", i, timeout_s=5)).type == "ok"
        await c.sleep(3)  # longer than an election timeout: a cut-off leader has stepped down
        after = await statuses(c, world)
        for n in minority:
            assert after[n]["commit_index"] == before[n]
            assert after[n]["role"] != "leader"
        for n in majority:
            assert after[n]["commit_index"] > before[n]
        world.heal()
        st = await converged(c, world)
        assert all(s["last_applied"] >= after[majority[0]]["commit_index"] for s in st.values())

    run(body)


def test_far_behind_follower_catches_up_through_a_snapshot() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        leader = await one_leader(c, world)
        lagging = next(n for n in world.nodes if n != leader)
        isolate(world, [lagging])
        kv = RaftClient(c, world.nodes, home=leader)
        for i in range(120):
            assert (await kv.request("put", f"k{i % 7}", i, timeout_s=5)).type == "ok"
        world.heal()
        st = await converged(c, world)
        assert st[lagging]["snapshot_index"] > 0
        got = await RaftClient(c, world.nodes).request("get", "k1", timeout_s=5)
        assert got.value == 113

    run(body, options={"snapshot_every": 25})


# ---------------------------------------------------------------- persistence


async def crash_all_and_restart(world: SimWorld) -> None:
    for n in world.nodes:
        world.crash(n)
    for n in world.nodes:
        await world.restart(n)


def test_acknowledged_writes_survive_a_crash_of_every_node() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        await one_leader(c, world)
        kv = RaftClient(c, world.nodes)
        for i in range(20):
            assert (await kv.request("append", "log", i, timeout_s=5)).type == "ok"
        await crash_all_and_restart(world)
        got = await RaftClient(c, world.nodes).request("get", "log", timeout_s=10)
        assert got.type == "ok" and got.value == list(range(20))

    run(body, nodes=NODES3, options={"snapshot_every": 8})


def test_no_fsync_bug_loses_acknowledged_writes_in_a_crash() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> Any:
        await one_leader(c, world)
        kv = RaftClient(c, world.nodes)
        for i in range(5):
            assert (await kv.request("append", "log", i, timeout_s=5)).type == "ok"
        await crash_all_and_restart(world)
        got = await RaftClient(c, world.nodes).request("get", "log", timeout_s=10)
        return got.value

    assert run(body, nodes=NODES3, bugs=("no-fsync",)) != list(range(5))


# ---------------------------------------------------------------- reads


def stale_read_scenario(bugs: tuple[str, ...], read_mode: str = "read-index") -> Any:
    async def body(world: SimWorld, c: SimRuntime) -> Any:
        old = await one_leader(c, world)
        assert (await RaftClient(c, world.nodes, home=old).request("put", "r", 1)).type == "ok"
        isolate(world, [old])
        rest = [n for n in world.nodes if n != old]
        await one_leader(c, world, among=rest)
        assert (await RaftClient(c, rest).request("put", "r", 2, timeout_s=5)).type == "ok"
        # The write of 2 completed; a read that starts now must not return 1.
        return await RaftClient(c, world.nodes, home=old).request("get", "r", timeout_s=5)

    return run(body, bugs=bugs, options={"check_quorum": False, "read_mode": read_mode})


@pytest.mark.parametrize("read_mode", ["read-index", "log"])
def test_reads_are_linearizable_even_from_a_deposed_leader(read_mode: str) -> None:
    out = stale_read_scenario((), read_mode)
    assert out.type == "ok" and out.value == 2


def test_stale_read_bug_returns_an_overwritten_value() -> None:
    out = stale_read_scenario(("stale-read",))
    assert out.type == "ok" and out.value == 1


# ---------------------------------------------------------------- faults galore


async def appender(c: SimRuntime, world: SimWorld, key: str, start: int, n: int, acked: list[int]) -> None:
    kv = RaftClient(c, world.nodes)
    for v in range(start, start + n):
        out = await kv.request("append", key, v, timeout_s=2)
        if out.type == "ok":
            acked.append(v)
        elif out.type == "info":
            kv = RaftClient(c, world.nodes)  # a fresh client after an unknown outcome, like a fresh process


async def check_appends(c: SimRuntime, world: SimWorld, key: str, acked: list[int], attempted: set[int]) -> None:
    world.heal()
    for n in world.nodes:
        await world.restart(n)
    await converged(c, world, within_s=30)
    got = await RaftClient(c, world.nodes).request("get", key, timeout_s=10)
    assert got.type == "ok"
    final = got.value or []
    assert len(final) == len(set(final)), "an append was applied twice"
    assert set(acked) <= set(final), f"acknowledged appends lost: {sorted(set(acked) - set(final))}"
    assert set(final) <= attempted


@pytest.mark.parametrize("seed", [1, 2])
def test_figure8_unreliable_network_and_leader_crashes(seed: int) -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        acked: list[int] = []
        tasks = [asyncio.ensure_future(appender(c, world, "a", 1000 * i, 40, acked)) for i in range(3)]
        rng = c.rng
        for _ in range(12):
            await c.sleep(rng.uniform(0.5, 2.0))
            ls = await leaders(c, world)
            if ls and rng.random() < 0.7:
                world.crash(ls[-1][1])
            down = [n for n in world.nodes if not world.is_up(n)]
            if len(down) > 2 or (down and rng.random() < 0.5):
                await world.restart(down[0])
        await asyncio.gather(*tasks)
        attempted = {1000 * i + v for i in range(3) for v in range(40)}
        await check_appends(c, world, "a", acked, attempted)
        assert len(acked) > 10

    run(body, seed=seed, net=NetConfig(loss=0.1, duplicate=0.05, reorder=True))


@pytest.mark.parametrize("seed", [3])
def test_churn_random_crashes_restarts_and_partitions(seed: int) -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        acked: list[int] = []
        tasks = [asyncio.ensure_future(appender(c, world, "a", 1000 * i, 40, acked)) for i in range(3)]
        rng = c.rng
        for _ in range(15):
            await c.sleep(rng.uniform(0.3, 1.5))
            choice = rng.random()
            victim = world.nodes[rng.randrange(len(world.nodes))]
            if choice < 0.3:
                world.crash(victim)
            elif choice < 0.6:
                await world.restart(victim)
            elif choice < 0.8:
                isolate(world, [victim, world.nodes[rng.randrange(len(world.nodes))]])
            else:
                world.heal()
        await asyncio.gather(*tasks)
        attempted = {1000 * i + v for i in range(3) for v in range(40)}
        await check_appends(c, world, "a", acked, attempted)

    run(body, seed=seed)


def test_snapshots_keep_the_log_bounded() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> None:
        await one_leader(c, world)
        kv = RaftClient(c, world.nodes)
        for i in range(300):
            assert (await kv.request("put", f"k{i % 5}", i, timeout_s=5)).type == "ok"
        st = await converged(c, world)
        for s in st.values():
            assert s["snapshot_index"] > 0
            assert s["log_records"] <= 40 + 5, s
            assert s["last_index"] - s["snapshot_index"] <= 45

    # Segments of 20 records: compaction deletes whole segments, so the log on disk holds at most
    # about a segment more than the snapshot interval.
    run(body, nodes=NODES3, options={"snapshot_every": 40, "segment_entries": 20})


def test_same_seed_same_outcome() -> None:
    async def body(world: SimWorld, c: SimRuntime) -> Any:
        await one_leader(c, world)
        kv = RaftClient(c, world.nodes)
        for i in range(10):
            await kv.request("put", "x", i)
        st = await statuses(c, world)
        return {n: (s["term"], s["applied_digest"]) for n, s in st.items()}, c.now()

    assert run(body, seed=9) == run(body, seed=9)


def test_a_request_retried_on_a_new_leader_is_applied_once() -> None:
    """At most once: the same (client, seq) sent to the old leader and, after it is cut off, to the new one."""

    async def body(world: SimWorld, c: SimRuntime) -> Any:
        old = await one_leader(c, world)
        req = {"f": "append", "key": "l", "value": "x", "client": "c-retry", "seq": 1, "timeout_s": 1.0}
        first = await c.call(old, "client", req, timeout=2)
        assert first["status"] == "ok"
        again = await c.call(old, "client", req, timeout=2)
        assert again["status"] == "ok"
        isolate(world, [old])
        rest = [n for n in world.nodes if n != old]
        new = await one_leader(c, world, among=rest)
        third = await c.call(new, "client", req, timeout=2)
        assert third["status"] == "ok"
        world.heal()
        got = await RaftClient(c, world.nodes).request("get", "l", timeout_s=5)
        return got.value

    assert run(body) == ["x"]


def double_vote_scenario(bugs: tuple[str, ...], seed: int) -> dict[str, dict[str, Any]] | None:
    """Two candidates in one term; the voter X votes for A, crashes and comes back before A's first
    append reaches it, while B (cut off from A) keeps asking. Returns the final statuses, or None
    when this seed's timers did not line up (X campaigned itself, say)."""

    async def body(world: SimWorld, c: SimRuntime) -> dict[str, dict[str, Any]] | None:
        x = await one_leader(c, world)
        a, b = [n for n in world.nodes if n != x]
        t0 = (await statuses(c, world))[x]["term"]
        world.crash(x)
        world.partition({a: [b], b: [a], x: [b]})
        world.set_links({(a, x): LinkFault(delay_s=0.3)})  # A's messages reach X late: a window to restart X
        await world.restart(x)

        async def voted_for_a() -> bool:
            s = (await statuses(c, world)).get(x, {})
            return s.get("term", 0) > t0 and s.get("vote") == a

        if not await until(c, voted_for_a, 5, step_s=0.01):
            return None
        world.crash(x)
        world.partition({a: [b], b: [a], x: [a]})  # now X hears B's retried request, not A's append
        await world.restart(x)
        await c.sleep(4)
        return await statuses(c, world)

    options = {"check_quorum": False, "pre_vote": False}
    return run(body, nodes=NODES3, seed=seed, bugs=bugs, options=options)


def as_status_history(statuses: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    h: list[dict[str, Any]] = []
    for p, (n, s) in enumerate(sorted(statuses.items())):
        h.append({"index": len(h), "process": p, "type": "invoke", "f": "status", "value": None, "node": n})
        h.append({"index": len(h), "process": p, "type": "ok", "f": "status", "value": s, "node": n})
    return h


def test_double_vote_bug_elects_two_leaders_in_one_term_and_the_checker_says_so() -> None:
    verdicts = {}
    for seed in range(1, 6):
        healthy = double_vote_scenario((), seed)
        if healthy is not None:
            assert raft_safety.check(as_status_history(healthy), {})["valid"] is True
        buggy = double_vote_scenario(("double-vote",), seed)
        if buggy is not None:
            verdicts[seed] = raft_safety.check(as_status_history(buggy), {})
    assert any(r["valid"] is False and r["two_leaders"] for r in verdicts.values()), verdicts


def figure8_on_nodes(bugs: tuple[str, ...], seed: int) -> dict[str, Any] | str:
    """Figure 8 played by real nodes, every link slowed so the test can act between protocol steps.

    (a) the leader l0 replicates X to f alone; (b) l0 crashes and p, from the rest, wins and crashes
    before its no-op spreads; (c) l0 restarts, l0 or f (q) wins and replicates X to the rest; the test
    waits until q commits X and crashes both X holders; (d) p restarts and, its last term being newer,
    wins and overwrites X. Returns raft_safety's verdict on every status seen, or the phase whose
    timers did not line up for this seed. Healthy Raft never commits X in (c) without its own no-op,
    so p cannot win in (d)."""
    delay_s = 0.2

    async def body(world: SimWorld, c: SimRuntime) -> dict[str, Any] | str:
        nodes = world.nodes
        world.set_links({(a, b): LinkFault(delay_s=delay_s) for a in nodes for b in nodes if a != b})
        seen: list[dict[str, dict[str, Any]]] = []

        async def leader_among(group: list[str]) -> str | None:
            st = await statuses(c, world)
            seen.append(st)
            ls = [n for n in group if st.get(n, {}).get("role") == "leader"]
            return ls[0] if ls else None

        l0 = await one_leader(c, world)
        assert (await RaftClient(c, nodes, home=l0).request("put", "k", "init", timeout_s=5)).type == "ok"
        x_index = (await converged(c, world))[l0]["last_index"] + 1
        f = sorted(n for n in nodes if n != l0)[0]
        rest = [n for n in nodes if n not in (l0, f)]
        world.partition({n: [l0] for n in rest})  # (a)
        await RaftClient(c, [l0], home=l0).request("put", "k", "X", timeout_s=0.3)

        async def f_has_x() -> bool:
            return (await statuses(c, world)).get(f, {}).get("last_index", 0) >= x_index

        if not await until(c, f_has_x, 3, step_s=0.01):
            return "a"
        world.crash(l0)  # (b)
        grudge = {f: [n for n in nodes if n != f]}
        grudge.update({n: [f, l0] for n in rest})
        world.partition(grudge)
        found: list[str] = []

        async def p_leads() -> bool:
            found[:] = [n for n in [await leader_among(rest)] if n]
            return bool(found)

        if not await until(c, p_leads, 10, step_s=0.005):
            return "b"
        p = found[0]
        world.crash(p)
        world.partition({n: [m for m in rest if m != n] for n in rest})  # (c): only l0 or f can win
        await world.restart(l0)

        async def q_leads() -> bool:
            found[:] = [n for n in [await leader_among(nodes)] if n]
            return bool(found)

        if not await until(c, q_leads, 5, step_s=0.005) or found[0] not in (l0, f):
            return "c"
        q = found[0]

        async def q_committed_x() -> bool:
            st = await statuses(c, world)
            seen.append(st)
            return st.get(q, {}).get("commit_index", 0) >= x_index

        if not await until(c, q_committed_x, 2, step_s=0.005):
            return "c2"
        others = [n for n in rest if n != p]
        for n in (l0, f):
            world.crash(n)
        world.partition({n: [l0, f] for n in others})  # their frames still on the wire stay lost
        await world.restart(p)  # (d)

        async def p_leads_again() -> bool:
            return await leader_among([p]) == p

        if not await until(c, p_leads_again, 5, step_s=0.01):
            return "d"
        world.set_links({})
        world.partition({})
        await world.restart(l0)
        await world.restart(f)
        await c.sleep(3)
        seen.append(await statuses(c, world))
        history: list[dict[str, Any]] = []
        for st in seen:
            history += as_status_history(st)
        for k, op in enumerate(history):
            op["index"] = k
            op["process"] = k // 2
        return raft_safety.check(history, {})

    options = {
        "check_quorum": False, "pre_vote": False, "max_batch": 1, "snapshot_every": 0, "digest_checkpoint_every": 1,
    }
    return run(body, seed=seed, bugs=bugs, options=options)


def test_figure8_on_nodes_the_bug_loses_a_committed_entry_and_healthy_raft_does_not() -> None:
    buggy = [figure8_on_nodes(("commit-old-term",), seed) for seed in range(1, 11)]
    assert any(isinstance(r, dict) and r["valid"] is False and r["digest_conflicts"] for r in buggy), buggy
    for seed in range(1, 11):
        r = figure8_on_nodes((), seed)
        assert isinstance(r, str) or r["valid"] is True, (seed, r)
