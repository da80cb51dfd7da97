"""The contenders of the DFS benchmark (bench/bench_dfs.py): our DFS through its client library, MooseFS through
its FUSE mount. Both offer the same operations, each returning the latency of every 1 MiB operation.

Rules this module keeps:

- Sizes: every operation moves `MiB` bytes. `write_files(prefix, clients, mb)`:
  client w writes its own file `prefix-w` of mb/clients MiB, one operation
  after another, all clients at once. `read_files` reads those files back
  the same way and checks every byte. `append(path, clients, mb)`: every
  client appends 1 MiB records to one shared file until mb MiB went in.
- Durability, matched: our DFS acknowledges a write or an append only once
  every replica synced it (data and checksums, fsync). MooseFS writes are
  followed by an fsync of the FUSE file after every 1 MiB operation
  (mfsmount flushes the data through the chain of chunkservers, which fsync
  the chunk on close: HDD_FSYNC_BEFORE_CLOSE = 1), timed with the write: so
  MooseFS syncs exactly as often as ours acknowledges durably.
- Our clients have one connection (`ClientEndpoint`) each; MooseFS clients
  are threads sharing the one mount, as processes on one machine do.
- `rereplicate()` kills one chunkserver (SIGKILL; never our master's node),
  waits until every chunk has its goal of replicas again, then starts the
  chunkserver again and waits until the cluster is back to steady state.
  It returns the seconds from the kill to full replication and the bytes
  copied: ours, as the master's re-replication events count them; MooseFS,
  the bytes its files had on the dead chunkserver (mfsfileinfo).
- Server processes (`server_pids`) are the ones CPU time per MB is counted
  for: our 4 nodes (n1 also runs the master); MooseFS's master and
  chunkservers. `client_pids` are other processes of the client side
  (mfsmount); the benchmark process's own CPU is counted as client too.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moosefs_cluster import MASTER_CLIENT_PORT, MooseFS

from harness.backends.local import LocalCluster
from systems.dfs.client import DfsClient, DfsError, master_report
from systems.runtime.real import ClientEndpoint

MiB = 1 << 20
OP_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 300.0


def payload(i: int, base: bytes) -> bytes:
    """Operation i's 1 MiB: a 16-byte header naming it, then `base`, so a misplaced MiB never reads back right."""
    return f"{i:016d}".encode() + base[16:]


@dataclass
class Ops:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bytes: int = 0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, int(q * len(values)))]

    @property
    def p50(self) -> float:
        return self.percentile(0.5)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    def merge(self, other: Ops) -> None:
        self.latencies_ms += other.latencies_ms
        self.errors += other.errors
        self.bytes += other.bytes


@dataclass(frozen=True)
class Rereplication:
    seconds: float
    bytes: int
    detected_s: float | None
    """From the kill until the master knew the chunkserver was gone."""
    victim: str


