"""Consistent hashing with virtual nodes: who owns a key.

Rules this module keeps:

- Positions come from SHA-256 (first 8 bytes, big-endian), never `hash()`, so
  every node, the harness and every run agree on the ring.
- Each node owns `vnodes` tokens at hash("<node>#<i>"); a key at position p is
  owned by the first token clockwise at or after p (wrapping around).
- The preference list of a key is the first `n` *distinct* nodes met walking
  clockwise from the key; `walk` continues past them for sloppy-quorum
  fallbacks. With fewer than `n` nodes the list is all of them.
- A ring is immutable; `with_node`/`without_node` return new rings. Adding or
  removing a node only moves the ranges next to that node's tokens, so about
  1/n of the keys change owner.
- Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

SPACE = 1 << 64
"""Size of the hash space: positions are in [0, SPACE)."""


def position(text: str) -> int:
    """Stable ring position of a string."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def token(node: str, i: int) -> int:
    return position(f"{node}#{i}")


@dataclass(frozen=True)
class Ring:
    """An immutable ring of `nodes`, each with `vnodes` tokens."""

    nodes: tuple[str, ...]
    vnodes: int = 32
    _tokens: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _owners: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.vnodes < 1:
            raise ValueError("vnodes must be >= 1")
        nodes = tuple(sorted(set(self.nodes)))
        object.__setattr__(self, "nodes", nodes)
        # Ties between tokens (astronomically unlikely) break by node name, so the order is total.
        pairs = sorted((token(n, i), n) for n in nodes for i in range(self.vnodes))
        object.__setattr__(self, "_tokens", tuple(t for t, _ in pairs))
        object.__setattr__(self, "_owners", tuple(n for _, n in pairs))

    @classmethod
    def of(cls, nodes: Iterable[str], vnodes: int = 32) -> Ring:
        return cls(tuple(nodes), vnodes)

    def with_node(self, node: str) -> Ring:
        return Ring((*self.nodes, node), self.vnodes)

    def without_node(self, node: str) -> Ring:
        return Ring(tuple(n for n in self.nodes if n != node), self.vnodes)

    def walk(self, key: str) -> Iterator[str]:
        """Every node once, in clockwise order starting at the key's position."""
        if not self._tokens:
            return
        start = bisect.bisect_left(self._tokens, position(key))
        seen: set[str] = set()
        count = len(self._tokens)
        for step in range(count):
            owner = self._owners[(start + step) % count]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == len(self.nodes):
                    return

    def preference_list(self, key: str, n: int) -> list[str]:
        """The first `n` distinct nodes clockwise from the key (all nodes if fewer)."""
        out: list[str] = []
        for node in self.walk(key):
            if len(out) >= n:
                break
            out.append(node)
        return out

    def owner(self, key: str) -> str:
        return self.preference_list(key, 1)[0]

    def shares(self) -> dict[str, float]:
        """Fraction of the hash space each node owns as primary (sums to 1)."""
        out = dict.fromkeys(self.nodes, 0.0)
        count = len(self._tokens)
        for i, t in enumerate(self._tokens):
            prev = self._tokens[i - 1] if i else self._tokens[-1] - SPACE
            # The range (prev, t] belongs to the owner of t.
            out[self._owners[i]] += (t - prev) / SPACE
        if count == 1:
            out[self._owners[0]] = 1.0
        return out


def key_counts(ring: Ring, keys: Iterable[str], n: int = 1) -> dict[str, int]:
    """How many of `keys` each node replicates (as one of the first `n`)."""
    out = dict.fromkeys(ring.nodes, 0)
    for k in keys:
        for node in ring.preference_list(k, n):
            out[node] += 1
    return out


def std_dev(values: Iterable[float]) -> float:
    vals = list(values)
    if not vals:
        return 0.0
    mean = sum(vals) / len(vals)
    return (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
