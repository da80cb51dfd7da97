"""Who is on the ring: a small gossiped table of node -> (version, status).

Rules this module keeps:

- The table maps each node ever named to (version, "member" | "left").
  A join or leave bumps that node's version; merging two tables keeps, per
  node, the entry with the larger (version, status) pair, so gossip converges
  whatever the order and duplication of messages (a join-semilattice).
- The ring is made of the nodes whose status is "member".
- A node that has left still runs and still coordinates requests; it simply
  owns no keys, and hands what it owned to the new owners (handoff.py).
- A table from the wire (`decode`) names at most MAX_TABLE nodes, each a
  node id (api.check_node_id), with a version in 0..INT_MAX: a peer's
  2**64 - 1 (which would end every later join or leave: one more does not
  fit the wire) is refused, like anything else malformed.
- Pure: the node persists and gossips the table (node.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from systems.runtime.api import INT_MAX, check_node_id

MAX_TABLE = 1024
MEMBER = "member"
LEFT = "left"


class MembershipError(ValueError):
    """A malformed membership table from a peer."""


@dataclass(frozen=True, slots=True)
class Entry:
    version: int
    status: str

    def key(self) -> tuple[int, str]:
        return (self.version, self.status)


@dataclass(frozen=True)
class Membership:
    table: tuple[tuple[str, Entry], ...] = ()

    @classmethod
    def initial(cls, nodes: Iterable[str]) -> Membership:
        return cls(tuple((n, Entry(0, MEMBER)) for n in sorted(set(nodes))))

    def as_dict(self) -> dict[str, Entry]:
        return dict(self.table)

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(n for n, e in self.table if e.status == MEMBER)

    def _set(self, node: str, status: str) -> Membership:
        d = self.as_dict()
        old = d.get(node)
        if old is not None and old.status == status:
            return self
        d[node] = Entry((old.version if old else 0) + 1, status)
        return Membership(tuple(sorted(d.items())))

    def join(self, node: str) -> Membership:
        return self._set(node, MEMBER)

    def leave(self, node: str) -> Membership:
        return self._set(node, LEFT)

    def merge(self, other: Membership) -> Membership:
        d = self.as_dict()
        for n, e in other.table:
            if n not in d or e.key() > d[n].key():
                d[n] = e
        return Membership(tuple(sorted(d.items())))

    def encode(self) -> dict[str, list[Any]]:
        return {n: [e.version, e.status] for n, e in self.table}

    @classmethod
    def decode(cls, raw: Any) -> Membership:
        if not isinstance(raw, Mapping) or len(raw) > MAX_TABLE:
            raise MembershipError(f"bad membership table {str(raw)[:80]}")
        out = []
        for n, v in raw.items():
            try:
                version, status = v
                check_node_id(n)
            except (TypeError, ValueError) as e:
                raise MembershipError(f"bad entry {str(n)[:80]}: {str(v)[:80]}") from e
            if type(version) is not int or not 0 <= version <= INT_MAX or status not in (MEMBER, LEFT):
                raise MembershipError(f"bad entry {n!r}: {str(v)[:80]} (version 0..{INT_MAX}, member or left)")
            out.append((n, Entry(version, status)))
        return cls(tuple(sorted(out)))
