"""`harness cluster` for real: raft and heartbeat clusters brought up as services on local processes and
(as root) in network namespaces, read through `status --json`, broken and healed by hand, watched in a
pseudo-terminal, and taken down leaving nothing behind."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import hosts_state

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 60.0
"""How long a cluster may take to show what a fault does (elections, phi reaching dead) on a loaded machine."""


@dataclass
class Lab:
    """A working directory with its own clusters root and state directory, and the commands to drive it."""

    dir: Path
    started: list[Path] = field(default_factory=list)

    @property
    def clusters(self) -> Path:
        return self.dir / "clusters"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PICLUSTER_CLUSTERS": str(self.clusters), "PICLUSTER_STATE_DIR": str(self.state_dir),
                "PYTHONPATH": str(ROOT), "COLUMNS": "200"}

    def run(self, *args: str, rc: int | None = 0, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, *args], cwd=str(self.dir), env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if rc is not None:
            assert r.returncode == rc, f"{' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def cluster(self, *args: str, rc: int | None = 0, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "harness.cli", "cluster", *args, rc=rc, timeout=timeout)

    def up(self, system: str, *args: str) -> Path:
        self.started.append(self.clusters / system)
        self.cluster("up", system, *args)
        return self.clusters / system

    def status(self, name: str) -> dict[str, Any]:
        return json.loads(self.cluster("status", "--json", "--name", name, rc=None).stdout)

    def wait(self, name: str, cond: Callable[[dict[str, Any]], Any], what: str, within_s: float = WAIT_S) -> Any:
        deadline = time.monotonic() + within_s
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.status(name)
            found = cond(last)
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"not within {within_s} s: {what}; last status:\n{json.dumps(last, indent=1)[:4000]}")


def notes(status: dict[str, Any]) -> list[str]:
    return [n["text"] for t in status["views"] for n in t["notes"]]


def leader(status: dict[str, Any]) -> str | None:
    for text in notes(status):
        if text.startswith("leader "):
            return text.split()[1]
    return None


def all_answer(status: dict[str, Any]) -> bool:
    return bool(status["nodes"]) and all(n["answers"] for n in status["nodes"].values())


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def pids_of(cdir: Path) -> list[int]:
    """The supervisor's and every node's pid, as the cluster's record has them."""
    doc = json.loads((cdir / "service.json").read_text())
    return [p for p in [doc["supervisor"].get("pid"), *(n.get("pid") for n in doc.get("nodes_state", {}).values())]
            if p]


def netns_prefix(cdir: Path) -> str | None:
    plan = cdir / "netns-plan.json"
    return json.loads(plan.read_text())["prefix"] if plan.exists() else None


def recorded(cdir: Path) -> tuple[list[str], list[str]]:
    """The iptables chains and cgroups of this machine the cluster's record names (local etcd's partitions)."""
    path = cdir / "hosts-state.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    return list(doc.get("chains", [])), list(doc.get("cgroups", []))


def leftovers(lab: Lab, pids: list[int], prefix: str | None,
              made: tuple[list[str], list[str]] = ([], [])) -> list[str]:
    out = [f"pid {p} still runs" for p in pids if alive(p)]
    chains, cgroups = made
    if chains:
        rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
        out += [f"iptables chain left: {c}" for c in chains if f"-N {c}" in rules.splitlines()]
    out += [f"cgroup left: {c}" for c in cgroups if Path(c).exists()]
    if lab.state_dir.is_dir():
        out += [f"state record left: {p.name}" for p in lab.state_dir.glob("*.json")]
    if prefix:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        out += [f"namespace left: {line}" for line in names.splitlines() if line.startswith(prefix)]
        out += [f"link left: {line.split(':')[1]}" for line in links.splitlines() if prefix in line]
    return out


