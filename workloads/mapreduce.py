"""The `jobs` workload for MapReduce on the DFS (systems/mapreduce).

Rules this module keeps:

- Clients first store a seeded Zipf corpus in the DFS (`put`: one file per
  op, `corpus_files` files of `corpus_bytes` bytes (system options, so
  `--option corpus_bytes=400000` sizes it), each written under a
  staging name and renamed into /in/, so no input is ever half there). The
  op records the file's seed, size and SHA-256 so the checker can rebuild it.
  A put that did not end ok is tried again by a later op; one that finds
  its file already in place (an earlier attempt's rename landed) is ok.
- Then they submit up to `jobs` jobs (word count, inverted index, grep,
  distributed sort, in turn, with 1-4 reduce tasks) on the test's clock:
  the first at once, job k when k x SUBMIT_WINDOW x time_limit / jobs
  seconds have passed since the clients started (so jobs run through most
  of the run, for the faults that need a running job; a job due while the
  corpus is not in yet waits for it), over the files stored so far (the
  pattern /in/* once every file is in),
  and poll them: `status`
  (key: the job) and `read` (the job's status, then every part file present
  in its output directory, recorded as size and SHA-256). A read of a
  running job is how a half-written output partition would be seen.
- Outcomes: a put or submit that failed definitely is `fail`, one that may
  have happened is `info`; status, read, wait and report have no effect and
  end `fail` when they get no answer.
- After the final heal and the quiet period: `wait` for each submitted job
  (polls its status up to 4 x op_timeout_s; fails with the last status if
  it is still running), a final `read` of each, and one `report` (every
  execution the coordinator knows, for the execution checker and the task
  timeline in the report), then as the DFS workloads end: `dfs-scrub` of
  every node (verify every replica now, report a bad one), `dfs-settle`
  (wait, bounded, while the master's repairs progress), then a `dfs-status` of every node (its DFS
  roles' own report, checksums verified), which the DFS's state checker
  judges as it does for the DFS alone (one lease at a time, versions never
  back, every chunk of a live file healthy at the end): the DFS faults
  underneath MapReduce are checked on the DFS too.
"""

from __future__ import annotations

import functools
import html
import itertools
import random
from typing import Any

from base.faults import Effect, fault_windows
from base.history import Op
from base.spec import TestSpec
from checkers.mapreduce_corpus import corpus, digest
from nemesis.catalog import VOCABULARY
from systems.mapreduce.client import Exists, MrClient, StoreError
from systems.runtime.api import RemoteError, RpcError, Runtime, derive_seed
from workloads.base import Checker, Client
from workloads.dfs import SETTLE_BOUND_S, settle

CORPUS_FILES = 4
CORPUS_BYTES = 120_000
JOBS = 8
JOB_PLAN: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("wordcount", {}, 3),
    ("indexer", {}, 2),
    ("grep", {"pattern": "^(qms|pq) (pq|bmrf) "}, 2),
    ("sort", {}, 4),
    ("wordcount", {}, 1),
    ("sort", {}, 2),
    ("indexer", {}, 4),
    ("grep", {"pattern": "mn oudg|tu tu"}, 3),
)
SUBMIT_WINDOW = 0.7
"""The jobs' submissions are due evenly over this share of the time limit (a random share of ops, as before,
left the last third of many runs with no job running, and output-holder-kill with no target)."""
STATUS_SHARE = 0.4
WAIT_POLL_S = 0.2


