"""The MapReduce client library: submit jobs, watch them, and move files in and out of the DFS.

This is the declared client module of `systems/mapreduce` (the workload,
the CLI and the benchmark import it, never the node's internals).

Rules this module keeps:

- The coordinator is found by the same rule the nodes use (option
  `coordinator`, else the DFS master's node, else the first node).
- Every call raises the runtime's `RpcError` family (MapReduce RPCs) or the
  store's `StoreError` family (DFS operations) unchanged, with their
  `definite` flags, so the caller decides between `fail` and `info`.
- `put_file` stores a whole file atomically: it writes a staging name
  under `/.staging` and renames it into place, so a reader (or a job's
  input pattern) never meets a half-written input file.
- `read_output(dir)` returns the part files present in an output directory
  (name -> bytes); partitions not committed yet are simply absent.
"""

from __future__ import annotations

from typing import Any

from systems.dfs.client import DfsClient
from systems.mapreduce.dfs_store import DfsStore
from systems.mapreduce.node import roles
from systems.mapreduce.store import Exists, FileStore, NotFound, StoreError
from systems.runtime.api import RpcError, Runtime

__all__ = ["Exists", "MrClient", "NotFound", "StoreError", "coordinator_of", "find_coordinator", "output_holders"]

STAGING = "/.staging"


def coordinator_of(nodes: list[str], options: dict[str, Any]) -> str:
    return roles(nodes[0], nodes, options)[0]


async def find_coordinator(rt: Runtime, nodes: list[str], timeout_s: float = 0.5) -> str | None:
    """The node that answers `mr.jobs` (every other node says not-coordinator), or None if none answers."""
    for n in sorted(nodes):
        try:
            await rt.call(n, "mr.jobs", {}, timeout=timeout_s)
        except RpcError:
            continue
        return n
    return None


def output_holders(report: dict[str, Any]) -> dict[str, int]:
    """From a coordinator report: worker -> how many completed map outputs it holds that a running job's
    reduce tasks still need (jobs whose map phase is over count first: their reducers are fetching)."""
    need = {}
    for st in report.get("jobs") or []:
        reduces = st.get("reduce_tasks") or {}
        if st.get("state") == "running" and reduces.get("completed", 0) < sum(reduces.values()):
            need[st["job"]] = 2 if (st.get("map_tasks") or {}).get("idle", 1) == 0 else 1
    out: dict[str, int] = {}
    for a in report.get("attempts") or []:
        if a["kind"] == "map" and a["outcome"] == "completed" and a["job"] in need and "lost" not in a["note"]:
            out[a["worker"]] = out.get(a["worker"], 0) + need[a["job"]]
    return out


class MrClient:
    def __init__(
        self,
        rt: Runtime,
        nodes: list[str],
        options: dict[str, Any],
        *,
        home: str | None = None,
        timeout_s: float = 5.0,
        store: FileStore | None = None,
    ) -> None:
        self.rt = rt
        self.nodes = sorted(nodes)
        self.coordinator = coordinator_of(self.nodes, options)
        self.timeout_s = timeout_s
        self.store: FileStore = store or DfsStore(rt, self.nodes, options, home=home, timeout_s=timeout_s)
        self._staged = 0

    @property
    def dfs(self) -> DfsClient | None:
        """The DFS client underneath, when the files live in the DFS (for its fsck and repairs)."""
        return self.store.client if isinstance(self.store, DfsStore) else None

    async def _call(self, method: str, msg: Any) -> Any:
        return await self.rt.call(self.coordinator, method, msg, timeout=self.timeout_s)

    # -- jobs -----------------------------------------------------------------------------------

    async def submit(
        self, job: str, name: str, inputs: list[str], output: str, reduces: int, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        msg = {"job": job, "name": name, "inputs": list(inputs), "output": output, "reduces": reduces,
               "params": dict(params or {})}
        return dict(await self._call("mr.submit", msg))

    async def status(self, job: str) -> dict[str, Any]:
        return dict(await self._call("mr.status", {"job": job}))

    async def jobs(self) -> list[dict[str, Any]]:
        return list(await self._call("mr.jobs", {}))

    async def report(self, job: str | None = None) -> dict[str, Any]:
        """Every execution the coordinator knows (the task timeline), its clock, and the workers."""
        return dict(await self._call("mr.report", {} if job is None else {"job": job}))

    # -- files ----------------------------------------------------------------------------------

    async def put_file(self, path: str, data: bytes) -> None:
        self._staged += 1
        staging = f"{STAGING}/{self.rt.node_id}-{self.rt.rng.getrandbits(40):010x}-{self._staged}"
        await self.store.write(staging, data)
        await self.store.rename(staging, path)

    async def read_file(self, path: str) -> bytes:
        info = await self.store.stat(path)
        return await self.store.read(path, 0, max(info.size, 1))

    async def list_outputs(self, output: str) -> list[str]:
        try:
            found = await self.store.list(output)
        except NotFound:
            return []
        return [p for p in found if p.rpartition("/")[2].startswith("part-")]

    async def read_output(self, output: str) -> dict[str, bytes]:
        out = {}
        for path in await self.list_outputs(output):
            try:
                out[path.rpartition("/")[2]] = await self.read_file(path)
            except NotFound:
                continue  # listed, then gone: only a planted bug deletes a part file
        return out