def down_leaves_nothing(lab: Lab, name: str) -> None:
    cdir = lab.clusters / name
    pids, prefix, made = pids_of(cdir), netns_prefix(cdir), recorded(cdir)
    assert pids, "the record names no process"
    lab.cluster("down", "--wipe", "--name", name)
    assert not cdir.exists()
    assert leftovers(lab, pids, prefix, made) == []


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:  # whatever the test did: every cluster down, every process gone, every namespace removed
        for cdir in lab.started:
            if not (cdir / "service.json").exists():
                continue
            pids, prefix, made = pids_of(cdir), netns_prefix(cdir), recorded(cdir)
            lab.cluster("down", "--wipe", "--dir", str(cdir), rc=None)
            state = hosts_state.load_run_dir(cdir) if cdir.exists() else None
            if state is not None:
                hosts_state.cleanup_state(state)
            for p in pids:
                if alive(p) and hosts_state.pid_carries(p, f"{cdir.resolve()}/cluster.json"):
                    os.kill(p, signal.SIGKILL)
            assert leftovers(lab, pids, prefix, made) == []


def _netns_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


needs_netns = pytest.mark.skipif(_netns_reason() is not None, reason=_netns_reason() or "")


# -- local ----------------------------------------------------------------------------------------------
@pytest.mark.real
def test_raft_on_local_serves_is_broken_by_hand_restarts_crashes_and_keeps_its_data(lab: Lab) -> None:
    lab.up("raft", "--nodes", "3")
    first = lab.wait("raft", lambda s: all_answer(s) and leader(s) and s, "every node answers and one leads")
    assert first["state"] == "up" and first["system"] == "raft" and first["supervisor"]["alive"]
    put = lab.run("-m", "systems.raft.cli", "put", "k1", '"kept"')  # no --cluster: the running one
    assert json.loads(put.stdout)["type"] == "ok"

    first_leader = leader(first)
    said = lab.cluster("fault", "kill", first_leader, "--name", "raft").stdout
    assert f"kill {first_leader}" in said and f"killed {first_leader}" in said
    after = lab.wait("raft", lambda s: (leader(s) not in (None, first_leader)) and s, "a new leader is elected")
    gone = after["nodes"][first_leader]
    assert gone["process"] == "killed" and not gone["answers"] and "killed by hand" in gone["why"]
    assert after["faults"][0]["kind"] == "kill"

    victim = next(n for n in ("n1", "n2", "n3") if n not in (first_leader, leader(after)))
    old_pid = after["nodes"][victim]["pid"]
    os.kill(old_pid, signal.SIGKILL)  # a crash nobody asked for: the supervisor restarts it
    back = lab.wait("raft", lambda s: (s["nodes"][victim]["restarts"] == 1 and s["nodes"][victim]["answers"]
                                       and s), f"{victim} is restarted after its crash")
    assert back["nodes"][victim]["pid"] != old_pid
    assert any("crashed" in e["what"] for e in back["events"])

    healed = lab.cluster("heal", "--name", "raft").stdout
    assert f"restart {first_leader}" in healed and "in force: nothing" in healed
    lab.wait("raft", all_answer, "every node answers after the heal")

    pids = pids_of(lab.clusters / "raft")
    lab.cluster("down", "--name", "raft")  # data kept
    assert [p for p in pids if alive(p)] == []
    assert list(lab.state_dir.glob("*.json")) == []
    lab.cluster("up", "raft", "--nodes", "3")
    lab.wait("raft", lambda s: all_answer(s) and leader(s), "the cluster is back up over its data")
    get = lab.run("-m", "systems.raft.cli", "--timeout", "10", "get", "k1")
    assert json.loads(get.stdout)["value"] == "kept"
    down_leaves_nothing(lab, "raft")