class JobsClient:
    def __init__(self, workload: JobsWorkload, rt: Runtime, node: str) -> None:
        self.w = workload
        self.rt = rt
        self.node = node
        self.mr = MrClient(rt, workload.nodes, workload.options, home=node, timeout_s=workload.timeout_s)

    async def invoke(self, op: Op) -> Op:
        match op["f"]:
            case "put":
                return await self._put(op)
            case "submit":
                return await self._submit(op)
            case "status":
                return await self._read_only(op, lambda: self.mr.status(op["key"]))
            case "jobs":
                return await self._read_only(op, self.mr.jobs)
            case "read":
                return await self._read_only(op, lambda: self._read_output(op["key"]))
            case "wait":
                return await self._wait(op)
            case "report":
                return await self._read_only(op, self.mr.report)
            case "dfs-status":
                return await self._read_only(op, lambda: self.rt.call(
                    self.node, "status", {"verify": bool(op.get("final"))}, timeout=self.w.timeout_s * 3))
            case "dfs-scrub":
                return await self._read_only(op, self._scrub)
            case "dfs-settle":
                if self.mr.dfs is None:
                    return {**op, "type": "fail", "error": "the files are not in the DFS"}
                return await settle(self.mr.dfs, self.rt, op, self.w.settle_stall_s, self.w.timeout_s * 4)
        return {**op, "type": "fail", "error": f"unknown op {op['f']!r}"}

    async def _scrub(self) -> dict[str, Any]:
        st = await self.rt.call(self.node, "status", {"verify": True}, timeout=self.w.timeout_s * 3)
        reps = (st.get("chunkserver") or {}).get("replicas") or {}
        return {"corrupt": sorted(h for h, r in reps.items() if r.get("ok") is False)}

    async def _put(self, op: Op) -> Op:
        v = op["value"]
        data = corpus(v["seed"], v["requested"])
        try:
            await self.mr.put_file(v["path"], data)
        except Exists:
            pass  # an earlier attempt's rename landed: the file is there, whole
        except StoreError as e:
            self.w.stored.pop(v["path"], None)  # try again later
            return {**op, "type": "fail" if e.definite else "info", "error": str(e)[:200]}
        self.w.stored[v["path"]] = "ok"
        return {**op, "type": "ok"}

    async def _submit(self, op: Op) -> Op:
        v = op["value"]
        try:
            status = await self.mr.submit(v["job"], v["name"], v["inputs"], v["output"], v["reduces"], v["params"])
        except RpcError as e:
            return {**op, "type": "fail" if e.definite else "info", "error": f"{e.code}: {e.message}"[:200]}
        return {**op, "type": "ok", "status": status}

    async def _read_only(self, op: Op, call: Any) -> Op:
        try:
            value = await call()
        except (RpcError, StoreError) as e:
            code = e.code if isinstance(e, RpcError) else type(e).__name__
            return {**op, "type": "fail", "error": f"{code}: {e}"[:200]}
        return {**op, "type": "ok", "value": value}

    async def _read_output(self, job: str) -> dict[str, Any]:
        status = await self.mr.status(job)
        parts = await self.mr.read_output(status["output"])
        return {
            "status": _short_status(status),
            "parts": {name: {"bytes": len(data), "sha256": digest(data)} for name, data in sorted(parts.items())},
        }

    async def _wait(self, op: Op) -> Op:
        deadline = self.rt.now() + 4 * self.w.timeout_s
        last: dict[str, Any] | None = None
        while True:
            try:
                last = await self.mr.status(op["key"])
            except RemoteError as e:
                if e.code == "no-such-job":
                    return {**op, "type": "fail", "error": "no-such-job"}
            except RpcError:
                pass
            if last is not None and last["state"] != "running":
                return {**op, "type": "ok", "value": last}
            if self.rt.now() >= deadline:
                return {**op, "type": "fail", "error": "still running", "value": last}
            await self.rt.sleep(WAIT_POLL_S)


def _short_status(st: dict[str, Any]) -> dict[str, Any]:
    keep = ("job", "name", "state", "inputs", "reduces", "partitioner", "boundaries", "params", "output")
    return {k: st.get(k) for k in keep}


