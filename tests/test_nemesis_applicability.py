"""A nemesis that cannot apply to the run is refused before anything starts: one line, exit 64.

Each case once ran to the end with zero faults and said VALID (or crashed with a traceback when
the fault first fired). The refusal must leave nothing behind: no run directory, no `latest`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from base.cluster import CORE_CAPABILITIES, Capability
from base.spec import TestSpec
from harness import registry
from harness.applicability import check_nemesis, target_of
from harness.backends import capabilities
from nemesis.catalog import PACKAGES, NotApplicable

ROOT = Path(__file__).resolve().parents[1]

REFUSED = [
    (["heartbeat", "--nemesis", "leader-isolate"], "reports a leader"),
    (["kv", "--nemesis", "figure8"], "reports a leader"),
    (["raft", "--nemesis", "cut-replicas"], "works on kv only"),
    (["raft", "--nemesis", "figure8", "--nodes", "3"], "at least 5 nodes"),
    (["echo", "--nemesis", "link", "--backend", "sim"], "pull a node's cable"),
    (["echo", "--nemesis", "switch", "--backend", "local"], "turn the switch off"),
    (["echo", "--nemesis", "kill,plug", "--backend", "sim"], "cut a node's power"),
    (["kv", "--nemesis", "membership", "--nodes", "3"], "more nodes than option n"),
]


@pytest.mark.parametrize(("args", "why"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refused_with_one_line_and_exit_64(tmp_path: Path, args: list[str], why: str) -> None:
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", *args, "--results", str(results)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 64, out
    assert len(out.splitlines()) == 1, out
    assert out.startswith("error: the ") and why in out, out
    assert not results.exists(), "a refused run must leave no run directory"


def spec(**kw: object) -> TestSpec:
    return TestSpec(**{"system": "echo", "workload": "echo", "nemesis": ("kill",), **kw})  # type: ignore[arg-type]


def test_what_applies_is_accepted() -> None:
    check_nemesis(spec(nemesis=("kill", "pause", "partition", "power", "flaky")))
    check_nemesis(spec(system="raft", workload="register", nemesis=("figure8", "leader-isolate"), node_count=5))
    check_nemesis(spec(system="kv", workload="set", nemesis=("cut-replicas", "membership"), node_count=5))
    check_nemesis(spec(system="kv", workload="set", nemesis=("membership",), node_count=3, options={"n": 2}))
    check_nemesis(spec(nemesis=("link", "switch", "plug"), backend="netns"))
    check_nemesis(spec(nemesis=("none",)))
    with pytest.raises(NotApplicable, match="it runs on: netns"):
        check_nemesis(spec(nemesis=("link",), backend="sim"))


def test_the_help_table_agrees_with_every_backend() -> None:
    """Each backend answers for itself (started clusters are checked against it in the
    backends' own tests); the help table must say the same."""
    from harness.backends.sim import SimCluster

    for name, caps in capabilities.STATIC.items():
        assert registry.make_backend(name).capabilities(spec(backend=name)) == caps
    assert SimCluster.capabilities == capabilities.STATIC["sim"]


NODE = 'host = "127.0.0.1"\nuser = "pi"\n'


def test_ssh_capabilities_come_from_the_cluster_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        '[cluster]\nswitch_off = ["true"]\nswitch_on = ["true"]\n'
        f'[nodes.n1]\n{NODE}port = 7001\nlink_down = ["true"]\nlink_up = ["true"]\n'
        f'[nodes.n2]\n{NODE}port = 7002\nlink_down = ["true"]\nlink_up = ["true"]\n'
        f'[nodes.n3]\n{NODE}port = 7003\n'
    )
    two = spec(backend="ssh", cluster_file=str(path), node_count=2)
    assert registry.make_backend("ssh").capabilities(two) == CORE_CAPABILITIES | {Capability.CABLE, Capability.SWITCH}
    three = spec(backend="ssh", cluster_file=str(path), node_count=3)  # n3 has no cable commands
    assert registry.make_backend("ssh").capabilities(three) == CORE_CAPABILITIES | {Capability.SWITCH}
    check_nemesis(spec(backend="ssh", cluster_file=str(path), node_count=2, nemesis=("link", "switch")))
    with pytest.raises(NotApplicable, match="link_down/link_up in its cluster file"):
        check_nemesis(spec(backend="ssh", cluster_file=str(path), node_count=3, nemesis=("link",)))
    with pytest.raises(NotApplicable, match="cut a node's power"):
        check_nemesis(spec(backend="ssh", cluster_file=str(path), node_count=2, nemesis=("plug",)))
    assert target_of(two).reports_leader is False


def test_help_lists_every_package_with_where_it_applies() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "--allow-no-faults" in text
    for name, package in PACKAGES.items():
        assert f" {name} {package.summary} [systems: " in text, name
    assert "figure8 Raft's Figure 8" in text and "[systems: raft; backends: any; 5+ nodes]" in text
    assert "[systems: kv; backends: any; more nodes than option n]" in text
    assert "backends: netns, ssh with link_down/link_up in its cluster file" in text
