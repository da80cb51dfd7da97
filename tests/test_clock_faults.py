"""Clock faults: the node's clock (systems.runtime.clock), moved on sim and on a real runtime, and the
nemesis packages that move it. Each fault is shown to take effect where systems read time."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.backends.local import free_ports
from harness.backends.sim import SimCluster
from harness.session import check, execute, prepare
from systems.echo import start_node as echo_start
from systems.runtime.api import NodeConfig, RemoteError, Runtime
from systems.runtime.clock import NodeClock
from systems.runtime.real import ClientEndpoint, RealRuntime
from systems.runtime.real_log import JsonLog
from systems.runtime.sim import SimWorld


class FakeSource:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_fresh_clock_is_its_source() -> None:
    src = FakeSource()
    c = NodeClock(src)
    assert c.now() == 100.0 and c.true_duration(2.0) == 2.0 and not c.skewed


def test_jumps_move_now_and_rates_scale_it_and_sleeps() -> None:
    src = FakeSource()
    c = NodeClock(src)
    c.change({"jump_s": -5.0})
    assert c.now() == pytest.approx(95.0)
    src.t = 110.0
    assert c.now() == pytest.approx(105.0), "a jump is an offset: time then runs on"
    c.change({"rate": 0.5})
    assert c.now() == pytest.approx(105.0), "a rate change does not jump"
    src.t = 120.0
    assert c.now() == pytest.approx(110.0)
    assert c.true_duration(1.0) == pytest.approx(2.0), "a slow clock's sleeps last longer"
    reply = c.change({"reset": True})
    assert reply["offset_s"] == 0.0 and reply["rate"] == 1.0 and c.now() == 120.0 and not c.skewed


@pytest.mark.parametrize("bad", [None, {}, {"jump_s": "x"}, {"rate": 0.0}, {"rate": 1e9}, {"skew": 1},
                                 {"jump_s": float("nan")}, {"rate": True}])
def test_bad_changes_are_refused_and_change_nothing(bad: Any) -> None:
    c = NodeClock(FakeSource())
    with pytest.raises(ValueError):
        c.change(bad)
    assert c.now() == 100.0 and c.rate == 1.0


def test_sim_clock_faults_reach_now_and_sleep_deterministically() -> None:
    world = SimWorld(7, ["n1", "n2"])
    seen: dict[str, Any] = {}

    async def node(rt: Runtime, config: NodeConfig) -> None:
        seen[rt.node_id] = rt

    async def body() -> None:
        for n in world.nodes:
            await world.start(n, node, NodeConfig("test"))
        cluster = SimCluster(world, Path("."))
        n1, n2 = seen["n1"], seen["n2"]
        before = n2.now()
        reply = await cluster.set_clock("n1", {"jump_s": 30.0})
        assert reply["offset_s"] == pytest.approx(30.0)
        assert n1.now() - n2.now() == pytest.approx(30.0) and n2.now() == before
        await cluster.set_clock("n1", {"rate": 0.25})
        start = world.loop.time()
        await n1.sleep(1.0)
        assert world.loop.time() - start == pytest.approx(4.0), "1 s on a 0.25x clock is 4 true seconds"
        start = world.loop.time()
        await n2.sleep(1.0)
        assert world.loop.time() - start == pytest.approx(1.0), "other nodes keep true time"
        await cluster.set_clock("n1", {"reset": True})
        assert n1.now() == pytest.approx(world.loop.time())
        await cluster.set_clock("n2", {"jump_s": 3.0})
        await cluster.kill("n2")
        await cluster.restart("n2")
        assert seen["n2"].now() == pytest.approx(world.loop.time()), "a restarted node starts on true time"

    world.run(body())


def test_a_real_node_moves_its_clock_on_the_control_channel(tmp_path: Path) -> None:
    async def main() -> None:
        (port,) = free_ports(1)
        addrs = {"n1": ("127.0.0.1", port)}
        log = io.StringIO()
        rt = RealRuntime("n1", addrs, tmp_path / "n1", log=JsonLog("n1", log))
        await echo_start(rt, NodeConfig("echo"))
        await rt.start()
        rt.mark_ready()
        client = ClientEndpoint(addrs, log=JsonLog("client", io.StringIO()))
        try:
            reply = await client.control("n1", "clock", {"jump_s": -600.0})
            assert reply["offset_s"] == pytest.approx(-600.0, abs=0.5)
            assert rt.now() - time.monotonic() == pytest.approx(-600.0, abs=0.5), "rt.now() reads the moved clock"
            reply = await client.control("n1", "clock", {"rate": 0.5})
            assert reply["rate"] == 0.5 and rt.clock.true_duration(1.0) == 2.0
            assert (await client.control("n1", "stats"))["clock"]["rate"] == 0.5
            with pytest.raises(RemoteError) as e:
                await client.control("n1", "clock", {"rate": -1})
            assert e.value.code == "bad-control"
            reply = await client.control("n1", "clock", {"reset": True})
            assert reply["offset_s"] == 0.0 and reply["rate"] == 1.0
            assert '"clock-changed"' in log.getvalue()
        finally:
            await client.close()
            await rt.close()

    asyncio.run(asyncio.wait_for(main(), 20.0))


def lease_spec(backend: str, seed: int, bugs: tuple[str, ...], **settings: Any) -> TestSpec:
    base = TestSpec(system="raft", workload="register", nemesis=("clock-isolate",), backend=backend, node_count=5,
                    concurrency=5, time_limit_s=20.0, nemesis_interval_s=6.0, quiet_s=3.0, seed=seed, bugs=bugs)
    return replace(base, **settings)


LOCAL_SETTINGS: dict[str, Any] = {"rate": 60.0, "time_limit_s": 30.0, "nemesis_interval_s": 5.0}
"""On local, where a run is not a seed's alone: more reads and one more fault per run. These settings catch
lease-read on 18 of sim seeds 1-20 (12 with the sim test's) and on 5 of 6 local runs (seeds 1-6, a busy
machine), so three local runs all missing it is well under 1 in 100 (about 1 in 16 before: a CI run met it)."""


def run_spec(tmp_path: Path, spec: TestSpec) -> dict[str, Any]:
    s = prepare(spec, tmp_path / f"{spec.backend}-{spec.seed}-{'-'.join(spec.bugs) or 'healthy'}")
    execute(s)
    return check(s.path)


@pytest.mark.sim
def test_lease_read_is_caught_by_clock_isolate_on_sim_and_healthy_raft_stays_valid(tmp_path: Path) -> None:
    seen = {}
    for seed in (1, 2, 3):
        caught = run_spec(tmp_path, lease_spec("sim", seed, ("lease-read",)))
        seen[seed] = caught["checkers"]["linearizable"]["summary"][:100]
        if caught["valid"] is False and caught["checkers"]["linearizable"]["valid"] is False:
            print(f"replay: harness run raft --backend sim --seed {seed} --nemesis clock-isolate --nodes 5 "
                  "--time-limit 20 --interval 6 --quiet 3 --bug lease-read")
            break
    else:
        pytest.fail(f"lease-read went unnoticed on sim: {seen}")
    healthy = run_spec(tmp_path, lease_spec("sim", 1, ()))
    assert healthy["valid"] is True, {k: v.get("valid") for k, v in healthy["checkers"].items()}


@pytest.mark.sim
def test_lease_read_survives_every_fault_but_the_clock(tmp_path: Path) -> None:
    """The bug is one only clock faults expose: partitions, kills and isolation with true clocks leave it valid."""
    spec = TestSpec(system="raft", workload="register", nemesis=("leader-isolate",), backend="sim", node_count=5,
                    concurrency=5, time_limit_s=30.0, nemesis_interval_s=6.0, quiet_s=3.0, seed=1,
                    bugs=("lease-read",))
    results = run_spec(tmp_path, spec)
    assert results["checkers"]["linearizable"]["valid"] is True


@pytest.mark.real
@pytest.mark.slow
def test_lease_read_is_caught_on_local_and_healthy_raft_stays_valid(tmp_path: Path) -> None:
    seen = {}
    for seed in (1, 2, 3):
        results = run_spec(tmp_path, lease_spec("local", seed, ("lease-read",), **LOCAL_SETTINGS))
        seen[seed] = results["checkers"]["linearizable"]["summary"][:100]
        if results["checkers"]["linearizable"]["valid"] is False:
            break
    else:
        pytest.fail(f"lease-read went unnoticed on local: {seen}")
    healthy = run_spec(tmp_path, lease_spec("local", 1, (), **LOCAL_SETTINGS))
    assert healthy["valid"] is True, {k: v.get("valid") for k, v in healthy["checkers"].items()}


@pytest.mark.sim
def test_clock_faults_replay_byte_for_byte_on_sim(tmp_path: Path) -> None:
    def once(where: str) -> tuple[bytes, str]:
        spec = TestSpec(system="raft", workload="register", nemesis=("clock",), backend="sim", node_count=3,
                        concurrency=3, time_limit_s=12.0, nemesis_interval_s=3.0, quiet_s=2.0, seed=5)
        s = prepare(spec, tmp_path / where)
        execute(s)
        history = (s.path / "history.jsonl").read_bytes()
        return history, (s.path / "sim.json").read_text()

    first, second = once("a"), once("b")
    assert b'"clock-skew"' in first[0], "the clock nemesis struck"
    assert first == second


@pytest.mark.parametrize("nemesis", ["clock", "clock-isolate", "disk-eio", "disk-full", "slow-fsync"])
def test_runtime_faults_are_refused_for_an_external_program_and_offered_to_runtime_systems(nemesis: str) -> None:
    from harness.applicability import check_nemesis
    from nemesis.catalog import NotApplicable

    with pytest.raises(NotApplicable, match="external program"):
        check_nemesis(TestSpec(system="etcd", workload="register", nemesis=(nemesis,), node_count=3))
    for backend in ("sim", "local", "netns"):
        check_nemesis(TestSpec(system="raft", workload="register", nemesis=(nemesis,), node_count=3, backend=backend))
