"""etcd on "Pis" over SSH: the ssh backend's rehearsal hosts (sshd in network namespaces, from
tests/test_ssh_backend.py) run etcd members as they would on real Pis with etcd installed.

Root; skipped without root, sshd, iptables or etcd. `harness doctor --system etcd --cluster` finds
etcd 3.x on every host; a run under partitions and kills ends with a verdict and leaves no member
and no iptables chain behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_ssh_backend import ROOT, Rehearsal, leftovers, rehearsal  # noqa: F401 - the fixture is used by name

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (apt-get install etcd-server)"),
]


def members_in(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    found = []
    for pid in out:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(b"--cors=http://picluster-") for a in argv):
            found.append(int(pid))
    return found


def test_doctor_finds_etcd_on_every_host(rehearsal: Rehearsal) -> None:  # noqa: F811
    r = subprocess.run([sys.executable, "-m", "harness.cli", "doctor", "--system", "etcd", "--cluster",
                        str(rehearsal.cluster_file())], cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("etcd 3.") == 1 + len(rehearsal.plan.nodes)  # here and on every host


def test_etcd_over_ssh_under_partitions_and_kills(rehearsal: Rehearsal, tmp_path: Path) -> None:  # noqa: F811
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "etcd", "--backend", "ssh", "--cluster",
         str(rehearsal.cluster_file()), "--nemesis", "partition,kill", "--nodes", "3", "--time-limit", "14",
         "--interval", "2", "--quiet", "2", "--seed", "13", "--results", str(tmp_path)],
        cwd=str(ROOT), capture_output=True, text=True, timeout=400,
    )
    assert r.returncode in (0, 1), r.stdout + r.stderr
    run_dir = next(p for p in (tmp_path / "etcd").iterdir() if p.is_dir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["checkers"]["linearizable"]["valid"] in (True, False)
    fs = {json.loads(x)["f"] for x in (run_dir / "history.jsonl").read_text().splitlines() if '"nemesis"' in x}
    assert fs & {"start-partition", "kill"}, fs
    assert leftovers(rehearsal) == []
    assert all(members_in(n.netns) == [] for n in rehearsal.plan.nodes)