@pytest.mark.real
def test_heartbeat_on_local_partitioned_by_hand_and_a_lost_supervisor_cleaned_up(lab: Lab) -> None:
    lab.up("heartbeat", "--nodes", "3")
    lab.wait("heartbeat", lambda s: "every node sees every other alive" in notes(s), "everyone alive")
    view = lab.run("-m", "systems.heartbeat.cli", "view")
    assert sorted(json.loads(line)["node"] for line in view.stdout.splitlines()) == ["n1", "n2", "n3"]

    lab.cluster("fault", "partition", "n1", "--shape", "isolate", "--name", "heartbeat")
    cut = lab.wait("heartbeat", lambda s: "n1 is dead to n2 n3" in notes(s) and s, "n1 dead to the others")
    assert all_answer(cut)  # a partition between nodes never cuts the client off
    assert cut["faults"][0]["description"].startswith("n1 | n2 n3 (isolate)")
    lab.cluster("heal", "--name", "heartbeat")
    lab.wait("heartbeat", lambda s: "every node sees every other alive" in notes(s), "everyone alive again")

    refused = lab.cluster("fault", "switch", "--name", "heartbeat", rc=1).stdout
    assert "the switch nemesis needs a cluster that can turn the switch off; the local backend's cannot" in refused
    again = lab.cluster("up", "heartbeat", rc=64).stdout
    assert "already running" in again

    doc = json.loads((lab.clusters / "heartbeat" / "service.json").read_text())
    os.kill(doc["supervisor"]["pid"], signal.SIGKILL)  # the supervisor dies; its nodes live on
    orphaned = lab.wait("heartbeat", lambda s: s["state"] == "supervisor gone" and s, "the supervisor is missed")
    assert all_answer(orphaned)
    lab.cluster("fault", "kill", "n1", "--name", "heartbeat", rc=1)
    down_leaves_nothing(lab, "heartbeat")


@pytest.mark.real
def test_kv_on_local_shows_hints_pending_for_a_killed_node_and_delivered_after_the_heal(lab: Lab) -> None:
    lab.up("kv", "--nodes", "4")
    lab.wait("kv", lambda s: all_answer(s) and "no hinted handoffs pending" in notes(s), "every node answers")
    lab.cluster("fault", "kill", "n4", "--name", "kv")
    for i in range(6):  # some of these keys have n4 among their replicas: a sloppy quorum leaves a hint for it
        lab.run("-m", "systems.kv.cli", "put", f"cart{i}", '["pear"]')  # no --cluster: the running one
    hinted = lab.wait("kv", lambda s: any(n.endswith("hinted handoff(s) pending") for n in notes(s)) and s,
                      "hints pending for n4")
    rows = {r[0]["text"]: [c["text"] for c in r] for r in hinted["views"][0]["rows"]}
    assert rows["n4"][1] == "unreachable: killed by hand" and sum(int(rows[n][4]) for n in ("n1", "n2", "n3")) > 0
    lab.cluster("heal", "--name", "kv")
    lab.wait("kv", lambda s: all_answer(s) and "no hinted handoffs pending" in notes(s), "the hints delivered")
    down_leaves_nothing(lab, "kv")


def dfs_table(status: dict[str, Any], title: str) -> dict[str, list[str]]:
    """A dfs view table's rows by their first cell, as plain text."""
    table = next(t for t in status["views"] if t["title"].startswith(title))
    return {r[0]["text"]: [c["text"] for c in r] for r in table["rows"]}


@pytest.mark.real
def test_dfs_on_local_shows_its_chunkservers_and_a_chunk_left_under_replicated_by_a_kill(lab: Lab) -> None:
    lab.up("dfs", "--nodes", "3")
    lab.wait("dfs", lambda s: all_answer(s) and any("every chunk at its goal" in n for n in notes(s)),
             "every node answers and the master reports")
    (lab.dir / "f.bin").write_bytes(os.urandom(200_000))
    lab.run("-m", "systems.dfs.cli", "--timeout", "30", "put", "f.bin", "/f")  # no --cluster: the running one
    lab.run("-m", "systems.dfs.cli", "--timeout", "30", "append", "/log", "one")
    full = lab.wait("dfs", lambda s: "master n1: 2 file(s), 2 chunk(s), goal 3; every chunk at its goal" in notes(s)
                    and s, "both files at their goal")
    servers = dfs_table(full, "dfs: chunkservers")
    assert [servers[n][1:4] for n in ("n1", "n2", "n3")] == [["master", "alive", "2"], *[["chunkserver", "alive",
                                                                                            "2"]] * 2]

    lab.cluster("fault", "kill", "n3", "--name", "dfs")
    lab.run("-m", "systems.dfs.cli", "--timeout", "30", "append", "/log", "two")  # a new version, without n3
    cut = lab.wait("dfs", lambda s: "under-replicated 2/3" in str(dfs_table(s, "dfs: chunks that")) and s,
                   "the master reports the chunks n3 held as under-replicated")
    assert dfs_table(cut, "dfs: chunkservers")["n3"][1] == "unreachable: killed by hand"
    care = dfs_table(cut, "dfs: chunks that")
    assert {care[c][1] for c in care} <= {"/f", "/log"} and all(care[c][3] == "n1 n2" for c in care)
    lab.cluster("heal", "--name", "dfs")
    lab.wait("dfs", lambda s: all_answer(s) and any("every chunk at its goal" in n for n in notes(s)),
             "n3 back and every chunk at its goal again (its stale replica replaced)")
    lab.run("-m", "systems.dfs.cli", "--timeout", "30", "get", "/f", "back.bin")
    assert (lab.dir / "back.bin").read_bytes() == (lab.dir / "f.bin").read_bytes()
    down_leaves_nothing(lab, "dfs")


