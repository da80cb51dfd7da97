"""The master's persistent metadata (GFS §2.6): namespace, file -> chunks, chunk versions.

Everything the master must not forget lives here, and changes only through
`apply(record)`: the same function runs when a mutation happens and when the
operation log is replayed after a restart, so the two cannot disagree.

Records (lists, msgpack-able):

- ["create", path, creator]          a new, empty file
- ["delete", path, trash_key]        hide the file under a trash key (lazy deletion, §4.4)
- ["rename", src, dst]               atomic rename
- ["chunk", path, index, handle]     append a new chunk (version 1) as chunk `index` of the file
- ["issue", handle, version]         `version` is about to be sent to replicas (cs.bump): it is never
                                     handed out again, even if no replica confirmed it
- ["version", handle, version]       the chunk's version moves up for a new lease (§4.5)
- ["version", handle, version, "no-lease"]
                                     the same, for a version no lease is granted at: a clone's or a
                                     replica's readmission, one adopted from a replica after a master
                                     crash, or a lease round too few replicas confirmed
- ["purge", trash_key]               forget a hidden file; its chunks become orphans

Rules this module keeps:

- Paths are absolute, '/'-separated, without empty, '.' or '..' components,
  at most 1024 bytes. Directories are implicit (GFS has no per-directory
  structure, §4.1): `ls(prefix)` lists the files under a prefix.
- `check(record)` says why a record may not be applied (None when it may),
  in the words a client sees; `apply` asserts the same things.
- Chunk handles are never reused: `next_handle` only grows and is part of
  every checkpoint.
- A version never goes down: a "version" record with a lower version is refused.
- A version number names one set of replicas: `next_version` is above every
  version ever issued, so a bump that landed unconfirmed (its answer lost) is
  never reused for other replicas, not even after a restart.
- `leased` is the highest version a lease may have been granted at. Only a
  lease's primary acknowledges writes, and only once every member applied
  them, so a replica that confirmed a version at or above it holds every
  acknowledged write even once the chunk has moved past it (the master may
  take it back: replicas.readmissible). A checkpoint without it counts every
  version as leased.
- Pure: no disk, no clock, no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_PATH = 1024


class NamespaceError(ValueError):
    """A mutation the namespace refuses; `code` is what the client is told."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_path(path: Any) -> str | None:
    """Why `path` is not a valid file path, or None."""
    if not isinstance(path, str) or not path.startswith("/"):
        return f"a path must be a string starting with '/', got {path!r:.80}"
    if len(path.encode()) > MAX_PATH:
        return f"path longer than {MAX_PATH} bytes"
    if "\x00" in path:
        return "path contains a NUL byte"
    parts = path.split("/")[1:]
    if path == "/" or any(p in ("", ".", "..") for p in parts):
        return f"path {path!r:.80} has an empty, '.' or '..' component"
    return None


@dataclass
class FileMeta:
    chunks: list[int] = field(default_factory=list)
    creator: str = ""


@dataclass
class Trashed:
    path: str
    chunks: list[int]


