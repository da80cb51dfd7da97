"""Where the replicas are, and which of them may be used (GFS §2.6.2, §4.5, §5.2).

The master does not persist replica locations: it learns them from each
chunkserver's heartbeat (the full list of its replicas with their versions
and lengths) and forgets a chunkserver's replicas when it stops hearing from it.

Version rules (`classify`), comparing a replica's version with the master's:

- equal: current. Only current, live, not-corrupt replicas are handed to
  clients, take part in leases, or serve as clone sources.
- lower: stale (it missed a lease while it was down or cut off). Never
  handed out; the chunkserver is told to delete it, on the condition that it
  is still older than the master's version when the order arrives. Unless
  it is readmissible: at or above the highest version a lease may have been
  granted at (namespace `leased`), it missed only bumps that carried no
  writes (a clone's, or a lease round it did not answer), so it holds every
  acknowledged write. While the chunk is short of its goal the master keeps
  such a replica and moves it up to the current version with the others
  instead of deleting it (one flaky answer must not turn two copies into one).
- higher: the master must have failed while granting a lease after the
  replicas moved (§4.5): the master takes the higher version as current.
- Planted bug `no-version`: every replica counts as current, whatever its version.

A replica reported corrupt (a checksum mismatch) is `bad` until it is
deleted; it is never handed out. Pure: times and liveness are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Standing(StrEnum):
    CURRENT = "current"
    STALE = "stale"
    AHEAD = "ahead"


def classify(master_version: int, replica_version: int, *, ignore_versions: bool = False) -> Standing:
    if ignore_versions or replica_version == master_version:
        return Standing.CURRENT
    return Standing.STALE if replica_version < master_version else Standing.AHEAD


@dataclass(frozen=True, slots=True)
class Held:
    version: int
    length: int


@dataclass
class ReplicaMap:
    ignore_versions: bool = False
    held: dict[int, dict[str, Held]] = field(default_factory=dict)
    """chunk handle -> node -> what that node last said it holds."""
    bad: dict[int, set[str]] = field(default_factory=dict)

    def report(self, node: str, replicas: dict[int, Held]) -> None:
        """Replace everything known of `node` with its latest full report."""
        for handle in list(self.held):
            if node in self.held[handle] and handle not in replicas:
                del self.held[handle][node]
                self._forget_bad(handle, node)
        for handle, held in replicas.items():
            self.held.setdefault(handle, {})[node] = held

    def add(self, handle: int, node: str, held: Held) -> None:
        self.held.setdefault(handle, {})[node] = held
        self._forget_bad(handle, node)

    def set_version(self, handle: int, node: str, version: int, length: int) -> None:
        self.held.setdefault(handle, {})[node] = Held(version, length)

    def drop(self, handle: int, node: str) -> None:
        self.held.get(handle, {}).pop(node, None)
        self._forget_bad(handle, node)

    def drop_node(self, node: str) -> None:
        for handle in list(self.held):
            self.drop(handle, node)

    def forget_chunk(self, handle: int) -> None:
        self.held.pop(handle, None)
        self.bad.pop(handle, None)

    def mark_bad(self, handle: int, node: str) -> None:
        self.bad.setdefault(handle, set()).add(node)

    def is_bad(self, handle: int, node: str) -> bool:
        return node in self.bad.get(handle, ())

    def _forget_bad(self, handle: int, node: str) -> None:
        nodes = self.bad.get(handle)
        if nodes is not None:
            nodes.discard(node)
            if not nodes:
                del self.bad[handle]

    # ------------------------------------------------------------ judgements
    def standing(self, handle: int, node: str, version: int) -> Standing | None:
        held = self.held.get(handle, {}).get(node)
        if held is None:
            return None
        return classify(version, held.version, ignore_versions=self.ignore_versions)

    def current(self, handle: int, version: int, alive: set[str] | frozenset[str]) -> list[str]:
        """Live, uncorrupted replicas at the master's version (sorted)."""
        return sorted(
            n for n, held in self.held.get(handle, {}).items()
            if n in alive and not self.is_bad(handle, n)
            and classify(version, held.version, ignore_versions=self.ignore_versions) is Standing.CURRENT
        )

    def count_current(self, handle: int, version: int, alive: set[str] | frozenset[str]) -> int:
        """len(current(...)), without building the list: the master asks it of every chunk ten times a second."""
        held = self.held.get(handle)
        if not held:
            return 0
        bad = self.bad.get(handle, ())
        return sum(1 for n, h in held.items()
                   if n in alive and n not in bad and (self.ignore_versions or h.version == version))

    def readmissible(self, handle: int, version: int, leased: int, alive: set[str] | frozenset[str]) -> list[str]:
        """Live, uncorrupted stale replicas that still hold every acknowledged write (sorted)."""
        if self.ignore_versions:
            return []
        return sorted(
            n for n, held in self.held.get(handle, {}).items()
            if n in alive and not self.is_bad(handle, n) and leased <= held.version < version
        )

    def stale(self, handle: int, version: int) -> list[str]:
        if self.ignore_versions:
            return []
        return sorted(n for n, held in self.held.get(handle, {}).items() if held.version < version)

    def highest(self, handle: int) -> int:
        return max((h.version for h in self.held.get(handle, {}).values()), default=0)

    def nodes(self, handle: int) -> list[str]:
        return sorted(self.held.get(handle, {}))

    def load(self, nodes: set[str] | frozenset[str]) -> dict[str, int]:
        """How many replicas each of `nodes` holds, in one pass over the chunks (keys sorted)."""
        counts = dict.fromkeys(sorted(nodes), 0)
        for holders in self.held.values():
            for n in holders:
                if n in counts:
                    counts[n] += 1
        return counts
