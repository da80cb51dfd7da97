"""What a real node's disk would lose if its power went off: a journal of unsynced changes.

A SIGKILLed process loses nothing it wrote: the kernel's page cache keeps
every `write` and writes it back later. A power cut loses what was not
fsynced. The harness cuts a node's "power" by SIGKILL, so to make a power
fault lose unsynced writes on real processes (as the simulator does), the
real disk keeps this journal and reverts it at the next start *when the
harness armed a power loss before the kill*; after a plain kill (a process
crash) the journal is dropped and every write survives, as it would.

Rules this module keeps:

- For every file changed since its last completed sync, the journal holds
  how to get back to its synced state: `("size", n)` while the changes are
  appends to a file whose first n bytes were synced, `("content", bytes)`
  once the file was replaced, truncated or deleted (its synced content,
  read before the change), `("content", None)` when it did not exist at
  its last sync. The first change of a file after a sync writes one record;
  a completed sync of it writes a `clear` record; a completed sync of any
  file makes every delete since durable (the directories are fsynced), as
  the simulator's disk does.
- The journal is a file `.unsynced.journal` in the data directory (hidden
  from `list`), written with plain `write`s: it must survive a SIGKILL (the
  page cache keeps it), never a real power cut, so it is never fsynced.
  Records are length-prefixed msgpack; a torn tail is ignored. It is
  rewritten with only the live entries once it passes `COMPACT_BYTES`.
- `arm()` appends a `power-loss` record: the next `recover()` (at the
  node's next start) reverts every journalled file to its synced state
  (truncate, rewrite or delete, each then fsynced), says which and starts
  an empty journal. Without it (a process crash), `recover()` keeps the
  entries: what the dead process wrote is in the page cache but still not
  durable, so a power loss later still loses it unless a sync came first.
- What it does not model: a real power cut may also keep some unsynced
  writes (written back before the cut) or tear a file mid-page; this keeps
  none and tears nothing, the cleanest of the outcomes a real disk allows.
  A write of a file racing an fsync of the same file on the executor path
  (slow fsyncs) reverts to the state before that fsync.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

JOURNAL_NAME = ".unsynced.journal"
COMPACT_BYTES = 1 << 20
_LEN = struct.Struct(">I")

Entry = tuple[str, int | bytes | None]
"""("size", n) or ("content", bytes | None)."""


@dataclass
class Recovery:
    """What the last start found: whether a power loss was armed, and the files it reverted."""

    power_loss: bool = False
    reverted: list[str] = field(default_factory=list)


class UnsyncedJournal:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / JOURNAL_NAME
        self.entries: dict[str, Entry] = {}
        self.deleted: set[str] = set()
        self._fd = -1
        self._size = 0

    # -- recording ---------------------------------------------------------------------------------
    def before_append(self, name: str, path: Path) -> None:
        if name in self.entries:
            return
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            self._put(name, ("content", None))
            return
        self._put(name, ("size", size))

    def before_replace(self, name: str, path: Path) -> None:
        """Before a write, truncate or delete of `name`."""
        entry = self.entries.get(name)
        if entry is not None and entry[0] == "content":
            return
        try:
            data: bytes | None = path.read_bytes()
        except FileNotFoundError:
            data = None
        if entry is not None:  # ("size", n): the synced content is the first n bytes
            n = entry[1]
            assert isinstance(n, int)
            data = (data or b"")[:n]
        self._put(name, ("content", data))

    def note_delete(self, name: str) -> None:
        self.deleted.add(name)

    def synced(self, name: str, *, appended_since_start: bool, size_at_start: int | None) -> None:
        """A sync of `name` completed. With changes since it started: appends only keep
        ("size", size_at_start); anything else keeps the older entry (see the module rules)."""
        if name not in self.entries:
            pass
        elif not appended_since_start:
            self._append([name, "clear", None])
            del self.entries[name]
        elif size_at_start is not None:
            self._put(name, ("size", size_at_start), force=True)
        for gone in sorted(self.deleted):
            if not (self.root / gone).exists() and gone in self.entries:
                self._append([gone, "clear", None])
                del self.entries[gone]
            self.deleted.discard(gone)

    def arm(self) -> None:
        """The next start reverts every unsynced change (the harness is about to cut the power)."""
        self._append(["", "power-loss", None])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _put(self, name: str, entry: Entry, *, force: bool = False) -> None:
        if name in self.entries and not force:
            return
        self.entries[name] = entry
        self._append([name, *entry])

    def _append(self, record: list[object]) -> None:
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._size = os.fstat(self._fd).st_size
        body = msgpack.packb(record, use_bin_type=True)
        frame = _LEN.pack(len(body)) + body
        view = memoryview(frame)
        while view:
            view = view[os.write(self._fd, view):]
        self._size += len(frame)
        if self._size > COMPACT_BYTES and record[1] != "power-loss":
            self._compact()

    def _compact(self) -> None:
        tmp = self.root / (JOURNAL_NAME + ".tmp")
        out = bytearray()
        for name, (kind, value) in self.entries.items():
            body = msgpack.packb([name, kind, value], use_bin_type=True)
            out += _LEN.pack(len(body)) + body
        tmp.write_bytes(bytes(out))
        os.replace(tmp, self.path)
        self.close()

    # -- recovery ----------------------------------------------------------------------------------
    def recover(self) -> Recovery:
        """At start: revert if a power loss was armed, then start a fresh journal."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Recovery()
        entries, armed = _fold(raw)
        result = Recovery(power_loss=armed)
        if armed:
            for name, entry in sorted(entries.items()):
                if _revert(self.root / name, entry):
                    result.reverted.append(name)
            self.path.unlink()
            return result
        self.entries = entries
        self.deleted = {n for n, (kind, _) in entries.items() if kind == "content" and not (self.root / n).exists()}
        self._compact()
        return result


def _fold(raw: bytes) -> tuple[dict[str, Entry], bool]:
    entries: dict[str, Entry] = {}
    armed = False
    pos = 0
    while pos + _LEN.size <= len(raw):
        (n,) = _LEN.unpack_from(raw, pos)
        if pos + _LEN.size + n > len(raw):
            break  # a torn tail
        try:
            name, kind, value = msgpack.unpackb(raw[pos + _LEN.size:pos + _LEN.size + n], raw=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            break
        pos += _LEN.size + n
        if kind == "power-loss":
            armed = True
        elif kind == "clear":
            entries.pop(name, None)
        elif kind in ("size", "content"):
            entries[name] = (kind, value)
    return entries, armed


def _revert(path: Path, entry: Entry) -> bool:
    """Put the file back to its synced state; True if anything changed."""
    kind, value = entry
    if kind == "size":
        assert isinstance(value, int)
        try:
            if os.stat(path).st_size == value:
                return False
        except FileNotFoundError:
            return False
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, value)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    if value is None:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True
    assert isinstance(value, bytes)
    try:
        if path.read_bytes() == value:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(value)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return True


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
