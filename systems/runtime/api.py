"""The one seam between a system and the world it runs in.

Every system is written once, as asyncio code against `Runtime`, and runs
unchanged on the real runtime (TCP + files + wall clock, one process per node)
and on the simulator (virtual clock, simulated network and disk, one seed).

Rules this module fixes for every implementation:

- Messages are msgpack-able values: None, bool, int, float, str, bytes, and
  lists and dicts of those (dict keys are str or int). A system converts its
  own dataclasses to and from such values; the runtime never pickles.
- `call` either returns the handler's reply or raises an `RpcError`:
  `Unreachable` when the request certainly never reached a handler (no route,
  connection refused: a *definite* failure), `RpcTimeout` when no reply came
  in time (the request may or may not have been applied: *indefinite*;
  `ConnectionLost` is the same when the connection died mid-call), and
  `RemoteError` when the handler raised `RpcError` itself (its `definite` flag
  travels with it).
- A handler is `async def handler(src: str, msg) -> reply`. A handler that
  raises `RemoteError`/`RpcError` answers the caller with that error; any other
  exception is logged by the runtime and answered as an indefinite
  `RemoteError("internal", ...)`. Bad input never crashes a node.
- `send` is fire-and-forget: it never raises, and the message may be lost,
  delayed, duplicated or reordered. One-way messages go to handlers registered
  with `serve` too; their return value is discarded.
- `disk` loses every write that was not followed by a completed `sync` of the
  same file when the node crashes (the simulator enforces this exactly; the
  real runtime fsyncs on `sync`, and loses unsynced writes on a power fault:
  systems/runtime/real_unsynced.py). Under a disk fault any write or `sync`
  may raise `OSError` (EIO, ENOSPC; systems/runtime/disk_faults.py), and
  the node then stops (Fail-stop below): a system never sees a disk error
  and lives on.
- `now()` and `sleep()` read the node's clock, which a clock fault may jump
  (then `now()` is not monotonic) or make run fast or slow
  (systems/runtime/clock.py).
- `LinkFault` (trouble on one link) is defined in base/links.py and re-exported here.
- Durable state is checksummed: `frame_record`/`scan_records` for logs,
  `frame_file`/`unframe_file` for whole files (records.py, re-exported
  here). A torn tail is cut with a warning; damage before it is
  `CorruptData` naming the file and offset, and the node refuses to start.
- `rng` is the node's own seeded stream. Systems never use the global
  `random`, `time`, sockets, threads or files (tests/test_purity.py enforces it).
- Fail-stop: a task spawned `essential=True` (a protocol loop, a disk
  writer) that ends with an exception stops the node for good: the real
  runtime logs `node-failed` with the reason and the process exits non-zero;
  the simulator crashes the node. A disk operation that fails (a write,
  append, truncate, delete or sync raising OSError: EIO, ENOSPC, a failed
  fsync, injected or real) stops the node the same way, on every backend,
  before its caller gets the OSError, so nothing it failed to persist is
  acknowledged. A node never lives on as a zombie; a disk fault is held by
  the incarnation, so a restarted node runs without it until the nemesis
  sets it again.
- Peers are not trusted to be sane: every message is checked against its
  schema at the edge (`INT_MAX` bounds terms, versions and counters;
  `check_node_id` bounds names); a bad one is dropped and counted
  (`Throttle` keeps the warnings about them to a trickle).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from base.links import LINK_FAULT_FIELDS as LINK_FAULT_FIELDS  # re-exported: part of the seam
from base.links import LinkFault as LinkFault
from systems.runtime.records import RECORD_HEADER_BYTES as RECORD_HEADER_BYTES  # re-exported: checksummed data
from systems.runtime.records import CorruptData as CorruptData
from systems.runtime.records import Scan as Scan
from systems.runtime.records import frame_file as frame_file
from systems.runtime.records import frame_record as frame_record
from systems.runtime.records import scan_records as scan_records
from systems.runtime.records import unframe_file as unframe_file

Message = Any
"""A msgpack-able value (see the module rules)."""

Handler = Callable[[str, Message], Awaitable[Message]]


class RpcError(Exception):
    """An RPC failed. `definite` is True when the request certainly had no effect."""

    code: str = "error"
    definite: bool = False

    def __init__(self, message: str = "", *, code: str | None = None, definite: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if definite is not None:
            self.definite = definite

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, definite={self.definite}, {self.message!r})"


class Unreachable(RpcError):
    """The request never reached a handler: connection refused, no route, node down."""

    code = "unreachable"
    definite = True


class RpcTimeout(RpcError):
    """No reply in time; the request may have been applied."""

    code = "timeout"
    definite = False


class ConnectionLost(RpcTimeout):
    """The connection died with the request in flight: it may have been delivered (indefinite)."""

    code = "connection-lost"


class RemoteError(RpcError):
    """The handler answered with an error. Handlers raise it to reply with an error."""

    code = "remote"


class ProtocolError(Exception):
    """A peer sent something that is not a valid frame or message. Logged and dropped."""


INT_MAX = 2**63 - 1
"""The largest term, version, index or counter a message may carry (a peer's 2**64 - 1 is refused:
one more would not fit the wire)."""

_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_node_id(name: str) -> str:
    """Return `name` if it is a safe node id, else raise ValueError saying why.

    A node id is 1 to 64 of A-Z, a-z, 0-9, "_", "." and "-", starting with a letter or a
    digit: it names files and directories, so it can never be "..", hold a "/" or be empty.
    """
    if not isinstance(name, str) or not _NODE_ID.fullmatch(name):
        raise ValueError(
            f"node id {name!r} must be 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit"
        )
    return name


def check_disk_name(name: str) -> str:
    """Return `name` if it is a valid disk name, else raise ValueError saying why.

    Names are relative paths of non-empty components separated by "/", with
    no ".", ".." or hidden (leading ".") component, no backslash and no NUL,
    so a name means the same file on every disk and never leaves the node's
    data directory.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"disk name must be a non-empty string, got {name!r}")
    if "\x00" in name or "\\" in name:
        raise ValueError(f"disk name {name!r} contains a NUL byte or a backslash")
    if name.startswith("/"):
        raise ValueError(f"disk name {name!r} is absolute; names are relative to the data directory")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"disk name {name!r} has an empty, '.' or '..' component")
        if part.startswith("."):
            raise ValueError(f"disk name {name!r} has a component starting with '.' (reserved)")
    return name


