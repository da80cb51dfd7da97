"""The DFS's edge (systems/dfs/edge.py, messages.py): schemas with ranges, and who may send what.

A client (or anyone who is not the master) that sends the master's orders, and a node that speaks for
another, are refused "forbidden", counted and logged to a trickle; the data stays readable. Runs in the
simulator; the authenticated transport that makes `src` the proven peer is tested in test_auth.py and,
for the DFS on real processes, in test_hardening_live.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from systems.dfs import DEFAULT_OPTIONS, start_node
from systems.dfs import messages as m
from systems.dfs.client import DfsClient
from systems.runtime.api import INT_MAX, NodeConfig, RemoteError
from systems.runtime.sim import SimWorld

NODES = ["n1", "n2", "n3"]
OPTIONS = {**DEFAULT_OPTIONS, "chunk_size": 256 * 1024, "block_size": 64 * 1024}


def run(body: Any, seed: int = 3) -> Any:
    world = SimWorld(seed, NODES)
    config = NodeConfig(system="dfs", options=OPTIONS, seed=seed)

    async def main() -> Any:
        for n in world.nodes:
            await world.start(n, start_node, config)
        rt = world.client("client")
        return await body(world, rt, DfsClient(rt, world.nodes, home="n2", timeout_s=10.0))

    return world.run(main())


async def refused(rt: Any, dst: str, method: str, msg: Any) -> str:
    with pytest.raises(RemoteError) as e:
        await rt.call(dst, method, msg, timeout=2.0)
    assert e.value.definite
    return e.value.code


def test_the_masters_orders_are_the_masters_alone() -> None:
    async def body(world: SimWorld, rt: Any, c: DfsClient) -> Any:
        await c.put("/f", b"precious" * 1000)
        chunk = (await c.stat("/f"))["chunks"][0]
        h, v = chunk["handle"], chunk["version"]
        victim = chunk["replicas"][0]
        mallory = world.client("mallory")
        orders = {
            "cs.delete": {"handle": h},
            "cs.bump": {"handle": h, "version": INT_MAX},
            "cs.create": {"handle": h + 1, "version": 1},
            "cs.grant": {"handle": h, "version": v, "members": [victim], "lease_s": 999.0, "start_offset": 0},
            "cs.clone": {"handle": h, "version": v, "source": victim, "length": 0},
        }
        for method, msg in orders.items():
            assert await refused(mallory, victim, method, msg) == "forbidden", method
        # a node is not the master either
        assert await refused(world.runtimes["n3"], "n2", "cs.delete", {"handle": h}) == "forbidden"
        # and anyone who is not a node may not pass as a primary's batch
        apply = {"handle": h, "version": v, "serial": 99, "ops": [["p", 0]]}
        assert await refused(mallory, victim, "cs.apply", apply) == "forbidden"
        assert await c.read_all("/f") == b"precious" * 1000
        status = await rt.call(victim, "status", None, timeout=2.0)
        return status["chunkserver"]["replicas"][str(h)]["version"], v, status["chunkserver"]["dropped"]

    version, was, dropped = run(body)
    assert version == was
    assert dropped.get("dfs-forbidden", 0) >= len(["delete", "bump", "create", "grant", "clone", "apply"])


def test_a_node_speaks_only_for_itself() -> None:
    async def body(world: SimWorld, rt: Any, c: DfsClient) -> Any:
        await c.put("/f", b"x" * 5000)
        chunk = (await c.stat("/f"))["chunks"][0]
        n2 = world.runtimes["n2"]
        forged_hb = {"node": "n3", "incarnation": "ffff", "chunks": [], "damaged": [], "extend": [], "changes": 0}
        assert await refused(n2, "n1", "master.heartbeat", forged_hb) == "forbidden"
        report = {"handle": chunk["handle"], "node": "n3"}
        assert await refused(n2, "n1", "master.report_corrupt", report) == "forbidden"
        mallory = world.client("mallory")
        assert await refused(mallory, "n1", "master.heartbeat", {**forged_hb, "node": "n2"}) == "forbidden"
        assert await refused(mallory, "n1", "master.report_corrupt", {**report, "node": "n2"}) == "forbidden"
        return chunk["replicas"], (await c.stat("/f"))["chunks"][0]["replicas"]

    before, after = run(body)
    assert len(before) == 3 and sorted(after) == sorted(before)


@pytest.mark.parametrize("msg", [
    {"handle": 1, "version": 2**64 - 1},
    {"handle": 1, "version": INT_MAX + 1},
    {"handle": 2**63, "version": 1},
    {"handle": 1, "version": -1},
])
def test_numbers_beyond_int_max_are_refused(msg: dict[str, Any]) -> None:
    with pytest.raises(m.BadMessage):
        m.parse(m.ChunkVersionReq, msg)


def test_names_lists_and_seconds_are_bounded() -> None:
    assert m.parse(m.ChunkVersionReq, {"handle": 1, "version": INT_MAX}).version == INT_MAX
    clone = {"handle": 1, "version": 1, "source": "n2", "length": 0}
    assert m.parse(m.CloneReq, clone).source == "n2"
    grant = {"handle": 1, "version": 1, "members": ["n1", "n2"], "lease_s": 3.0, "start_offset": 0}
    assert m.parse(m.GrantReq, grant).members == ["n1", "n2"]
    bad = [
        (m.CloneReq, {**clone, "source": "../../etc"}),
        (m.CloneReq, {**clone, "source": ""}),
        (m.GrantReq, {**grant, "members": ["n1", "n/2"]}),
        (m.GrantReq, {**grant, "members": []}),
        (m.GrantReq, {**grant, "members": [f"n{i}" for i in range(17)]}),
        (m.GrantReq, {**grant, "lease_s": float("inf")}),
        (m.GrantReq, {**grant, "lease_s": float("nan")}),
        (m.GrantReq, {**grant, "lease_s": 1e300}),
        (m.PushReq, {"data_id": "d", "data": b"", "chain": [f"n{i}" for i in range(17)]}),
        (m.LeaseReq, {"handle": 1, "suspect": "x" * 65}),
        (m.Heartbeat, {"node": "n1", "incarnation": "x", "chunks": [[1, 2**64 - 1, 0]], "damaged": [], "extend": []}),
        (m.ApplyReq, {"handle": 1, "version": 1, "serial": 1, "ops": [["w", 2**64, "d"]]}),
    ]
    for kind, msg in bad:
        with pytest.raises(m.BadMessage):
            m.parse(kind, msg)


def test_a_list_longer_than_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(m, "MAX_LIST", 3)
    hb = {"node": "n1", "incarnation": "x", "chunks": [], "damaged": [1, 2, 3], "extend": []}
    assert m.parse(m.Heartbeat, hb).damaged == [1, 2, 3]
    with pytest.raises(m.BadMessage):
        m.parse(m.Heartbeat, {**hb, "damaged": [1, 2, 3, 4]})
