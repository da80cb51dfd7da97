"""MapReduce's status view: jobs and their tasks, and the workers as the coordinator sees them
(base.status explains views).

Every node is asked `mr.report`; only the coordinator answers it (its jobs, every execution, its
workers), and every other node answers with a definite `not-coordinator` error naming the
coordinator, which proves it is up.

Rules:

- The nodes table has one row per node: "coordinator", "worker" (it answered not-coordinator), or
  unreachable with the reason.
- The jobs table is the coordinator's: per job its state, map and reduce tasks as
  completed/in progress/idle, and how many executions (and backups) it took. A failed job shows its
  error. With the coordinator silent, the table is empty and a note says jobs are unknown.
- The workers table is the coordinator's view of each worker: alive or not, its incarnation, when it
  was last heard from.
- Pure: a function of the replies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.status import BAD, DIM, GOOD, WARN, Cell, NodeReply, Table, row

METHOD = "mr.report"
REQUEST: Any = None

JOB_TONE = {"running": WARN, "done": GOOD, "failed": BAD}


def answered_not_coordinator(reply: NodeReply) -> bool:
    return reply.error is not None and "not-coordinator" in reply.error


def tasks_cell(counts: Any) -> Cell:
    """"completed/total (n running)" for one kind of task."""
    if not isinstance(counts, Mapping):
        return Cell("?", DIM)
    done, running = int(counts.get("completed", 0)), int(counts.get("in-progress", 0))
    total = done + running + int(counts.get("idle", 0))
    text = f"{done}/{total}" + (f" ({running} running)" if running else "")
    return Cell(text, GOOD if total and done == total else "")


def tables(replies: Mapping[str, NodeReply]) -> list[Table]:
    nodes = sorted(replies)
    coordinator = next((n for n in nodes if replies[n].ok and isinstance(replies[n].reply, Mapping)), None)
    report: Mapping[str, Any] = replies[coordinator].reply if coordinator else {}

    node_rows = []
    notes = []
    for n in nodes:
        r = replies[n]
        if r.ok:
            node_rows.append(row(n, Cell("coordinator", GOOD)))
        elif answered_not_coordinator(r):
            node_rows.append(row(n, Cell("worker", GOOD)))
        else:
            gist = (r.error or "").split(" (")[0]
            node_rows.append(row(n, Cell(f"unreachable: {gist}" if gist else "unreachable", BAD)))
            notes.append(Cell(f"{n} did not answer: {r.error or 'no reason given'}", BAD))

    job_rows = []
    for job in report.get("jobs", []) if isinstance(report.get("jobs"), list) else []:
        if not isinstance(job, Mapping):
            continue
        state = str(job.get("state", "?"))
        ex = job.get("executions") if isinstance(job.get("executions"), Mapping) else {}
        runs = f"{ex.get('map', 0)} map, {ex.get('reduce', 0)} reduce" + (
            f", {ex['backup']} backup" if ex.get("backup") else "")
        job_rows.append(row(str(job.get("job", "?")), str(job.get("name", "")), Cell(state, JOB_TONE.get(state, "")),
                            tasks_cell(job.get("map_tasks")), tasks_cell(job.get("reduce_tasks")), runs,
                            Cell(str(job.get("error") or ""), BAD if job.get("error") else "")))

    worker_rows = []
    workers = report.get("workers") if isinstance(report.get("workers"), Mapping) else {}
    for w, info in sorted(workers.items()):
        if not isinstance(info, Mapping):
            continue
        alive = bool(info.get("alive"))
        heard = info.get("last_heard_s")
        now = report.get("now_s")
        ago = f"{now - heard:.1f} s ago" if isinstance(heard, int | float) and isinstance(now, int | float) else "?"
        worker_rows.append(row(str(w), Cell("alive" if alive else "dead", GOOD if alive else BAD),
                               str(info.get("incarnation", "?")), ago))

    if coordinator is None:
        notes.insert(0, Cell("no coordinator answered: jobs and workers are unknown", BAD))
    else:
        running = sum(1 for j in report.get("jobs", []) if isinstance(j, Mapping) and j.get("state") == "running")
        notes.insert(0, Cell(f"coordinator {coordinator}: {len(job_rows)} job(s), {running} running", GOOD))
    return [
        Table("nodes", ("node", "role"), tuple(node_rows), tuple(notes)),
        Table("jobs", ("job", "name", "state", "map tasks", "reduce tasks", "executions", "error"), tuple(job_rows)),
        Table("workers (the coordinator's view)", ("worker", "state", "incarnation", "last heard"),
              tuple(worker_rows)),
    ]
