"""`api.Disk` over a node's data directory, with real fsync.

Rules this module keeps:

- Names are relative, '/'-separated ("log", "chunks/17"). Rejected with
  `ValueError` naming the problem: empty names or components, absolute paths,
  '.' or '..' components, components starting with '.' (reserved for temp
  files), backslashes and NUL bytes. Nothing outside the data directory is
  ever touched.
- `write` writes a temp file `.<base>.tmp` beside the target, fsyncs it and
  renames it over the target with `os.replace` (atomic), so after a power
  loss the name holds the old content or the new, never an empty or torn
  file (a rename can reach the disk before the data it names); `sync(name)`
  then makes the rename itself durable.
- `append` keeps one cached O_APPEND descriptor per name (no user-space
  buffering: a `read` sees every append at once); `write`, `truncate` and
  `delete` of the name close it first.
- `sync(name)` fsyncs the file and every directory whose entries changed
  since its last fsync (create, rename, delete). While fsyncs are quick (a
  moving average of their durations under `inline_sync_max_s`) it fsyncs on
  the event loop's own thread, through the cached descriptor: handing it to
  a worker thread costs more CPU than the fsync itself (thread wake-ups and
  the GIL passed back and forth), and the caller waits for it anyway. It
  first yields once, so that frames queued in this turn of the loop (a Raft
  leader's AppendEntries) leave before the loop blocks, and the peers'
  fsyncs overlap ours. Once fsyncs turn slow (an SD card, a busy disk) it
  moves them to the loop's default executor (the file opened afresh: any
  descriptor of the inode will do) so the loop keeps serving meanwhile; it
  moves back when they are quick again. `inline_sync_max_s=0`: always the
  executor.
- Group commit: each change of a name bumps its sequence number; a sync
  records the sequence it started at. Concurrent `sync(name)` callers queue
  on one lock per name and a caller whose changes were already covered by a
  finished fsync returns without another: N concurrent syncs cost at most two
  fsyncs.
- `list` walks the directory tree, skips dot files (temp files), sorted.
- Every change first notes, in the unsynced journal (real_unsynced), how to
  get the file back to its last synced state; a completed sync clears it.
  `arm_power_loss()` makes the next start (`RealDisk(root)` over the same
  directory) revert every unsynced change, as a power cut would;
  `recovered` says what the start found and reverted.
- `faults` (disk_faults) is the disk fault in place: a failing write or
  sync raises OSError (EIO, ENOSPC) before touching anything, and a slow
  fsync sleeps its delay on the loop before the fsync. The fault lives in
  this object only: a restarted node starts without it unless the nemesis
  sets it again.
- Fail-stop: a write, append, truncate, delete or sync that fails with an
  OSError (ENOSPC, EIO, EMFILE, ..., injected or real) calls `on_failure`
  with the reason before the error reaches the caller: after a failed fsync
  the kernel may have dropped the dirty pages, so retrying could acknowledge
  data that is gone; the node stops instead (the runtime's fail-stop).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from systems.runtime.api import check_disk_name
from systems.runtime.disk_faults import DiskFaults
from systems.runtime.real_unsynced import UnsyncedJournal

check_name = check_disk_name

INLINE_SYNC_MAX_S = 0.02
"""fsyncs run on the loop thread while their moving average stays below this."""
PATH_CACHE_SIZE = 4096
"""Checked names kept resolved to paths (the hot files of a node are few)."""
FSYNC_AVERAGE_WEIGHT = 0.2
"""Weight of the latest fsync in the moving average of their durations."""


F = TypeVar("F", bound=Callable[..., Any])


def _fail_stop(op: F) -> F:
    """A disk operation whose OSError is the node's end (see the module rules)."""

    @functools.wraps(op)
    def wrapper(self: RealDisk, name: str, *args: Any) -> Any:
        try:
            return op(self, name, *args)
        except OSError as e:
            self._failed(op.__name__, name, e)
            raise

    return wrapper  # type: ignore[return-value]


