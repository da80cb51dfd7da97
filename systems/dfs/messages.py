"""Every DFS request as a frozen dataclass, validated from its wire form.

Rules this module keeps:

- On the wire a request is a msgpack dict whose keys are the dataclass's
  field names. `parse(cls, msg)` checks every field's type from its
  annotation (int fields are ints in 0..INT_MAX, never bools; floats are
  finite, 0..MAX_SECONDS, and accept ints; `str` at most MAX_STR characters;
  `NodeId` a safe node id (api.check_node_id); `list[...]` at most MAX_LIST
  elements, every one checked; `X | None` accepts None; a field with a
  default may be absent, an unknown field is refused) and runs the class's
  own `check()`;
  anything wrong raises `BadMessage`, the one error family for malformed
  input. Handlers turn it into a definite "bad-request" error and log it: a
  malformed request is dropped and the node keeps serving.
- `wire(obj)` is the inverse: the dict a sender puts on the wire.
- Names: master RPCs are "master.<verb>", chunkserver RPCs "cs.<verb>";
  every node answers "status".
- Who may send what is the handlers' business (edge.py): the master's
  orders come from the master, chunkservers' reports from the chunkserver
  they name.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, TypeVar

from systems.runtime.api import INT_MAX, check_node_id

T = TypeVar("T")

MAX_ID = 256
MAX_STR = 4096
MAX_LIST = 1_000_000
"""The longest list a request may carry (a heartbeat lists every replica a chunkserver holds)."""
MAX_SECONDS = 1e6
MAX_CHAIN = 16
MAX_PUSH_PARTS = 1024

NodeId = str
"""A field that names a node: checked with api.check_node_id."""


class BadMessage(ValueError):
    """A request that is not a valid message of its kind."""


def _ok(kind: str, v: Any) -> bool:
    kind = kind.strip()
    if kind.endswith("| None"):
        return v is None or _ok(kind[: -len("| None")], v)
    if kind.startswith("list[") and kind.endswith("]"):
        return isinstance(v, list) and len(v) <= MAX_LIST and all(_ok(kind[5:-1], x) for x in v)
    match kind:
        case "int":
            return type(v) is int and 0 <= v <= INT_MAX
        case "float":
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= MAX_SECONDS
        case "str":
            return isinstance(v, str) and len(v) <= MAX_STR
        case "NodeId":
            try:
                check_node_id(v)
            except ValueError:
                return False
            return True
        case "bytes":
            return isinstance(v, bytes)
        case "bool":
            return isinstance(v, bool)
        case "Any":
            return True
    raise AssertionError(f"unknown field kind {kind!r}")


def parse(cls: type[T], msg: Any) -> T:
    if not isinstance(msg, dict):
        raise BadMessage(f"{cls.__name__}: expected an object, got {type(msg).__name__}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    extra = sorted(str(k) for k in msg if k not in known)
    if extra:
        raise BadMessage(f"{cls.__name__}: unexpected field(s) {', '.join(extra)[:80]}")
    kw: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in msg:
            if f.default is MISSING:
                raise BadMessage(f"{cls.__name__}: missing '{f.name}'")
            continue
        v = msg[f.name]
        if not _ok(str(f.type), v):
            raise BadMessage(f"{cls.__name__}: '{f.name}' must be {f.type}, got {v!r:.60}")
        kw[f.name] = v
    obj = cls(**kw)
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


def wire(obj: Any) -> dict[str, Any]:
    return asdict(obj)


def _short(name: str, v: str) -> None:
    if not v or len(v) > MAX_ID:
        raise BadMessage(f"'{name}' must be 1..{MAX_ID} characters")


# ---------------------------------------------------------------- master


@dataclass(frozen=True, slots=True)
class PathReq:
    """master.delete, master.stat."""

    path: str


@dataclass(frozen=True, slots=True)
class CreateReq:
    path: str
    creator: str = ""
    """Who asks: a retry by the same creator of a create that landed answers ok."""


@dataclass(frozen=True, slots=True)
class RenameReq:
    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class ListReq:
    prefix: str = "/"


@dataclass(frozen=True, slots=True)
class ChunkReq:
    """master.chunk: the handle, version and current replicas of chunk `index` of `path`."""

    path: str
    index: int
    create: bool = False


@dataclass(frozen=True, slots=True)
class LeaseReq:
    """master.lease: who is primary for the chunk (granting a lease if none is held)."""

    handle: int
    suspect: NodeId | None = None
    """A primary the client could not get an answer from."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    node: NodeId
    incarnation: str
    chunks: list[list[int]]
    """[[handle, version, length], ...]: every replica the node holds."""
    damaged: list[int]
    """Handles of replicas the node found corrupt (and still holds)."""
    extend: list[int]
    """Handles of the leases the node holds and wants extended."""
    changes: int = 0
    """How many changes to its replica list and versions this incarnation made before sending this."""

    def check(self) -> None:
        _short("incarnation", self.incarnation)
        if any(len(c) != 3 for c in self.chunks):
            raise BadMessage("Heartbeat: each chunk must be [handle, version, length]")


