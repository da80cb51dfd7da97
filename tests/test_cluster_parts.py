"""The parts of `harness cluster` that need no running node: the systems' status views, the control
protocol, finding a running cluster, and faults by hand against a cluster made of plain Python."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from base.cluster import CORE_CAPABILITIES
from base.status import BAD, GOOD, WARN, Cell, NodeReply, Table, plain_text
from harness.services import control
from harness.services.hand_faults import FaultLog, FaultRefused, HandFaults, in_force, takes_node
from nemesis.catalog import PACKAGES
from nemesis.package import Target
from systems.runtime.node_main import ClusterFileError
from systems.runtime.real_clusters import find_cluster_file

ROOT = Path(__file__).resolve().parent.parent


# -- views -----------------------------------------------------------------------------------------
def hb(inc: int, **peers: tuple[str, float]) -> dict[str, Any]:
    return {"incarnation": inc, "peers": {p: {"status": s, "phi": phi, "since_s": 2.0} for p, (s, phi) in
                                          peers.items()}}


def notes(tables: list[Table]) -> list[tuple[str, str]]:
    return [(n.text, n.tone) for t in tables for n in t.notes]


def test_heartbeat_view_names_who_thinks_whom_dead() -> None:
    from systems.heartbeat import status

    replies = {
        "n1": NodeReply("n1", hb(1, n2=("dead", 9.0), n3=("alive", 0.1))),
        "n2": NodeReply("n2", error="killed by hand (`harness cluster heal` brings it back)"),
        "n3": NodeReply("n3", hb(2, n1=("alive", 0.2), n2=("suspect", 3.0))),
    }
    tables = status.tables(replies)
    assert ("n2 is dead to n1", BAD) in notes(tables)
    assert ("n2 is suspect to n3", WARN) in notes(tables)
    assert ("n2 did not answer: killed by hand (`harness cluster heal` brings it back)", BAD) in notes(tables)
    rows = {r[0].text: r for r in tables[0].rows}
    assert rows["n2"][1] == Cell("unreachable: killed by hand", BAD)  # the gist in the row, the whole in the note
    assert rows["n1"][3].text.startswith("dead") and rows["n1"][3].tone == BAD
    healthy = {n: NodeReply(n, hb(1, **{p: ("alive", 0.0) for p in ("n1", "n2") if p != n})) for n in ("n1", "n2")}
    assert notes(status.tables(healthy)) == [("every node sees every other alive", GOOD)]


def raft(role: str, term: int, commit: int, applied: int, leader: str | None = None) -> dict[str, Any]:
    return {"role": role, "term": term, "leader": leader, "commit_index": commit, "last_applied": applied,
            "last_index": commit, "snapshot_index": 0, "log_records": commit}


def test_raft_view_finds_the_leader_a_stale_one_lag_and_a_lost_majority() -> None:
    from systems.raft import status

    replies = {
        "n1": NodeReply("n1", raft("leader", 3, 10, 10, "n1")),
        "n2": NodeReply("n2", raft("leader", 2, 7, 6, "n2")),
        "n3": NodeReply("n3", raft("follower", 3, 10, 9, "n1")),
    }
    tables = status.tables(replies)
    assert notes(tables)[:2] == [("leader n1 in term 3", GOOD), ("n2 still believes it leads term 2", WARN)]
    lag = {r[0].text: r[7].text for r in tables[0].rows}
    assert lag == {"n1": "0", "n2": "4", "n3": "1"}
    lost = {"n1": NodeReply("n1", raft("follower", 4, 10, 10)), "n2": NodeReply("n2", error="x"),
            "n3": NodeReply("n3", error="y")}
    found = notes(status.tables(lost))
    assert ("no leader among the nodes that answered", BAD) in found
    assert ("only 1 of 3 nodes answer: no majority can commit", BAD) in found


def test_kv_view_computes_ownership_and_counts_hints() -> None:
    from systems.kv import status

    dump = {"members": ["n1", "n2", "n3"], "vnodes": 64, "keys": {"a": {}, "b": {}}, "held": {}, "hints": 0}
    replies = {"n1": NodeReply("n1", {**dump, "hints": 3}), "n2": NodeReply("n2", dump),
               "n3": NodeReply("n3", {**dump, "members": ["n1", "n2"]})}
    t = status.tables(replies)[0]
    owns = {r[0].text: float(r[2].text.rstrip("%")) for r in t.rows}
    assert owns["n3"] == 0.0 and t.rows[2][1].text == "no (left)"  # n3 is not in its own ring view
    agreeing = status.tables({n: NodeReply(n, dump) for n in ("n1", "n2", "n3")})[0]
    assert 98 <= sum(float(r[2].text.rstrip("%")) for r in agreeing.rows) <= 102  # the ring's shares add up
    assert ("3 hinted handoff(s) pending", WARN) in notes([t])
    assert any("disagree" in text for text, _ in notes([t]))


def dfs_node(role: str, replicas: dict[int, int], *, damaged: tuple[int, ...] = (), primary: tuple[int, ...] = (),
             master_state: dict[str, Any] | None = None) -> dict[str, Any]:
    cs = {"replicas": {str(h): {"version": 2, "length": n, "damaged": h in damaged} for h, n in replicas.items()},
          "leases": [{"handle": h, "expires_in_s": 2.5} for h in primary] + [{"handle": 9, "expires_in_s": -1.0}],
          "buffered_bytes": 0}
    return {"role": role, "master": "n1", "chunkserver": cs, **({"master_state": master_state} if master_state else {})}


def test_dfs_view_shows_chunkservers_chunks_that_need_care_and_leases() -> None:
    from systems.dfs import status

    chunks = {"1": {"version": 2, "file": "/a", "current": ["n1", "n2", "n3"]},
              "2": {"version": 3, "file": "/b", "current": ["n1", "n3"]},
              "3": {"version": 2, "file": "/c", "current": ["n1", "n3"]},
              "4": {"version": 1, "file": "/d", "current": ["n1", "n2", "n3"]}}
    fsck = {"under_replicated": [{"handle": 2, "current": ["n1", "n3"]}], "stale": [{"handle": 2, "node": "n2"}],
            "corrupt": [{"handle": 3, "node": "n2"}], "lost": []}
    ms = {"goal": 3, "files": {"/a": [1], "/b": [2], "/c": [3], "/d": [4]}, "chunks": chunks, "alive": ["n1", "n3"],
          "grace": False, "fsck": fsck,
          "leases": [{"handle": 4, "primary": "n3", "expires_in_s": 1.5, "granted_ago_s": 1.5},
                     {"handle": 1, "primary": "n2", "expires_in_s": -0.5, "granted_ago_s": 3.5}]}
    replies = {"n1": NodeReply("n1", dfs_node("master", {1: 100, 2: 100, 3: 100, 4: 5}, master_state=ms)),
               "n2": NodeReply("n2", dfs_node("chunkserver", {1: 100, 2: 50, 3: 2048}, damaged=(3,))),
               "n3": NodeReply("n3", dfs_node("chunkserver", {1: 100, 2: 100, 3: 100, 4: 5}, primary=(4,)))}
    servers, care = status.tables(replies)
    by_node = {r[0].text: r for r in servers.rows}
    assert [c.text for c in by_node["n2"]] == ["n2", "chunkserver", "dead", "3", "2.1 KiB", "1", "-", "0 B"]
    assert by_node["n3"][6].text == "#4" and by_node["n1"][2] == Cell("alive", GOOD)  # an expired lease is no lease
    assert ("the master counts n2 dead (no heartbeat lately)", BAD) in notes([servers])
    listed = {r[0].text: (r[4].text, r[5].text) for r in care.rows}
    assert listed == {"#2": ("under-replicated 2/3", "-"), "#3": ("corrupt on n2", "-"),
                      "#4": ("ok", "n3 primary, 1.5 s left")}  # #1 is healthy and its lease expired: not listed
    assert notes([care])[0] == ("master n1: 4 file(s), 4 chunk(s), goal 3; 1 corrupt replica(s), "
                                "1 under-replicated, 1 stale replica(s)", BAD)

    silent = {**replies, "n1": NodeReply("n1", error="killed by hand")}
    servers, care = status.tables(silent)
    assert care.rows == () and notes([care]) == [
        ("master n1 did not answer: chunk placement and leases are unknown", BAD)]
    assert {r[0].text: r[2].text for r in servers.rows if r[0].text != "n1"} == {"n2": "?", "n3": "?"}
    assert servers.rows[0][1] == Cell("unreachable: killed by hand", BAD)


def etcd_member(ident: str, state: str, term: int, leader: str | None, index: int, applied: int,
                errors: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"id": ident, "leader": leader, "raft_leader": leader, "term": term, "state": state, "index": index,
            "applied": applied, "applied_term": term, "revision": 5, "version": "3.4.23", "errors": list(errors)}


def test_etcd_view_names_members_by_node_and_finds_the_leader_lag_and_alarms() -> None:
    from systems.etcd import status

    replies = {"n1": NodeReply("n1", etcd_member("a1", "StateLeader", 4, "a1", 20, 20)),
               "n2": NodeReply("n2", etcd_member("b2", "StateFollower", 4, "a1", 20, 17, ("NOSPACE",))),
               "n3": NodeReply("n3", etcd_member("c3", "StateFollower", 3, "ff", 12, 12))}
    t = status.tables(replies)[0]
    rows = {r[0].text: [c.text for c in r] for r in t.rows}
    assert rows["n2"][1:] == ["follower", "4", "n1", "20", "17", "3", "5", "3.4.23", "NOSPACE"]
    assert rows["n3"][3] == "ff" and rows["n3"][6] == "8"  # a leader that did not answer: by etcd's id
    assert notes([t])[:2] == [("leader n1 in term 4", GOOD), ("n3 follows ff, not n1", WARN)]
    assert t.rows[1][9].tone == BAD
    lost = {"n1": NodeReply("n1", etcd_member("a1", "StateCandidate", 5, None, 20, 20)),
            "n2": NodeReply("n2", error="killed by hand"), "n3": NodeReply("n3", error="connection refused")}
    found = notes(status.tables(lost))
    assert found[:2] == [("no leader among the members that answered", BAD),
                         ("only 1 of 3 members answer: no majority can commit", BAD)]
    assert ("n2 did not answer: killed by hand", BAD) in found


def test_a_table_refuses_a_ragged_row_and_survives_json() -> None:
    with pytest.raises(ValueError, match="row of 1 cells under 2 columns"):
        Table("t", ("a", "b"), ((Cell("x"),),))
    with pytest.raises(ValueError, match="unknown tone"):
        Cell("x", "purple")
    t = Table("t", ("a", "b"), ((Cell("1", GOOD), Cell("2")),), (Cell("fine", GOOD),))
    assert Table.from_json(json.loads(json.dumps(t.to_json()))) == t
    assert plain_text([t]).splitlines() == ["t", "a  b", "1  2", "fine"]


# -- the control protocol --------------------------------------------------------------------------
def test_control_requests_round_trip_and_bad_ones_are_refused() -> None:
    for req in (control.Ping(), control.Restart("n2"), control.Fault("partition", None, "halves"), control.Heal(),
                control.Down()):
        assert control.decode(json.loads(json.dumps(control.encode(req)))) == req
    for bad in ({"kind": "format-disk"}, {"kind": "restart"}, {"kind": "fault", "name": 3}, [1, 2],
                {"kind": "restart", "node": "n1", "extra": 1}):
        with pytest.raises(control.BadRequest):
            control.decode(bad)


def test_control_socket_answers_and_survives_a_failing_handler(tmp_path: Path) -> None:
    async def handle(req: control.Request) -> dict[str, Any]:
        match req:
            case control.Restart(node="boom"):
                raise RuntimeError("it broke")
            case control.Restart(node=node):
                return {"ok": True, "said": [f"restarted {node}"]}
        return {"ok": True, "said": []}

    async def main() -> list[dict[str, Any]]:
        path = tmp_path / "c.sock"
        server = await control.serve(path, handle)
        try:
            asks = [control.Restart("boom"), control.Restart("n1")]
            return [await asyncio.to_thread(control.ask, path, r, 5.0) for r in asks]
        finally:
            server.close()

    broke, fine = asyncio.run(main())
    assert broke == {"ok": False, "error": "RuntimeError: it broke"}
    assert fine == {"ok": True, "said": ["restarted n1"]}
    with pytest.raises(control.Unanswered, match="no supervisor is listening"):
        control.ask(tmp_path / "nobody.sock", control.Ping(), 1.0)


# -- finding a running cluster ---------------------------------------------------------------------
def _cluster(root: Path, name: str, system: str, pid: int, state: str = "up") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "service.json").write_text(json.dumps({"system": system, "state": state, "supervisor": {"pid": pid}}))
    (d / "cluster.json").write_text(json.dumps({"nodes": {"n1": {"host": "127.0.0.1", "port": 7001}}}))
    return d


def test_the_clis_find_the_one_running_cluster_of_their_system(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICLUSTER_CLUSTERS", str(tmp_path))
    with pytest.raises(ClusterFileError, match="no raft cluster is running"):
        find_cluster_file("raft")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _cluster(tmp_path, "old", "raft", dead.pid)  # its supervisor is gone: not running
    _cluster(tmp_path, "hb", "heartbeat", os.getpid())
    _cluster(tmp_path, "stopped", "raft", os.getpid(), state="down")
    with pytest.raises(ClusterFileError, match="no raft cluster is running"):
        find_cluster_file("raft")
    one = _cluster(tmp_path, "r1", "raft", os.getpid())
    assert find_cluster_file("raft") == str(one / "cluster.json")
    _cluster(tmp_path, "r2", "raft", os.getpid())
    with pytest.raises(ClusterFileError, match="2 raft clusters are running; pass one with --cluster"):
        find_cluster_file("raft")
    r = subprocess.run([sys.executable, "-m", "systems.raft.cli", "get", "k"], capture_output=True, text=True,
                       cwd=str(ROOT), env={**os.environ, "PICLUSTER_CLUSTERS": str(tmp_path)}, timeout=60)
    assert r.returncode == 2 and "2 raft clusters are running" in r.stderr and "Traceback" not in r.stderr


# -- faults by hand, against a cluster of plain Python ------------------------------------------------
class PaperCluster:
    """Just enough of a cluster for the nemesis packages: it remembers what was done to it."""

    def __init__(self, nodes: list[str], capabilities: frozenset[str] = CORE_CAPABILITIES) -> None:
        self.nodes = nodes
        self.capabilities = capabilities
        self.up = set(nodes)
        self.paused: set[str] = set()
        self.grudge: dict[str, list[str]] = {}
        self.client = self

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, s: float) -> None:
        await asyncio.sleep(s)

    def is_up(self, node: str) -> bool:
        return node in self.up

    async def kill(self, node: str) -> None:
        self.up.discard(node)

    async def restart(self, node: str) -> None:
        self.up.add(node)

    async def pause(self, node: str) -> None:
        self.paused.add(node)

    async def resume(self, node: str) -> None:
        self.paused.discard(node)

    async def partition(self, grudge: dict[str, list[str]]) -> None:
        self.grudge = grudge

    async def heal(self) -> None:
        self.grudge = {}


def hand(tmp_path: Path, cluster: PaperCluster, system: str = "heartbeat") -> HandFaults:
    target = Target(system=system, backend="local", node_count=len(cluster.nodes),
                    capabilities=frozenset(cluster.capabilities), reports_leader=False)
    return HandFaults(cluster, lambda: target, FaultLog(tmp_path / "faults.jsonl", 0.0), None, seed=1)


def test_hand_faults_hit_the_named_node_and_heal_cures_everything(tmp_path: Path) -> None:
    c = PaperCluster(["n1", "n2", "n3", "n4"])
    f = hand(tmp_path, c)

    async def main() -> None:
        for _ in range(3):  # the named node, every time, not the package's random pick
            assert await f.inflict("kill", "n3") == ["kill n3"]
            assert c.up == {"n1", "n2", "n4"} and f.down == {"n3"}
            with pytest.raises(FaultRefused, match="n3 cannot be hit now: it is down"):
                await f.inflict("pause", "n3")
            await f.heal()
        assert await f.inflict("pause", "n1") == ["pause n1"]
        said = await f.inflict("partition", shape="halves")
        assert said[0].startswith("start-partition") and said[0].endswith("(halves)")
        assert await f.inflict("partition", "n4") == ["start-partition n4 | n1 n2 n3 (isolate)"]
        assert c.grudge["n4"] == ["n1", "n2", "n3"]
        kinds = sorted(w.kind for w in in_force(tmp_path / "faults.jsonl"))
        assert kinds == ["partition", "pause"]
        said = await f.heal()
        assert "resume n1" in said and "stop-partition" in said
        assert c.paused == set() and c.grudge == {} and in_force(tmp_path / "faults.jsonl") == []

    asyncio.run(main())


def test_hand_faults_are_refused_as_harness_run_refuses_them(tmp_path: Path) -> None:
    c = PaperCluster(["n1", "n2", "n3"])
    f = hand(tmp_path, c)

    async def refused(*args: Any, **kw: Any) -> str:
        with pytest.raises(FaultRefused) as e:
            await f.inflict(*args, **kw)
        return str(e.value)

    async def main() -> None:
        assert await refused("switch") == ("the switch nemesis needs a cluster that can turn the switch off; "
                                           "the local backend's cannot")
        assert "cut a node's power" in await refused("power", "n2")  # one node's power is the plug package
        assert await refused("leader-churn") == ("the leader-churn nemesis needs a system that reports a leader; "
                                                 "heartbeat does not")
        assert "unknown fault 'melt'" in await refused("melt")
        assert await refused("kill", "n9") == "unknown node 'n9' (nodes: n1 n2 n3)"
        assert await refused("flaky", "n1") == "the flaky fault picks its own targets; name no node"
        assert "--shape is for the partition fault" in await refused("kill", "n1", shape="halves")
        assert "takes no node" in await refused("partition", "n1", shape="halves")
        assert "unknown partition shape 'donut'" in await refused("partition", shape="donut")
        assert c.up == {"n1", "n2", "n3"} and c.grudge == {}  # nothing was done by any refused fault

    asyncio.run(main())
    assert takes_node(PACKAGES["kill"]) and takes_node(PACKAGES["one-way"]) and not takes_node(PACKAGES["switch"])


def test_the_kv_heartbeat_and_dfs_clis_use_the_running_cluster_without_a_flag(tmp_path: Path) -> None:
    env = {**os.environ, "PICLUSTER_CLUSTERS": str(tmp_path)}
    for system, args, said in (("kv", ["get", "k"], "unreachable"), ("heartbeat", ["view"], "unreachable"),
                               ("dfs", ["ls"], "127.0.0.1:7001")):
        r = subprocess.run([sys.executable, "-m", f"systems.{system}.cli", *args], capture_output=True, text=True,
                           cwd=str(ROOT), env=env, timeout=60)
        assert r.returncode == 2 and f"no {system} cluster is running" in r.stderr, r.stderr
        _cluster(tmp_path, system, system, os.getpid())  # its one node listens nowhere: found, then unreachable
        r = subprocess.run([sys.executable, "-m", f"systems.{system}.cli", "--timeout", "1", *args],
                           capture_output=True, text=True, cwd=str(ROOT), env=env, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        assert said in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_a_fault_in_force_says_when_it_began_by_the_clock() -> None:
    from harness.services.probe import _wall_clock

    wall = {"wall": "2026-12-01T16:04:23"}
    assert _wall_clock("killed n3 since 7.8 s", wall) == "killed n3 since 16:04:23"
    assert _wall_clock("n1 | n2 n3 (isolate) since 12 s", wall) == "n1 | n2 n3 (isolate) since 16:04:23"
    assert _wall_clock("killed n3 since 7.8 s", {}) == "killed n3 since 7.8 s"  # no clock recorded: as it was


def test_mapreduce_view_shows_jobs_tasks_and_workers_from_the_coordinator() -> None:
    from systems.mapreduce import status

    job = {"job": "j1", "name": "wc", "state": "running", "error": "",
           "map_tasks": {"idle": 1, "in-progress": 2, "completed": 5},
           "reduce_tasks": {"idle": 2, "in-progress": 0, "completed": 0},
           "executions": {"map": 9, "reduce": 0, "backup": 1}}
    failed = {**job, "job": "j0", "state": "failed", "error": "input /x missing",
              "map_tasks": {"idle": 0, "in-progress": 0, "completed": 3}, "executions": {"map": 3, "reduce": 0}}
    report = {"now_s": 100.0, "jobs": [failed, job],
              "workers": {"n1": {"alive": True, "incarnation": 2, "last_heard_s": 99.5},
                          "n2": {"alive": False, "incarnation": 1, "last_heard_s": 80.0}}}
    replies = {"n1": NodeReply("n1", report),
               "n2": NodeReply("n2", error="mr.report: not-coordinator: the coordinator is n1"),
               "n3": NodeReply("n3", error="no answer within 1 s")}
    nodes, jobs, workers = status.tables(replies)
    assert [(r[0].text, r[1]) for r in nodes.rows] == [("n1", Cell("coordinator", GOOD)), ("n2", Cell("worker", GOOD)),
                                                      ("n3", Cell("unreachable: no answer within 1 s", BAD))]
    assert notes([nodes])[0] == ("coordinator n1: 2 job(s), 1 running", GOOD)
    assert ("n3 did not answer: no answer within 1 s", BAD) in notes([nodes])
    rows = {r[0].text: [c.text for c in r] for r in jobs.rows}
    assert rows["j1"] == ["j1", "wc", "running", "5/8 (2 running)", "0/2", "9 map, 0 reduce, 1 backup", ""]
    assert rows["j0"][2] == "failed" and rows["j0"][6] == "input /x missing"
    assert [[c.text for c in r] for r in workers.rows] == [["n1", "alive", "2", "0.5 s ago"],
                                                          ["n2", "dead", "1", "20.0 s ago"]]
    silent = status.tables({"n1": NodeReply("n1", error="connection refused")})
    assert notes(silent[:1])[0] == ("no coordinator answered: jobs and workers are unknown", BAD)
    assert silent[1].rows == ()
