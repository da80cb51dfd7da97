"""Checkers for MapReduce's `jobs` workload: outputs, job lifecycles, executions.

What they read from the history (workloads/mapreduce.py writes it):
`put` invokes (each input file's path, corpus seed, size and SHA-256),
`submit`, `status` / `wait` (the job's status: state, expanded inputs, R,
range boundaries, execution counts), `read` (the job's status, then every
part file present: size and SHA-256) and the final `report` (every
execution the coordinator knows). Each job's expected output is computed
here, sequentially, by checkers/mapreduce_reference.py over the corpus
rebuilt from its seed (checkers/mapreduce_corpus.py); nothing of the
system's code is trusted.

- `outputs`: every part file a read ever saw equals the expected partition
  byte for byte, so an output partition is never visible half-written or
  wrong (the atomic rename); the final read of a done job has all R
  partitions, so the whole output equals the sequential run's. A job whose
  inputs cannot be rebuilt (an input put that never completed ok) is
  "unknown", not a pass.
- `jobs`: a job reported finished stays finished (no status asked for
  after that report says running, nor another final state); every job whose submission was
  acknowledged finished by the end of the final waits; no job failed.
- `executions`: with no fault in the whole run, each done job ran exactly M
  map and R reduce executions besides backups, and every backup started
  when no task of its phase was idle (the paper's "close to completion").
  With faults, re-executions and backups are counted and shown.
"""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

from base.faults import NEMESIS_ERROR, Vocabulary, fault_windows
from base.history import Op, pairs
from checkers import mapreduce_corpus, mapreduce_reference

MAX_EVIDENCE = 20
FINAL_STATES = ("done", "failed")


class _Inputs:
    """Input files by path, rebuilt from the put ops' seeds and checked against their digests."""

    def __init__(self, history: list[Op]) -> None:
        self.planned: dict[str, dict[str, Any]] = {}
        for op in history:
            if op.get("f") == "put" and op.get("type") == "invoke" and isinstance(op.get("value"), dict):
                self.planned[op["value"]["path"]] = op["value"]
        self._data: dict[str, bytes] = {}

    def get(self, path: str) -> bytes | None:
        if path in self._data:
            return self._data[path]
        v = self.planned.get(path)
        if v is None:
            return None
        data = mapreduce_corpus.corpus(int(v["seed"]), int(v.get("requested", v["bytes"])))
        if mapreduce_corpus.digest(data) != v["sha256"]:
            raise ValueError(f"corpus file {path} rebuilt from seed {v['seed']} does not match its digest")
        self._data[path] = data
        return data


class _Expected:
    """Each job's expected partitions (name, inputs, R, params and boundaries from its status)."""

    def __init__(self, history: list[Op]) -> None:
        self.inputs = _Inputs(history)
        self._cache: dict[tuple[Any, ...], list[bytes] | str] = {}

    def partitions(self, status: dict[str, Any]) -> list[bytes] | str:
        """The R expected partitions, or a sentence saying why they cannot be known."""
        name = status.get("name")
        if name not in mapreduce_reference.KNOWN_JOBS:
            return f"no reference for job {name!r}"
        params = status.get("params") or {}
        key = (name, tuple(status.get("inputs") or ()), status.get("reduces"), tuple(sorted(params.items())),
               tuple(status.get("boundaries") or ()))
        if key not in self._cache:
            files = {}
            for path in status.get("inputs") or ():
                data = self.inputs.get(path)
                if data is None:
                    self._cache[key] = f"input {path} was never stored by a put this history records"
                    break
                files[path] = data
            else:
                self._cache[key] = mapreduce_reference.partitions(
                    name, files, int(status["reduces"]), params, status.get("boundaries") or ())
        return self._cache[key]


def part_index(name: str) -> int | None:
    if not name.startswith("part-r-"):
        return None
    try:
        return int(name[len("part-r-"):])
    except ValueError:
        return None


