"""The MapReduce checkers on hand-made histories: each must reject the history it exists to reject.

Also: the checker's reference jobs agree with the system's own sequential
run (two independent implementations of one documented result), and the
corpus is the same bytes in another process under another hash seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from checkers import mapreduce
from checkers.mapreduce_corpus import corpus, digest
from checkers.mapreduce_reference import partitions
from systems.mapreduce.execute import sequential
from systems.mapreduce.jobs import lines, load_job
from systems.mapreduce.partition import partitioner, sample_boundaries

FILES = {"/in/a": (11, 3000), "/in/b": (12, 2500)}


def data() -> dict[str, bytes]:
    return {path: corpus(seed, size) for path, (seed, size) in FILES.items()}


class History:
    """Builds a history the way the runner writes one: index and time on every op."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []
        self.process = 0

    def add(self, op: dict[str, Any]) -> dict[str, Any]:
        op = {"index": len(self.ops), "time": len(self.ops) * 1_000_000, **op}
        self.ops.append(op)
        return op

    def pair(self, f: str, *, type_: str = "ok", key: str | None = None, value: Any = None, done: Any = None,
             **extra: Any) -> None:
        self.process += 1
        base = {"process": self.process, "f": f, **({"key": key} if key else {}), **extra}
        self.add({**base, "type": "invoke", "value": value})
        self.add({**base, "type": type_, "value": done if done is not None else value})

    def nemesis(self, f: str, value: Any) -> None:
        self.add({"process": "nemesis", "type": "info", "f": f, "value": value})

    def puts(self) -> None:
        for path, (seed, size) in FILES.items():
            d = corpus(seed, size)
            self.pair("put", value={"path": path, "seed": seed, "bytes": len(d), "sha256": digest(d),
                                    "requested": size})


def status(job: str = "j1", name: str = "wordcount", state: str = "done", reduces: int = 2,
           **extra: Any) -> dict[str, Any]:
    return {"job": job, "name": name, "state": state, "inputs": sorted(FILES), "reduces": reduces,
            "partitioner": "hash", "boundaries": [], "params": {}, "output": f"/out/{job}", **extra}


def parts_of(blobs: list[bytes]) -> dict[str, dict[str, Any]]:
    return {f"part-r-{r:05d}": {"bytes": len(b), "sha256": digest(b)} for r, b in enumerate(blobs)}


def good_history(name: str = "wordcount", params: dict[str, Any] | None = None) -> History:
    h = History()
    h.puts()
    st = status(name=name, params=params or {})
    h.pair("submit", key="j1", value={"job": "j1"}, status={**st, "state": "running"})
    want = partitions(name, data(), 2, params or {})
    h.pair("read", key="j1", done={"status": {**st, "state": "running"}, "parts": parts_of(want[:1])})
    h.pair("wait", key="j1", done=st, final=True)
    h.pair("read", key="j1", done={"status": st, "parts": parts_of(want)}, final=True)
    return h