def share(mb: int, clients: int) -> list[int]:
    """mb MiB as per-client operation counts."""
    return [mb // clients + (1 if w < mb % clients else 0) for w in range(clients)]


# ---------------------------------------------------------------------------------------------- ours


class OurDfs:
    via = "Python client library"

    def __init__(self, name: str, cluster: LocalCluster) -> None:
        self.name = name
        self.cluster = cluster
        self.endpoints: list[ClientEndpoint] = []
        self.clients: list[DfsClient] = []
        self.admin = DfsClient(cluster.client, cluster.nodes, master="n1", timeout_s=OP_TIMEOUT_S)
        self.base = os.urandom(MiB)

    def server_pids(self) -> dict[str, int]:
        return {("n1 (master+cs)" if n == "n1" else n): p for n in self.cluster.nodes
                if (p := self.cluster.pid(n)) is not None}

    def client_pids(self) -> dict[str, int]:
        return {}

    async def ready(self) -> None:
        await self._until(self._steady, "4 chunkservers alive and healthy")

    async def _steady(self) -> bool:
        try:
            f = await self.admin.fsck(timeout_s=2.0)
        except DfsError:
            return False
        return len(f["alive"]) == len(self.cluster.nodes) and bool(f["healthy"]) and not f["hidden"]

    async def _until(self, cond: Any, what: str, timeout_s: float = SETTLE_TIMEOUT_S) -> float:
        started = time.monotonic()
        while not await cond():
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"{self.name}: not {what} within {timeout_s:g}s")
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def _open(self, n: int) -> list[DfsClient]:
        while len(self.clients) < n:
            w = len(self.clients)
            ep = ClientEndpoint(self.cluster.addrs, node_id=f"bench{w}")
            self.endpoints.append(ep)
            self.clients.append(DfsClient(ep, self.cluster.nodes, master="n1", timeout_s=OP_TIMEOUT_S))
        return self.clients[:n]

    async def close(self) -> None:
        for ep in self.endpoints:
            await ep.close()
        self.endpoints, self.clients = [], []

    async def write_files(self, prefix: str, clients: int, mb: int) -> Ops:
        cs = await self._open(clients)

        async def one(w: int, n: int) -> Ops:
            c, out, path = cs[w], Ops(), f"{prefix}-{w}"
            await c.create(path)
            for i in range(n):
                started = time.perf_counter()
                try:
                    await c.write(path, i * MiB, payload(i, self.base))
                except DfsError as e:
                    out.errors.append(str(e))
                    continue
                out.latencies_ms.append((time.perf_counter() - started) * 1e3)
                out.bytes += MiB
            return out

        return _merged(await asyncio.gather(*(one(w, n) for w, n in enumerate(share(mb, clients)))))

    async def read_files(self, prefix: str, clients: int, mb: int) -> Ops:
        cs = await self._open(clients)

        async def one(w: int, n: int) -> Ops:
            c, out, path = cs[w], Ops(), f"{prefix}-{w}"
            for i in range(n):
                started = time.perf_counter()
                try:
                    got = await c.read(path, i * MiB, MiB)
                except DfsError as e:
                    out.errors.append(str(e))
                    continue
                took = (time.perf_counter() - started) * 1e3
                if got != payload(i, self.base):
                    out.errors.append(f"{path} MiB {i}: wrong bytes ({len(got)} read)")
                    continue
                out.latencies_ms.append(took)
                out.bytes += MiB
            return out

        return _merged(await asyncio.gather(*(one(w, n) for w, n in enumerate(share(mb, clients)))))

    async def append(self, path: str, clients: int, mb: int) -> Ops:
        cs = await self._open(clients)
        await cs[0].create(path)

        async def one(w: int, n: int) -> Ops:
            c, out = cs[w], Ops()
            for i in range(n):
                started = time.perf_counter()
                try:
                    await c.append(path, payload(i, self.base))
                except DfsError as e:
                    out.errors.append(str(e))
                    continue
                out.latencies_ms.append((time.perf_counter() - started) * 1e3)
                out.bytes += MiB
            return out

        return _merged(await asyncio.gather(*(one(w, n) for w, n in enumerate(share(mb, clients)))))

    async def delete_all(self) -> None:
        for path in await self.admin.ls("/"):
            await self.admin.delete(path)
        await self._until(self._steady, "purged")

    async def rereplicate(self) -> Rereplication:
        report = await master_report(self.cluster.client, "n1", timeout_s=5.0)
        assert report is not None, "the master does not answer"
        held: dict[str, int] = {}
        for chunk in report["chunks"].values():
            for node, (_, length) in chunk["replicas"].items():
                held[node] = held.get(node, 0) + length
        victim = max((n for n in self.cluster.nodes if n != "n1"), key=lambda n: (held.get(n, 0), n))
        before = {id_(e) for e in report["events"] if e["kind"] == "re-replicated"}
        killed = time.monotonic()
        await self.cluster.kill(victim)

        async def noticed() -> bool:
            r = await master_report(self.cluster.client, "n1", timeout_s=2.0)
            return r is not None and victim not in r["alive"]

        detected = await self._until(noticed, f"aware that {victim} died")

        async def replicated() -> bool:
            try:
                f = await self.admin.fsck(timeout_s=2.0)
            except DfsError:
                return False
            return not f["under_replicated"] and not f["lost"] and not f["stale"] and not f["corrupt"]

        await self._until(replicated, "fully replicated")
        took = time.monotonic() - killed
        after = await master_report(self.cluster.client, "n1", timeout_s=5.0)
        assert after is not None
        copied = sum(e["bytes"] for e in after["events"] if e["kind"] == "re-replicated" and id_(e) not in before)
        await self.cluster.restart(victim)
        await self.ready()
        return Rereplication(took, copied, detected, victim)


def id_(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event.get("handle"), event.get("version"), event.get("target"))


def _merged(parts: list[Ops]) -> Ops:
    out = Ops()
    for p in parts:
        out.merge(p)
    return out


# ---------------------------------------------------------------------------------------------- MooseFS