@pytest.mark.real
@pytest.mark.skipif(shutil.which("etcd") is None, reason="needs etcd (apt-get install etcd-server)")
def test_etcd_on_local_members_asked_through_its_own_api_a_leader_killed_and_a_crash_restarted(lab: Lab) -> None:
    from harness.backends import cgroup_partitions

    lab.up("etcd", "--nodes", "3")
    first = lab.wait("etcd", lambda s: all_answer(s) and leader(s) and s, "every member answers and one leads")
    rows = {r[0]["text"]: [c["text"] for c in r] for r in first["views"][0]["rows"]}
    assert {rows[n][3] for n in rows} == {leader(first)}  # every member follows the leader, named by node
    if cgroup_partitions.missing():  # no runtime filter in etcd; partitions need a cgroup per member (root)
        refused = lab.cluster("fault", "partition", "--shape", "halves", "--name", "etcd", rc=1).stdout
        assert "needs a cluster that can partition the network" in refused
    else:
        cut = leader(first)
        lab.cluster("fault", "partition", "--shape", "isolate-leader", "--name", "etcd")
        lab.wait("etcd", lambda s: leader(s) not in (None, cut), "a leader on the majority side of the cgroup cut")
        chains, cgroups = recorded(lab.clusters / "etcd")
        assert chains and len(cgroups) >= 3
        lab.cluster("heal", "--name", "etcd")
        lab.wait("etcd", lambda s: all_answer(s) and leader(s) and not any("follows" in n for n in notes(s)),
                 "healed: every member follows one leader")
    first = lab.wait("etcd", lambda s: all_answer(s) and leader(s) and s, "every member answers and one leads")

    old = leader(first)
    lab.cluster("fault", "kill", old, "--name", "etcd")
    moved = lab.wait("etcd", lambda s: leader(s) not in (None, old) and s, "a new leader among the other two")
    assert moved["nodes"][old]["process"] == "killed"
    victim = next(n for n in ("n1", "n2", "n3") if n not in (old, leader(moved)))
    os.kill(moved["nodes"][victim]["pid"], signal.SIGKILL)  # a crash: the supervisor restarts the member
    lab.wait("etcd", lambda s: s["nodes"][victim]["restarts"] == 1 and s["nodes"][victim]["answers"],
             f"{victim} restarted after its crash")
    lab.cluster("heal", "--name", "etcd")
    lab.wait("etcd", lambda s: all_answer(s) and leader(s), "every member back, one leader")
    log = lab.cluster("logs", victim, "-n", "200", "--name", "etcd").stdout
    assert " info " in log and '{"level"' not in log  # etcd's JSON log, one readable line a record
    down_leaves_nothing(lab, "etcd")


@pytest.mark.real
def test_status_watch_shows_a_killed_node_turning_dead(lab: Lab) -> None:
    import pexpect

    lab.up("heartbeat", "--nodes", "3")
    watch = pexpect.spawn(sys.executable, ["-m", "harness.cli", "cluster", "status", "--watch", "--interval", "0.5"],
                          cwd=str(lab.dir), env=lab.env, dimensions=(60, 180), encoding="utf-8", timeout=WAIT_S)
    try:
        watch.expect("every node sees every other alive")
        lab.cluster("fault", "kill", "n2")
        watch.expect(r"n2(?:\s|│|\x1b\[[0-9;]*m)+127\.0\.0\.1:\d+(?:\s|│|\x1b\[[0-9;]*m)+killed")  # nodes table
        watch.expect("n2 is dead to n1 n3")  # the others' views, once phi says so
        watch.sendintr()
        watch.expect(pexpect.EOF)
    finally:
        watch.close(force=True)
    assert watch.exitstatus == 0
    down_leaves_nothing(lab, "heartbeat")