class JobsWorkload:
    name = "jobs"

    def __init__(self, spec: TestSpec) -> None:
        opts = spec.options
        self.nodes = spec.nodes
        self.options = dict(opts)
        self.timeout_s = spec.op_timeout_s
        self.settle_stall_s = max(self.timeout_s * 4, 3 * float(opts.get("lease_s", 3.0)))
        """As the DFS workloads' final settle: no new low in fsck's problem count for this long ends it."""
        files = int(opts.get("corpus_files", CORPUS_FILES))
        size = int(opts.get("corpus_bytes", CORPUS_BYTES))
        self.files = [(f"/in/part-{i}.txt", derive_seed(spec.seed, "corpus", i) % 2**31, size) for i in range(files)]
        self.stored: dict[str, str] = {}
        """path -> "inflight" | "ok"; absent: to be put (again)."""
        self.max_jobs = int(opts.get("jobs", JOBS))
        self.submit_every_s = SUBMIT_WINDOW * spec.time_limit_s / max(1, self.max_jobs)
        self.clock: Runtime | None = None
        self.started_at = 0.0
        self.submitted: list[str] = []
        self._jobs = itertools.count()

    def client(self, rt: Runtime, node: str) -> Client:
        if self.clock is None:  # the clients' clock: the test's, on every backend
            self.clock, self.started_at = rt, rt.now()
        return JobsClient(self, rt, node)

    def _submission_due(self) -> bool:
        due_at = self.started_at + self.submit_every_s * len(self.submitted)
        return not self.submitted or (self.clock is not None and self.clock.now() >= due_at)

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        for path, seed, size in self.files:
            if path not in self.stored:
                self.stored[path] = "inflight"
                data = corpus(seed, size)
                return {"f": "put", "value": {"path": path, "seed": seed, "bytes": len(data),
                                              "sha256": digest(data), "requested": size}}
        ok = [p for p, _, _ in self.files if self.stored.get(p) == "ok"]
        settled = len(ok) == len(self.files)
        can_submit = len(self.submitted) < self.max_jobs and ok and (settled or len(ok) >= 2)
        if can_submit and self._submission_due():
            return self._submit_op(ok, settled and len(ok) == len(self.files))
        if not self.submitted:
            return {"f": "jobs", "value": None}
        job = rng.choice(self.submitted)
        if rng.random() < STATUS_SHARE:
            return {"f": "status", "key": job, "value": None}
        return {"f": "read", "key": job, "value": None}

    def _submit_op(self, ok: list[str], everything: bool) -> Op:
        n = next(self._jobs)
        name, params, reduces = JOB_PLAN[n % len(JOB_PLAN)]
        job = f"j{n}-{name}"
        self.submitted.append(job)
        inputs = ["/in/*"] if everything else sorted(ok)
        return {"f": "submit", "key": job, "value": {
            "job": job, "name": name, "inputs": inputs, "output": f"/out/{job}", "reduces": reduces,
            "params": dict(params),
        }}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        out: list[tuple[str, Op]] = []
        for i, job in enumerate(self.submitted):
            out.append((nodes[i % len(nodes)], {"f": "wait", "key": job, "value": None, "final": True}))
        for i, job in enumerate(self.submitted):
            out.append((nodes[i % len(nodes)], {"f": "read", "key": job, "value": None, "final": True}))
        out.append((nodes[0], {"f": "report", "value": None, "final": True}))
        out += [(n, {"f": "dfs-scrub", "value": None, "final": True}) for n in nodes]
        out.append((nodes[0], {"f": "dfs-settle", "value": None, "final": True, "bound_s": SETTLE_BOUND_S}))
        out += [(n, {"f": "dfs-status", "value": None, "final": True}) for n in nodes]
        return out

    def checkers(self) -> dict[str, Checker]:
        from checkers import mapreduce

        return {"outputs": mapreduce.check_outputs, "jobs": mapreduce.check_jobs,
                "executions": functools.partial(mapreduce.check_executions, vocabulary=VOCABULARY),
                "dfs-state": check_dfs_state}


