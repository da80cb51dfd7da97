"""The DFS client library: what workloads, the CLI, benchmarks and MapReduce use.

    client = DfsClient(rt, nodes, master="n1", home="n2")
    await client.create("/logs/a")
    offset = await client.append("/logs/a", record)        # record append: at least once
    await client.write("/data/f", 0, blob)                  # split at chunk boundaries
    data = await client.read("/data/f", 0, 1 << 20)
    await client.put("/data/g", blob); blob = await client.get("/data/g")

Rules this module keeps:

- Metadata comes from the master, data goes straight to chunkservers (§2.4):
  a mutation pushes its data along the chain of the lease's members (the
  client's own node first when it holds a replica, §3.2) and then asks the
  primary to apply it. Reads go to one current replica, the client's own
  node's first (the closest), and fall back to the others on any error.
- Caches, so a stream of operations costs one RPC to the master now and
  then: a file's last chunk index (for appends), chunk handles, and each
  chunk's lease until shortly before the master said it expires. Any error
  from a chunkserver drops the lease it came from.
- Retries: every operation retries within its `timeout_s`, backing off
  briefly after errors that say "ask again". A primary that did not answer
  is named to the master as a suspect.
- Outcomes are honest: `DfsError.definite` is True only when the operation
  certainly had no effect. An append or write is in doubt as soon as one
  attempt reached a primary that may have applied it (a timeout, or an
  indefinite error such as a secondary failing): its data may then be on
  some replicas (GFS's inconsistent region). A create carries a creator
  token, so a retry of a create that landed answers ok; delete and rename
  are not retried after an indefinite error.
- Pushes go in `push_part` (256 KiB) pieces sent at once: the chain's hops
  overlap (§3.2); a retry pushes every piece again.
- A large write or read is split at chunk boundaries into `io_size` (1 MiB)
  pieces; a write sends them one after another (a chunk grows at its end),
  a read keeps `window` (4) of them in flight. A write in which any piece
  may have landed fails as in doubt.
- Record appends are at most a quarter chunk; "full" moves the append to the
  next chunk (created on demand). Holes read as zeros: a chunk before the
  file's last that a replica holds shorter than the chunk size reads as
  zero-filled; the last chunk ends where the replica ends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from systems.runtime.api import RemoteError, RpcError, Runtime

IO_SIZE = 1 << 20
PUSH_PART = 256 << 10
"""Data is pushed in pieces of at most this size, all at once (a pipeline along the chain)."""
LEASE_SAFETY_S = 0.2
BACKOFF_S = 0.05
RETRYABLE = frozenset({"busy", "no-replicas", "not-primary", "no-data", "push-failed", "version-mismatch",
                       "no-chunk", "stale", "corrupt", "unreachable", "timeout", "connection-lost",
                       "secondary-failed", "internal", "no-room"})


class DfsError(Exception):
    """An operation failed. `definite`: it certainly had no effect."""

    def __init__(self, code: str, message: str, *, definite: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.definite = definite


@dataclass(frozen=True, slots=True)
class ChunkRef:
    handle: int
    version: int
    replicas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LeaseRef:
    handle: int
    primary: str
    members: tuple[str, ...]
    version: int
    valid_until: float


def default_master(nodes: list[str], options: dict[str, Any] | None = None) -> str:
    """The master a cluster with these nodes and options runs (the node option `master`, else the first)."""
    chosen = (options or {}).get("master") or ""
    return chosen if chosen in nodes else sorted(nodes)[0]


async def find_master(rt: Runtime, nodes: list[str], timeout_s: float = 0.5) -> str | None:
    """The master, as the first node that answers `status` names it (None when none answers)."""
    for n in sorted(nodes):
        try:
            st = await rt.call(n, "status", None, timeout=timeout_s)
        except RpcError:
            continue
        if isinstance(st, dict) and st.get("master") in nodes:
            return str(st["master"])
    return None


async def replica_files(rt: Runtime, node: str, timeout_s: float = 0.5) -> list[dict[str, Any]]:
    """The replicas a chunkserver holds: [{"handle", "version", "length", "file"}] (the file as a disk name)."""
    st = await rt.call(node, "status", None, timeout=timeout_s)
    reps = ((st or {}).get("chunkserver") or {}).get("replicas") or {}
    return [{"handle": int(h), **{k: r.get(k) for k in ("version", "length", "file")}} for h, r in sorted(reps.items())]


async def master_report(rt: Runtime, master: str, timeout_s: float = 0.5) -> dict[str, Any] | None:
    """The master's own report (files, chunks, alive chunkservers, fsck), or None when it does not answer."""
    try:
        st = await rt.call(master, "status", None, timeout=timeout_s)
    except RpcError:
        return None
    ms = st.get("master_state") if isinstance(st, dict) else None
    return ms if isinstance(ms, dict) else None