@dataclass
class Namespace:
    files: dict[str, FileMeta] = field(default_factory=dict)
    trash: dict[str, Trashed] = field(default_factory=dict)
    versions: dict[int, int] = field(default_factory=dict)
    """chunk handle -> version, for every chunk of a file or of a hidden file."""
    issued: dict[int, int] = field(default_factory=dict)
    """chunk handle -> the highest version ever sent to a replica (at least the current one)."""
    leased: dict[int, int] = field(default_factory=dict)
    """chunk handle -> the highest version a lease may have been granted at (1 before any lease)."""
    owner: dict[int, str] = field(default_factory=dict)
    """chunk handle -> the path (or trash key) that holds it."""
    next_handle: int = 1

    # ------------------------------------------------------------ queries
    def ls(self, prefix: str) -> list[str]:
        if prefix in ("", "/"):
            return sorted(self.files)
        base = prefix.rstrip("/")
        return sorted(p for p in self.files if p == base or p.startswith(base + "/"))

    def live_chunks(self) -> list[int]:
        return sorted(h for meta in self.files.values() for h in meta.chunks)

    def hidden_chunks(self) -> list[int]:
        return sorted(h for t in self.trash.values() for h in t.chunks)

    def next_version(self, handle: int) -> int:
        """A version no replica was ever asked to take."""
        return max(self.versions[handle], self.issued.get(handle, 0)) + 1

    # ------------------------------------------------------------ the rules
    def check(self, rec: list[Any]) -> NamespaceError | None:
        match rec:
            case ["create", str(path), str()]:
                why = check_path(path)
                if why:
                    return NamespaceError("bad-path", why)
                if path in self.files:
                    return NamespaceError("exists", f"{path} exists")
                if any(p.startswith(path + "/") for p in self.files) or _parent_is_file(self.files, path):
                    return NamespaceError("not-a-file", f"{path} is a directory or under a file")
            case ["delete", str(path), str(key)]:
                if path not in self.files:
                    return NamespaceError("not-found", f"{path} does not exist")
                if key in self.trash:
                    return NamespaceError("exists", f"trash key {key} is taken")
            case ["rename", str(src), str(dst)]:
                why = check_path(dst)
                if why:
                    return NamespaceError("bad-path", why)
                if src not in self.files:
                    return NamespaceError("not-found", f"{src} does not exist")
                if dst in self.files:
                    return NamespaceError("exists", f"{dst} exists")
                if any(p.startswith(dst + "/") for p in self.files) or _parent_is_file(self.files, dst):
                    return NamespaceError("not-a-file", f"{dst} is a directory or under a file")
            case ["chunk", str(path), int(index), int(handle)]:
                meta = self.files.get(path)
                if meta is None:
                    return NamespaceError("not-found", f"{path} does not exist")
                if index != len(meta.chunks):
                    return NamespaceError("bad-index", f"{path} has {len(meta.chunks)} chunks, not {index}")
                if handle < self.next_handle:
                    return NamespaceError("bad-handle", f"chunk handle {handle} was used before")
            case ["issue", int(handle), int(version)]:
                if handle not in self.versions:
                    return NamespaceError("not-found", f"no chunk {handle}")
                if version < self.next_version(handle):
                    return NamespaceError("stale", f"chunk {handle} version {version} may have been issued before")
            case ["version", int(handle), int(version)] | ["version", int(handle), int(version), "no-lease"]:
                if handle not in self.versions:
                    return NamespaceError("not-found", f"no chunk {handle}")
                if version < self.versions[handle]:
                    return NamespaceError("stale", f"chunk {handle} is at version {self.versions[handle]}")
            case ["purge", str(key)]:
                if key not in self.trash:
                    return NamespaceError("not-found", f"no hidden file {key}")
            case _:
                return NamespaceError("bad-record", f"not a namespace record: {rec!r:.80}")
        return None

    def apply(self, rec: list[Any]) -> None:
        """Apply one record; the caller checked it (replay of a valid log never fails)."""
        err = self.check(rec)
        assert err is None, f"{rec!r:.120}: {err}"
        match rec:
            case ["create", path, creator]:
                self.files[path] = FileMeta([], creator)
            case ["delete", path, key]:
                meta = self.files.pop(path)
                self.trash[key] = Trashed(path, meta.chunks)
                for h in meta.chunks:
                    self.owner[h] = key
            case ["rename", src, dst]:
                meta = self.files.pop(src)
                self.files[dst] = meta
                for h in meta.chunks:
                    self.owner[h] = dst
            case ["chunk", path, _index, handle]:
                self.files[path].chunks.append(handle)
                self.versions[handle] = 1
                self.leased[handle] = 1
                self.owner[handle] = path
                self.next_handle = handle + 1
            case ["issue", handle, version]:
                self.issued[handle] = version
            case ["version", handle, version]:
                self.versions[handle] = version
                self.leased[handle] = version
            case ["version", handle, version, "no-lease"]:
                self.versions[handle] = version
            case ["purge", key]:
                for h in self.trash.pop(key).chunks:
                    self.versions.pop(h, None)
                    self.issued.pop(h, None)
                    self.leased.pop(h, None)
                    self.owner.pop(h, None)

    # ------------------------------------------------------------ checkpoints
    def to_wire(self) -> dict[str, Any]:
        return {
            "files": {p: [m.chunks, m.creator] for p, m in self.files.items()},
            "trash": {k: [t.path, t.chunks] for k, t in self.trash.items()},
            "versions": [[h, v] for h, v in self.versions.items()],
            "issued": [[h, v] for h, v in self.issued.items()],
            "leased": [[h, v] for h, v in self.leased.items()],
            "next_handle": self.next_handle,
        }

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> Namespace:
        ns = cls()
        for p, (chunks, creator) in w["files"].items():
            ns.files[p] = FileMeta(list(chunks), creator)
            for h in chunks:
                ns.owner[h] = p
        for k, (path, chunks) in w["trash"].items():
            ns.trash[k] = Trashed(path, list(chunks))
            for h in chunks:
                ns.owner[h] = k
        ns.versions = {int(h): int(v) for h, v in w["versions"]}
        ns.issued = {int(h): int(v) for h, v in w.get("issued", [])}
        ns.leased = dict(ns.versions)
        ns.leased.update((int(h), int(v)) for h, v in w.get("leased", []))
        ns.next_handle = int(w["next_handle"])
        return ns


def _parent_is_file(files: dict[str, FileMeta], path: str) -> bool:
    parts = path.split("/")
    return any("/".join(parts[:i]) in files for i in range(2, len(parts)))
