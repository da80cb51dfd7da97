"""A MapReduce worker: asks the coordinator for tasks, runs them, serves its map output to reducers.

Rules this module keeps (paper §3.1, §3.3):

- Incarnation: at every start the worker raises a counter kept on its disk
  (synced before it asks for work), so the coordinator tells a restarted
  worker from its old self. A restart also deletes every intermediate file
  of the old incarnation: they were never synced, so after a crash they
  cannot be trusted, and the coordinator re-runs those map tasks anyway.
- A map execution reads its split from the DFS (the local replica first),
  the byte before it and, when its last line runs past the split, the
  following bytes up to that line's end (splits.py); runs the job; writes
  the R runs to its own disk as `mr/out/<job>/<attempt>/r<p>` (not synced:
  intermediate data is recomputed, not recovered); then reports.
- A reduce execution fetches its partition of every map output over RPC
  (`mr.fetch`), from the attempts the coordinator named, in map order; a
  fetch that fails ends the execution with a fetch-failure report naming
  that map. It writes its output to the DFS as
  `<output>/_temporary/part-r-NNNNN.attempt-A` and renames it to
  `<output>/part-r-NNNNN`; if another execution renamed first, its own
  temporary file is deleted and the task still counts as done (same bytes);
  a rename whose temporary file is already gone (the request was delivered
  twice, or retried) counts as done when the final name exists.
  (Planted bug `non-atomic-output`: it deletes and rewrites the final name
  in pieces, so readers and crashes see partial output.)
- Every execution ends in exactly one report to the coordinator (`mr.done`),
  retried until the coordinator answers; unanswered reports also ride on
  the next ping reply. Reports are idempotent at the coordinator.
- `mr.ping` answers with the incarnation, the attempts running, and the
  pending reports, and deletes the intermediate data of finished jobs.
- Job code runs on the node's event loop: a map over one split holds the
  worker (and the other roles of its process) for as long as it computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from systems.mapreduce.execute import JobFailure, run_map, run_reduce
from systems.mapreduce.jobs import JobError, load_job
from systems.mapreduce.messages import BadMessage, DoneReport, FetchRequest, Ping, PingReply, TaskOrder, TaskRequest
from systems.mapreduce.partition import partitioner
from systems.mapreduce.splits import line_tail, needs_tail, owned_text
from systems.mapreduce.store import Exists, FileStore, NotFound, StoreError
from systems.runtime.api import Message, RemoteError, RpcError, Runtime

INCARNATION_FILE = "mr/worker/incarnation"
OUT_DIR = "mr/out"
TAIL_PIECE_BYTES = 64 * 1024
FETCH_PIECE_BYTES = 8 * 1024 * 1024
BUGGY_PIECE_BYTES = 2048

Caller = Callable[[str, str, Message, float], Awaitable[Message]]


class FetchFailed(Exception):
    def __init__(self, map_index: int, holder: int, why: str) -> None:
        super().__init__(f"fetch of map {map_index} (attempt {holder}) failed: {why}")
        self.map_index, self.holder, self.why = map_index, holder, why


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    coordinator: str
    slots: int = 1
    poll_s: float = 0.2
    rpc_timeout_s: float = 2.0
    report_retry_s: float = 0.5
    non_atomic_output: bool = False
    """The planted bug `non-atomic-output`."""


def intermediate_name(job: str, attempt: int, partition: int) -> str:
    return f"{OUT_DIR}/{job}/{attempt}/r{partition}"


def part_name(partition: int) -> str:
    return f"part-r-{partition:05d}"


class Worker:
    def __init__(self, rt: Runtime, store: FileStore, opts: WorkerOptions, call: Caller) -> None:
        self.rt = rt
        self.store = store
        self.opts = opts
        self.call = call
        """`call(node, method, msg, timeout)`: RPC that reaches this node's own roles in-process."""
        self.incarnation = 0
        self.running: dict[int, TaskOrder] = {}
        self.pending: dict[int, DoneReport] = {}
        self.executed = 0
        self._slot_free = asyncio.Event()

    async def start(self) -> None:
        raw = self.rt.disk.read(INCARNATION_FILE)
        self.incarnation = (int(raw) if raw and raw.strip().isdigit() else 0) + 1
        self.rt.disk.write(INCARNATION_FILE, str(self.incarnation).encode())
        await self.rt.disk.sync(INCARNATION_FILE)
        stale = self.rt.disk.list(OUT_DIR + "/")
        for name in stale:
            self.rt.disk.delete(name)
        self.rt.log.info("mr-worker-started", incarnation=self.incarnation, wiped=len(stale))
        self.rt.spawn(self._ask_loop(), name="mr-worker")

    # -- handlers -------------------------------------------------------------------------------

    async def h_ping(self, src: str, msg: Message) -> Message:
        ping = Ping.from_wire(msg)
        for job in ping.finished_jobs:
            for name in self.rt.disk.list(f"{OUT_DIR}/{job}/"):
                self.rt.disk.delete(name)
        return PingReply(
            self.rt.node_id, self.incarnation, tuple(sorted(self.running)), tuple(self.pending.values())
        ).to_wire()

    async def h_fetch(self, src: str, msg: Message) -> Message:
        req = FetchRequest.from_wire(msg)
        data = self.rt.disk.read(intermediate_name(req.job, req.attempt, req.partition))
        if data is None:
            raise RemoteError(f"no output of attempt {req.attempt} here", code="no-output", definite=True)
        return {"data": data[req.offset : req.offset + req.length], "size": len(data)}

    # -- asking for work ------------------------------------------------------------------------

    async def _ask_loop(self) -> None:
        seq = 0
        while True:
            if len(self.running) >= self.opts.slots:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            seq += 1
            request = TaskRequest(self.rt.node_id, self.incarnation, seq).to_wire()
            try:
                reply = await self.call(self.opts.coordinator, "mr.task", request, self.opts.rpc_timeout_s)
            except RpcError:
                reply = None
            if reply is None:
                await self.rt.sleep(self.opts.poll_s)
                continue
            try:
                order = TaskOrder.from_wire(reply)
            except BadMessage as e:
                self.rt.log.warning("mr-bad-order", error=str(e))
                await self.rt.sleep(self.opts.poll_s)
                continue
            self.running[order.attempt] = order
            self.rt.spawn(self._execute(order), name=f"mr-{order.kind}-{order.attempt}")

    # -- running one execution ------------------------------------------------------------------

    async def _execute(self, order: TaskOrder) -> None:
        me, inc = self.rt.node_id, self.incarnation
        started = self.rt.now()
        self.rt.log.info("mr-task-start", attempt=order.attempt, job=order.job, kind=order.kind, task=order.task)
        try:
            stats = await (self._map(order) if order.kind == "map" else self._reduce(order))
            report = DoneReport(me, inc, order.attempt, True, stats={**stats, "s": self.rt.now() - started})
        except FetchFailed as e:
            report = DoneReport(me, inc, order.attempt, False, str(e), fetch_map=e.map_index, fetch_holder=e.holder)
        except (JobFailure, JobError) as e:
            report = DoneReport(me, inc, order.attempt, False, str(e), job_error=True)
        except StoreError as e:
            report = DoneReport(me, inc, order.attempt, False, f"DFS: {type(e).__name__}: {e}")
        except Exception as e:  # our own bug: log it loudly, let the coordinator retry the task elsewhere
            self.rt.log.error("mr-task-crashed", attempt=order.attempt, error=repr(e),
                              traceback="".join(traceback.format_exception(e)))
            report = DoneReport(me, inc, order.attempt, False, f"worker error: {e!r}")
        self.executed += 1
        self.rt.log.info("mr-task-end", attempt=order.attempt, ok=report.ok, error=report.error)
        self.pending[order.attempt] = report
        delivered = await self._deliver_once(report)
        self.running.pop(order.attempt, None)
        self._slot_free.set()
        if not delivered:
            await self._deliver(report)

    async def _deliver_once(self, report: DoneReport) -> bool:
        try:
            await self.call(self.opts.coordinator, "mr.done", report.to_wire(), self.opts.rpc_timeout_s)
        except RpcError:
            return False
        self.pending.pop(report.attempt, None)
        return True

    async def _deliver(self, report: DoneReport) -> None:
        while report.attempt in self.pending and not await self._deliver_once(report):
            await self.rt.sleep(self.opts.report_retry_s)

    # -- map ------------------------------------------------------------------------------------

    async def _map(self, order: TaskOrder) -> dict[str, Any]:
        split = order.split
        assert split is not None
        me = self.rt.node_id
        body = await self.store.read(split.path, split.offset, split.length, prefer=me)
        prev = await self.store.read(split.path, split.offset - 1, 1, prefer=me) if split.offset > 0 else b""
        tail = b""
        if needs_tail(prev, body, split.offset + len(body), split.file_size):
            pos = split.offset + len(body)
            while pos < split.file_size:
                more = await self.store.read(split.path, pos, TAIL_PIECE_BYTES, prefer=me)
                if not more:
                    break
                piece, done = line_tail(more)
                tail += piece
                pos += len(more)
                if done:
                    break
        text = owned_text(prev, body, tail)
        job = load_job(order.name, order.params)
        part = partitioner(job.partitioner, order.reduces, order.boundaries)
        result = run_map(job, split.path, text, part, order.reduces)
        for p, run in enumerate(result.runs):
            self.rt.disk.write(intermediate_name(order.job, order.attempt, p), run)
        return {"input_bytes": len(body) + len(tail), "records": sum(result.records),
                "output_bytes": sum(len(r) for r in result.runs)}

    # -- reduce ---------------------------------------------------------------------------------

    async def _reduce(self, order: TaskOrder) -> dict[str, Any]:
        job = load_job(order.name, order.params)
        runs = [await self._fetch(order, m, worker, holder) for m, worker, _inc, holder in order.sources]
        data = run_reduce(job, runs)
        await self._commit(order, data)
        return {"input_bytes": sum(len(r) for r in runs), "output_bytes": len(data)}

    async def _fetch(self, order: TaskOrder, map_index: int, worker: str, holder: int) -> bytes:
        if worker == self.rt.node_id:
            data = self.rt.disk.read(intermediate_name(order.job, holder, order.task))
            if data is None:
                raise FetchFailed(map_index, holder, "not on this worker's disk")
            return data
        pieces: list[bytes] = []
        offset, size = 0, None
        while size is None or offset < size:
            req = FetchRequest(order.job, holder, order.task, offset, FETCH_PIECE_BYTES)
            try:
                reply = await self.call(worker, "mr.fetch", req.to_wire(), self.opts.rpc_timeout_s)
                piece, size = reply["data"], int(reply["size"])
            except RpcError as e:
                raise FetchFailed(map_index, holder, f"{worker}: {e.code}: {e.message}") from None
            except (KeyError, TypeError, ValueError):
                raise FetchFailed(map_index, holder, f"{worker}: malformed fetch reply") from None
            if not isinstance(piece, bytes) or (not piece and offset < size):
                raise FetchFailed(map_index, holder, f"{worker}: short fetch reply")
            pieces.append(piece)
            offset += len(piece)
        return b"".join(pieces)

    async def _commit(self, order: TaskOrder, data: bytes) -> None:
        final = f"{order.output}/{part_name(order.task)}"
        if self.opts.non_atomic_output:
            await self._write_in_place(final, data)
            return
        tmp = f"{order.output}/_temporary/{part_name(order.task)}.attempt-{order.attempt}"
        await self.store.write(tmp, data)
        try:
            await self.store.rename(tmp, final)
        except Exists:
            self.rt.log.info("mr-commit-lost-race", attempt=order.attempt, final=final)
            with contextlib.suppress(StoreError):  # else the coordinator removes _temporary at the end
                await self.store.delete(tmp)
        except NotFound:
            await self.store.stat(final)  # a rename delivered twice: the first moved it; the partition is in place
        except StoreError as e:
            if e.definite:
                raise
            await self.store.stat(final)  # the rename may have happened: then the partition is in place

    async def _write_in_place(self, final: str, data: bytes) -> None:
        """Planted bug non-atomic-output: rewrite the final name piece by piece."""
        with contextlib.suppress(NotFound):
            await self.store.delete(final)
        pieces = [data[i : i + BUGGY_PIECE_BYTES] for i in range(0, len(data), BUGGY_PIECE_BYTES)] or [b""]
        await self.store.write(final, pieces[0])
        offset = len(pieces[0])
        for piece in pieces[1:]:
            await self.store.write_at(final, offset, piece)
            offset += len(piece)
