"""`harness cluster` on the ssh backend, rehearsed as the ssh backend's tests rehearse it: OpenSSH servers
in network namespaces of our own play the Pis. The nodes run under the supervisor script on their hosts,
which restarts a crashed node by itself; faults, status and logs work as on local, and `down --wipe`
leaves no process, chain or directory on any host."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cluster_services import Lab, alive, all_answer, leader, leftovers, notes, pids_of
from test_ssh_backend import Rehearsal, needs_root, rehearsal  # noqa: F401 (the fixture)
from test_ssh_backend import leftovers as host_leftovers

from harness import hosts_state


@pytest.fixture
def lab(tmp_path: Path, rehearsal: Rehearsal) -> Iterator[Lab]:  # noqa: F811
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        for cdir in lab.started:
            for f in sorted((rehearsal.dir / "hosts").glob(f"*/clusters/{cdir.name}/*")):
                if f.suffix in (".out", ".events", ".log") and f.is_file():
                    print(f"--- {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:]))
            if (cdir / "supervisor.log").exists():
                print("--- supervisor.log\n" + (cdir / "supervisor.log").read_text()[-3000:])
            if (cdir / "service.json").exists():
                lab.cluster("down", "--wipe", "--dir", str(cdir), rc=None)
            state = hosts_state.load_run_dir(cdir) if cdir.exists() else None
            if state is not None:
                hosts_state.cleanup_state(state)
        assert host_leftovers(rehearsal) == []


@pytest.mark.root
@needs_root
def test_heartbeat_as_a_service_on_ssh_hosts(lab: Lab, rehearsal: Rehearsal) -> None:  # noqa: F811
    cluster_file = rehearsal.cluster_file()
    lab.up("heartbeat", "--backend", "ssh", "--cluster", str(cluster_file), "--nodes", "3")
    first = lab.wait("heartbeat", lambda s: "every node sees every other alive" in notes(s) and s, "everyone alive")
    assert {n["address"].split(":")[0] for n in first["nodes"].values()} == {n.ip for n in rehearsal.plan.nodes}
    doc = json.loads((lab.clusters / "heartbeat" / "service.json").read_text())
    assert doc["capabilities"] == ["cable", "clock", "disk-fault", "kill", "links", "partition", "pause", "plug",
                                   "switch"]

    old = first["nodes"]["n2"]["pid"]
    os.kill(old, signal.SIGKILL)  # a crash on n2's host: its supervisor there restarts the node
    back = lab.wait("heartbeat", lambda s: s["nodes"]["n2"]["restarts"] >= 1 and s["nodes"]["n2"]["answers"]
                    and s["nodes"]["n2"]["pid"] != old and s, "n2 restarted by its host's supervisor")
    assert any("its host's supervisor restarted it" in e["what"] for e in back["events"])

    lab.cluster("fault", "kill", "n1", "--name", "heartbeat")
    down = lab.wait("heartbeat", lambda s: "n1 is dead to n2 n3" in notes(s) and s, "n1 dead to the others")
    assert down["nodes"]["n1"]["process"] == "killed"
    lab.cluster("fault", "power", "n3", "--name", "heartbeat")  # the rehearsal's power controller
    lab.wait("heartbeat", lambda s: s["nodes"]["n3"]["process"] == "powered off", "n3 powered off")
    healed = lab.cluster("heal", "--name", "heartbeat").stdout
    assert "restart n1" in healed and "power-on n3" in healed
    lab.wait("heartbeat", lambda s: all_answer(s) and "every node sees every other alive" in notes(s),
             "everyone back and alive")

    log = lab.cluster("logs", "n1", "-n", "50", "--name", "heartbeat").stdout
    assert "node-started" in log

    cdir = lab.clusters / "heartbeat"
    pids = pids_of(cdir)
    lab.cluster("down", "--wipe", "--name", "heartbeat")
    assert not cdir.exists()
    assert leftovers(lab, [pids[0]], None) == []  # the supervisor on this machine
    assert [p for p in pids[1:] if alive(p)] == []  # the nodes on the hosts
    assert host_leftovers(rehearsal) == []
    assert not any((rehearsal.dir / "hosts" / n / "clusters" / "heartbeat").exists() for n in ("n1", "n2", "n3"))


@pytest.mark.root
@pytest.mark.slow
@needs_root
@pytest.mark.skipif(shutil.which("etcd") is None, reason="needs etcd (apt-get install etcd-server)")
def test_etcd_as_a_service_on_ssh_hosts(lab: Lab, rehearsal: Rehearsal) -> None:  # noqa: F811
    lab.up("etcd", "--backend", "ssh", "--cluster", str(rehearsal.cluster_file()), "--nodes", "3")
    first = lab.wait("etcd", lambda s: all_answer(s) and leader(s) and s, "every member answers and one leads")
    old = leader(first)
    lab.cluster("fault", "partition", "--shape", "isolate-leader", "--name", "etcd")  # iptables on the hosts
    lab.wait("etcd", lambda s: leader(s) not in (None, old), "a leader on the majority side")
    healed = lab.cluster("heal", "--name", "etcd").stdout
    assert "stop-partition" in healed
    lab.wait("etcd", lambda s: all_answer(s) and leader(s) and not any("follows" in n for n in notes(s)),
             "healed: every member follows one leader")
    log = lab.cluster("logs", old, "-n", "100", "--name", "etcd").stdout
    assert " info " in log and '{"level"' not in log

    cdir = lab.clusters / "etcd"
    pids = pids_of(cdir)
    lab.cluster("down", "--wipe", "--name", "etcd")
    assert leftovers(lab, [pids[0]], None) == []
    assert [p for p in pids[1:] if alive(p)] == []
    assert host_leftovers(rehearsal) == []
    assert not any((rehearsal.dir / "hosts" / n / "clusters" / "etcd").exists() for n in ("n1", "n2", "n3"))
