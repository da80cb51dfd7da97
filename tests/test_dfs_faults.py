"""The DFS faults: flipping bytes on a node's disk on each backend, refusing where it cannot apply,
and the role-aimed faults hitting the roles they name."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_dfs_harness import dfs_spec, run_case

from base.cluster import CORE_CAPABILITIES, Capability
from base.spec import TestSpec
from harness.applicability import check_nemesis
from harness.backends import capabilities
from harness.backends.processes import flip_bytes
from harness.backends.sim import SimCluster
from nemesis.catalog import NotApplicable
from nemesis.dfs import PACKAGES, Corrupt
from nemesis.package import NemesisContext, UnsupportedFault, backend_refusal
from systems.runtime.sim import SimWorld


def test_the_sim_disk_lies_in_what_the_node_reads_and_in_what_survives_a_crash() -> None:
    world = SimWorld(1, ["n1"])
    try:
        cluster = SimCluster(world, Path("."))
        store = world.stores["n1"]
        store.current["chunks/1.dat"] = bytearray(b"abcdef")
        store.durable["chunks/1.dat"] = b"abcdef"
        flipped = asyncio.run(cluster.corrupt_file("n1", "chunks/1.dat", [0, 5, 99]))
        assert flipped == [0, 5]
        assert bytes(store.current["chunks/1.dat"]) == bytes([ord("a") ^ 0xFF]) + b"bcde" + bytes([ord("f") ^ 0xFF])
        assert store.durable["chunks/1.dat"] == bytes(store.current["chunks/1.dat"])
        with pytest.raises(FileNotFoundError):
            asyncio.run(cluster.corrupt_file("n1", "chunks/2.dat", [0]))
        with pytest.raises(ValueError):
            asyncio.run(cluster.corrupt_file("n1", "../escape", [0]))
        assert Capability.CORRUPT in cluster.capabilities
    finally:
        world.loop.close()


def test_the_local_backend_flips_the_real_file_in_place(tmp_path: Path) -> None:
    f = tmp_path / "chunk"
    f.write_bytes(b"\x00\x01\x02")
    assert flip_bytes(f, [1, 3]) == [1]
    assert f.read_bytes() == b"\x00\xfe\x02"


class NoDiskCluster:
    capabilities = CORE_CAPABILITIES
    nodes: ClassVar[list[str]] = ["n1", "n2"]


def test_corrupt_refuses_a_cluster_that_cannot_reach_the_disk() -> None:
    ctx = NemesisContext(cluster=NoDiskCluster(), rng=random.Random(1), sink=lambda f, v, extra: None)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedFault, match="sim, local or netns"):
        asyncio.run(Corrupt().start(ctx))


def test_every_dfs_fault_is_refused_before_a_run_where_it_cannot_apply() -> None:
    for package in PACKAGES:
        fault: Any = package.make()
        assert fault.name == package.name and package.requires.systems == {"dfs", "mapreduce"} and package.needs
        check_nemesis(dfs_spec("sim", 1, (package.name,)))
        with pytest.raises(NotApplicable, match="works on dfs, mapreduce only"):
            check_nemesis(TestSpec(system="raft", workload="register", nemesis=(package.name,)))
    corrupt = next(p for p in PACKAGES if p.name == "corrupt")
    refusal = backend_refusal(corrupt, "ssh", capabilities.CONFIGURED["ssh"])
    assert refusal is not None and "flip bytes on a node's disk" in refusal
    for backend in ("sim", "local", "netns"):
        assert backend_refusal(corrupt, backend, capabilities.STATIC[backend]) is None


@pytest.mark.sim
def test_chunkserver_loss_spares_the_master_and_waits_for_re_replication(tmp_path: Path) -> None:
    spec = dfs_spec("sim", 2, ("chunkserver-loss",), interval=6.0)
    results, history, _ = run_case(tmp_path, spec)
    assert results["valid"] is True
    kills = [op for op in history if op["process"] == "nemesis" and op["f"] in ("kill", "restart")]
    assert kills and all("n1" not in op["value"] for op in kills)  # n1 is the master
    for kill, back in zip(kills[::2], kills[1::2], strict=False):
        assert kill["f"] == "kill" and back["f"] == "restart"
        assert back["time"] - kill["time"] > 1.5e9  # longer than dead_after_s: the master noticed
    events = results["checkers"]["dfs-state"]["events"]
    assert any(e["kind"] == "re-replicated" for e in events)
    assert any(e["kind"] == "stale-replica" for e in events)  # the victims came back with old versions


@pytest.mark.sim
def test_master_faults_hit_the_master(tmp_path: Path) -> None:
    spec = dfs_spec("sim", 4, ("master-kill", "master-isolate"), interval=6.0)
    results, history, _ = run_case(tmp_path, spec)
    assert results["valid"] is True, {k: v.get("summary") for k, v in results["checkers"].items()}
    faults = [op for op in history if op["process"] == "nemesis"]
    assert any(op["f"] == "kill" and op["value"] == ["n1"] for op in faults)
    isolations = [op["value"] for op in faults if op["f"] == "start-partition"]
    assert isolations and all(sorted(g["n1"]) == ["n2", "n3", "n4", "n5"] for g in isolations)
    events = results["checkers"]["dfs-state"]["events"]
    assert any(e["kind"] == "master-start" for e in events)