@dataclass(frozen=True, slots=True)
class CorruptReport:
    handle: int
    node: NodeId


@dataclass(frozen=True, slots=True)
class FsckReq:
    pass


# ---------------------------------------------------------------- chunkserver


@dataclass(frozen=True, slots=True)
class PushReq:
    """cs.push: keep `data` under `data_id` and pass it down the chain."""

    data_id: str
    data: bytes
    chain: list[NodeId]
    part: int = 0
    parts: int = 1
    """The data under `data_id` comes in `parts` pieces, this is piece `part` (pushed concurrently, so the
    hops of the chain overlap: a pipeline)."""

    def check(self) -> None:
        _short("data_id", self.data_id)
        if len(self.chain) > MAX_CHAIN:
            raise BadMessage(f"PushReq: a chain of more than {MAX_CHAIN} replicas")
        if not 1 <= self.parts <= MAX_PUSH_PARTS or self.part >= self.parts:
            raise BadMessage(f"PushReq: part {self.part} of {self.parts} (1..{MAX_PUSH_PARTS} parts)")


@dataclass(frozen=True, slots=True)
class AppendReq:
    handle: int
    data_id: str


@dataclass(frozen=True, slots=True)
class WriteReq:
    handle: int
    data_id: str
    offset: int


@dataclass(frozen=True, slots=True)
class ApplyReq:
    """cs.apply: the primary's batch, in its serial order, for a secondary."""

    handle: int
    version: int
    serial: int
    ops: list[list[Any]]
    """["w", offset, data_id] or ["p", size]."""

    def check(self) -> None:
        for op in self.ops:
            match op:
                case ["w", int(off), str(did)] if 0 <= off <= INT_MAX and 0 < len(did) <= MAX_ID:
                    pass
                case ["p", int(size)] if 0 <= size <= INT_MAX:
                    pass
                case _:
                    raise BadMessage(f"ApplyReq: bad op {op!r:.60}")


@dataclass(frozen=True, slots=True)
class ReadReq:
    handle: int
    version: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ChunkVersionReq:
    """cs.create (a new empty replica) and cs.bump (raise the replica's version)."""

    handle: int
    version: int


@dataclass(frozen=True, slots=True)
class GrantReq:
    handle: int
    version: int
    members: list[NodeId]
    lease_s: float
    start_offset: int

    def check(self) -> None:
        if not 0 < len(self.members) <= MAX_CHAIN:
            raise BadMessage(f"GrantReq: 1..{MAX_CHAIN} members")


@dataclass(frozen=True, slots=True)
class CloneReq:
    handle: int
    version: int
    source: NodeId
    length: int


@dataclass(frozen=True, slots=True)
class DeleteReq:
    handle: int
    below: int = 0
    """Delete only if the replica's version is lower than this (0: unconditionally)."""


@dataclass(frozen=True, slots=True)
class StatusReq:
    verify: bool = False
    """Check every replica's checksums for the report (costs a full read)."""