def check_dfs_state(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    """The DFS's own state checker over the nodes' `dfs-status` reports (named `status` there)."""
    from checkers import dfs_state
    from nemesis.catalog import VOCABULARY

    named = {"dfs-status": "status", "dfs-settle": "settle"}
    ops = [{**op, "f": named[op["f"]]} if op.get("f") in named else op for op in history
           if op.get("f") in named or op.get("process") == "nemesis"]  # the faults: clock ones excuse views
    return dfs_state.check(ops, test, VOCABULARY)


def report_sections(history: list[Op], results: dict[str, Any]) -> list[tuple[str, str]]:
    return [("MapReduce tasks per worker", timeline_svg(history)), ("MapReduce jobs", _jobs_table(history))]


KIND_COLOUR = {"map": "#54aeff", "reduce": "#a475f9"}
OUTCOME_STYLE = {
    "completed": ("1", "#1f2328", "0"),
    "running": ("0.6", "#1f2328", "0"),
    "duplicate": ("0.35", "#6e7781", "0"),
    "lost": ("0.35", "#cf222e", "3,2"),
    "failed": ("0.35", "#cf222e", "0"),
}
"""outcome -> (fill opacity, stroke colour, stroke dash)."""


def _fault_spans(history: list[Op]) -> list[tuple[float, float, str, tuple[str, ...]]]:
    """(start s, end s, kind, the nodes it hit, or () for the whole cluster) of every fault in the history."""
    out = []
    for w in fault_windows(history, VOCABULARY):
        on_nodes = w.effect in (Effect.DOWN, Effect.PAUSED, Effect.DISK, Effect.CLOCK, Effect.MEMBERSHIP)
        out.append((w.start_s, w.end_s if w.end_s is not None else w.start_s, w.kind, w.nodes if on_nodes else ()))
    return out


def timeline_svg(history: list[Op]) -> str:
    """One row per worker, one bar per execution (colour: kind; outline: outcome; B: backup), faults shaded."""
    from checkers.mapreduce import timeline

    tl = timeline(history)
    if tl is None or not tl["workers"]:
        return "<p>no final report of the coordinator's executions</p>"
    faults = _fault_spans(history)
    workers = sorted(set(tl["workers"]) | {n for *_, ns in faults for n in ns})
    span = max(tl["end_s"], max((f[1] for f in faults), default=0.0), 1e-9)
    left, width, row_h = 60, 1000, 22
    height = row_h * len(workers) + 30

    def x(t: float) -> float:
        return left + width * t / span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 10}" height="{height}" '
             'font-family="sans-serif" font-size="11">']
    for start, end, label, nodes in faults:
        rows = [workers.index(n) for n in nodes if n in workers] or list(range(len(workers)))
        for r in rows:
            parts.append(f'<rect x="{x(start):.1f}" y="{r * row_h}" width="{max(1.0, x(end) - x(start)):.1f}" '
                         f'height="{row_h}" fill="{VOCABULARY.colour(label)}" opacity="0.35"><title>'
                         f'{html.escape(label)} {start:.2f}-{end:.2f}s</title></rect>')
    for r, w in enumerate(workers):
        y = r * row_h
        parts.append(f'<text x="4" y="{y + 15}">{html.escape(w)}</text>')
        for a in tl["workers"].get(w, []):
            opacity, stroke, dash = OUTCOME_STYLE.get(a["outcome"], ("0.5", "#1f2328", "0"))
            bx, bw = x(a["t0"]), max(1.5, x(a["t1"]) - x(a["t0"]))
            tip = (f"{a['job']} {a['kind']} {a['task']} attempt {a['attempt']}: {a['outcome']}"
                   f"{' (backup)' if a['backup'] else ''} {a['t0']:.2f}-{a['t1']:.2f}s {a.get('note', '')}")
            parts.append(f'<rect x="{bx:.1f}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 6}" '
                         f'fill="{KIND_COLOUR.get(a["kind"], "#999")}" fill-opacity="{opacity}" stroke="{stroke}" '
                         f'stroke-dasharray="{dash}"><title>{html.escape(tip)}</title></rect>')
            if a["backup"] and bw > 8:
                parts.append(f'<text x="{bx + 2:.1f}" y="{y + 15}" font-size="9">B</text>')
    axis_y = row_h * len(workers) + 14
    for i in range(11):
        t = span * i / 10
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y}" text-anchor="middle">{t:.1f}s</text>')
    parts.append("</svg>")
    legend = ("<p class='muted'>blue: map, purple: reduce; solid: completed, faint: duplicate, dashed red: lost, "
              "red outline: failed; B: backup execution; shaded bands: faults in their kind's colour (on a "
              "worker's row when aimed at it). Hover a bar for the execution.</p>")
    return legend + "".join(parts)


def _jobs_table(history: list[Op]) -> str:
    final: dict[str, dict[str, Any]] = {}
    for op in history:
        if op.get("type") == "ok" and op.get("f") in ("status", "wait") and isinstance(op.get("value"), dict):
            final[str(op.get("key"))] = op["value"]
    if not final:
        return "<p>no job status recorded</p>"
    def done(counts: Any) -> str:
        return f"{counts.get('completed', 0)}/{sum(counts.values())}" if isinstance(counts, dict) else ""

    def cells(st: dict[str, Any]) -> list[str]:
        e = st.get("executions") or {}
        return [str(st.get("name", "")), str(st.get("state", "")), done(st.get("map_tasks")),
                done(st.get("reduce_tasks")),
                f"{e.get('map', '')} + {e.get('reduce', '')} ({e.get('backup', 0)} backup)",
                str(st.get("error", ""))]

    rows = "".join(
        f"<tr><td>{html.escape(job)}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells(st)) + "</tr>"
        for job, st in sorted(final.items())
    )
    cols = ("job", "name", "state", "map tasks done", "reduce tasks done", "executions", "error")
    head = "".join(f"<th>{c}</th>" for c in cols)
    return f"<table><tr>{head}</tr>{rows}</table>"


WORKLOADS = {"jobs": JobsWorkload}
DEFAULT_WORKLOAD = "jobs"
