"""A MapReduce node: the coordinator role on one node, a worker on every worker node, one process.

Rules this module keeps:

- Roles come from options: `coordinator` names the coordinator's node
  (empty: the DFS master's node, option `master`, else the first node in
  sorted order); `workers` lists the worker nodes (empty: every node). A
  node may hold both.
- A call to a role on this same node is a direct call, not a message over
  the network (the node's own worker is pinged, and its coordinator asked
  for work, without touching the transport); calls to other nodes go
  through `rt.call`.
- Every handler validates its input: a malformed request is answered with
  a definite `bad-request` error and the node keeps serving. A client
  request that reaches a node which is not the coordinator is answered
  with a definite `not-coordinator` error naming the coordinator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from systems.mapreduce.coordinator import Coordinator, CoordinatorOptions
from systems.mapreduce.messages import BadMessage
from systems.mapreduce.store import FileStore
from systems.mapreduce.tasks import Rules
from systems.mapreduce.worker import Worker, WorkerOptions
from systems.runtime.api import Handler, Message, NodeConfig, RemoteError, Runtime, Unreachable

CLIENT_METHODS = ("mr.submit", "mr.status", "mr.jobs", "mr.report")


def guarded(handler: Handler) -> Handler:
    async def run(src: str, msg: Message) -> Message:
        try:
            return await handler(src, msg)
        except BadMessage as e:
            raise RemoteError(str(e), code="bad-request", definite=True) from None

    return run


def roles(node_id: str, nodes: list[str], options: dict[str, Any]) -> tuple[str, list[str]]:
    """(the coordinator's node, the worker nodes) for this cluster and these options."""
    everyone = sorted(nodes)
    master = options.get("master") if options.get("master") in everyone else everyone[0]
    coordinator = str(options.get("coordinator") or master)
    workers = [str(w) for w in options.get("workers") or everyone]
    return coordinator, sorted(w for w in workers if w in everyone)


class MrNode:
    def __init__(self, rt: Runtime, config: NodeConfig, store: FileStore) -> None:
        opts = config.options
        bugs = frozenset(config.bugs)
        self.rt = rt
        self.local: dict[str, Handler] = {}
        self.coordinator_node, self.worker_nodes = roles(rt.node_id, [rt.node_id, *rt.peers], opts)
        self.coordinator: Coordinator | None = None
        self.worker: Worker | None = None
        rpc_timeout_s = float(opts.get("mr_rpc_timeout_s", 2.0))
        if rt.node_id == self.coordinator_node:
            rules = Rules(
                backups=bool(opts.get("backups", True)),
                backup_min_s=float(opts.get("backup_min_s", 2.0)),
                backup_factor=float(opts.get("backup_factor", 2.0)),
                max_task_failures=int(opts.get("max_task_failures", 4)),
                fetch_failures_to_rerun=int(opts.get("fetch_failures_to_rerun", 2)),
                assign_grace_s=float(opts.get("assign_grace_s", 1.0)),
                reexec_maps="no-reexec-maps" not in bugs,
                double_commit="double-commit" in bugs,
            )
            copts = CoordinatorOptions(
                workers=tuple(self.worker_nodes),
                ping_interval_s=float(opts.get("ping_interval_s", 0.5)),
                ping_timeout_s=float(opts.get("ping_timeout_s", 1.0)),
                worker_timeout_s=float(opts.get("worker_timeout_s", 3.0)),
                keep_jobs=int(opts.get("keep_jobs", 200)),
                sample_splits=int(opts.get("sample_splits", 10)),
                sample_bytes=int(opts.get("sample_bytes", 64 * 1024)),
            )
            self.coordinator = Coordinator(rt, store, copts, rules, self.call)
        if rt.node_id in self.worker_nodes:
            wopts = WorkerOptions(
                coordinator=self.coordinator_node,
                slots=int(opts.get("slots", 1)),
                poll_s=float(opts.get("poll_s", 0.2)),
                rpc_timeout_s=rpc_timeout_s,
                report_retry_s=float(opts.get("report_retry_s", 0.5)),
                non_atomic_output="non-atomic-output" in bugs,
            )
            self.worker = Worker(rt, store, wopts, self.call)

    async def call(self, node: str, method: str, msg: Message, timeout: float) -> Message:
        if node == self.rt.node_id:
            handler = self.local.get(method)
            if handler is None:
                raise Unreachable(f"{method} is not served on {node}")
            return await handler(node, msg)
        return await self.rt.call(node, method, msg, timeout=timeout)

    def _serve(self, method: str, handler: Handler) -> None:
        h = guarded(handler)
        self.local[method] = h
        self.rt.serve(method, h)

    async def _not_coordinator(self, src: str, msg: Message) -> Message:
        raise RemoteError(f"the coordinator is {self.coordinator_node}", code="not-coordinator", definite=True)

    async def start(self) -> None:
        c, w = self.coordinator, self.worker
        if c is not None:
            handlers: dict[str, Callable[[str, Message], Awaitable[Message]]] = {
                "mr.submit": c.h_submit, "mr.status": c.h_status, "mr.jobs": c.h_jobs, "mr.report": c.h_report,
                "mr.task": c.h_task, "mr.done": c.h_done,
            }
            for method, handler in handlers.items():
                self._serve(method, handler)
        else:
            for method in CLIENT_METHODS:
                self.rt.serve(method, self._not_coordinator)
        if w is not None:
            self._serve("mr.ping", w.h_ping)
            self._serve("mr.fetch", w.h_fetch)
            await w.start()
        if c is not None:
            c.start()
        self.rt.log.info("mr-started", coordinator=self.coordinator_node, worker=w is not None)
