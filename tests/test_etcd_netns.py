"""etcd members in network namespaces, partitioned by iptables (root; skipped without root, iptables or etcd).

- A run of the register workload with linearizable reads under partitions
  ends valid, with partitions in the history and nothing left behind.
- Serializable reads are stale across a partition, and the harness proves
  it: a member cut off from the majority answers a serializable read with a
  value the majority has since overwritten, and the linearizability checker
  rejects the history the workload's own client recorded.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import needs_root

from base.spec import TestSpec
from harness import registry
from systems import etcd
from workloads.etcd import RegisterWorkload, check_registers

HARNESS = [sys.executable, "-m", "harness.cli"]


pytestmark = [pytest.mark.root, needs_root("etcd")]


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def chains() -> str:
    return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=False).stdout


@pytest.mark.parametrize("backend", ["netns", "local"])  # local: partitions by each member's cgroup
def test_linearizable_reads_under_partitions_stay_valid(tmp_path: Path, backend: str) -> None:
    proc = subprocess.run([*HARNESS, "run", "etcd", "--backend", backend, "--nemesis", "partition", "--nodes", "3",
                           "--time-limit", "14", "--interval", "3", "--quiet", "2", "--seed", "21",
                           "--results", str(tmp_path)], capture_output=True, text=True, timeout=300)
    run_dir = next(Path(line.removeprefix("run directory ").strip()) for line in proc.stdout.splitlines()
                   if line.startswith("run directory "))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads((run_dir / "results.json").read_text())
    assert r["checkers"]["linearizable"]["valid"] is True
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert any(op["f"] == "start-partition" for op in history), "no partition happened"
    assert r["checkers"]["faults"]["valid"] is True, r["checkers"]["faults"]  # and it took effect
    if backend == "netns":
        prefix = json.loads((run_dir / "netns-plan.json").read_text())["prefix"]
        assert not [ns for ns in namespaces() if ns.startswith(prefix)], "the run's namespaces were left behind"
    state = json.loads((run_dir / "hosts-state.json").read_text())
    assert state["pids"] == [] and not state.get("chains") and not state.get("cgroups"), state


@pytest.mark.parametrize("backend", ["netns", "local"])
def test_serializable_reads_across_a_partition_are_stale_and_caught(tmp_path: Path, backend: str) -> None:
    from harness.backends.local import LocalBackend
    from harness.backends.netns import NetnsBackend

    spec = TestSpec(system="etcd", workload="register", nemesis=(), backend=backend, node_count=3,
                    run_dir=str(tmp_path / "run"), options={**etcd.DEFAULT_OPTIONS, "read_mode": "serializable"})
    program = registry.node_program(spec)
    workload = RegisterWorkload(spec)
    history: list[dict[str, Any]] = []

    async def invoke(cluster: Any, process: int, node: str, op: dict[str, Any]) -> dict[str, Any]:
        t0 = cluster.client.now()
        history.append({**op, "index": len(history), "time": int(t0 * 1e9), "process": process,
                        "type": "invoke", "node": node})
        done = await workload.client(cluster.client, node).invoke(dict(op))
        history.append({**done, "index": len(history), "time": int(cluster.client.now() * 1e9),
                        "process": process, "node": node})
        return done

    async def until_ok(cluster: Any, process: int, node: str, op: dict[str, Any], want: Any = None) -> int:
        for _ in range(150):
            done = await invoke(cluster, process, node, op)
            if done["type"] == "info":
                process += 10
            if done["type"] == "ok" and (want is None or done.get("value") == want):
                return process
            await asyncio.sleep(0.1)
        raise AssertionError(f"{op} never succeeded on {node}")

    async def body(cluster: Any) -> None:
        try:
            await until_ok(cluster, 0, "n2", {"f": "write", "key": "r0", "value": 1})
            await until_ok(cluster, 1, "n1", {"f": "read", "key": "r0", "value": None}, want=1)  # n1 has it
            await cluster.partition({"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]})
            await until_ok(cluster, 2, "n2", {"f": "write", "key": "r0", "value": 2})  # the majority moves on
            stale = await invoke(cluster, 3, "n1", {"f": "read", "key": "r0", "value": None})
            assert stale["type"] == "ok" and stale["value"] == 1, stale  # n1 cannot know better
            await cluster.heal()
        finally:
            await workload.aclose()

    runner = NetnsBackend(python=sys.executable) if backend == "netns" else LocalBackend(python=sys.executable)
    runner.run(spec, body, program=program)
    result = check_registers(history, {"options": spec.options})
    assert result["valid"] is False, result
    assert result["read_mode"] == "serializable"
