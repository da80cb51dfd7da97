"""The file operations MapReduce needs from the DFS, and nothing else.

`FileStore` is the one place where MapReduce touches its distributed file
system: input splits come from `stat` (chunk layout and replica locations),
input bytes from `read`, and reduce output goes through `write` under a
temporary name and an atomic `rename` (paper §3.3). dfs_store.py implements
it over the DFS client; nothing else in systems/mapreduce imports the DFS.

Rules every implementation keeps:

- Paths are absolute, "/"-separated DFS paths.
- `write(path, data)` creates a new file holding exactly `data`, or raises
  `Exists`. Until it returns, readers may see the file missing or partial,
  which is why reduce output is written under a temporary name first.
- `rename(src, dst)` is atomic: a reader sees `dst` missing or whole, never
  partial. It raises `Exists` when `dst` exists (the first execution to
  commit a partition wins; its content is the same as any other's).
- `read(path, offset, length)` returns up to `length` bytes (fewer at the end
  of the file); `prefer` names a node whose replica to read first (locality).
- Every failure raises `StoreError` (`NotFound`, `Exists`, or unavailable);
  `definite` says whether the operation certainly had no effect.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Protocol


class StoreError(Exception):
    definite: bool = False

    def __init__(self, message: str, *, definite: bool | None = None) -> None:
        super().__init__(message)
        if definite is not None:
            self.definite = definite


class NotFound(StoreError):
    definite = True


class Exists(StoreError):
    definite = True


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    chunks: tuple[tuple[int, int, tuple[str, ...]], ...] = ()
    """(offset, length, nodes holding a replica) per chunk, in offset order."""


class FileStore(Protocol):
    async def list(self, directory: str) -> list[str]:
        """Paths of the files directly in `directory`, sorted (NotFound if there is no such directory)."""
        ...

    async def stat(self, path: str) -> FileInfo: ...

    async def read(self, path: str, offset: int, length: int, prefer: str | None = None) -> bytes: ...

    async def write(self, path: str, data: bytes) -> None: ...

    async def write_at(self, path: str, offset: int, data: bytes) -> None:
        """Write into an existing file at `offset` (only the planted bug non-atomic-output writes this way)."""
        ...

    async def rename(self, src: str, dst: str) -> None: ...

    async def delete(self, path: str) -> None:
        """Remove a file or a whole directory; NotFound if there is nothing there."""
        ...


def has_pattern(path: str) -> bool:
    return any(c in path for c in "*?[")


def split_pattern(pattern: str) -> tuple[str, str]:
    """(directory, name pattern) of an input pattern; wildcards only in the last component."""
    directory, _, name = pattern.rpartition("/")
    if has_pattern(directory):
        raise ValueError(f"input {pattern!r}: wildcards are allowed in the last path component only")
    return directory or "/", name


async def expand(store: FileStore, patterns: list[str] | tuple[str, ...]) -> list[str]:
    """The input files named by paths and patterns, each once, in order of the patterns then name.

    A plain path must exist (NotFound otherwise); a pattern matching nothing is an error too.
    """
    out: list[str] = []
    for pattern in patterns:
        if not has_pattern(pattern):
            await store.stat(pattern)
            found = [pattern]
        else:
            directory, name = split_pattern(pattern)
            found = [p for p in await store.list(directory) if fnmatch.fnmatchcase(p.rpartition("/")[2], name)]
            if not found:
                raise NotFound(f"input pattern {pattern!r} matches no file")
        out.extend(p for p in found if p not in out)
    return out
