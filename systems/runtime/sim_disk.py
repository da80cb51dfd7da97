"""The simulated disk: in memory, with exact crash semantics.

Rules this module keeps:

- A node's disk (`DiskStore`) outlives its incarnations: it holds, per file,
  the *durable* content (what survives a crash) and the *current* content
  (what the running node reads: durable plus every write since).
- Names follow the real disk's rules (relative, no empty/'.'/'..' or
  dot-prefixed components, no NUL or backslash), else ValueError.
- `write` replaces a whole file atomically; `append`/`truncate` edit it in
  place (`truncate` creates a missing file and zero-fills when growing);
  all three are visible to `read` at once and durable only after a
  `sync(name)` of that file completes. `sync` takes `sync_s` of virtual time
  and makes durable exactly what the file held when it was called.
- `delete` is durable after the next completed sync of any file.
- `crash()` throws away everything not durable: current := durable.
- `faults` (systems.runtime.disk_faults) is the disk fault in place on the
  node: a failing write or sync raises OSError (EIO, ENOSPC) before touching
  anything; a slow fsync adds its delay to `sync_s`. It is held for one
  incarnation, as the real runtime holds it in the node's process: the
  world starts every incarnation with none (`DiskStore.new_incarnation`), so
  a restarted node carries a fault only when the nemesis sets it again.
- Fail-stop (api.py): a write, append, truncate, delete or sync that raises
  OSError calls the view's `on_failure` with the reason first (the
  simulator crashes the node there, as the real runtime exits), then the
  caller gets the error; nothing it failed to persist is acknowledged.
- A running incarnation reaches the store through a `DiskView` bound to it:
  once that incarnation is dead (crashed or stopped), its writes are ignored
  and its syncs never complete, so a cancelled task's `finally` cannot reach
  the disk after the "power" went off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from systems.runtime.api import check_disk_name
from systems.runtime.disk_faults import DiskFaults


class DiskStore:
    """Durable and current content of one node's files."""

    def __init__(self) -> None:
        self.durable: dict[str, bytes] = {}
        self.current: dict[str, bytearray] = {}
        self.pending_deletes: dict[str, None] = {}
        """Names deleted since the last sync (an insertion-ordered set)."""
        self.faults = DiskFaults()

    def new_incarnation(self) -> None:
        """A node (re)starts: no disk fault is in place until one is set again (as on a real process)."""
        self.faults = DiskFaults()

    def crash(self) -> None:
        """Lose everything that was not synced."""
        self.current = {name: bytearray(data) for name, data in self.durable.items()}
        self.pending_deletes.clear()

    def snapshot(self, name: str) -> tuple[bytes | None, list[str]]:
        """What a sync of `name` started now would make durable: its content and the deletes."""
        data = self.current.get(name)
        return (bytes(data) if data is not None else None), list(self.pending_deletes)

    def make_durable(self, name: str, data: bytes | None, deletes: list[str]) -> None:
        if data is None:
            self.durable.pop(name, None)
        else:
            self.durable[name] = data
        for gone in deletes:
            if gone not in self.current:
                self.durable.pop(gone, None)
            self.pending_deletes.pop(gone, None)

    def unsynced(self) -> list[str]:
        """Names whose current content differs from the durable one (sorted)."""
        names = sorted({*self.current, *self.durable})
        cur = {n: bytes(b) for n, b in self.current.items()}
        return [n for n in names if self.durable.get(n) != cur.get(n)]


class DiskView:
    """`systems.runtime.api.Disk` for one incarnation of a node."""

    def __init__(
        self,
        store: DiskStore,
        alive: Callable[[], bool],
        sync_s: float = 0.001,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._alive = alive
        self.sync_s = sync_s
        self.on_failure = on_failure

    def _check_write(self, op: str, name: str, *, frees: bool = False) -> None:
        faults = self._store.faults
        if faults.kind is None:
            return
        try:
            faults.check_write(name, frees=frees)
        except OSError as e:
            self._failed(op, name, e)
            raise

    def _failed(self, op: str, name: str, e: OSError) -> None:
        if self.on_failure is not None and self._alive():
            self.on_failure(f"disk {op} of {name} failed: {e.strerror or e} (errno {e.errno})")

    def read(self, name: str) -> bytes | None:
        check_disk_name(name)
        data = self._store.current.get(name)
        return bytes(data) if data is not None else None

    def read_range(self, name: str, offset: int, size: int) -> bytes | None:
        check_disk_name(name)
        if offset < 0 or size < 0:
            raise ValueError(f"read_range of {name!r}: offset {offset} and size {size} must be >= 0")
        data = self._store.current.get(name)
        return bytes(data[offset : offset + size]) if data is not None else None

    def write(self, name: str, data: bytes) -> None:
        check_disk_name(name)
        self._check_write("write", name)
        if self._alive():
            self._store.current[name] = bytearray(data)
            self._store.pending_deletes.pop(name, None)

    def append(self, name: str, data: bytes) -> None:
        check_disk_name(name)
        self._check_write("append", name)
        if self._alive():
            self._store.current.setdefault(name, bytearray()).extend(data)
            self._store.pending_deletes.pop(name, None)

    def truncate(self, name: str, size: int) -> None:
        check_disk_name(name)
        if size < 0:
            raise ValueError(f"truncate {name!r} to a negative size {size}")
        self._check_write("truncate", name)
        if not self._alive():
            return
        buf = self._store.current.setdefault(name, bytearray())  # created if missing, as ftruncate does
        if size <= len(buf):
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))
        self._store.pending_deletes.pop(name, None)

    def delete(self, name: str) -> None:
        check_disk_name(name)
        self._check_write("delete", name, frees=True)
        if self._alive() and self._store.current.pop(name, None) is not None:
            self._store.pending_deletes[name] = None

    def list(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self._store.current if n.startswith(prefix))

    async def sync(self, name: str) -> None:
        check_disk_name(name)
        try:
            extra = self._store.faults.check_sync(name)
        except OSError as e:
            self._failed("sync", name, e)
            raise
        data, deletes = self._store.snapshot(name)
        await asyncio.sleep(self.sync_s + extra)
        if not self._alive():
            raise asyncio.CancelledError()
        self._store.make_durable(name, data, deletes)
