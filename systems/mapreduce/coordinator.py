"""The MapReduce coordinator (the paper's master): plans jobs, hands out tasks, pings workers, persists.

Rules this module keeps (the scheduling rules themselves are tasks.py's):

- Coordinator failure is survived, not aborted (the paper aborts, §3.3):
  the whole task table (jobs, tasks, attempts, the attempt counter) is
  written to `mr/coordinator/state` and synced before any reply that
  depends on it: before a submission is acknowledged, before a task is
  handed out (so an attempt id is never reused after a restart), and
  before a completion is answered. A restarted coordinator reloads it,
  counts every worker it names as alive, and lets the pings decide: a
  worker that answers with another incarnation, or does not list an
  attempt, or does not answer for `worker_timeout_s`, loses its executions
  (and its completed map outputs) as tasks.py says.
- "done" and "failed" are reported only once they are on disk, so a job
  reported finished stays finished across coordinator crashes.
- Submission is planned before it is acknowledged: the job module loads,
  the inputs (paths or patterns) exist in the DFS, the output directory
  holds no part files yet; splits are one per chunk with its replica
  locations; a range-partitioned job samples its input for the boundaries.
  Every refusal is a definite error that names the problem. Submitting the
  same job id again with the same request returns the job (idempotent
  retries); a different request under a used id is refused.
- A worker's task request carries its own counter; a request delivered
  twice (a duplicated frame, a retry) gets the same answer, never a second
  task. (The memory of it is lost with a coordinator restart, which the
  ping replies then reconcile.)
- Pings: every `ping_interval_s`, every worker node is pinged (in
  parallel); its reply proves it alive, carries its pending completion
  reports and its running attempts. Finished jobs' ids ride on the ping so
  workers delete their intermediate files.
- When a job finishes, `<output>/_temporary` is removed from the DFS (best
  effort, retried; a failure there never changes the job's result).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from systems.mapreduce.jobs import JobError, load_job
from systems.mapreduce.messages import BadMessage, DoneReport, PingReply, SubmitRequest, TaskOrder, TaskRequest
from systems.mapreduce.partition import sample_boundaries
from systems.mapreduce.splits import Split, owned_start, plan_splits
from systems.mapreduce.store import FileStore, NotFound, StoreError, expand
from systems.mapreduce.tasks import Assignment, Job, JobSpec, JobState, Kind, Outcome, Rules, Scheduler, Verdict
from systems.mapreduce.worker import part_name
from systems.runtime.api import Message, RemoteError, RpcError, Runtime

STATE_FILE = "mr/coordinator/state"
FINISHED_ON_PING = 32

Caller = Callable[[str, str, Message, float], Awaitable[Message]]


def refuse(code: str, why: str) -> RemoteError:
    return RemoteError(why, code=code, definite=True)


@dataclass(frozen=True, slots=True)
class CoordinatorOptions:
    workers: tuple[str, ...]
    ping_interval_s: float = 0.5
    ping_timeout_s: float = 1.0
    worker_timeout_s: float = 3.0
    keep_jobs: int = 200
    sample_splits: int = 10
    sample_bytes: int = 64 * 1024


class Coordinator:
    def __init__(self, rt: Runtime, store: FileStore, opts: CoordinatorOptions, rules: Rules, call: Caller) -> None:
        self.rt = rt
        self.store = store
        self.opts = opts
        self.call = call
        self.sched = self._load(rules)
        self.durable_final: set[str] = {j.spec.id for j in self.sched.jobs.values() if j.state is not JobState.RUNNING}
        self._version = 0
        self._saved = 0
        self._save_lock = asyncio.Lock()
        self._planning: set[str] = set()
        self._answered: dict[str, tuple[int, int, asyncio.Future[Message]]] = {}
        """worker -> (incarnation, seq, reply) of its last task request: a duplicate gets the same reply."""
        self._cleaned: set[str] = set(self.durable_final)

    # -- persistence ----------------------------------------------------------------------------

    def _load(self, rules: Rules) -> Scheduler:
        raw = self.rt.disk.read(STATE_FILE)
        if raw is None:
            return Scheduler(rules)
        sched = Scheduler.from_wire(msgpack.unpackb(raw), rules)
        sched.presume_alive(self.rt.now())
        self.rt.log.info("mr-coordinator-recovered", jobs=len(sched.jobs), attempts=len(sched.attempts),
                         next_attempt=sched.next_attempt)
        return sched

    async def save(self) -> None:
        """Write and sync the table as it is now; concurrent callers share one write when they can."""
        self._version += 1
        wanted = self._version
        async with self._save_lock:
            if self._saved >= wanted:
                return
            version = self._version
            final = {j.spec.id for j in self.sched.jobs.values() if j.state is not JobState.RUNNING}
            self.rt.disk.write(STATE_FILE, msgpack.packb(self.sched.to_wire()))
            await self.rt.disk.sync(STATE_FILE)
            self._saved = version
            newly = final - self.durable_final
            self.durable_final |= final
        for job_id in sorted(newly):
            job = self.sched.jobs.get(job_id)
            if job is not None:
                self.rt.log.info("mr-job-finished", job=job_id, state=job.state.value, error=job.error)
                self.rt.spawn(self._cleanup(job), name=f"mr-cleanup-{job_id}")

    def start(self) -> None:
        self.rt.spawn(self._ping_loop(), name="mr-ping")
        for job in self.sched.jobs.values():
            if job.spec.id in self.durable_final and job.spec.id not in self._cleaned:
                self.rt.spawn(self._cleanup(job), name=f"mr-cleanup-{job.spec.id}")

    # -- client handlers ------------------------------------------------------------------------

    async def h_submit(self, src: str, msg: Message) -> Message:
        req = SubmitRequest.from_wire(msg)
        existing = self.sched.jobs.get(req.job)
        if existing is not None:
            if self._same(existing, req):
                return self.status(existing)
            raise refuse("job-exists", f"job {req.job} exists with a different request")
        if req.job in self._planning:
            raise RemoteError(f"job {req.job} is being planned; ask again", code="busy", definite=False)
        self._planning.add(req.job)
        try:
            spec, splits = await self._plan(req)
            self.sched.submit(spec, splits, self.rt.now())
        finally:
            self._planning.discard(req.job)
        await self.save()
        self.rt.log.info("mr-job-submitted", job=req.job, name=req.name, maps=len(splits), reduces=req.reduces)
        return self.status(self.sched.jobs[req.job])

    def _same(self, job: Job, req: SubmitRequest) -> bool:
        s = job.spec
        return (s.name, s.output, s.reduces, s.params, s.patterns) == (
            req.name, req.output, req.reduces, req.params, req.inputs)

    async def _plan(self, req: SubmitRequest) -> tuple[JobSpec, list[Split]]:
        try:
            job = load_job(req.name, req.params)
        except JobError as e:
            raise refuse("bad-job", str(e)) from None
        try:
            files = await expand(self.store, req.inputs)
            splits: list[Split] = []
            for path in files:
                info = await self.store.stat(path)
                for s in plan_splits(path, info.size, list(info.chunks)):
                    splits.append(Split(s.path, len(splits), s.offset, s.length, s.file_size, s.replicas))
            try:
                existing = await self.store.list(req.output)
            except NotFound:
                existing = []
            taken = [p for p in existing if p.rpartition("/")[2].startswith("part-")]
            if taken:
                raise refuse("output-exists", f"output {req.output} already holds {taken[0]}")
            boundaries: tuple[str, ...] = ()
            if job.partitioner == "range":
                boundaries = tuple(sample_boundaries(await self._sample(splits), req.reduces))
        except ValueError as e:
            raise refuse("bad-input", str(e)) from None
        except NotFound as e:
            raise refuse("no-input", str(e)) from None
        except StoreError as e:
            raise refuse("dfs-unavailable", f"planning job {req.job}: {e}") from None
        spec = JobSpec(req.job, req.name, tuple(files), req.output, req.reduces, dict(req.params),
                       job.partitioner, boundaries, patterns=req.inputs)
        return spec, splits

    async def _sample(self, splits: list[Split]) -> list[str]:
        """Whole lines from the start of up to `sample_splits` splits spread over the input."""
        if not splits:
            return []
        count = min(len(splits), self.opts.sample_splits)
        picked = [splits[(i * len(splits)) // count] for i in range(count)]
        keys: list[str] = []
        for s in picked:
            data = await self.store.read(s.path, max(0, s.offset - 1), min(s.length, self.opts.sample_bytes) + 1)
            prev, body = (data[:1], data[1:]) if s.offset > 0 else (b"", data)
            start = owned_start(prev, body)
            if start is None:
                continue
            text = body[start:].decode("utf-8", errors="replace")
            keys.extend(text.split("\n")[:-1])  # the last piece may be a cut line
        return keys

    def status(self, job: Job) -> dict[str, Any]:
        state = job.state.value if job.spec.id in self.durable_final else JobState.RUNNING.value
        attempts = self.sched.job_attempts(job.spec.id)
        return {
            "job": job.spec.id,
            "name": job.spec.name,
            "state": state,
            "error": job.error if state == JobState.FAILED.value else "",
            "inputs": list(job.spec.inputs),
            "output": job.spec.output,
            "params": job.spec.params,
            "reduces": job.spec.reduces,
            "partitioner": job.spec.partitioner,
            "boundaries": list(job.spec.boundaries),
            "parts": [f"{job.spec.output}/{part_name(r)}" for r in range(job.spec.reduces)],
            "map_tasks": job.counts(Kind.MAP),
            "reduce_tasks": job.counts(Kind.REDUCE),
            "executions": {
                "map": sum(1 for a in attempts if a.kind is Kind.MAP),
                "reduce": sum(1 for a in attempts if a.kind is Kind.REDUCE),
                "backup": sum(1 for a in attempts if a.backup),
            },
            "submitted_s": job.submitted_s,
            "finished_s": job.finished_s if state != JobState.RUNNING.value else None,
        }

    async def h_status(self, src: str, msg: Message) -> Message:
        job_id = msg.get("job") if isinstance(msg, dict) else None
        job = self.sched.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise refuse("no-such-job", f"no job {job_id!r}")
        return self.status(job)

    async def h_jobs(self, src: str, msg: Message) -> Message:
        return [self.status(j) for j in self.sched.jobs.values()]

    async def h_report(self, src: str, msg: Message) -> Message:
        """Every execution (the task timeline) and the workers as the coordinator sees them."""
        job_id = msg.get("job") if isinstance(msg, dict) else None
        attempts = [a.report() for a in self.sched.attempts.values() if job_id in (None, a.job)]
        workers = {w: {"incarnation": i.incarnation, "alive": i.alive, "last_heard_s": i.last_heard_s}
                   for w, i in sorted(self.sched.workers.items())}
        return {"now_s": self.rt.now(), "node": self.rt.node_id, "attempts": attempts, "workers": workers,
                "jobs": [self.status(j) for j in self.sched.jobs.values()]}

    # -- worker handlers ------------------------------------------------------------------------

    async def h_task(self, src: str, msg: Message) -> Message:
        req = TaskRequest.from_wire(msg)
        seen = self._answered.get(req.worker)
        if req.seq and seen is not None and seen[:2] == (req.incarnation, req.seq):
            return await asyncio.shield(seen[2])  # the same request delivered twice: the same answer
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._answered[req.worker] = (req.incarnation, req.seq, answer)
        try:
            reply = await self._assign(req)
        except BaseException as e:
            answer.set_exception(e)
            answer.exception()  # retrieved: a duplicate may never come to await it
            raise
        answer.set_result(reply)
        return reply

    async def _assign(self, req: TaskRequest) -> Message:
        now = self.rt.now()
        lost = self.sched.heard(req.worker, req.incarnation, now)
        got = self.sched.assign(req.worker, req.incarnation, now)
        if got is not None or lost:
            await self.save()
        if got is None:
            return None
        a = got.attempt
        self.rt.log.info("mr-assign", attempt=a.id, job=a.job, kind=a.kind.value, task=a.task, worker=a.worker,
                         backup=a.backup, local=a.local)
        return order_of(got).to_wire()

    async def h_done(self, src: str, msg: Message) -> Message:
        report = DoneReport.from_wire(msg)
        self.sched.heard(report.worker, report.incarnation, self.rt.now())
        verdict = self.apply(report)
        await self.save()
        return {"verdict": verdict}

    def apply(self, report: DoneReport) -> str:
        now = self.rt.now()
        attempt = self.sched.attempts.get(report.attempt)
        fresh = attempt is not None and attempt.outcome in (Outcome.RUNNING, Outcome.LOST)
        if report.ok:
            verdict = self.sched.complete(report.attempt, now).value
        elif not fresh:
            verdict = Verdict.DUPLICATE.value  # the same failure again (reports are delivered at least once)
        elif report.fetch_map >= 0:
            self.sched.fetch_failed(report.attempt, report.fetch_map, report.fetch_holder, now, report.error)
            verdict = "failed"
        else:
            self.sched.fail(report.attempt, now, report.error, job_error=report.job_error)
            verdict = "failed"
        if verdict != Verdict.DUPLICATE.value:
            self.rt.log.info("mr-report", attempt=report.attempt, worker=report.worker, ok=report.ok,
                             verdict=verdict, error=report.error)
        return verdict

    # -- pings ----------------------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        while True:
            await self.rt.sleep(self.opts.ping_interval_s)
            try:
                await self._ping_round()
            except Exception as e:  # a round must never stop the loop
                self.rt.log.warning("mr-ping-round-error", error=repr(e))

    async def _ping_round(self) -> None:
        sent = self.rt.now()
        finished = [j.spec.id for j in self.sched.jobs.values() if j.spec.id in self.durable_final]
        ping = {"finished_jobs": finished[-FINISHED_ON_PING:]}
        replies = await asyncio.gather(*(self._ping(w, ping) for w in self.opts.workers))
        changed = False
        for reply in replies:
            if reply is None:
                continue
            now = self.rt.now()
            changed |= bool(self.sched.heard(reply.worker, reply.incarnation, now))
            for report in reply.reports:
                if report.incarnation == reply.incarnation:
                    self.apply(report)
                    changed = True
            changed |= bool(self.sched.running_on(reply.worker, reply.incarnation, list(reply.running), sent))
        failed = self.sched.silent(self.rt.now(), self.opts.worker_timeout_s)
        for w in failed:
            self.rt.log.warning("mr-worker-failed", worker=w)
        if changed or failed:
            await self.save()
        self._forget_old_jobs()

    async def _ping(self, worker: str, ping: dict[str, Any]) -> PingReply | None:
        try:
            reply = PingReply.from_wire(await self.call(worker, "mr.ping", ping, self.opts.ping_timeout_s))
        except (RpcError, BadMessage):
            return None
        return reply if reply.worker == worker else None

    def _forget_old_jobs(self) -> None:
        finished = [j for j in self.sched.jobs.values() if j.spec.id in self.durable_final]
        for job in finished[: max(0, len(finished) - self.opts.keep_jobs)]:
            self.sched.forget(job.spec.id)

    # -- cleanup --------------------------------------------------------------------------------

    async def _cleanup(self, job: Job) -> None:
        self._cleaned.add(job.spec.id)
        tmp = f"{job.spec.output}/_temporary"
        for _ in range(10):
            try:
                await self.store.delete(tmp)
                return
            except NotFound:
                return
            except StoreError:
                await self.rt.sleep(1.0)


def order_of(got: Assignment) -> TaskOrder:
    a, spec = got.attempt, got.spec
    return TaskOrder(
        attempt=a.id, job=spec.id, kind=a.kind.value, task=a.task, name=spec.name, params=dict(spec.params),
        reduces=spec.reduces, partitioner=spec.partitioner, boundaries=spec.boundaries, output=spec.output,
        split=got.task.split, sources=tuple(got.sources),
    )