class Disk(Protocol):
    """Durable files named by flat relative names ("log", "meta", "chunks/17").

    Writes land in the file at once (a later `read` on the same node sees them),
    but survive a crash only once `sync(name)` has completed after them.
    `write` replaces a whole file atomically: after a crash the file holds
    either its last synced content or, if synced after the write, the new one.
    """

    def read(self, name: str) -> bytes | None:
        """The file's content, or None when it does not exist."""
        ...

    def read_range(self, name: str, offset: int, size: int) -> bytes | None:
        """Up to `size` bytes of the file from `offset` (short at its end), or None when it does not exist."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Replace the whole file (atomic rename on the real disk)."""
        ...

    def append(self, name: str, data: bytes) -> None:
        """Append to the file, creating it if needed."""
        ...

    def truncate(self, name: str, size: int) -> None:
        """Cut the file to `size` bytes (a missing file is created; growing zero-fills)."""
        ...

    def delete(self, name: str) -> None:
        """Remove the file if it exists (durable after the next sync of any file)."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Names of existing files starting with `prefix`, sorted."""
        ...

    async def sync(self, name: str) -> None:
        """Make every earlier write/append/truncate of `name` durable (fsync)."""
        ...


class Log(Protocol):
    """Structured node log: an event name and fields, one JSON line per record."""

    def debug(self, event: str, **fields: Any) -> None: ...
    def info(self, event: str, **fields: Any) -> None: ...
    def warning(self, event: str, **fields: Any) -> None: ...
    def error(self, event: str, **fields: Any) -> None: ...


