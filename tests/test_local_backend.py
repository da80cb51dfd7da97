"""The local backend: real echo node processes on loopback, faults, and teardown on every exit path."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from support import process_gone

import harness.backends.local as local
from base.cluster import Cluster
from base.spec import TestSpec
from harness.backends.base import LinkFault
from harness.backends.local import LocalBackend, LocalCluster, NodeStartError, free_ports
from harness.backends.node_program import RuntimeProgram
from harness.backends.processes import LocalProcesses
from harness.hosts_state import HostsState, cleanup_state, load, pid_carries
from systems.runtime.api import ConnectionLost, RemoteError, RpcError, RpcTimeout, Unreachable

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[1]
T = 10.0
"""Timeout for calls that must succeed: generous, so a loaded machine does not fail the test."""


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The well-known record directory, private to the test (subprocesses inherit it)."""
    d = tmp_path / "well-known"
    monkeypatch.setenv("PICLUSTER_STATE_DIR", str(d))
    return d


def spec(tmp_path: Path, system: str = "echo", n: int = 3) -> TestSpec:
    return TestSpec(system=system, workload="none", nemesis=(), node_count=n, run_dir=str(tmp_path / "run"))


def recorded_pids(run_dir: Path) -> list[int]:
    return list(json.loads((run_dir / "hosts-state.json").read_text())["pids"])


def assert_all_reaped(backend: LocalBackend, run_dir: Path) -> None:
    assert backend.last_pids, "no node was started"
    assert all(process_gone(p) for p in backend.last_pids), [p for p in backend.last_pids if not process_gone(p)]
    assert recorded_pids(run_dir) == []
    assert backend.last_state is not None
    assert not backend.last_state.paths()[-1].exists(), "the well-known record outlived the run"