class RealDisk:
    def __init__(
        self,
        root: Path | str,
        *,
        inline_sync_max_s: float = INLINE_SYNC_MAX_S,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.inline_sync_max_s = inline_sync_max_s
        self.on_failure = on_failure
        self.fsync_s = 0.0
        """Moving average of fsync durations (seconds), per `sync` call."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._fds: dict[str, int] = {}
        self._paths: dict[str, Path] = {}
        self._seq: dict[str, int] = {}
        self._synced: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._dirty_dirs: set[str] = set()
        self.fsyncs = 0
        """How many fsync calls this disk made (files and directories): for tests and stats."""
        self._replaced: dict[str, int] = {}
        """Per name, the sequence number of its last change other than an append."""
        self.faults = DiskFaults()
        self.journal = UnsyncedJournal(self.root)
        self.recovered = self.journal.recover()
        """What this start found: a power loss armed before the last stop, and the files it reverted."""

    def arm_power_loss(self) -> None:
        """The next start over this directory loses every write not synced by then (see real_unsynced)."""
        self.journal.arm()

    # -- helpers -----------------------------------------------------------------------------
    def _failed(self, op: str, name: str, e: OSError) -> None:
        if self.on_failure is not None:
            self.on_failure(f"disk {op} of {self.root / name} failed: {e.strerror or e} (errno {e.errno})")

    def _path(self, name: str) -> Path:
        path = self._paths.get(name)
        if path is None:
            if len(self._paths) >= PATH_CACHE_SIZE:
                self._paths.clear()
            path = self._paths[name] = self.root / check_name(name)
        return path

    def _changed(self, name: str, *, append: bool = False) -> None:
        seq = self._seq[name] = self._seq.get(name, 0) + 1
        if not append:
            self._replaced[name] = seq

    def _close_fd(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def _ensure_parent(self, path: Path) -> None:
        parent = path.parent
        if not parent.is_dir():
            parent.mkdir(parents=True, exist_ok=True)
            # every directory created on the way needs its parent's entry synced
            p = parent
            while p != self.root and self.root in p.parents:
                self._dirty_dirs.add(str(p.parent))
                p = p.parent

    # -- api.Disk ----------------------------------------------------------------------------
    def read(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def read_range(self, name: str, offset: int, size: int) -> bytes | None:
        if offset < 0 or size < 0:
            raise ValueError(f"read_range of {name!r}: offset {offset} and size {size} must be >= 0")
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            parts, got = [], 0
            while got < size:
                part = os.pread(fd, size - got, offset + got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    @_fail_stop
    def write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        self.faults.check_write(name)
        self.journal.before_replace(name, path)
        self._ensure_parent(path)
        self._close_fd(name)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
            self.fsyncs += 1
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self._dirty_dirs.add(str(path.parent))
        self._changed(name)

    @_fail_stop
    def append(self, name: str, data: bytes) -> None:
        self.faults.check_write(name)
        fd = self._fds.get(name)
        if name not in self.journal.entries:
            self.journal.before_append(name, self._path(name))
        if fd is None:
            path = self._path(name)
            self._ensure_parent(path)
            existed = path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._fds[name] = fd
            if not existed:
                self._dirty_dirs.add(str(path.parent))
        _write_all(fd, data)
        self._changed(name, append=True)

    @_fail_stop
    def truncate(self, name: str, size: int) -> None:
        if size < 0:
            raise ValueError(f"truncate size must be >= 0, got {size}")
        path = self._path(name)
        self.faults.check_write(name)
        self.journal.before_replace(name, path)
        self._ensure_parent(path)
        self._close_fd(name)
        if not path.exists():
            self._dirty_dirs.add(str(path.parent))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        self._changed(name)

    @_fail_stop
    def delete(self, name: str) -> None:
        path = self._path(name)
        self.faults.check_write(name, frees=True)
        if not path.exists():
            return
        self.journal.before_replace(name, path)
        self._close_fd(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        self.journal.note_delete(name)
        self._dirty_dirs.add(str(path.parent))
        self._changed(name)

    def list(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            for f in filenames:
                if f.startswith("."):
                    continue
                name = f if rel == "." else f"{rel.replace(os.sep, '/')}/{f}"
                if name.startswith(prefix):
                    out.append(name)
        out.sort()
        return out

    async def sync(self, name: str) -> None:
        path = self._path(name)
        try:
            delay = self.faults.check_sync(name)
        except OSError as e:
            self._failed("sync", name, e)
            raise
        if delay:
            await asyncio.sleep(delay)
        target = self._seq.get(name, 0)
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:
            if self._synced.get(name, -1) >= target and not self._dirty_dirs:
                return  # an fsync that started after our changes already finished
            inline = self.fsync_s < self.inline_sync_max_s
            if inline:
                await asyncio.sleep(0)  # let this turn's queued frames leave before the loop blocks
            start_seq = self._seq.get(name, 0)
            start_size = self._size_of(name, path) if not inline else None
            dirs = sorted(self._dirty_dirs)
            self._dirty_dirs.clear()
            try:
                if inline:
                    n, took = _timed_fsync(str(path), dirs, self._fds.get(name))
                else:
                    loop = asyncio.get_running_loop()
                    n, took = await loop.run_in_executor(None, _timed_fsync, str(path), dirs, None)
            except OSError as e:
                self._dirty_dirs.update(dirs)
                self._failed("sync", name, e)
                raise
            except BaseException:
                self._dirty_dirs.update(dirs)
                raise
            self.fsyncs += n
            self.fsync_s += FSYNC_AVERAGE_WEIGHT * (took - self.fsync_s)
            self._synced[name] = max(self._synced.get(name, 0), start_seq)
            changed_since = self._seq.get(name, 0) != start_seq
            if changed_since and self._replaced.get(name, 0) > start_seq:
                start_size = None  # replaced meanwhile: keep the older way back (real_unsynced)
            self.journal.synced(name, appended_since_start=changed_since, size_at_start=start_size)

    def _size_of(self, name: str, path: Path) -> int | None:
        fd = self._fds.get(name)
        try:
            return os.fstat(fd).st_size if fd is not None else os.stat(path).st_size
        except FileNotFoundError:
            return None

    def close(self) -> None:
        for name in list(self._fds):
            self._close_fd(name)
        self.journal.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _timed_fsync(path: str, dirs: list[str], fd: int | None) -> tuple[int, float]:
    started = time.monotonic()
    n = _fsync_paths(path, dirs, fd)
    return n, time.monotonic() - started


def _fsync_paths(path: str, dirs: list[str], fd: int | None = None) -> int:
    """fsync the file (through `fd` when given, else opened afresh if it exists), then each
    directory; returns the fsync count."""
    count = 0
    if fd is not None:
        os.fsync(fd)
        count += 1
    else:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            try:
                os.fsync(fd)
                count += 1
            finally:
                os.close(fd)
    for d in dirs:
        try:
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(dfd)
            count += 1
        finally:
            os.close(dfd)
    return count
