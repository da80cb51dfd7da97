"""`FileStore` over the DFS client library (systems/dfs/client.py): the only module that imports the DFS.

How each operation maps onto the DFS (GFS has files, not directories; a
directory is a path prefix):

- list(dir): `ls(dir)`, keeping the files directly in `dir`; NotFound when
  nothing lies under it.
- stat(path): `stat(path)` gives the chunk size and each chunk's current
  replicas; the DFS does not report a file's exact length, so every chunk
  counts as `chunk_size` long and `size` is an upper bound (a read past the
  end simply comes back short, which the splitter expects).
- read: `read(path, offset, length)`, the client's own node's replica first
  (the client is built with `home` = this node: locality).
- write(path, data): `put` (create, then write); "exists" is `Exists`.
- write_at(path, offset, data): `write` at an offset (the planted bug only).
- rename: the DFS rename, atomic and refusing an existing destination.
- delete(path): the file, or every file under the prefix.
Every `DfsError` becomes a `StoreError` with the same `definite` flag.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from systems.dfs.client import DfsClient, DfsError, default_master
from systems.mapreduce.store import Exists, FileInfo, NotFound, StoreError
from systems.runtime.api import Runtime

T = TypeVar("T")


def _translate(e: DfsError) -> StoreError:
    if e.code == "not-found":
        return NotFound(e.message)
    if e.code == "exists":
        return Exists(e.message)
    return StoreError(f"{e.code}: {e.message}", definite=e.definite)


class DfsStore:
    def __init__(
        self,
        rt: Runtime,
        nodes: list[str],
        options: dict[str, Any],
        *,
        home: str | None = None,
        timeout_s: float = 10.0,
        rpc_timeout_s: float = 1.0,
    ) -> None:
        self.client = DfsClient(
            rt, nodes, master=default_master(nodes, options), home=home, timeout_s=timeout_s,
            rpc_timeout_s=rpc_timeout_s,
        )

    async def _do(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await op()
        except DfsError as e:
            raise _translate(e) from None

    async def list(self, directory: str) -> list[str]:
        base = directory.rstrip("/")
        found = await self._do(lambda: self.client.ls(base or "/"))
        under = [p for p in found if p.startswith(base + "/")]
        if not under:
            raise NotFound(f"{directory}: no such directory")
        return sorted(p for p in under if "/" not in p[len(base) + 1 :])

    async def stat(self, path: str) -> FileInfo:
        st = await self._do(lambda: self.client.stat(path))
        cs = int(st["chunk_size"])
        chunks = tuple((i * cs, cs, tuple(str(r) for r in c["replicas"])) for i, c in enumerate(st["chunks"]))
        return FileInfo(path, len(chunks) * cs, chunks)

    async def read(self, path: str, offset: int, length: int, prefer: str | None = None) -> bytes:
        return await self._do(lambda: self.client.read(path, offset, length))

    async def write(self, path: str, data: bytes) -> None:
        await self._do(lambda: self.client.put(path, data))

    async def write_at(self, path: str, offset: int, data: bytes) -> None:
        await self._do(lambda: self.client.write(path, offset, data))

    async def rename(self, src: str, dst: str) -> None:
        await self._do(lambda: self.client.rename(src, dst))

    async def delete(self, path: str) -> None:
        try:
            await self.client.delete(path)
            return
        except DfsError as e:
            if e.code != "not-found":
                raise _translate(e) from None
        base = path.rstrip("/") + "/"
        under = [p for p in await self._do(lambda: self.client.ls(base)) if p.startswith(base)]
        if not under:
            raise NotFound(f"{path}: nothing there")
        for p in under:
            try:
                await self.client.delete(p)
            except DfsError as e:
                if e.code != "not-found":
                    raise _translate(e) from None