class DfsClient:
    def __init__(
        self,
        rt: Runtime,
        nodes: list[str],
        *,
        master: str | None = None,
        home: str | None = None,
        client_id: str | None = None,
        timeout_s: float = 5.0,
        rpc_timeout_s: float = 1.0,
        io_size: int = IO_SIZE,
        window: int = 4,
        push_part: int = PUSH_PART,
    ) -> None:
        self.rt = rt
        self.nodes = sorted(nodes)
        self.master = master or default_master(self.nodes)
        self.home = home
        self.client_id = client_id or f"c{rt.rng.getrandbits(48):012x}"
        self.timeout_s = timeout_s
        self.rpc_timeout_s = rpc_timeout_s
        self.io_size = io_size
        self.window = max(1, window)
        self.push_part = max(1, push_part)
        """How many pieces of one read are in flight at once."""
        self.chunk_size: int | None = None
        self._ids = 0
        self._last_index: dict[str, int] = {}
        self._chunks: dict[tuple[str, int], int] = {}
        self._leases: dict[int, LeaseRef] = {}

    # ------------------------------------------------------------ plumbing
    def _next_id(self) -> str:
        self._ids += 1
        return f"{self.client_id}-{self._ids}"

    async def _call(self, node: str, method: str, msg: dict[str, Any], timeout: float | None = None) -> Any:
        try:
            return await self.rt.call(node, method, msg, timeout=timeout or self.rpc_timeout_s)
        except RemoteError as e:
            raise DfsError(e.code, f"{node}: {e.message}", definite=e.definite) from None
        except RpcError as e:
            raise DfsError(e.code, f"{node}: {e.message or e.code}", definite=e.definite) from None

    async def _master(self, method: str, msg: dict[str, Any]) -> Any:
        return await self._call(self.master, f"master.{method}", msg)

    def _deadline(self, timeout_s: float | None) -> float:
        return self.rt.now() + (self.timeout_s if timeout_s is None else timeout_s)

    async def _pause(self, deadline: float) -> None:
        await self.rt.sleep(max(0.0, min(BACKOFF_S, deadline - self.rt.now())))

    def _order(self, replicas: tuple[str, ...] | list[str]) -> list[str]:
        """The closest first: this client's own node, then the rest in a random order."""
        rest = [n for n in replicas if n != self.home]
        self.rt.rng.shuffle(rest)
        return ([self.home] if self.home in replicas else []) + rest

    # ------------------------------------------------------------ namespace
    async def create(self, path: str, *, timeout_s: float | None = None) -> None:
        creator = self._next_id()
        await self._retry_master("create", {"path": path, "creator": creator}, timeout_s, idempotent=True)

    async def delete(self, path: str, *, timeout_s: float | None = None) -> None:
        await self._retry_master("delete", {"path": path}, timeout_s, idempotent=False)
        self._forget(path)

    async def rename(self, src: str, dst: str, *, timeout_s: float | None = None) -> None:
        await self._retry_master("rename", {"src": src, "dst": dst}, timeout_s, idempotent=False)
        self._forget(src)

    async def ls(self, prefix: str = "/", *, timeout_s: float | None = None) -> list[str]:
        out = await self._retry_master("ls", {"prefix": prefix}, timeout_s, idempotent=True)
        return list(out["files"])

    async def stat(self, path: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """{"path", "chunk_size", "chunks": [{"handle", "version", "replicas"}]}."""
        out = await self._retry_master("stat", {"path": path}, timeout_s, idempotent=True)
        self.chunk_size = int(out["chunk_size"])
        for i, c in enumerate(out["chunks"]):
            self._chunks[(path, i)] = int(c["handle"])
        return dict(out)

    async def fsck(self, *, timeout_s: float | None = None) -> dict[str, Any]:
        return dict(await self._retry_master("fsck", {}, timeout_s, idempotent=True))

    async def status(self, node: str, *, verify: bool = False, timeout_s: float | None = None) -> dict[str, Any]:
        """A node's own report (never retried). Raises DfsError."""
        return dict(await self._call(node, "status", {"verify": verify}, timeout=timeout_s or self.rpc_timeout_s))

    def _forget(self, path: str) -> None:
        self._last_index.pop(path, None)
        for key in [k for k in self._chunks if k[0] == path]:
            del self._chunks[key]

    async def _retry_master(self, verb: str, msg: dict[str, Any], timeout_s: float | None, *,
                            idempotent: bool) -> Any:
        deadline = self._deadline(timeout_s)
        maybe = False
        while True:
            try:
                return await self._master(verb, msg)
            except DfsError as e:
                if not e.definite:
                    maybe = True
                    if not idempotent:
                        raise
                elif e.code not in RETRYABLE:
                    raise DfsError(e.code, e.message, definite=not maybe) from None
                if self.rt.now() >= deadline:
                    raise DfsError(e.code, e.message, definite=not maybe) from None
            await self._pause(deadline)

    # ------------------------------------------------------------ chunks and leases
    async def _chunk(self, path: str, index: int, *, create: bool) -> ChunkRef:
        """Chunk `index` of `path`, creating it (and any missing chunk before it) when asked."""
        try:
            info = await self._master("chunk", {"path": path, "index": index, "create": create})
        except DfsError as e:
            if e.code != "no-chunk" or not create:
                raise
            st = await self._master("stat", {"path": path})
            for i in range(len(st["chunks"]), index):
                await self._master("chunk", {"path": path, "index": i, "create": True})
            info = await self._master("chunk", {"path": path, "index": index, "create": True})
        self.chunk_size = int(info["chunk_size"])
        self._chunks[(path, index)] = int(info["handle"])
        return ChunkRef(int(info["handle"]), int(info["version"]), tuple(info["replicas"]))

    def _cached_lease(self, path: str, index: int) -> LeaseRef | None:
        """The lease on chunk `index` of `path` while the client may still trust it (no RPC)."""
        handle = self._chunks.get((path, index))
        lease = self._leases.get(handle) if handle is not None else None
        return lease if lease is not None and self.rt.now() < lease.valid_until else None

    async def _lease(self, handle: int, suspect: str | None) -> LeaseRef:
        cached = self._leases.get(handle)
        if cached is not None and suspect is None and self.rt.now() < cached.valid_until:
            return cached
        asked = self.rt.now()
        info = await self._master("lease", {"handle": handle, "suspect": suspect})
        lease = LeaseRef(handle, str(info["primary"]), tuple(info["members"]), int(info["version"]),
                         asked + float(info["expires_in_s"]) - LEASE_SAFETY_S)
        self._leases[handle] = lease
        return lease

    async def _push(self, data_id: str, data: bytes, members: tuple[str, ...]) -> None:
        """The data along the chain, in `push_part` pieces sent at once: each hop forwards a piece as soon as
        it has it, so the hops overlap (§3.2: pipelining); answers once every piece reached the chain's end."""
        chain = self._order(members)
        size = self.push_part
        parts = max(1, -(-len(data) // size))
        view = memoryview(data)
        await asyncio.gather(*(
            self._call(chain[0], "cs.push", {"data_id": data_id, "data": bytes(view[i * size : (i + 1) * size]),
                                             "chain": chain[1:], "part": i, "parts": parts},
                       timeout=self.rpc_timeout_s * 2)
            for i in range(parts)))

    async def _mutate(self, path: str, index: int, method: str, body: dict[str, Any], data: bytes,
                      deadline: float) -> tuple[dict[str, Any], bool]:
        """One mutation of chunk `index`, retried until an answer or the deadline.

        Returns (the primary's answer, whether an earlier attempt is in doubt); raises DfsError with
        `definite` False once any attempt is in doubt."""
        maybe = False
        suspect: str | None = None
        data_id = self._next_id()
        last = DfsError("timeout", "no attempt made", definite=True)
        while self.rt.now() < deadline:
            primary = None
            try:
                lease = self._cached_lease(path, index) if suspect is None else None
                if lease is None:
                    chunk = await self._chunk(path, index, create=True)
                    if not chunk.replicas:
                        raise DfsError("no-replicas", f"chunk {chunk.handle} has no replica yet", definite=True)
                    lease = await self._lease(chunk.handle, suspect)
                suspect = None
                await self._push(data_id, data, lease.members)
                primary = lease.primary
                answer = await self._call(primary, method, {"handle": lease.handle, "data_id": data_id, **body})
                return answer, maybe
            except DfsError as e:
                last = e
                if e.definite and e.code not in RETRYABLE:
                    raise DfsError(e.code, e.message, definite=not maybe) from None
                if primary is not None:
                    self._leases.pop(self._chunks.get((path, index), -1), None)
                    if not e.definite:
                        maybe = True
                        suspect = primary
            await self._pause(deadline)
        raise DfsError(last.code, last.message, definite=not maybe)

    # ------------------------------------------------------------ data
    async def append(self, path: str, data: bytes, *, timeout_s: float | None = None) -> int:
        """Record append (§3.3): the file offset where the record landed, at least once."""
        deadline = self._deadline(timeout_s)
        index = self._last_index.get(path)
        if index is None:
            st = await self.stat(path, timeout_s=max(0.0, deadline - self.rt.now()))
            index = max(0, len(st["chunks"]) - 1)
        assert self.chunk_size is not None
        if len(data) > self.chunk_size // 4:
            raise DfsError("too-big", f"a record is at most {self.chunk_size // 4} bytes", definite=True)
        maybe = False
        while True:
            try:
                answer, doubt = await self._mutate(path, index, "cs.append", {}, data, deadline)
            except DfsError as e:
                raise DfsError(e.code, e.message, definite=e.definite and not maybe) from None
            maybe = maybe or doubt
            if answer.get("status") == "full":
                index += 1
                continue
            self._last_index[path] = index
            return index * self.chunk_size + int(answer["offset"])

    def _pieces(self, offset: int, length: int, chunk_size: int) -> list[tuple[int, int, int, int]]:
        """(position in the data, chunk index, offset in the chunk, size): split at chunks and `io_size`."""
        out, pos = [], 0
        while pos < length:
            index, within = divmod(offset + pos, chunk_size)
            size = min(length - pos, chunk_size - within, self.io_size)
            out.append((pos, index, within, size))
            pos += size
        return out

    async def write(self, path: str, offset: int, data: bytes, *, timeout_s: float | None = None) -> None:
        """Write `data` at `offset`, split at chunk boundaries into `io_size` pieces, one after another (so a
        chunk grows at its end: pieces landing out of order would make the replicas rewrite what they hold)."""
        deadline = self._deadline(timeout_s)
        if self.chunk_size is None:
            await self.stat(path, timeout_s=max(0.0, deadline - self.rt.now()))
        assert self.chunk_size is not None
        maybe = False
        for pos, index, within, size in self._pieces(offset, len(data), self.chunk_size):
            try:
                _, doubt = await self._mutate(path, index, "cs.write", {"offset": within}, data[pos : pos + size],
                                              deadline)
            except DfsError as e:
                raise DfsError(e.code, e.message, definite=e.definite and not maybe and pos == 0) from None
            maybe = maybe or doubt

    async def read(self, path: str, offset: int, length: int, *, timeout_s: float | None = None) -> bytes:
        """Up to `length` bytes from `offset`, `window` pieces in flight; short only at the end of the file's
        last chunk (a chunk before the last that a replica holds short reads as zero-filled)."""
        deadline = self._deadline(timeout_s)
        st = await self.stat(path, timeout_s=max(0.0, deadline - self.rt.now()))
        chunks = st["chunks"]
        pieces = [p for p in self._pieces(offset, length, int(st["chunk_size"])) if p[1] < len(chunks)]
        gate = asyncio.Semaphore(self.window)

        async def one(piece: tuple[int, int, int, int]) -> bytes:
            _, index, within, size = piece
            async with gate:
                got = await self._read_piece(path, index, chunks[index], within, size, deadline)
            if len(got) < size and index < len(chunks) - 1:
                got += bytes(size - len(got))
            return got

        parts = await asyncio.gather(*(one(p) for p in pieces))
        out = bytearray()
        for got, (_, _, _, size) in zip(parts, pieces, strict=True):
            out += got
            if len(got) < size:
                break  # the end of the file's last chunk
        return bytes(out)

    async def read_all(self, path: str, *, timeout_s: float | None = None) -> bytes:
        deadline = self._deadline(timeout_s)
        st = await self.stat(path, timeout_s=max(0.0, deadline - self.rt.now()))
        total = len(st["chunks"]) * int(st["chunk_size"])
        return await self.read(path, 0, total, timeout_s=max(0.0, deadline - self.rt.now()))

    async def _read_piece(self, path: str, index: int, chunk: dict[str, Any], offset: int, size: int,
                          deadline: float) -> bytes:
        errors: list[str] = []
        attempt = 0
        while True:
            if attempt:
                await self._pause(deadline)
                chunk = (await self.stat(path, timeout_s=max(0.0, deadline - self.rt.now())))["chunks"][index]
            attempt += 1
            for node in self._order(list(chunk["replicas"])):
                try:
                    got = await self._call(node, "cs.read", {"handle": chunk["handle"], "version": chunk["version"],
                                                             "offset": offset, "length": size})
                except DfsError as e:
                    errors.append(f"{e.code} at {node}")
                    continue
                return bytes(got["data"])
            if self.rt.now() >= deadline:
                raise DfsError("unreadable", f"chunk {chunk['handle']}: " + (", ".join(errors[-6:]) or "no replica"),
                               definite=True)

    async def put(self, path: str, data: bytes, *, timeout_s: float | None = None) -> None:
        """Create `path` and write `data` into it."""
        deadline = self._deadline(timeout_s)
        await self.create(path, timeout_s=max(0.0, deadline - self.rt.now()))
        try:
            await self.write(path, 0, data, timeout_s=max(0.0, deadline - self.rt.now()))
        except DfsError as e:
            raise DfsError(e.code, e.message, definite=False) from None

    async def get(self, path: str, *, timeout_s: float | None = None) -> bytes:
        return await self.read_all(path, timeout_s=timeout_s)