def test_outputs_accepts_the_sequential_result_and_rejects_a_half_written_partition():
    h = good_history()
    result = mapreduce.check_outputs(h.ops, {})
    assert result["valid"] is True, result
    assert result["verified_jobs"] == ["j1"]
    want = partitions("wordcount", data(), 2, {})
    half = want[0][: len(want[0]) // 2]
    h.pair("read", key="j1", done={"status": status(state="running"), "parts": parts_of([half])})
    result = mapreduce.check_outputs(h.ops, {})
    assert result["valid"] is False
    assert result["bad"][0]["why"] == "partial output visible"


def test_outputs_rejects_a_done_job_missing_a_partition_and_a_wrong_one():
    h = good_history()
    want = partitions("wordcount", data(), 2, {})
    h.pair("read", key="j1", done={"status": status(), "parts": parts_of(want[:1])}, final=True)
    assert mapreduce.check_outputs(h.ops, {})["valid"] is False
    h2 = good_history()
    doubled = want[0].replace(b" 1\n", b" 2\n")
    h2.pair("read", key="j1", done={"status": status(), "parts": parts_of([doubled, want[1]])}, final=True)
    result = mapreduce.check_outputs(h2.ops, {})
    assert result["valid"] is False and result["bad"][0]["why"] == "wrong output visible"


def test_outputs_is_unknown_when_an_input_cannot_be_rebuilt():
    h = History()
    st = status()
    h.pair("read", key="j1", done={"status": st, "parts": parts_of([b"x 1\n", b""])}, final=True)
    result = mapreduce.check_outputs(h.ops, {})
    assert result["valid"] == "unknown" and "never stored" in result["summary"]


@pytest.mark.parametrize("name,params", [("indexer", {}), ("grep", {"pattern": "^qms"}), ("sort", {})])
def test_outputs_knows_every_builtin_job(name, params):
    h = good_history(name, params)
    assert mapreduce.check_outputs(h.ops, {})["valid"] is True


def test_jobs_rejects_finished_then_running_unfinished_and_failed_jobs():
    assert mapreduce.check_jobs(good_history().ops, {})["valid"] is True
    h = good_history()
    h.pair("status", key="j1", done=status(state="running"))
    result = mapreduce.check_jobs(h.ops, {})
    assert result["valid"] is False and "later running" in result["summary"]
    h = History()
    h.pair("submit", key="j2", value={"job": "j2"}, status=status("j2", state="running"))
    h.pair("wait", key="j2", type_="fail", done=status("j2", state="running"), final=True)
    result = mapreduce.check_jobs(h.ops, {})
    assert result["valid"] is False and result["unfinished"] == ["j2"]
    h = History()
    h.pair("submit", key="j3", value={"job": "j3"}, status=status("j3", state="running"))
    h.pair("wait", key="j3", done=status("j3", state="failed", error="map task 0 failed 4 times"), final=True)
    result = mapreduce.check_jobs(h.ops, {})
    assert result["valid"] is False and result["failed"] == ["j3"]


def test_jobs_allows_an_older_request_answered_late_with_running():
    h = History()
    h.pair("submit", key="j5", value={"job": "j5"}, status=status("j5", state="running"))
    h.add({"process": 90, "type": "invoke", "f": "status", "key": "j5", "value": None})
    h.pair("wait", key="j5", done=status("j5"), final=True)
    h.add({"process": 90, "type": "ok", "f": "status", "key": "j5", "value": status("j5", state="running")})
    assert mapreduce.check_jobs(h.ops, {})["valid"] is True


def test_jobs_does_not_require_a_job_whose_submission_was_in_doubt():
    h = History()
    h.pair("submit", key="j4", type_="info", value={"job": "j4"})
    h.pair("wait", key="j4", type_="fail", final=True)
    assert mapreduce.check_jobs(h.ops, {})["valid"] is True


def attempt(n: int, kind: str, task: int, *, backup: bool = False, idle_left: int = 0,
            outcome: str = "completed") -> dict[str, Any]:
    return {"attempt": n, "job": "j1", "kind": kind, "task": task, "worker": f"n{1 + n % 3}", "incarnation": 1,
            "start_s": 10.0 + n, "end_s": 10.5 + n, "outcome": outcome, "backup": backup, "local": True,
            "idle_left": idle_left, "note": ""}


def report_history(attempts: list[dict[str, Any]], *, faults: bool = False) -> History:
    h = History()
    if faults:
        h.nemesis("kill", ["n2"])
        h.nemesis("restart", ["n2"])
    st = status(map_tasks={"idle": 0, "in-progress": 0, "completed": 2},
                reduce_tasks={"idle": 0, "in-progress": 0, "completed": 2})
    h.pair("report", done={"now_s": 20.0, "node": "n1", "attempts": attempts, "workers": {}, "jobs": [st]},
           final=True)
    return h


def test_executions_counts_each_task_once_without_faults_besides_backups():
    ok = [attempt(1, "map", 0), attempt(2, "map", 1), attempt(3, "map", 1, backup=True, outcome="duplicate"),
          attempt(4, "reduce", 0), attempt(5, "reduce", 1)]
    result = mapreduce.check_executions(report_history(ok).ops, {})
    assert result["valid"] is True, result
    assert result["jobs"]["j1"]["backups"] == 1
    twice = [*ok, attempt(6, "map", 0)]
    result = mapreduce.check_executions(report_history(twice).ops, {})
    assert result["valid"] is False and "3 map" in result["summary"]
    assert mapreduce.check_executions(report_history(twice, faults=True).ops, {})["valid"] is True


def test_executions_rejects_a_backup_started_while_tasks_were_idle():
    early = [attempt(1, "map", 0), attempt(2, "map", 1), attempt(3, "map", 0, backup=True, idle_left=1),
             attempt(4, "reduce", 0), attempt(5, "reduce", 1)]
    result = mapreduce.check_executions(report_history(early).ops, {})
    assert result["valid"] is False and "idle" in result["summary"]


def test_timeline_maps_the_coordinator_clock_onto_the_test_clock():
    h = report_history([attempt(1, "map", 0)])
    tl = mapreduce.timeline(h.ops)
    assert tl is not None
    (a,) = tl["workers"]["n2"]
    mid_s = (h.ops[0]["time"] + h.ops[1]["time"]) / 2e9
    assert a["t0"] == pytest.approx(max(0.0, 11.0 - (20.0 - mid_s)))


@pytest.mark.parametrize("name,params", [("wordcount", {}), ("indexer", {}), ("grep", {"pattern": "qms pq"}),
                                         ("sort", {})])
def test_reference_agrees_with_the_system_s_sequential_run(name, params):
    files = data()
    job = load_job(name, params)
    bounds: tuple[str, ...] = ()
    if job.partitioner == "range":
        bounds = tuple(sample_boundaries([ln for d in files.values() for ln in lines(d.decode())][::5], 3))
    mine = sequential(job, [(p, d.decode()) for p, d in sorted(files.items())],
                      partitioner(job.partitioner, 3, bounds), 3)
    assert partitions(name, files, 3, params, bounds) == mine


def test_the_corpus_is_the_same_in_another_process_and_hash_seed():
    here = digest(corpus(7, 50_000))
    code = "from checkers.mapreduce_corpus import corpus, digest; print(digest(corpus(7, 50_000)))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert there.stdout.strip() == here
    assert corpus(7, 50_000) != corpus(8, 50_000)
    text = corpus(7, 50_000)
    assert len(text) >= 50_000 and text.endswith(b"\n") and text.isascii()


def test_the_dfs_state_underneath_is_judged_from_the_dfs_status_ops_alone() -> None:
    """The DFS's own checker runs on MapReduce's history: healthy end valid, a lost replica invalid, and
    MapReduce's job `status` ops (another meaning of the name) never taken for DFS reports."""
    from workloads.mapreduce import check_dfs_state

    master = {"incarnation": "m1", "goal": 2, "files": {"/in/a": [1]}, "chunks": {"1": {"version": 3}},
              "leases": [], "events": []}

    def replicas(version: int) -> dict[str, Any]:
        return {"incarnation": "c1", "replicas": {"1": {"version": version, "length": 5, "ok": True}}, "leases": []}

    def history(second_version: int) -> list[dict[str, Any]]:
        h = History()
        h.pair("status", key="j1", value=None, done=status())
        h.pair("dfs-status", value=None, done={"node": "n1", "master_state": master, "chunkserver": replicas(3)},
               final=True)
        h.pair("dfs-status", value=None, done={"node": "n2", "chunkserver": replicas(second_version)}, final=True)
        return h.ops

    healthy = check_dfs_state(history(3), {})
    assert healthy["valid"] is True and healthy["stats"]["reports"] == 2, healthy
    stale = check_dfs_state(history(2), {})
    assert stale["valid"] is False and stale["unhealthy_at_end"], stale
    assert check_dfs_state([op for op in history(3) if op["f"] != "dfs-status"], {})["valid"] == "unknown"
