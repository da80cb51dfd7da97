"""MapReduce coordinator and workers in the deterministic simulator, over an in-memory file store.

These are unit tests of the node roles (the real DFS underneath is in the
end-to-end tests): every wait is on a condition with a bound in virtual time.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from systems.mapreduce import DEFAULT_OPTIONS, MrNode
from systems.mapreduce.execute import sequential
from systems.mapreduce.jobs import load_job
from systems.mapreduce.partition import partitioner
from systems.mapreduce.store import Exists, FileInfo, NotFound
from systems.runtime.api import NodeConfig, RemoteError, Runtime
from systems.runtime.sim import SimWorld

NODES = ["n1", "n2", "n3"]


class MemoryStore:
    """A shared in-memory file system (sim only: every node lives in one process)."""

    def __init__(self, nodes: list[str], chunk: int = 64) -> None:
        self.files: dict[str, bytes] = {}
        self.nodes = nodes
        self.chunk = chunk
        self.renames = 0

    async def _yield(self) -> None:
        await asyncio.sleep(0)

    def _replicas(self, path: str, index: int) -> tuple[str, ...]:
        h = zlib.crc32(f"{path}#{index}".encode())
        return tuple(self.nodes[(h + k) % len(self.nodes)] for k in range(2))

    async def list(self, directory: str) -> list[str]:
        await self._yield()
        prefix = directory.rstrip("/") + "/"
        found = sorted(p for p in self.files if p.startswith(prefix) and "/" not in p[len(prefix):])
        if not found and not any(p.startswith(prefix) for p in self.files):
            raise NotFound(directory)
        return found

    async def stat(self, path: str) -> FileInfo:
        await self._yield()
        if path not in self.files:
            raise NotFound(path)
        size = len(self.files[path])
        chunks = tuple((o, min(self.chunk, size - o), self._replicas(path, o // self.chunk))
                       for o in range(0, size, self.chunk))
        return FileInfo(path, size, chunks)

    async def read(self, path: str, offset: int, length: int, prefer: str | None = None) -> bytes:
        await self._yield()
        if path not in self.files:
            raise NotFound(path)
        return self.files[path][offset : offset + length]

    async def write(self, path: str, data: bytes) -> None:
        await self._yield()
        if path in self.files:
            raise Exists(path)
        self.files[path] = bytes(data)

    async def write_at(self, path: str, offset: int, data: bytes) -> None:
        await self._yield()
        if path not in self.files:
            raise NotFound(path)
        old = self.files[path]
        self.files[path] = old[:offset].ljust(offset, b"\0") + data + old[offset + len(data):]

    async def rename(self, src: str, dst: str) -> None:
        await self._yield()
        if src not in self.files:
            raise NotFound(src)
        if dst in self.files:
            raise Exists(dst)
        self.files[dst] = self.files.pop(src)
        self.renames += 1

    async def delete(self, path: str) -> None:
        await self._yield()
        gone = [p for p in self.files if p == path or p.startswith(path.rstrip("/") + "/")]
        if not gone:
            raise NotFound(path)
        for p in gone:
            del self.files[p]


CORPUS = {
    "/in/a.txt": ("the quick brown fox jumps over the lazy dog\n" * 7 + "the end\n").encode(),
    "/in/b.txt": (b"a b c d e f g the fox\nno newline at the end"),
    "/in/c.txt": b"".join(f"line {i} of c with word{i % 5}\n".encode() for i in range(30)),
}


def run_cluster(
    body: Callable[[SimWorld, Runtime, MemoryStore], Awaitable[Any]],
    *,
    options: dict[str, Any] | None = None,
    bugs: tuple[str, ...] = (),
    seed: int = 1,
    files: dict[str, bytes] | None = None,
) -> Any:
    world = SimWorld(seed, NODES, time_limit_s=3600.0)
    store = MemoryStore(NODES)
    store.files.update(CORPUS if files is None else files)
    config = NodeConfig("mapreduce", bugs, {**DEFAULT_OPTIONS, **(options or {})}, seed)

    async def start(rt: Runtime, cfg: NodeConfig) -> None:
        await MrNode(rt, cfg, store).start()

    async def main() -> Any:
        for n in world.nodes:
            await world.start(n, start, config)
        return await body(world, world.client("client"), store)

    return world.run(main())


async def submit(rt: Runtime, job: str, name: str = "wordcount", *, reduces: int = 3,
                 inputs: list[str] | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg = {"job": job, "name": name, "inputs": inputs or ["/in/*"], "output": f"/out/{job}",
           "reduces": reduces, "params": params or {}}
    return await rt.call("n1", "mr.submit", msg, timeout=5.0)


async def wait_done(rt: Runtime, job: str, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = rt.now() + timeout_s
    while True:
        try:
            st = await rt.call("n1", "mr.status", {"job": job}, timeout=2.0)
        except Exception:
            st = None
        if st is not None and st["state"] != "running":
            return st
        assert rt.now() < deadline, f"job {job} not finished in {timeout_s} virtual seconds: {st}"
        await rt.sleep(0.2)


def expected(name: str, reduces: int, files: dict[str, bytes], params: dict[str, Any] | None = None) -> list[bytes]:
    job = load_job(name, params)
    inputs = [(path, data.decode()) for path, data in sorted(files.items())]
    return sequential(job, inputs, partitioner(job.partitioner, reduces), reduces)


def outputs(store: MemoryStore, job: str, reduces: int) -> list[bytes]:
    return [store.files[f"/out/{job}/part-r-{r:05d}"] for r in range(reduces)]


def test_wordcount_output_equals_the_sequential_run():
    async def body(world: SimWorld, rt: Runtime, store: MemoryStore) -> None:
        st = await submit(rt, "wc1")
        assert st["map_tasks"]["idle"] == sum((len(d) + 63) // 64 for d in CORPUS.values())
        done = await wait_done(rt, "wc1")
        assert done["state"] == "done"
        assert outputs(store, "wc1", 3) == expected("wordcount", 3, CORPUS)
        m = sum((len(d) + 63) // 64 for d in CORPUS.values())
        assert done["executions"] == {"map": m, "reduce": 3, "backup": 0}
        assert not any(p.startswith("/out/wc1/_temporary") for p in store.files)

    run_cluster(body)


@pytest.mark.parametrize("name,params", [("indexer", None), ("grep", {"pattern": "fox|word3"}), ("sort", None)])
def test_other_builtin_jobs_equal_their_sequential_runs(name, params):
    async def body(world: SimWorld, rt: Runtime, store: MemoryStore) -> None:
        await submit(rt, "j", name, reduces=2, params=params)
        done = await wait_done(rt, "j")
        assert done["state"] == "done"
        got = outputs(store, "j", 2)
        if name == "sort":
            text = b"".join(got).decode()
            lines = [ln for d in CORPUS.values() for ln in d.decode().split("\n") if ln]
            assert text.splitlines() == sorted(lines)
            assert len(done["boundaries"]) == 1
        else:
            assert got == expected(name, 2, CORPUS, params)

    run_cluster(body)


def test_submission_errors_are_definite_and_name_the_problem():
    async def body(world: SimWorld, rt: Runtime, store: MemoryStore) -> None:
        for kwargs, code in [
            ({"inputs": ["/nope/*"]}, "no-input"),
            ({"inputs": ["/in/missing.txt"]}, "no-input"),
            ({"name": "no.such.job"}, "bad-job"),
        ]:
            with pytest.raises(RemoteError) as e:
                await submit(rt, "bad", **kwargs)
            assert e.value.code == code and e.value.definite
        with pytest.raises(RemoteError) as e:
            await rt.call("n1", "mr.submit", {"job": "x", "inputs": "no"}, timeout=2.0)
        assert e.value.code == "bad-request"
        with pytest.raises(RemoteError) as e:
            await rt.call("n2", "mr.status", {"job": "x"}, timeout=2.0)
        assert e.value.code == "not-coordinator"
        first = await submit(rt, "same")
        again = await submit(rt, "same")
        assert again["job"] == first["job"]
        with pytest.raises(RemoteError) as e:
            await submit(rt, "same", reduces=5)
        assert e.value.code == "job-exists"
        await wait_done(rt, "same")
        with pytest.raises(RemoteError) as e:
            await rt.call("n1", "mr.submit", {"job": "other", "name": "wordcount", "inputs": ["/in/*"],
                                              "output": "/out/same", "reduces": 3, "params": {}}, timeout=2.0)
        assert e.value.code == "output-exists"

    run_cluster(body)


@pytest.mark.parametrize("fetch_failures_to_rerun", [2, 1000])
def test_a_worker_killed_after_its_maps_completed_has_them_rerun(fetch_failures_to_rerun):
    """Kill a worker once it completed a map: its output is gone, so those map tasks run again elsewhere,
    found either by the reducers' fetch failures or (threshold out of reach) by the coordinator's pings."""

    async def body(world: SimWorld, rt: Runtime, store: MemoryStore) -> None:
        await submit(rt, "wc", reduces=3)
        deadline = rt.now() + 60
        while True:
            rep = await rt.call("n1", "mr.report", {"job": "wc"}, timeout=2.0)
            on_n3 = {a["task"] for a in rep["attempts"] if a["kind"] == "map" and a["worker"] == "n3"
                     and a["outcome"] == "completed"}
            if on_n3:
                break
            assert rt.now() < deadline
            await rt.sleep(0.05)
        world.crash("n3")
        done = await wait_done(rt, "wc")
        await world.restart("n3")
        assert done["state"] == "done"
        assert outputs(store, "wc", 3) == expected("wordcount", 3, CORPUS)
        rep = await rt.call("n1", "mr.report", {"job": "wc"}, timeout=2.0)
        for task in on_n3:
            again = [a for a in rep["attempts"] if a["kind"] == "map" and a["task"] == task
                     and a["worker"] != "n3" and a["outcome"] == "completed"]
            assert again, f"map {task} was not re-run after n3 died"

    run_cluster(body, options={"fetch_failures_to_rerun": fetch_failures_to_rerun})


def test_the_coordinator_survives_its_own_crash():
    async def body(world: SimWorld, rt: Runtime, store: MemoryStore) -> None:
        await submit(rt, "wc", reduces=2)
        await rt.sleep(0.3)
        world.crash("n1")
        await rt.sleep(1.0)
        await world.restart("n1")
        done = await wait_done(rt, "wc")
        assert done["state"] == "done"
        assert outputs(store, "wc", 2) == expected("wordcount", 2, CORPUS)

    run_cluster(body)


def test_a_paused_worker_is_a_straggler_that_a_backup_overtakes():
    async def body(world: SimWorld, rt: Runtime, store: MemoryStore) -> None:
        await submit(rt, "wc", reduces=2)
        deadline = rt.now() + 60
        while True:
            rep = await rt.call("n1", "mr.report", {"job": "wc"}, timeout=2.0)
            running = [a for a in rep["attempts"] if a["worker"] == "n2" and a["outcome"] == "running"]
            if running:
                break
            assert rt.now() < deadline
            await rt.sleep(0.01)
        world.pause("n2")
        done = await wait_done(rt, "wc")
        world.resume("n2")
        assert done["state"] == "done"
        assert outputs(store, "wc", 2) == expected("wordcount", 2, CORPUS)

    run_cluster(body, options={"worker_timeout_s": 30.0, "backup_min_s": 1.0})