def test_three_echo_nodes_survive_kill_pause_and_partition(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def body(c: LocalCluster) -> str:
        rt = c.client
        assert c.nodes == ["n1", "n2", "n3"] and rt.now() > 0
        assert [await rt.call(n, "echo", n, timeout=T) for n in c.nodes] == c.nodes
        seen["first_pids"] = {n: c.pid(n) for n in c.nodes}
        assert sorted(recorded_pids(c.run_dir)) == sorted(seen["first_pids"].values())
        assert c.capabilities == {"kill", "pause", "partition", "links", "corrupt", "clock",
                                  "disk-fault"} == LocalBackend.capabilities(
            spec(tmp_path))
        assert isinstance(c, Cluster) and not hasattr(c, "link_down")  # no hardware faults on loopback

        # kill + restart: the synced counter survives, the pid changes, the log is appended
        assert await rt.call("n1", "incr", {"sync": True}, timeout=T) == 1
        await c.kill("n1")
        await c.kill("n1")  # idempotent
        assert not c.is_up("n1")
        with pytest.raises((Unreachable, ConnectionLost)):  # refused, or the kept connection seen closing late
            await rt.call("n1", "echo", 1)
        await c.restart("n1")
        assert c.is_up("n1") and c.pid("n1") != seen["first_pids"]["n1"]
        assert await rt.call("n1", "count", None, timeout=T) == 1

        # pause: calls time out; resume: it answers again
        await c.pause("n2")
        assert c.is_up("n2")
        with pytest.raises(RpcTimeout):
            await rt.call("n2", "echo", "asleep", timeout=0.3)
        await c.resume("n2")
        assert await rt.call("n2", "echo", "awake", timeout=T) == "awake"

        # partition: n2 drops n1's traffic; n1's relay to n2 fails, the client still reaches both
        await c.partition({"n2": ["n1"]})
        with pytest.raises(RemoteError) as ei:
            await rt.call("n1", "relay", {"to": "n2", "msg": "x", "timeout": 0.3})
        assert ei.value.code == "timeout" and ei.value.definite is False
        assert await rt.call("n2", "echo", "client ok", timeout=T) == "client ok"
        assert await rt.call("n3", "relay", {"to": "n2", "msg": "n3 ok", "timeout": T}, timeout=2 * T) == "n3 ok"
        await c.heal()
        await c.heal()  # idempotent
        assert await rt.call("n1", "relay", {"to": "n2", "msg": "healed", "timeout": T}, timeout=2 * T) == "healed"

        # link faults: drop everything n1 -> n3
        await c.set_links({("n1", "n3"): LinkFault(drop=1.0)})
        with pytest.raises(RemoteError):
            await rt.call("n1", "relay", {"to": "n3", "msg": "x", "timeout": 0.3})
        await c.heal()
        assert await rt.call("n1", "relay", {"to": "n3", "msg": "ok", "timeout": T}, timeout=2 * T) == "ok"
        return "done"

    backend = LocalBackend()
    assert backend.run(spec(tmp_path), body) == "done"
    run_dir = tmp_path / "run"
    assert_all_reaped(backend, run_dir)
    assert len(backend.last_pids) == 4  # three nodes and one restart
    n1_log = (run_dir / "nodes" / "n1.log").read_text().splitlines()
    assert sum(1 for line in n1_log if '"node-started"' in line) == 2
    cluster = json.loads((run_dir / "cluster.json").read_text())
    assert cluster["system"] == "echo" and set(cluster["nodes"]) == {"n1", "n2", "n3"}


def test_a_filter_changed_while_paused_or_dead_is_applied_on_resume_and_restart(tmp_path: Path) -> None:
    async def body(c: LocalCluster) -> None:
        rt = c.client
        await c.pause("n2")
        await c.kill("n3")
        await c.partition({"n2": ["n1"], "n3": ["n1"]})
        await c.resume("n2")
        await c.restart("n3")
        for node in ("n2", "n3"):
            assert (await c.control.control(node, "get-filter"))["grudge"] == ["n1"]
            with pytest.raises(RemoteError):
                await rt.call("n1", "relay", {"to": node, "msg": "x", "timeout": 0.3})

    backend = LocalBackend()
    backend.run(spec(tmp_path), body)
    assert_all_reaped(backend, tmp_path / "run")


def test_teardown_after_an_exception_with_a_paused_node(tmp_path: Path) -> None:
    async def body(c: LocalCluster) -> None:
        await c.pause("n1")
        raise ValueError("the body failed")

    backend = LocalBackend()
    with pytest.raises(ValueError, match="the body failed"):
        backend.run(spec(tmp_path, n=2), body)
    assert_all_reaped(backend, tmp_path / "run")


def test_teardown_after_keyboard_interrupt(tmp_path: Path) -> None:
    async def body(c: LocalCluster) -> None:
        raise KeyboardInterrupt

    backend = LocalBackend()
    with pytest.raises(KeyboardInterrupt):
        backend.run(spec(tmp_path, n=2), body)
    assert_all_reaped(backend, tmp_path / "run")


def test_a_node_that_never_comes_up_is_named_with_its_log(tmp_path: Path) -> None:
    async def body(c: LocalCluster) -> None:
        raise AssertionError("must not run")

    backend = LocalBackend(startup_timeout_s=10)
    with pytest.raises(NodeStartError, match=r"(?s)node n\d exited .*No module named systems\.nosuchsystem"):
        backend.run(spec(tmp_path, system="nosuchsystem", n=2), body)
    assert_all_reaped(backend, tmp_path / "run")


HARNESS_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from harness.backends.local import LocalBackend
    from base.spec import TestSpec

    async def body(c):
        pids = {n: c.pid(n) for n in c.nodes}
        await c.pause("n1")
        Path(sys.argv[2]).write_text(json.dumps(pids))
        await asyncio.Event().wait()

    LocalBackend().run(TestSpec(system="echo", workload="none", nemesis=(), node_count=2, run_dir=sys.argv[1]), body)
    """
)


def test_sigterm_to_the_harness_tears_the_cluster_down(tmp_path: Path) -> None:
    marker = tmp_path / "pids.json"
    script = tmp_path / "harness_main.py"
    script.write_text(HARNESS_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "harness.err", "wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), str(marker)],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = 30.0
        waited = 0.0
        while not marker.exists():
            assert proc.poll() is None, (tmp_path / "harness.err").read_text()
            assert waited < deadline, "the harness never started its cluster"
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                waited += 0.05
        pids = json.loads(marker.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(process_gone(p) for p in pids.values()), pids
    assert recorded_pids(tmp_path / "run") == []


def test_every_started_node_is_recorded_with_the_runs_marker_for_cleanup(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "nodes").mkdir(parents=True)
    program = RuntimeProgram(system="echo")
    (port,) = free_ports(1)
    state = HostsState(run_id="local-test", backend="local", run_dir=str(run_dir), marker=program.marker(str(run_dir)))
    procs = LocalProcesses(run_dir, program, state, hosts={"n1": ("127.0.0.1", port)})
    procs.write_config(program.config_files({"n1": ("127.0.0.1", port)}))
    pid = procs.start("n1")
    proc = procs.procs["n1"]
    try:
        assert load(run_dir / "hosts-state.json").pids == [pid]
        state.add_pid(os.getpid())  # a pid that is not one of the run's nodes: must be left alone
        assert not pid_carries(os.getpid(), state.marker)
        # /proc/<pid>/cmdline can read empty for a moment right after exec (seen under gVisor)
        end = time.monotonic() + 10
        while not pid_carries(pid, state.marker):
            assert proc.poll() is None and time.monotonic() < end, "the node process never showed its command"
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.01)
        assert cleanup_state(load(run_dir / "hosts-state.json")) == [f"killed pid {pid}"]
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert recorded_pids(run_dir) == []


def test_a_port_taken_before_the_node_binds_it_means_fresh_ports(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_ports = local.free_ports
    calls: list[int] = []

    def first_one_taken(n: int, host: str = "127.0.0.1") -> list[int]:
        calls.append(n)
        ports = real_free_ports(n, host)
        return [taken, *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(local, "free_ports", first_one_taken)

    async def body(c: LocalCluster) -> dict[str, int]:
        assert [await c.client.call(n, "echo", n, timeout=T) for n in c.nodes] == c.nodes
        return {n: c.addrs[n][1] for n in c.nodes}

    backend = LocalBackend()
    try:
        ports = backend.run(spec(tmp_path, n=2), body)
    finally:
        squatter.close()
    assert len(calls) == 2 and taken not in ports.values()
    cluster = json.loads((tmp_path / "run" / "cluster.json").read_text())
    assert {n: v["port"] for n, v in cluster["nodes"].items()} == ports
    assert_all_reaped(backend, tmp_path / "run")


def test_unknown_node_names_are_errors(tmp_path: Path) -> None:
    async def body(c: LocalCluster) -> None:
        with pytest.raises(ValueError, match="unknown node"):
            await c.kill("n7")
        with pytest.raises(ValueError, match="unknown node"):
            await c.partition({"n1": ["n9"]})
        with pytest.raises(RpcError):
            await c.client.call("n9", "echo", 1)

    backend = LocalBackend()
    backend.run(spec(tmp_path, n=1), body)
    assert_all_reaped(backend, tmp_path / "run")