def check_outputs(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    expected = _Expected(history)
    bad: list[dict[str, Any]] = []
    unknown: list[str] = []
    reads = 0
    parts_seen = 0
    verified_jobs: set[str] = set()
    final_reads: dict[str, dict[str, Any]] = {}
    for op in history:
        if op.get("f") != "read" or op.get("type") != "ok" or not isinstance(op.get("value"), dict):
            continue
        reads += 1
        job = str(op.get("key"))
        status, parts = op["value"].get("status") or {}, op["value"].get("parts") or {}
        if op.get("final"):
            final_reads[job] = op
        want = expected.partitions(status)
        if isinstance(want, str):
            if parts:
                unknown.append(f"{job}: {want}")
            continue
        for name, got in sorted(parts.items()):
            r = part_index(name)
            parts_seen += 1
            if r is None or r >= len(want):
                bad.append({"job": job, "part": name, "index": op.get("index"), "why": "no such partition"})
                continue
            exp = want[r]
            if got.get("sha256") != mapreduce_corpus.digest(exp):
                why = "partial" if got.get("bytes", 0) < len(exp) else "wrong"
                bad.append({"job": job, "part": name, "index": op.get("index"), "why": f"{why} output visible",
                            "bytes": got.get("bytes"), "expected_bytes": len(exp), "final": bool(op.get("final"))})
        state = status.get("state")
        if op.get("final") and state == "done":
            missing = [f"part-r-{r:05d}" for r in range(len(want)) if f"part-r-{r:05d}" not in parts]
            if missing:
                bad.append({"job": job, "index": op.get("index"), "why": f"done but {len(missing)} partition(s) "
                            f"missing: {', '.join(missing[:5])}"})
            else:
                verified_jobs.add(job)
    bad_jobs = sorted({b["job"] for b in bad})
    if bad:
        first = bad[0]
        summary = (f"{len(bad)} bad output observation(s) in job(s) {', '.join(bad_jobs)}; first: "
                   f"{first['job']} {first.get('part', '')} {first['why']}")
        valid: Any = False
    elif unknown:
        summary = f"cannot rebuild the expected output: {unknown[0]}"
        valid = "unknown"
    elif not final_reads:
        summary = "no final read of any job output"
        valid = "unknown"
    else:
        summary = (f"{parts_seen} partition reads in {reads} reads all equal the sequential run; "
                   f"{len(verified_jobs)} finished job(s) verified whole")
        valid = True
    return {"valid": valid, "summary": summary, "reads": reads, "partitions_read": parts_seen,
            "verified_jobs": sorted(verified_jobs), "bad": bad[:MAX_EVIDENCE], "unknown": unknown[:MAX_EVIDENCE]}


def _statuses(history: list[Op]) -> list[tuple[int, int, str, dict[str, Any]]]:
    """(index of the invoke, index of the completion, job, status) for every status in the history, in
    completion order."""
    invoked = {id(p.complete): p.invoke["index"] for p in pairs(history) if p.complete is not None}
    out = []
    for op in history:
        if op.get("type") != "ok" or not isinstance(op.get("value"), dict):
            continue
        f, v = op.get("f"), op["value"]
        st = None
        if f in ("status", "wait"):
            st = v
        elif f == "read" and isinstance(v.get("status"), dict):
            st = v["status"]
        elif f == "submit" and isinstance(op.get("status"), dict):
            st = op["status"]
        if st is not None:
            out.append((invoked.get(id(op), op["index"]), op["index"], str(op.get("key")), st))
    return out


def check_jobs(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    problems: list[str] = []
    first_final: dict[str, tuple[int, str]] = {}
    for invoked, index, job, st in _statuses(history):
        state = st.get("state")
        seen = first_final.get(job)
        # Only a status asked for after the final one was answered must agree (an older request may
        # still be answered later).
        if seen is not None and state != seen[1] and invoked > seen[0]:
            problems.append(f"{job} was reported {seen[1]} (op {seen[0]}) and later {state} (op {index})")
        if state in FINAL_STATES and seen is None:
            first_final[job] = (index, str(state))
    acknowledged = []
    for p in pairs(history):
        if p.invoke.get("f") == "submit" and p.complete is not None and p.complete["type"] == "ok":
            acknowledged.append(str(p.invoke.get("key")))
    unfinished = [j for j in acknowledged if j not in first_final]
    failed = [j for j, (_, s) in first_final.items() if s == "failed"]
    errors = {}
    for _, _, job, st in _statuses(history):
        if st.get("state") == "failed":
            errors[job] = st.get("error", "")
    if unfinished:
        problems.append(f"{len(unfinished)} acknowledged job(s) never finished: {', '.join(unfinished)}")
    if failed:
        problems.append(f"{len(failed)} job(s) failed: " + "; ".join(f"{j}: {errors.get(j, '')}" for j in failed))
    done = sorted(j for j, (_, s) in first_final.items() if s == "done")
    done_acked = [j for j in acknowledged if j in done]
    also = len(done) - len(done_acked)
    return {
        "valid": not problems,
        "summary": "; ".join(problems[:3]) if problems else f"{len(done_acked)} of {len(acknowledged)} acknowledged "
        "jobs done" + (f" (and {also} whose submission was in doubt)" if also else "")
        + ", none reported finished and then running again",
        "acknowledged": acknowledged, "done": done, "unfinished": unfinished, "failed": failed,
        "problems": problems[:MAX_EVIDENCE],
    }


def final_report(history: list[Op]) -> tuple[Op, Op] | None:
    """The (invoke, ok completion) of the last `report` op, if any."""
    found = None
    for p in pairs(history):
        if p.invoke.get("f") == "report" and p.complete is not None and p.complete["type"] == "ok":
            found = (p.invoke, p.complete)
    return found


def had_faults(history: list[Op], vocabulary: Vocabulary | None = None) -> bool:
    """Whether any fault was inflicted (with the vocabulary: any fault window; else any nemesis op but errors)."""
    if vocabulary is not None:
        return bool(fault_windows(history, vocabulary))
    return any(op.get("process") == "nemesis" and op.get("f") != NEMESIS_ERROR for op in history)


def check_executions(history: list[Op], test: dict[str, Any], vocabulary: Vocabulary | None = None) -> dict[str, Any]:
    got = final_report(history)
    if got is None:
        return {"valid": "unknown", "summary": "no final report of the coordinator's executions"}
    report = got[1]["value"]
    attempts = report.get("attempts") or []
    by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in attempts:
        by_job[a["job"]].append(a)
    statuses = {st["job"]: st for st in report.get("jobs") or []}
    faults = had_faults(history, vocabulary)
    problems: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for job, st in sorted(statuses.items()):
        runs = by_job.get(job, [])
        m = sum(st["map_tasks"].values())
        r = int(st["reduces"])
        c = {
            "maps": m, "reduces": r,
            "map_executions": sum(1 for a in runs if a["kind"] == "map"),
            "reduce_executions": sum(1 for a in runs if a["kind"] == "reduce"),
            "backups": sum(1 for a in runs if a["backup"]),
            "lost": sum(1 for a in runs if a["outcome"] == "lost"),
            "duplicates": sum(1 for a in runs if a["outcome"] == "duplicate"),
            "local_maps": sum(1 for a in runs if a["kind"] == "map" and a["local"]),
        }
        counts[job] = c
        for a in runs:
            if a["backup"] and a["idle_left"] != 0:
                problems.append(f"{job}: backup attempt {a['attempt']} started while tasks were idle")
        if faults or st.get("state") != "done":
            continue
        primary_maps = sum(1 for a in runs if a["kind"] == "map" and not a["backup"])
        primary_reduces = sum(1 for a in runs if a["kind"] == "reduce" and not a["backup"])
        if (primary_maps, primary_reduces) != (m, r):
            problems.append(f"{job}: with no faults, {primary_maps} map and {primary_reduces} reduce executions "
                            f"(besides {c['backups']} backups) for M={m}, R={r}")
    total = {k: sum(c[k] for c in counts.values()) for k in ("map_executions", "reduce_executions", "backups",
                                                               "lost", "duplicates")}
    summary = "; ".join(problems[:3]) if problems else (
        f"{len(counts)} job(s): {total['map_executions']} map and {total['reduce_executions']} reduce executions, "
        f"{total['backups']} backups, {total['lost']} lost, {total['duplicates']} duplicates"
        + ("" if faults else "; no faults, so each task ran exactly once besides backups"))
    return {"valid": not problems, "summary": summary, "kind": "mapreduce", "faults": faults, "jobs": counts,
            "problems": problems[:MAX_EVIDENCE]}


def timeline(history: list[Op]) -> dict[str, Any] | None:
    """The final report's executions with start/end on the test clock (seconds), per worker.

    The coordinator's clock is mapped onto the test clock through the report op itself: its
    `now_s` was read between the op's invoke and completion, taken as their midpoint.
    """
    got = final_report(history)
    if got is None:
        return None
    inv, done = got
    report = done["value"]
    mid_s = (inv["time"] + done["time"]) / 2e9
    offset = float(report["now_s"]) - mid_s
    end_s = done["time"] / 1e9
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in report.get("attempts") or []:
        start = float(a["start_s"]) - offset
        end = (float(a["end_s"]) - offset) if a.get("end_s") is not None else end_s
        rows[a["worker"]].append({**a, "t0": max(0.0, start), "t1": max(0.0, end)})
    return {"workers": {w: sorted(v, key=lambda x: x["t0"]) for w, v in sorted(rows.items())}, "end_s": end_s,
            "workers_seen": report.get("workers") or {}}


def render_html(result: dict[str, Any]) -> str:
    """The executions checker's own picture: a table of per-job counts."""
    jobs = result.get("jobs") or {}
    if not jobs:
        return ""
    cols = ("maps", "reduces", "map_executions", "reduce_executions", "backups", "lost", "duplicates", "local_maps")
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in ("job", *cols))
    rows = "".join(
        f"<tr><td>{html.escape(j)}</td>" + "".join(f"<td>{c.get(k, '')}</td>" for k in cols) + "</tr>"
        for j, c in sorted(jobs.items())
    )
    return f"<table><tr>{head}</tr>{rows}</table>"
