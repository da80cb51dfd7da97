"""The sim backend: a spec and a body in, a deterministic run with node logs out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.backends.base import Cluster, LinkFault
from harness.backends.sim import SimBackend, sim_settings
from systems.runtime.api import RemoteError, RpcTimeout, Unreachable
from systems.runtime.sim import SimTimeLimit


def spec(tmp_path: Path, **kw: Any) -> TestSpec:
    base: dict[str, Any] = {
        "system": "echo", "workload": "echo", "nemesis": ("partition",), "backend": "sim",
        "node_count": 3, "seed": 5, "run_dir": str(tmp_path),
    }
    return TestSpec(**{**base, **kw})


async def exercise(cluster: Cluster) -> dict[str, Any]:
    c = cluster.client
    out: dict[str, Any] = {"t0": c.now()}
    out["echo"] = [await c.call(n, "echo", {"from": "client", "n": n}) for n in cluster.nodes]
    out["relay"] = await c.call("n1", "relay", {"to": "n3", "msg": "via n1"})
    await c.call("n2", "incr", {"sync": True})
    await c.call("n2", "incr", {"sync": False})
    await cluster.kill("n2")
    await cluster.kill("n2")
    out["up_after_kill"] = cluster.is_up("n2")
    try:
        await c.call("n2", "count", None)
    except Unreachable:
        out["killed"] = "unreachable"
    await cluster.restart("n2")
    out["count_after_restart"] = await c.call("n2", "count", None)
    await cluster.partition({"n1": ["n3"], "n3": ["n1"]})
    try:
        await c.call("n1", "relay", {"to": "n3", "msg": "x", "timeout": 0.5})
    except RemoteError as e:
        out["partitioned"] = e.code
    await cluster.heal()
    out["healed"] = await c.call("n1", "relay", {"to": "n3", "msg": "y"})
    await cluster.set_links({("n1", "n2"): LinkFault(delay_s=0.2)})
    t = c.now()
    await c.call("n1", "relay", {"to": "n2", "msg": "slow"})
    out["link_delay_s"] = c.now() - t
    await cluster.heal()
    await cluster.pause("n3")
    out["paused_is_up"] = cluster.is_up("n3")
    try:
        await c.call("n3", "echo", 1, timeout=0.5)
    except RpcTimeout:
        out["paused"] = "timeout"
    await cluster.resume("n3")
    out["resumed"] = await c.call("n3", "echo", 2)
    await c.sleep(600)
    out["t1"] = c.now()
    return out


def test_end_to_end_against_three_echo_nodes(tmp_path: Path) -> None:
    backend = SimBackend()
    out = backend.run(spec(tmp_path), exercise)
    assert out["t0"] == 0.0 and out["t1"] > 600  # virtual time
    assert out["echo"] == [{"from": "client", "n": n} for n in ("n1", "n2", "n3")]
    assert out["relay"] == "via n1"
    assert out["up_after_kill"] is False and out["killed"] == "unreachable"
    assert out["count_after_restart"] == 1
    assert out["partitioned"] == "timeout"
    assert out["healed"] == "y"
    assert 0.2 <= out["link_delay_s"] < 0.4  # only n1 -> n2 is slow; the reply comes back fast
    assert out["paused_is_up"] is True and out["paused"] == "timeout" and out["resumed"] == 2
    for n in ("n1", "n2", "n3"):
        lines = (tmp_path / "nodes" / f"{n}.log").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert records[0]["event"] == "sim-start" and all(r["node"] == n for r in records)
    n2 = [json.loads(line)["event"] for line in (tmp_path / "nodes" / "n2.log").read_text().splitlines()]
    assert n2.count("echo-started") == 2 and "sim-crash" in n2
    journal = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert journal and json.loads(journal[0])["ev"] == "send"
    assert backend.world is not None and backend.world.loop.is_closed()
    summary = json.loads((tmp_path / "sim.json").read_text())
    assert summary["seed"] == 5 and summary["digest"] == backend.world.digest()


def test_same_seed_same_run(tmp_path: Path) -> None:
    digests = []
    for i, seed in enumerate((5, 5, 6)):
        backend = SimBackend()
        backend.run(spec(tmp_path / str(i), seed=seed), exercise)
        assert backend.world is not None
        digests.append(backend.world.digest())
    assert digests[0] == digests[1] != digests[2]
    assert (tmp_path / "0" / "journal.jsonl").read_bytes() == (tmp_path / "1" / "journal.jsonl").read_bytes()


def test_teardown_on_error_still_writes_logs(tmp_path: Path) -> None:
    async def broken(cluster: Cluster) -> None:
        await cluster.pause("n1")
        await cluster.partition({"n2": ["n3"]})
        await cluster.client.call("n1", "echo", 1, timeout=0.1)

    backend = SimBackend()
    with pytest.raises(RpcTimeout):
        backend.run(spec(tmp_path), broken)
    assert backend.world is not None and backend.world.loop.is_closed()
    assert all(not backend.world.is_up(n) for n in backend.world.nodes)
    assert sorted(p.name for p in (tmp_path / "nodes").iterdir()) == ["n1.log", "n2.log", "n3.log"]


def test_a_body_that_waits_forever_hits_the_virtual_time_limit(tmp_path: Path) -> None:
    async def forever(cluster: Cluster) -> None:
        while True:
            await cluster.client.sleep(60)

    with pytest.raises(SimTimeLimit):
        SimBackend().run(spec(tmp_path, options={"sim": {"time_limit_s": 300}}), forever)


def test_sim_settings_from_options(tmp_path: Path) -> None:
    net, world = sim_settings(spec(tmp_path, options={"sim": {"base_s": 0.002, "loss": 0.1, "sync_s": 0.01}}))
    assert (net.base_s, net.loss, world["sync_s"]) == (0.002, 0.1, 0.01)
    assert world["time_limit_s"] >= 3600
    with pytest.raises(ValueError, match="unknown sim network options"):
        sim_settings(spec(tmp_path, options={"sim": {"latency": 1}}))