@runtime_checkable
class Runtime(Protocol):
    """What a node (or a harness client) may use. See the module docstring for the rules."""

    node_id: str
    peers: list[str]
    """The other nodes of the cluster, sorted, without `node_id`."""
    rng: random.Random
    disk: Disk
    log: Log

    def now(self) -> float:
        """Monotonic seconds since an arbitrary origin (virtual in sim)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "", *, essential: bool = False) -> Any:
        """Run a background task owned by the node; cancelled when the node stops or crashes.

        An exception escaping the task is logged, never silently lost. When the task is
        `essential` (the node cannot work without it), such an exception also stops the node
        (see Fail-stop in the module rules).
        """
        ...

    async def call(self, dst: str, method: str, msg: Message, timeout: float = 1.0) -> Message: ...

    def send(self, dst: str, method: str, msg: Message) -> None: ...

    def serve(self, method: str, handler: Handler) -> None: ...


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What a node is told at start, identical on every backend.

    `options` holds system-specific settings (timeouts, replication factor, ...)
    as msgpack-able values; `bugs` the names of planted bugs to switch on.
    """

    system: str
    bugs: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


NodeMain = Callable[[Runtime, NodeConfig], Awaitable[None]]
"""A system's entry point: `async def start_node(rt, config)`. It registers its
handlers, spawns its background tasks and returns; the node then lives until
it is stopped or crashes. It is called again, on a fresh runtime over the same
disk, after every restart."""


def derive_seed(seed: int, *names: str | int) -> int:
    """A stable 64-bit seed from (seed, names...): the same on every machine and run.

    Never use `hash()` for this: it is salted per process for strings.
    """
    h = hashlib.sha256(str(seed).encode())
    for name in names:
        h.update(b"\x00" + str(name).encode())
    return int.from_bytes(h.digest()[:8], "big")


def derive_rng(seed: int, *names: str | int) -> random.Random:
    """A `random.Random` seeded by `derive_seed(seed, *names)`."""
    return random.Random(derive_seed(seed, *names))


class Throttle:
    """A repeated warning kept to a trickle: per event, the first `burst` records of every
    `window_s` are logged whole; the rest are only counted, and told in one
    `<event>-summary` record (how many, and the last one's fields) once the window is over.

    `flush()` tells the summaries of windows that are over (call it from a timer: a warning
    that stops coming is still summed up). `counts` holds every event's total. Time is the
    runtime's (`rt.now`), so the simulator stays deterministic.
    """

    def __init__(self, log: Log, now: Callable[[], float], *, window_s: float = 10.0, burst: int = 5) -> None:
        self.log = log
        self.now = now
        self.window_s = window_s
        self.burst = burst
        self.counts: dict[str, int] = {}
        self._windows: dict[str, list[Any]] = {}
        """event -> [window start, logged in it, suppressed in it, last suppressed fields]"""

    def warning(self, event: str, **fields: Any) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1
        now = self.now()
        w = self._windows.get(event)
        if w is None or now - w[0] >= self.window_s:
            if w is not None:
                self._summarise(event, w)
            w = self._windows[event] = [now, 0, 0, None]
        if w[1] < self.burst:
            w[1] += 1
            self.log.warning(event, **fields)
        else:
            w[2] += 1
            w[3] = fields

    def flush(self) -> None:
        now = self.now()
        for event, w in list(self._windows.items()):
            if now - w[0] >= self.window_s:
                self._summarise(event, w)
                del self._windows[event]

    def _summarise(self, event: str, w: list[Any]) -> None:
        if w[2]:
            self.log.warning(f"{event}-summary", suppressed=w[2], window_s=self.window_s, last=w[3])