class MooseFsContender:
    name = "moosefs"
    via = "FUSE mount (mfsmount, cache mode DIRECT)"

    def __init__(self, fs: MooseFS) -> None:
        self.fs = fs
        self.base = os.urandom(MiB)

    def server_pids(self) -> dict[str, int]:
        return {n: p for n, p in self.fs.pids().items() if n != "mfsmount"}

    def client_pids(self) -> dict[str, int]:
        return {n: p for n, p in self.fs.pids().items() if n == "mfsmount"}

    async def ready(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _path(self, name: str) -> Path:
        return self.fs.mount / name.lstrip("/").replace("/", "_")

    async def write_files(self, prefix: str, clients: int, mb: int) -> Ops:
        def one(w: int, n: int) -> Ops:
            out = Ops()
            fd = os.open(self._path(f"{prefix}-{w}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for i in range(n):
                    started = time.perf_counter()
                    try:
                        _write_all(fd, payload(i, self.base))
                        os.fsync(fd)
                    except OSError as e:
                        out.errors.append(repr(e))
                        continue
                    out.latencies_ms.append((time.perf_counter() - started) * 1e3)
                    out.bytes += MiB
            finally:
                os.close(fd)
            return out

        return _merged(await asyncio.gather(*(asyncio.to_thread(one, w, n) for w, n in enumerate(share(mb, clients)))))

    async def read_files(self, prefix: str, clients: int, mb: int) -> Ops:
        def one(w: int, n: int) -> Ops:
            out = Ops()
            fd = os.open(self._path(f"{prefix}-{w}"), os.O_RDONLY)
            try:
                for i in range(n):
                    started = time.perf_counter()
                    try:
                        got = _read_full(fd, MiB)
                    except OSError as e:
                        out.errors.append(repr(e))
                        continue
                    took = (time.perf_counter() - started) * 1e3
                    if got != payload(i, self.base):
                        out.errors.append(f"{prefix}-{w} MiB {i}: wrong bytes ({len(got)} read)")
                        continue
                    out.latencies_ms.append(took)
                    out.bytes += MiB
            finally:
                os.close(fd)
            return out

        return _merged(await asyncio.gather(*(asyncio.to_thread(one, w, n) for w, n in enumerate(share(mb, clients)))))

    async def append(self, path: str, clients: int, mb: int) -> Ops:
        target = self._path(path)
        target.touch()

        def one(w: int, n: int) -> Ops:
            out = Ops()
            fd = os.open(target, os.O_WRONLY | os.O_APPEND)
            try:
                for i in range(n):
                    started = time.perf_counter()
                    try:
                        _write_all(fd, payload(i, self.base))
                        os.fsync(fd)
                    except OSError as e:
                        out.errors.append(repr(e))
                        continue
                    out.latencies_ms.append((time.perf_counter() - started) * 1e3)
                    out.bytes += MiB
            finally:
                os.close(fd)
            return out

        return _merged(await asyncio.gather(*(asyncio.to_thread(one, w, n) for w, n in enumerate(share(mb, clients)))))

    async def delete_all(self) -> None:
        for p in self.fs.mount.iterdir():
            p.unlink()

    async def rereplicate(self) -> Rereplication:
        files = sorted(self.fs.mount.iterdir())
        chunks = await asyncio.to_thread(chunk_copies, files)
        held: dict[str, int] = {}
        for _, length, copies in chunks:
            for ip in copies:
                held[ip] = held.get(ip, 0) + length
        victim = max(self.fs.chunkserver_ips, key=lambda ip: (held.get(ip, 0), ip))
        killed = time.monotonic()
        await asyncio.to_thread(self.fs.kill_chunkserver, victim)
        while True:
            now = await asyncio.to_thread(chunk_copies, files)
            if all(len([ip for ip in copies if ip != victim]) >= self.fs.goal for _, _, copies in now):
                break
            if time.monotonic() - killed > SETTLE_TIMEOUT_S:
                raise RuntimeError(f"moosefs: not fully replicated within {SETTLE_TIMEOUT_S:g}s")
            await asyncio.sleep(0.1)
        took = time.monotonic() - killed
        await asyncio.to_thread(self.fs.start_chunkserver, victim)
        return Rereplication(took, held.get(victim, 0), None, self.fs.chunkserver_name(victim))


CHUNK_RE = re.compile(r"^\s*chunk (\d+):")
COPY_RE = re.compile(r"^\s*copy \d+: ([\d.]+):\d+(?: \(status:(\w+)\))?")
MOOSEFS_CHUNK = 64 * MiB


def chunk_copies(files: list[Path]) -> list[tuple[str, int, list[str]]]:
    """(file:chunk, bytes, [chunkserver ip of every valid copy]) for every chunk of the files (mfsfileinfo)."""
    out: list[tuple[str, int, list[str]]] = []
    for f in files:
        size = f.stat().st_size
        r = subprocess.run(["mfsfileinfo", str(f)], capture_output=True, text=True, timeout=30)
        current: list[str] | None = None
        for line in r.stdout.splitlines():
            if (m := CHUNK_RE.match(line)) is not None:
                index = int(m.group(1))
                current = []
                out.append((f"{f.name}:{index}", min(MOOSEFS_CHUNK, size - index * MOOSEFS_CHUNK), current))
            elif (m := COPY_RE.match(line)) is not None and current is not None and m.group(2) in (None, "VALID"):
                current.append(m.group(1))
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_full(fd: int, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


__all__ = ["MASTER_CLIENT_PORT", "MiB", "MooseFsContender", "Ops", "OurDfs", "Rereplication", "share"]
