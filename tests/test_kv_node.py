"""KV nodes in the deterministic simulator: quorums, durability, handoff, anti-entropy, membership.

Every wait is on a condition with a bounded deadline in *virtual* time, so no
test depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from systems.kv import DEFAULT_OPTIONS, start_node
from systems.kv.coordinator import Fanout, QuorumConfig, Reply, quorum_kind
from systems.kv.ring import Ring
from systems.runtime.api import NodeConfig, RemoteError, Runtime, Unreachable
from systems.runtime.sim import SimWorld
from workloads.kv import SetClient, union

NODES = ["n1", "n2", "n3", "n4", "n5"]
QUIET = {"antientropy_interval_s": 1e6, "handoff_interval_s": 1e6}
"""Options that switch the background repair loops off (one round starts only after 1e6 s)."""


def run_cluster(
    body: Callable[[SimWorld, Runtime], Awaitable[Any]],
    *,
    nodes: list[str] | None = None,
    bugs: tuple[str, ...] = (),
    options: dict[str, Any] | None = None,
    seed: int = 1,
) -> Any:
    world = SimWorld(seed, nodes or NODES, time_limit_s=3600.0)
    config = NodeConfig("kv", bugs, {**DEFAULT_OPTIONS, **(options or {})}, seed)

    async def main() -> Any:
        for n in world.nodes:
            await world.start(n, start_node, config)
        return await body(world, world.client("client"))

    return world.run(main())


async def wait_until(rt: Runtime, cond: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    deadline = rt.now() + timeout_s
    while not await cond():
        assert rt.now() < deadline, "condition not reached in time (virtual)"
        await rt.sleep(0.1)


async def dump(rt: Runtime, node: str) -> dict[str, Any]:
    return await rt.call(node, "kv.dump", {}, timeout=2.0)


def pref(key: str, nodes: list[str] | None = None) -> list[str]:
    return Ring.of(nodes or NODES, DEFAULT_OPTIONS["vnodes"]).preference_list(key, 3)


def others(key: str) -> list[str]:
    return [n for n in NODES if n not in pref(key)]


async def put(rt: Runtime, node: str, key: str, value: Any, ctx: dict | None = None) -> dict[str, Any]:
    return await rt.call(node, "kv.put", {"key": key, "value": value, "context": ctx or {}}, timeout=3.0)


async def get(rt: Runtime, node: str, key: str) -> dict[str, Any]:
    return await rt.call(node, "kv.get", {"key": key}, timeout=3.0)


# -- pure quorum logic ---------------------------------------------------------------------------


def test_quorum_arithmetic() -> None:
    q = QuorumConfig(3, 2, 2)
    assert q.write_need() == 2
    assert q.write_need(sloppy_ack=True) == 1
    assert QuorumConfig(3, 1, 1).write_need(sloppy_ack=True) == 1
    strict = [Reply("a", None, 1), Reply("b", None, 1)]
    assert quorum_kind(strict, 2) == "strict"
    assert quorum_kind([Reply("a", None, 1), Reply("x", "b", 1)], 2) == "sloppy"


def test_fanout_moves_to_a_fallback_with_a_hint() -> None:
    async def body() -> list[Reply]:
        async def attempt(dst: str, hint: str | None) -> str:
            await asyncio.sleep(0)
            if dst in ("b", "x"):
                raise Unreachable("down")
            return f"{dst}<-{hint}"

        fan = Fanout(attempt, ["a", "b"], ["x", "y"])
        fan.start(asyncio.ensure_future)
        await fan.wait(2, 5.0)
        return fan.replies

    replies = asyncio.run(body())
    assert sorted((r.node, r.hint) for r in replies) == [("a", None), ("y", "b")]
    assert quorum_kind(replies, 2) == "sloppy"


# -- one cluster ---------------------------------------------------------------------------------


def test_put_get_siblings_and_context() -> None:
    async def body(world: SimWorld, rt: Runtime) -> None:
        key = "k"
        a, b = pref(key)[0], others(key)[0]
        assert (await put(rt, a, key, "x"))["quorum"] == "strict"
        await put(rt, b, key, "y")  # blind: concurrent with x
        got = await get(rt, NODES[2], key)
        assert sorted(got["values"]) == ["x", "y"] and got["quorum"] == "strict"
        await put(rt, a, key, "xy", got["context"])
        assert (await get(rt, b, key))["values"] == ["xy"]
        with pytest.raises(RemoteError) as e:
            await rt.call(a, "kv.get", {"nokey": 1}, timeout=2.0)
        assert e.value.code == "bad-request" and e.value.definite

    run_cluster(body)


def test_acknowledged_write_survives_crash_of_every_replica() -> None:
    async def body(world: SimWorld, rt: Runtime) -> None:
        key = "durable"
        await put(rt, pref(key)[0], key, 42)
        for n in NODES:
            world.crash(n)
        for n in NODES:
            await world.restart(n)
        assert (await get(rt, pref(key)[1], key))["values"] == [42]

    run_cluster(body, options=QUIET)


def test_sloppy_quorum_when_two_replicas_are_down() -> None:
    async def body(world: SimWorld, rt: Runtime) -> None:
        key = "sloppy"
        p = pref(key)
        world.crash(p[1])
        world.crash(p[2])
        assert (await put(rt, p[0], key, "v"))["quorum"] == "sloppy"
        got = await get(rt, p[0], key)
        assert got["values"] == ["v"] and got["quorum"] == "sloppy"

    run_cluster(body, options=QUIET)


def test_a_node_outside_the_list_forwards_its_put() -> None:
    async def body(world: SimWorld, rt: Runtime) -> None:
        key = "fwd"
        outsider = others(key)[0]
        assert (await put(rt, outsider, key, 1))["quorum"] == "strict"
        d = await dump(rt, outsider)
        assert key not in d["keys"] and d["held"] == {}

    run_cluster(body, options=QUIET)


def handoff_scenario(bugs: tuple[str, ...]) -> dict[str, Any]:
    """Crash one replica, write, restart it; anti-entropy off: only hinted handoff can bring it the write."""

    async def body(world: SimWorld, rt: Runtime) -> dict[str, Any]:
        key = "hinted"
        a, _, c = pref(key)
        world.crash(c)
        await put(rt, a, key, "while-c-was-down")

        async def hinted() -> bool:
            return sum([(await dump(rt, n))["hints"] for n in others(key)]) > 0

        if not bugs:
            await wait_until(rt, hinted)
        await world.restart(c)

        async def delivered() -> bool:
            return key in (await dump(rt, c))["keys"]

        try:
            await wait_until(rt, delivered, timeout_s=20.0)
        except AssertionError:
            return {"delivered": False}
        return {"delivered": True, "hints_left": sum([(await dump(rt, n))["hints"] for n in NODES])}

    return run_cluster(body, bugs=bugs, options={"antientropy_interval_s": 1e6})


def test_hinted_handoff_delivers_after_the_node_returns() -> None:
    assert handoff_scenario(()) == {"delivered": True, "hints_left": 0}


def test_no_handoff_bug_never_delivers() -> None:
    assert handoff_scenario(("no-handoff",)) == {"delivered": False}


def test_anti_entropy_converges_replicas_after_a_partition() -> None:
    async def body(world: SimWorld, rt: Runtime) -> None:
        key = "ae"
        a, b, c = pref(key)
        world.partition({c: [n for n in NODES if n != c], **{n: [c] for n in NODES if n != c}})
        for i in range(5):
            got = await get(rt, a, key)
            await put(rt, a, key, i, got["context"])
        assert key not in (await dump(rt, c))["keys"]
        world.heal()

        async def converged() -> bool:
            dots = [(await dump(rt, n))["keys"].get(key, {}).get("dots") for n in (a, b, c)]
            return dots[0] is not None and dots[0] == dots[1] == dots[2]

        await wait_until(rt, converged)
        assert (await dump(rt, c))["keys"][key]["values"] == [4]

    run_cluster(body, options={"handoff_interval_s": 1e6})


def test_sloppy_ack_bug_acks_with_one_replica_and_calls_it_strict() -> None:
    def scenario(bugs: tuple[str, ...]) -> dict[str, Any]:
        async def body(world: SimWorld, rt: Runtime) -> dict[str, Any]:
            key = "acks"
            a, b, c = pref(key)
            world.partition({a: [b, c], b: [a], c: [a]})
            return await put(rt, a, key, 1)

        return run_cluster(body, bugs=bugs, options=QUIET)

    assert scenario(())["quorum"] == "sloppy"
    assert scenario(("sloppy-ack",)) == {"quorum": "strict", "acks": 1}


def test_lww_clock_bug_keeps_one_of_two_concurrent_writes() -> None:
    def scenario(bugs: tuple[str, ...]) -> list[Any]:
        async def body(world: SimWorld, rt: Runtime) -> list[Any]:
            key = "lww"
            await put(rt, pref(key)[0], key, "first")
            await put(rt, pref(key)[1], key, "second")  # blind, concurrent
            return sorted((await get(rt, pref(key)[2], key))["values"])

        return run_cluster(body, bugs=bugs, options={"clock_skew_s": {pref("lww")[0]: 5.0}})

    assert scenario(()) == ["first", "second"]
    assert scenario(("lww-clock",)) == ["first"]  # the skewed clock wins; "second" is lost


def test_join_and_leave_under_load_keep_every_acknowledged_add() -> None:
    keys = [f"m{i}" for i in range(6)]

    async def body(world: SimWorld, rt: Runtime) -> dict[str, Any]:
        acked: dict[str, set[int]] = {k: set() for k in keys}
        counter = iter(range(10**6))
        stop = rt.now() + 12.0

        async def adder(node: str, slot: int) -> None:
            client = SetClient(rt, node, 2.0)
            while rt.now() < stop:
                key = keys[(slot + next(counter)) % len(keys)]
                e = next(counter)
                done = await client.invoke({"f": "add", "key": key, "value": e})
                if done["type"] == "ok":
                    acked[key].add(e)
                await rt.sleep(0.05)

        async def admin() -> None:
            await rt.sleep(3.0)
            await rt.call("n1", "kv.join", {"node": "n5"}, timeout=2.0)
            await rt.sleep(4.0)
            await rt.call("n3", "kv.leave", {"node": "n2"}, timeout=2.0)

        await asyncio.gather(admin(), *(adder(n, i) for i, n in enumerate(NODES * 2)))

        async def settled() -> bool:
            dumps = [await dump(rt, n) for n in NODES]
            if any(d["members"] != ["n1", "n3", "n4", "n5"] for d in dumps):
                return False
            for key in keys:
                owners = pref(key, ["n1", "n3", "n4", "n5"])
                dots = [dumps[NODES.index(o)]["keys"].get(key, {}).get("dots") for o in owners]
                if dots[0] is None or any(d != dots[0] for d in dots):
                    return False
            return True

        await wait_until(rt, settled)
        missing = {}
        for node in NODES:
            for key in keys:
                got = union((await get(rt, node, key))["values"])
                lost = acked[key] - set(got)
                if lost:
                    missing[f"{node}/{key}"] = sorted(lost)
        n2 = await dump(rt, "n2")
        n5 = await dump(rt, "n5")
        return {"missing": missing, "acked": sum(len(v) for v in acked.values()), "n2": n2, "n5": n5}

    result = run_cluster(body, options={"members": ["n1", "n2", "n3", "n4"]})
    assert result["missing"] == {}
    assert result["acked"] > 100
    assert result["n2"]["keys"] == {}  # it left: replicates nothing
    assert result["n5"]["keys"]  # it joined: took over some keys


# -- the command line ----------------------------------------------------------------------------


def test_cli_parses_and_performs_against_a_cluster() -> None:
    from systems.kv import cli

    put_cmd = cli.parse(["--cluster", "c.json", "--node", "n2", "put", "k", "[1, 2]", "--context", '{"n1": 1}'])
    assert put_cmd.value == [1, 2] and put_cmd.context == {"n1": 1} and put_cmd.node == "n2"
    assert cli.parse(["--cluster", "c.json", "put", "k", "plain text"]).value == "plain text"
    assert cli.request(cli.parse(["--cluster", "c", "leave", "n3"])) == ("kv.leave", {"node": "n3"})

    async def body(world: SimWorld, rt: Runtime) -> list[tuple[int, dict[str, Any]]]:
        out = [await cli.perform(rt, "n1", cli.parse(["--cluster", "c", "put", "k", "7"]))]
        out.append(await cli.perform(rt, "n3", cli.parse(["--cluster", "c", "get", "k"])))
        out.append(await cli.perform(rt, "n9", cli.parse(["--cluster", "c", "get", "k"])))
        return out

    (s1, put_reply), (s2, got), (s3, err) = run_cluster(body, options=QUIET)
    assert (s1, s2) == (0, 0) and put_reply["quorum"] == "strict" and got["values"] == [7]
    assert s3 == 1 and err["error"] == "unreachable" and err["definite"] is True


def test_cli_refuses_nodes_that_are_not_in_the_cluster_file(tmp_path) -> None:
    import json
    import subprocess
    import sys

    from systems.kv import cli

    nodes = ["n1", "n2", "n3"]
    assert cli.refusal(cli.parse(["--cluster", "c", "join", "n2"]), nodes) is None
    assert "n9" in str(cli.refusal(cli.parse(["--cluster", "c", "join", "n9"]), nodes))
    assert "n9" in str(cli.refusal(cli.parse(["--cluster", "c", "--node", "n9", "get", "k"]), nodes))
    cluster = tmp_path / "c.json"
    cluster.write_text(json.dumps({"nodes": {n: {"host": "127.0.0.1", "port": 1} for n in nodes}}))
    for argv, words in [(["join", "n9"], "cannot join n9"), (["get", "k"], None)]:
        if words is None:
            cluster.write_text("{broken")
            words = "not valid JSON"
        out = subprocess.run([sys.executable, "-m", "systems.kv.cli", "--cluster", str(cluster), *argv],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


# -- messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "msg"),
    [
        ("KeyRequest", None),
        ("KeyRequest", {"key": 3}),
        ("PutRequest", {"key": "k", "context": {"n1": "x"}}),
        ("PutRequest", {"key": "k", "context": [1]}),
        ("StoreRequest", {"key": "k", "state": {"s": [], "c": []}}),
        ("StoreRequest", {"key": "k", "state": {"s": [], "c": {}}, "hint": 5}),
        ("DigestRequest", {"keys": {"k": "1"}, "within": []}),
        ("DigestRequest", {"keys": {"k": 1}, "within": [1024]}),
        ("DigestRequest", {"keys": {"k": -1}, "within": []}),
        ("DigestRequest", {"buckets": [0] * 1023}),
        ("DigestRequest", {"buckets": [0] * 1023 + [1 << 64]}),
        ("AdminRequest", {"node": ""}),
    ],
)
def test_malformed_messages_are_rejected(kind: str, msg: Any) -> None:
    from systems.kv import messages

    with pytest.raises(messages.BadMessage):
        getattr(messages, kind).from_wire(msg)


def test_messages_round_trip() -> None:
    from systems.kv.messages import DigestRequest, PutRequest, StoreRequest
    from systems.kv.vclock import Versioned, update

    put_req = PutRequest("k", [1], {"n2": 1, "n1": 3}, overwrite=True)
    assert PutRequest.from_wire(put_req.to_wire()) == put_req
    state, _ = update(Versioned(), "n1", "v", {})
    store_req = StoreRequest("k", state, "n3")
    assert StoreRequest.from_wire(store_req.to_wire()) == store_req
    for digest_req in (DigestRequest(buckets=[0] * 1023 + [(1 << 64) - 1]), DigestRequest({"k": 7}, [3, 9])):
        assert DigestRequest.from_wire(digest_req.to_wire()) == digest_req


def test_a_node_answers_bad_input_with_a_definite_error_and_keeps_serving() -> None:
    async def body(world: SimWorld, rt: Runtime) -> None:
        peer = world.runtimes["n2"]  # peer methods are the cluster's nodes' alone
        for sender, method, msg in [
            (peer, "kv.store", {"key": "k", "state": 7}),
            (rt, "kv.join", {}),
            (peer, "kv.members", [1]),
            (peer, "kv.members", {"n1": [2**64 - 1, "left"]}),
            (peer, "kv.members", {"n9": [1, "member"]}),
            (rt, "kv.leave", {"node": "n9"}),
            (rt, "kv.put", {"key": "k", "value": 1, "context": {"n1": 2**64 - 1}}),
            (peer, "kv.store", {"key": "k", "state": {"s": [[1, "n1", 2**64 - 1, {}, 0.0]], "c": {}}}),
        ]:
            with pytest.raises(RemoteError) as e:
                await sender.call("n1", method, msg, timeout=2.0)
            assert e.value.code == "bad-request" and e.value.definite, (method, msg)
        for method in ("kv.store", "kv.members", "kv.digest", "kv.fetch", "kv.store-batch"):
            with pytest.raises(RemoteError) as e:
                await rt.call("n1", method, {}, timeout=2.0)
            assert e.value.code == "forbidden" and e.value.definite, method
        assert (await put(rt, "n1", "still-fine", 1))["acks"] >= 2
        assert (await dump(rt, "n1"))["dropped"]["kv.store"] == 3

    run_cluster(body, options=QUIET)


# -- membership ----------------------------------------------------------------------------------


def test_membership_gossip_converges_whatever_the_merge_order() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from systems.kv.membership import Membership

    changes = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["join", "leave"]), st.sampled_from(NODES)))

    @given(changes, st.permutations([0, 1, 2]))
    @settings(max_examples=100, deadline=None)
    def prop(steps: list[tuple[int, str, str]], order: list[int]) -> None:
        views = [Membership.initial(NODES[:3]) for _ in range(3)]
        for where, what, node in steps:
            views[where] = getattr(views[where], what)(node)
        a = views[0].merge(views[1]).merge(views[2])
        b = views[order[0]].merge(views[order[1]]).merge(views[order[2]])
        assert a == b and a.merge(a) == a
        assert Membership.decode(a.encode()) == a

    prop()
    m = Membership.initial(["n1", "n2"]).join("n3").leave("n1")
    assert m.members == ("n2", "n3")


# -- replication batches (group commit on the replicas) --------------------------------------------


def test_concurrent_puts_reach_a_replica_in_fewer_batches_than_puts() -> None:
    """Puts coordinated at once by one node travel to each replica in shared kv.store-batch calls."""

    async def body(world: SimWorld, c: Runtime) -> tuple[int, int]:
        keys = [k for k in (f"b{i}" for i in range(400)) if pref(k)[0] == "n1"][:20]
        sent_before = len(world.journal.records)
        await asyncio.gather(*(put(c, "n1", k, i) for i, k in enumerate(keys)))
        sends = [r for r in world.journal.records[sent_before:] if r[1] == "send" and r[2] == "n1"]
        batches = sum(1 for r in sends if r[5] == "kv.store-batch")
        assert not any(r[5] == "kv.store" for r in sends)
        got = await asyncio.gather(*(get(c, "n1", k) for k in keys))
        assert [g["values"] for g in got] == [[i] for i in range(len(keys))]
        return len(keys), batches

    puts, batches = run_cluster(body, options=QUIET)
    # Each put goes to two replicas: sent alone, that is 2 calls per put. (In the simulator every
    # put's own sync ends at its own time, so batches are smaller than on a real disk, where
    # concurrent puts finish one shared fsync together and replicate in the same turn.)
    assert puts == 20 and 0 < batches < 2 * puts, batches


def test_a_bad_item_in_a_store_batch_fails_alone() -> None:
    async def body(world: SimWorld, c: Runtime) -> dict[str, Any]:
        good = {"key": "k", "state": {"s": [[1, "n9", 1, {}, 0.0]], "c": {"n9": 1}}, "hint": None}
        return await world.runtimes["n2"].call("n1", "kv.store-batch", {"items": [good, {"key": 5}]}, timeout=2.0)

    reply = run_cluster(body, options=QUIET)
    assert reply["results"][0] is True
    assert reply["results"][1]["code"] == "bad-request" and reply["results"][1]["definite"] is True


def test_a_store_batch_that_is_not_a_list_is_a_bad_request() -> None:
    async def body(world: SimWorld, c: Runtime) -> None:
        with pytest.raises(RemoteError) as e:
            await world.runtimes["n2"].call("n1", "kv.store-batch", {"items": "nope"}, timeout=2.0)
        assert e.value.code == "bad-request" and e.value.definite

    run_cluster(body, options=QUIET)


def test_decode_versioned_builds_what_versioned_decode_builds() -> None:
    """The one-pass wire decoder (messages.py) agrees with `Versioned.decode` on every state writes and merges
    make, and on odd but valid raw forms (zero counters, unsorted contexts); what it accepts, Versioned.decode
    accepts alike."""
    import msgpack
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from systems.kv.messages import BadMessage, decode_versioned
    from systems.kv.vclock import Versioned, merge, update

    nodes = st.sampled_from(["n1", "n2", "n3", "n4"])
    steps = st.lists(st.tuples(st.integers(0, 2), nodes, st.integers(0, 5), st.booleans()), max_size=12)

    @given(steps)
    @settings(max_examples=200, deadline=None)
    def states(plan: list[tuple[int, str, int, bool]]) -> None:
        replicas = [Versioned(), Versioned(), Versioned()]
        for r, node, value, read_first in plan:
            ctx = replicas[r].clock if read_first else {}
            replicas[r], _ = update(replicas[r], node, value, ctx, float(value))
            replicas[(r + 1) % 3] = merge(replicas[(r + 1) % 3], replicas[r])
        for state in replicas:
            raw = msgpack.unpackb(msgpack.packb(state.encode()))
            assert decode_versioned(raw) == Versioned.decode(raw) == state

    raw_clock = st.dictionaries(st.sampled_from(["n1", "n2", "x/y", ""]), st.one_of(st.integers(-1, 3), st.just("2")),
                                max_size=3)
    raw_sibling = st.lists(st.one_of(st.integers(-1, 3), st.sampled_from(["n1", "n2", ""]), raw_clock,
                                     st.floats(allow_nan=True)), min_size=4, max_size=6)

    @given(st.fixed_dictionaries({"s": st.lists(raw_sibling, max_size=3), "c": raw_clock}))
    @settings(max_examples=300, deadline=None)
    def junk(raw: dict[str, Any]) -> None:
        try:
            fast = decode_versioned(raw)
        except BadMessage:
            return
        assert fast == Versioned.decode(raw)

    states()
    junk()
    unsorted = {"s": [["v", "n2", 1, {"n3": 0, "n1": 2}, 1], ["w", "n1", 3, {}, 0.5]], "c": {"n4": 0, "n2": 1}}
    assert decode_versioned(unsorted) == Versioned.decode(unsorted)


def test_anti_entropy_bucket_digests_kept_up_to_date_equal_ones_built_afresh() -> None:
    """DigestIndex: digests refreshed from the keys the store changed equal those of an index built from every
    key, after writes, merges and a ring change; a bucket's digest is the XOR of its shared keys' digests."""
    from types import SimpleNamespace

    from systems.kv.antientropy import BUCKETS, DigestIndex, bucket_of, digest
    from systems.kv.ring import Ring
    from systems.kv.store import Store
    from systems.kv.vclock import update
    from systems.runtime.sim import DiskStore, DiskView, run

    node = SimpleNamespace(rt=SimpleNamespace(node_id="n1"), store=Store(DiskView(DiskStore(), lambda: True)),
                           ring=Ring.of(NODES, 8))
    node.preference_list = lambda key: node.ring.preference_list(key, 3)
    kept = DigestIndex(node)  # type: ignore[arg-type]

    def fresh() -> DigestIndex:
        index = DigestIndex(node)  # type: ignore[arg-type]
        index.refresh()
        return index

    async def write(round_: int) -> None:
        for i in range(60):
            key = f"k{(i * 7 + round_) % 40}"
            if i % 3:
                await node.store.update(key, "n1", [round_, i], node.store.get(key).clock, 0.0, owned=True)
            else:
                theirs, _ = update(node.store.get(key), "n2", [round_, i], {}, 1.0)
                await node.store.merge(key, theirs, owned=True)

    for round_ in range(3):
        run(write(round_))
        kept.refresh()
        assert kept.buckets == fresh().buckets and kept.key_digest == fresh().key_digest
    node.ring = Ring.of(NODES[:3], 8)
    kept.refresh()
    assert kept.buckets == fresh().buckets
    for peer, buckets in kept.buckets.items():
        expect = [0] * BUCKETS
        for key in node.store.key_order:
            if peer in node.preference_list(key) and "n1" in node.preference_list(key):
                expect[bucket_of(key)] ^= digest(node.store.get(key))
        assert buckets == expect, peer
