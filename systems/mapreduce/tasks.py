"""The coordinator's task table and scheduling rules, as plain classes: no I/O, no clock of their own.

The caller (coordinator.py) feeds it what happened, with the time, and
persists `to_wire()` before it answers anyone. Rules (Dean & Ghemawat,
"MapReduce: Simplified Data Processing on Large Clusters", OSDI 2004):

- §3.2 Every map and reduce task is idle, in-progress or completed; a
  non-idle task knows the worker of each of its executions (`Attempt`), and
  a completed map task knows where its R intermediate runs are (the worker,
  its incarnation and the attempt id).
- §3.1/§3.4 A worker that asks for work gets, from the oldest running job
  first: an idle map task whose split has a replica on that worker
  (locality), else the lowest-numbered idle map task; once every map task
  of the job is completed, the lowest-numbered idle reduce task. Reduce
  tasks wait for the whole map phase (they need every map's output).
- §3.3 Worker failure: a worker that stopped answering pings, or that came
  back as a new incarnation (a restart), is failed. Its in-progress tasks go
  back to idle, and so do its *completed map tasks* (their output was on
  its local disk), unless every reduce task of that job is completed already.
  Completed reduce tasks stay completed: their output is in the DFS.
  (Planted bug `no-reexec-maps`: completed map tasks are never re-run.)
- §3.3 A completion for a task that is already completed is ignored (it is
  a duplicate from a backup or a late worker, or the same report delivered
  twice). (Planted bug `double-commit`: any further completion report of a
  completed map task, even the same one again, adds its output once more,
  and reduce tasks handed out afterwards read it once more.) A completion from an execution the
  table had given up on is still accepted when the task is not completed
  and that worker is alive with the same incarnation: its output exists.
- A reducer that cannot fetch a map's output reports it; the reduce
  execution fails and its task goes back to idle. The map task is re-run
  when its worker is failed, or after `fetch_failures_to_rerun` such
  reports (a worker the coordinator can reach but reducers cannot).
- §3.6 Backup tasks: when a phase of a job has no idle task left, a worker
  with nothing else to do gets a second execution of an in-progress task
  that has run longer than `max(backup_min_s, backup_factor x the median
  duration of that job's finished executions of the same kind)`; at most
  one backup per task, never on the worker already running it. Whichever
  execution completes first wins.
- A task whose job code raised `max_task_failures` times fails the job
  (the error is kept); infrastructure failures (I/O, fetch) never count.
- A task whose execution failed (for any reason) is not handed out again
  before `retry_backoff_s x 2^(failures-1)` (at most `max_backoff_s`) has
  passed, so a task that cannot succeed yet (its input unreachable) does
  not spin.
- A job is done when all its reduce tasks are completed; done and failed
  are final.
- A worker's ping reply lists the attempts it is running; an attempt the
  table thinks is running there but the worker does not list (and that was
  handed out more than `assign_grace_s` before the ping was sent, so the
  assignment could not still be on its way) is lost.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from systems.mapreduce.splits import Split


class Kind(StrEnum):
    MAP = "map"
    REDUCE = "reduce"


class TaskState(StrEnum):
    IDLE = "idle"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"


class JobState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Outcome(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    """This execution's output is the task's output."""
    DUPLICATE = "duplicate"
    """Finished after another execution had completed the task; ignored."""
    LOST = "lost"
    """Its worker failed (or no longer ran it) before it completed."""
    FAILED = "failed"
    """It reported an error (the job's code, or I/O)."""


class Verdict(StrEnum):
    """What the table did with a completion report."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    COUNTED_TWICE = "counted-twice"
    STALE = "stale"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Rules:
    backups: bool = True
    backup_min_s: float = 2.0
    backup_factor: float = 2.0
    max_task_failures: int = 4
    fetch_failures_to_rerun: int = 2
    assign_grace_s: float = 1.0
    retry_backoff_s: float = 0.25
    max_backoff_s: float = 4.0
    reexec_maps: bool = True
    """False is the planted bug `no-reexec-maps`."""
    double_commit: bool = False
    """True is the planted bug `double-commit`."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a client submitted, plus what planning decided (the range boundaries)."""

    id: str
    name: str
    inputs: tuple[str, ...]
    output: str
    reduces: int
    params: dict[str, Any] = field(default_factory=dict)
    partitioner: str = "hash"
    boundaries: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    """The inputs as submitted (paths or patterns); `inputs` are the files they named."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "inputs": list(self.inputs), "output": self.output,
            "reduces": self.reduces, "params": dict(self.params), "partitioner": self.partitioner,
            "boundaries": list(self.boundaries), "patterns": list(self.patterns),
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> JobSpec:
        return cls(
            str(d["id"]), str(d["name"]), tuple(d["inputs"]), str(d["output"]), int(d["reduces"]),
            dict(d.get("params") or {}), str(d.get("partitioner", "hash")), tuple(d.get("boundaries") or ()),
            tuple(d.get("patterns") or ()),
        )


@dataclass
class Attempt:
    """One execution of a task on one worker incarnation."""

    id: int
    job: str
    kind: Kind
    task: int
    worker: str
    incarnation: int
    started_s: float
    backup: bool = False
    local: bool | None = None
    """Map executions: whether the worker held a replica of the split."""
    idle_left: int = 0
    """Idle tasks of the same phase left when this one was handed out."""
    ended_s: float | None = None
    outcome: Outcome = Outcome.RUNNING
    note: str = ""

    def to_wire(self) -> list[Any]:
        return [
            self.id, self.job, self.kind.value, self.task, self.worker, self.incarnation, self.started_s,
            self.backup, self.local, self.idle_left, self.ended_s, self.outcome.value, self.note,
        ]

    @classmethod
    def from_wire(cls, w: list[Any]) -> Attempt:
        return cls(
            int(w[0]), str(w[1]), Kind(w[2]), int(w[3]), str(w[4]), int(w[5]), float(w[6]), bool(w[7]),
            w[8], int(w[9]), w[10], Outcome(w[11]), str(w[12]),
        )

    def report(self) -> dict[str, Any]:
        """The attempt as the coordinator reports it to clients (the task timeline)."""
        return {
            "attempt": self.id, "job": self.job, "kind": self.kind.value, "task": self.task,
            "worker": self.worker, "incarnation": self.incarnation, "start_s": self.started_s,
            "end_s": self.ended_s, "outcome": self.outcome.value, "backup": self.backup, "local": self.local,
            "idle_left": self.idle_left, "note": self.note,
        }


@dataclass
class Task:
    kind: Kind
    index: int
    state: TaskState = TaskState.IDLE
    running: list[int] = field(default_factory=list)
    done_by: int | None = None
    """The attempt whose output counts."""
    extra: list[int] = field(default_factory=list)
    """Planted bug double-commit: further attempts whose output is counted too."""
    failures: int = 0
    """Executions that failed because the job's own code raised."""
    fetch_failures: int = 0
    split: Split | None = None
    retries: int = 0
    """Executions that failed for any reason since the task last completed."""
    not_before_s: float = 0.0
    """Not handed out again before this time (retry backoff)."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "index": self.index, "state": self.state.value, "running": self.running,
            "done_by": self.done_by, "extra": self.extra, "failures": self.failures,
            "fetch_failures": self.fetch_failures, "split": self.split.to_wire() if self.split else None,
            "retries": self.retries, "not_before_s": self.not_before_s,
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Task:
        return cls(
            Kind(d["kind"]), int(d["index"]), TaskState(d["state"]), [int(a) for a in d["running"]],
            d["done_by"], [int(a) for a in d["extra"]], int(d["failures"]), int(d["fetch_failures"]),
            Split.from_wire(d["split"]) if d.get("split") else None, int(d.get("retries", 0)),
            float(d.get("not_before_s", 0.0)),
        )


@dataclass
class Assignment:
    """What a worker is told to run."""

    attempt: Attempt
    task: Task
    spec: JobSpec
    sources: list[tuple[int, str, int, int]] = field(default_factory=list)
    """Reduce executions: (map index, worker, incarnation, attempt) of every map output to fetch, in map order."""


@dataclass
class Job:
    spec: JobSpec
    maps: list[Task]
    reduces: list[Task]
    submitted_s: float
    state: JobState = JobState.RUNNING
    finished_s: float | None = None
    error: str = ""

    @classmethod
    def create(cls, spec: JobSpec, splits: list[Split], now: float) -> Job:
        maps = [Task(Kind.MAP, i, split=s) for i, s in enumerate(splits)]
        reduces = [Task(Kind.REDUCE, r) for r in range(spec.reduces)]
        return cls(spec, maps, reduces, now)

    def tasks(self, kind: Kind) -> list[Task]:
        return self.maps if kind is Kind.MAP else self.reduces

    def phase(self) -> Kind:
        return Kind.REDUCE if all(t.state is TaskState.COMPLETED for t in self.maps) else Kind.MAP

    def counts(self, kind: Kind) -> dict[str, int]:
        out = {s.value: 0 for s in TaskState}
        for t in self.tasks(kind):
            out[t.state.value] += 1
        return out

    def to_wire(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_wire(), "maps": [t.to_wire() for t in self.maps],
            "reduces": [t.to_wire() for t in self.reduces], "submitted_s": self.submitted_s,
            "state": self.state.value, "finished_s": self.finished_s, "error": self.error,
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Job:
        return cls(
            JobSpec.from_wire(d["spec"]), [Task.from_wire(t) for t in d["maps"]],
            [Task.from_wire(t) for t in d["reduces"]], float(d["submitted_s"]), JobState(d["state"]),
            d["finished_s"], str(d["error"]),
        )


@dataclass
class WorkerInfo:
    incarnation: int
    last_heard_s: float
    alive: bool = True


class Scheduler:
    """Every job's task table, the workers' liveness, and the rules in the module docstring."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or Rules()
        self.jobs: dict[str, Job] = {}
        self.attempts: dict[int, Attempt] = {}
        self.workers: dict[str, WorkerInfo] = {}
        self.next_attempt = 1

    # -- jobs -----------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, splits: list[Split], now: float) -> Job:
        if spec.id in self.jobs:
            raise ValueError(f"job {spec.id!r} exists")
        if spec.reduces < 1:
            raise ValueError("a job needs at least one reduce task")
        job = Job.create(spec, splits, now)
        self.jobs[spec.id] = job
        return job

    def running_jobs(self) -> Iterator[Job]:
        return (j for j in self.jobs.values() if j.state is JobState.RUNNING)

    def job_attempts(self, job_id: str) -> list[Attempt]:
        return [a for a in self.attempts.values() if a.job == job_id]

    def forget(self, job_id: str) -> None:
        """Drop a finished job and its attempts (the coordinator keeps a bounded history)."""
        job = self.jobs.pop(job_id)
        assert job.state is not JobState.RUNNING, "only a finished job is forgotten"
        for a in self.job_attempts(job_id):
            del self.attempts[a.id]

    # -- workers --------------------------------------------------------------------------------

    def alive(self, worker: str, incarnation: int) -> bool:
        info = self.workers.get(worker)
        return info is not None and info.alive and info.incarnation == incarnation

    def heard(self, worker: str, incarnation: int, now: float) -> list[Attempt]:
        """Any message from the worker proves it alive; a new incarnation fails the old one. Returns lost attempts."""
        info = self.workers.get(worker)
        lost: list[Attempt] = []
        if info is not None and info.incarnation != incarnation:
            lost = self._fail_worker(worker, now, "worker restarted")
            info = None
        if info is None:
            self.workers[worker] = WorkerInfo(incarnation, now)
        else:
            info.alive = True
            info.last_heard_s = now
        return lost

    def running_on(self, worker: str, incarnation: int, running: list[int], ping_sent_s: float) -> list[Attempt]:
        """A ping reply listed `running`; attempts the table has there but the worker does not are lost."""
        lost = []
        listed = set(running)
        for a in list(self.attempts.values()):
            if (
                a.outcome is Outcome.RUNNING and a.worker == worker and a.incarnation == incarnation
                and a.id not in listed and a.started_s + self.rules.assign_grace_s < ping_sent_s
            ):
                self._lose(a, ping_sent_s, "not running on its worker")
                lost.append(a)
        return lost

    def silent(self, now: float, timeout_s: float) -> list[str]:
        """Fail every alive worker not heard from for `timeout_s`; returns them."""
        failed = []
        for name in sorted(self.workers):
            info = self.workers[name]
            if info.alive and now - info.last_heard_s > timeout_s:
                info.alive = False
                self._fail_worker(name, now, "no answer to pings")
                failed.append(name)
        return failed

    def presume_alive(self, now: float) -> None:
        """After a coordinator restart: every worker named in the table counts as heard now (pings will tell)."""
        for a in self.attempts.values():
            if a.worker not in self.workers or a.incarnation > self.workers[a.worker].incarnation:
                self.workers[a.worker] = WorkerInfo(a.incarnation, now)

    def _fail_worker(self, worker: str, now: float, why: str) -> list[Attempt]:
        lost = []
        for a in list(self.attempts.values()):
            if a.worker == worker and a.outcome is Outcome.RUNNING:
                self._lose(a, now, why)
                lost.append(a)
        if not self.rules.reexec_maps:
            return lost
        for job in self.running_jobs():
            if all(t.state is TaskState.COMPLETED for t in job.reduces):
                continue
            for t in job.maps:
                t.extra = [x for x in t.extra if self.attempts[x].worker != worker]
                holder = self.attempts[t.done_by] if t.done_by is not None else None
                if t.state is TaskState.COMPLETED and holder is not None and holder.worker == worker:
                    holder.note = f"output lost at {now:.3f}: {why}"
                    self._reset(t)
        return lost

    # -- handing out work -----------------------------------------------------------------------

    def assign(self, worker: str, incarnation: int, now: float) -> Assignment | None:
        if not self.alive(worker, incarnation):
            return None
        busy = {(a.job, a.kind, a.task) for a in self.attempts.values()
                if a.outcome is Outcome.RUNNING and a.worker == worker}
        for job in self.running_jobs():
            got = self._pick(job, worker, incarnation, now, busy)
            if got is not None:
                return got
        return None

    def _pick(self, job: Job, worker: str, incarnation: int, now: float, busy: set[Any]) -> Assignment | None:
        kind = job.phase()
        tasks = job.tasks(kind)
        idle = [t for t in tasks if t.state is TaskState.IDLE]
        ready = [t for t in idle if t.not_before_s <= now]
        if idle and not ready:
            return None  # idle tasks backing off after failures: no backups while tasks are idle
        if ready:
            local: bool | None = None
            task = ready[0]
            if kind is Kind.MAP:
                near = [t for t in ready if t.split is not None and worker in t.split.replicas]
                local = bool(near)
                task = near[0] if near else ready[0]
            return self._start(job, task, worker, incarnation, now, backup=False, local=local, idle_left=len(idle) - 1)
        if not self.rules.backups:
            return None
        threshold = self.straggler_s(job, kind)
        stragglers = []
        for t in tasks:
            if t.state is not TaskState.IN_PROGRESS or len(t.running) != 1 or (job.spec.id, kind, t.index) in busy:
                continue
            first = self.attempts[t.running[0]]
            if first.worker != worker and now - first.started_s >= threshold:
                stragglers.append((first.started_s, t.index, t))
        if not stragglers:
            return None
        task = min(stragglers)[2]
        local = None if task.split is None else worker in task.split.replicas
        return self._start(job, task, worker, incarnation, now, backup=True, local=local, idle_left=0)

    def straggler_s(self, job: Job, kind: Kind) -> float:
        """How long an execution of `kind` in `job` may run before it gets a backup."""
        done = [a.ended_s - a.started_s for a in self.job_attempts(job.spec.id)
                if a.kind is kind and a.outcome is Outcome.COMPLETED and a.ended_s is not None]
        typical = statistics.median(done) if done else 0.0
        return max(self.rules.backup_min_s, self.rules.backup_factor * typical)

    def _start(
        self, job: Job, task: Task, worker: str, incarnation: int, now: float, *,
        backup: bool, local: bool | None, idle_left: int,
    ) -> Assignment:
        attempt = Attempt(
            self.next_attempt, job.spec.id, task.kind, task.index, worker, incarnation, now,
            backup=backup, local=local, idle_left=idle_left,
        )
        self.next_attempt += 1
        self.attempts[attempt.id] = attempt
        task.running.append(attempt.id)
        task.state = TaskState.IN_PROGRESS if task.state is TaskState.IDLE else task.state
        sources = self.sources(job) if task.kind is Kind.REDUCE else []
        return Assignment(attempt, task, job.spec, sources)

    def sources(self, job: Job) -> list[tuple[int, str, int, int]]:
        out = []
        for t in job.maps:
            assert t.state is TaskState.COMPLETED and t.done_by is not None
            for aid in [t.done_by, *t.extra]:
                a = self.attempts[aid]
                out.append((t.index, a.worker, a.incarnation, a.id))
        return out

    # -- reports --------------------------------------------------------------------------------

    def complete(self, attempt_id: int, now: float) -> Verdict:
        a = self.attempts.get(attempt_id)
        if a is None:
            return Verdict.UNKNOWN
        job = self.jobs[a.job]
        task = job.tasks(a.kind)[a.task]
        if attempt_id in task.running:
            task.running.remove(attempt_id)
        counts_twice = self.rules.double_commit and a.kind is Kind.MAP and job.state is JobState.RUNNING
        if task.state is TaskState.COMPLETED and counts_twice and a.outcome is not Outcome.FAILED:
            a.outcome = Outcome.COMPLETED
            a.ended_s = a.ended_s or now
            task.extra.append(a.id)
            return Verdict.COUNTED_TWICE
        if a.outcome in (Outcome.COMPLETED, Outcome.DUPLICATE, Outcome.FAILED):
            return Verdict.DUPLICATE  # the same report again
        a.ended_s = now
        if task.state is TaskState.COMPLETED or job.state is not JobState.RUNNING:
            a.outcome = Outcome.DUPLICATE
            return Verdict.DUPLICATE
        if not self.alive(a.worker, a.incarnation):
            if a.outcome is Outcome.RUNNING:
                self._lose(a, now, "completed by a failed worker")
            return Verdict.STALE
        a.outcome = Outcome.COMPLETED
        task.state = TaskState.COMPLETED
        task.done_by = a.id
        task.fetch_failures = 0
        task.retries = 0
        if all(t.state is TaskState.COMPLETED for t in job.reduces):
            job.state = JobState.DONE
            job.finished_s = now
        return Verdict.ACCEPTED

    def fail(self, attempt_id: int, now: float, error: str, *, job_error: bool) -> None:
        """An execution reported an error: `job_error` when the job's own code raised."""
        a = self.attempts.get(attempt_id)
        if a is None or a.outcome not in (Outcome.RUNNING, Outcome.LOST):
            return
        job = self.jobs[a.job]
        task = job.tasks(a.kind)[a.task]
        a.outcome, a.ended_s, a.note = Outcome.FAILED, now, error[:300]
        if attempt_id in task.running:
            task.running.remove(attempt_id)
        if task.state is TaskState.IN_PROGRESS and not task.running:
            task.state = TaskState.IDLE
        task.retries += 1
        backoff = self.rules.retry_backoff_s * 2 ** (task.retries - 1)
        task.not_before_s = now + min(self.rules.max_backoff_s, backoff)
        if job_error and job.state is JobState.RUNNING:
            task.failures += 1
            if task.failures >= self.rules.max_task_failures:
                job.state, job.finished_s = JobState.FAILED, now
                job.error = f"{a.kind.value} task {a.task} failed {task.failures} times: {error}"[:500]
                for x in self.job_attempts(job.spec.id):
                    if x.outcome is Outcome.RUNNING:
                        self._lose(x, now, "job failed")

    def fetch_failed(self, attempt_id: int, map_index: int, holder: int, now: float, error: str) -> None:
        """A reduce execution could not fetch map `map_index`'s output from attempt `holder`."""
        self.fail(attempt_id, now, f"fetch of map {map_index} from attempt {holder} failed: {error}", job_error=False)
        a = self.attempts.get(attempt_id)
        if a is None:
            return
        job = self.jobs[a.job]
        if not 0 <= map_index < len(job.maps) or job.state is not JobState.RUNNING:
            return
        task = job.maps[map_index]
        if holder in task.extra:
            task.extra.remove(holder)
            return
        if task.state is not TaskState.COMPLETED or task.done_by != holder or not self.rules.reexec_maps:
            return
        task.fetch_failures += 1
        h = self.attempts[holder]
        if not self.alive(h.worker, h.incarnation) or task.fetch_failures >= self.rules.fetch_failures_to_rerun:
            h.note = f"output unreachable at {now:.3f} ({task.fetch_failures} fetch failures)"
            self._reset(task)

    # -- helpers --------------------------------------------------------------------------------

    def _lose(self, a: Attempt, now: float, why: str) -> None:
        a.outcome, a.ended_s, a.note = Outcome.LOST, now, why
        task = self.jobs[a.job].tasks(a.kind)[a.task]
        if a.id in task.running:
            task.running.remove(a.id)
        if task.state is TaskState.IN_PROGRESS and not task.running:
            task.state = TaskState.IDLE

    def _reset(self, task: Task) -> None:
        task.state = TaskState.IN_PROGRESS if task.running else TaskState.IDLE
        task.done_by = None
        task.fetch_failures = 0

    # -- persistence ----------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        return {
            "next_attempt": self.next_attempt,
            "jobs": [j.to_wire() for j in self.jobs.values()],
            "attempts": [a.to_wire() for a in self.attempts.values()],
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any], rules: Rules | None = None) -> Scheduler:
        s = cls(rules)
        s.next_attempt = int(d["next_attempt"])
        for jw in d["jobs"]:
            job = Job.from_wire(jw)
            s.jobs[job.spec.id] = job
        for aw in d["attempts"]:
            a = Attempt.from_wire(aw)
            s.attempts[a.id] = a
        return s
