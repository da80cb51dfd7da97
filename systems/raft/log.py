"""The Raft log in memory: entries after a snapshot, and which of them are on disk.

Rules it keeps (Raft paper §5.3, §7):

- Indexes start at 1. Everything up to and including `snapshot_index` is
  compacted into the snapshot; `term_at(snapshot_index)` is `snapshot_term`,
  and the terms of earlier entries are unknown (None).
- Entries are contiguous: `entries[i].index == snapshot_index + 1 + i`.
- Log Matching: two entries with the same index and term hold the same
  command, so `append_after` only cuts the log at the first entry whose term
  differs, never at an entry that already matches (a stale or duplicated
  AppendEntries must not erase newer entries).
- `stable` is the last index known to be on disk; cutting the log below it
  lowers it. The caller raises it after a completed sync.
- Pure: no I/O, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. `data` None is the leader's no-op of a new term."""

    term: int
    index: int
    data: bytes | None = None

    def to_wire(self) -> list:
        return [self.term, self.index, self.data]

    @staticmethod
    def from_wire(w: object) -> Entry:
        if not (isinstance(w, list | tuple) and len(w) == 3):
            raise ValueError(f"bad entry {w!r}")
        term, index, data = w
        ok_data = data is None or isinstance(data, bytes)
        if not (isinstance(term, int) and isinstance(index, int) and ok_data):
            raise ValueError(f"bad entry {w!r}")
        return Entry(term, index, data)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state machine as of `index` (whose entry had `term`), serialized in `data`."""

    index: int
    term: int
    data: bytes


class RaftLog:
    def __init__(self, snapshot_index: int = 0, snapshot_term: int = 0, entries: list[Entry] | None = None):
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.entries: list[Entry] = []
        for e in entries or []:
            if e.index <= snapshot_index:
                continue
            assert e.index == self.last_index + 1, f"gap in log at {e.index}"
            self.entries.append(e)
        self.stable = self.last_index

    # -- reading
    @property
    def first_index(self) -> int:
        """The first index held as an entry (may exceed last_index when empty)."""
        return self.snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term_at(self, index: int) -> int | None:
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self.entries[index - self.snapshot_index - 1].term

    def entry(self, index: int) -> Entry:
        assert self.snapshot_index < index <= self.last_index, index
        return self.entries[index - self.snapshot_index - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries lo..hi inclusive (clamped to what is held)."""
        lo = max(lo, self.first_index)
        hi = min(hi, self.last_index)
        if lo > hi:
            return []
        base = self.snapshot_index + 1
        return self.entries[lo - base : hi - base + 1]

    def matches(self, index: int, term: int) -> bool:
        return self.term_at(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1: a candidate's log is at least as up-to-date as ours."""
        return last_term > self.last_term or (last_term == self.last_term and last_index >= self.last_index)

    def first_index_of_term(self, index: int) -> int:
        """The first index (not below the snapshot) of the run of entries sharing index's term."""
        term = self.term_at(index)
        i = index
        while i - 1 > self.snapshot_index and self.term_at(i - 1) == term:
            i -= 1
        return i

    def last_index_of_term(self, term: int) -> int | None:
        """The last index holding `term`, or None when no entry held has it."""
        for e in reversed(self.entries):
            if e.term == term:
                return e.index
            if e.term < term:
                return None
        return self.snapshot_index if self.snapshot_term == term and self.snapshot_index > 0 else None

    # -- writing
    def append(self, entry: Entry) -> None:
        assert entry.index == self.last_index + 1
        self.entries.append(entry)

    def truncate_from(self, index: int) -> None:
        """Drop entries at index and after."""
        assert index > self.snapshot_index, "cannot cut into the snapshot"
        del self.entries[index - self.snapshot_index - 1 :]
        self.stable = min(self.stable, index - 1)

    def append_after(self, prev_index: int, entries: list[Entry]) -> int:
        """Append entries that follow prev_index (already matched), cutting at the first conflict.

        Returns the index of the last new entry (prev_index + len(entries)).
        """
        for e in entries:
            if e.index <= self.snapshot_index:
                continue
            have = self.term_at(e.index)
            if have == e.term:
                continue
            if have is not None:
                self.truncate_from(e.index)
            self.append(e)
        return prev_index + len(entries)

    def compact(self, index: int, term: int) -> None:
        """Forget entries up to index; they now live in a snapshot."""
        if index <= self.snapshot_index:
            return
        if index >= self.last_index:
            self.entries = []
        else:
            del self.entries[: index - self.snapshot_index]
        self.snapshot_index, self.snapshot_term = index, term
        self.stable = max(self.stable, index)

    def restore(self, index: int, term: int) -> None:
        """Replace the whole log by a snapshot ending at (index, term)."""
        self.entries = []
        self.snapshot_index, self.snapshot_term = index, term
        self.stable = index

    def unstable(self) -> list[Entry]:
        return self.slice(self.stable + 1, self.last_index)