# -- netns (root) ------------------------------------------------------------------------------------------
@pytest.mark.root
@needs_netns
def test_raft_on_netns_partitioned_and_powered_off_by_hand(lab: Lab) -> None:
    lab.up("raft", "--backend", "netns", "--nodes", "3")
    first = lab.wait("raft", lambda s: all_answer(s) and leader(s) and s, "every node answers and one leads")
    subnet = ipaddress.ip_network(json.loads((lab.clusters / "raft" / "netns-plan.json").read_text())["subnet"])
    assert all(ipaddress.ip_address(n["address"].split(":")[0]) in subnet for n in first["nodes"].values())
    old = leader(first)
    said = lab.cluster("fault", "partition", "--shape", "isolate-leader", "--name", "raft").stdout
    assert f"start-partition {old} |" in said
    moved = lab.wait("raft", lambda s: leader(s) not in (None, old) and s, "a leader on the majority side")
    follower = next(n for n in moved["nodes"] if n not in (old, leader(moved)))
    lab.cluster("fault", "power", follower, "--name", "raft")  # one node's plug: every process in its namespace
    cut = lab.wait("raft", lambda s: s["nodes"][follower]["process"] == "powered off" and s, "the plug pulled")
    assert {f["kind"] for f in cut["faults"]} == {"partition", "power-off"}
    healed = lab.cluster("heal", "--name", "raft").stdout
    assert f"power-on {follower}" in healed and "stop-partition" in healed
    lab.wait("raft", lambda s: all_answer(s) and leader(s), "every node back, one leader")
    put = lab.run("-m", "systems.raft.cli", "--timeout", "10", "put", "k", "1")
    assert json.loads(put.stdout)["type"] == "ok"
    down_leaves_nothing(lab, "raft")


@pytest.mark.root
@needs_netns
def test_heartbeat_on_netns_sees_a_pulled_cable(lab: Lab) -> None:
    lab.up("heartbeat", "--backend", "netns", "--nodes", "3")
    lab.wait("heartbeat", lambda s: "every node sees every other alive" in notes(s), "everyone alive")
    lab.cluster("fault", "link", "n2", "--name", "heartbeat")
    cut = lab.wait("heartbeat", lambda s: "n2 is dead to n1 n3" in notes(s) and s, "n2 dead to the others")
    assert not cut["nodes"]["n2"]["answers"] and "(its cable is pulled)" in cut["nodes"]["n2"]["why"]
    lab.cluster("heal", "--name", "heartbeat")
    lab.wait("heartbeat", lambda s: "every node sees every other alive" in notes(s), "everyone alive again")
    down_leaves_nothing(lab, "heartbeat")


@pytest.mark.root
@needs_netns
@pytest.mark.skipif(shutil.which("etcd") is None, reason="needs etcd (apt-get install etcd-server)")
def test_etcd_on_netns_partitioned_by_hand_with_iptables(lab: Lab) -> None:
    lab.up("etcd", "--backend", "netns", "--nodes", "3")
    first = lab.wait("etcd", lambda s: all_answer(s) and leader(s) and s, "every member answers and one leads")
    old = leader(first)
    lab.cluster("fault", "partition", "--shape", "isolate-leader", "--name", "etcd")
    moved = lab.wait("etcd", lambda s: leader(s) not in (None, old) and s, "a leader on the majority side")
    assert moved["nodes"][old]["answers"]  # the client still reaches the cut-off member: it is cut from its peers
    assert moved["faults"][0]["kind"] == "partition"
    refused = lab.cluster("fault", "flaky", "--name", "etcd", rc=1).stdout
    assert ("the flaky nemesis needs a cluster that can degrade links; the netns backend's cannot: etcd's nodes are "
            "an external program, without the runtime's packet filter") in refused
    lab.cluster("heal", "--name", "etcd")
    lab.wait("etcd", lambda s: all_answer(s) and leader(s) and not any("follows" in n for n in notes(s)),
             "healed: every member follows one leader")
    down_leaves_nothing(lab, "etcd")

