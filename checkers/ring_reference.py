"""A reference consistent-hashing ring, written apart from the system's, to judge placement.

The KV checkers must not trust the code they judge (a bug in the system's ring
would otherwise agree with itself), so this is a second, deliberately plain
implementation of the placement rules the KV store documents
(systems/kv/ring.py's docstring, restated here):

- A node owns `vnodes` tokens; token i of node `x` sits at the first 8 bytes,
  big-endian, of SHA-256("x#i"). A key sits at the same function of its name.
- A key's preference list is the first `n` distinct nodes met walking
  clockwise from the key's position, starting at the first token at or after
  it and wrapping around; ties between equal tokens go to the smaller node name.
- A node's share is the fraction of the ring it owns as primary: the range
  (previous token, its token].

Linear scans, no bisect, no caching: slow but obviously right for the few
hundred keys a test stores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SPACE = 1 << 64


def ring_position(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class ReferenceRing:
    def __init__(self, nodes: Iterable[str], vnodes: int) -> None:
        if vnodes < 1:
            raise ValueError("vnodes must be >= 1")
        self.nodes = sorted(set(nodes))
        self.vnodes = vnodes
        self.tokens = sorted((ring_position(f"{node}#{i}"), node) for node in self.nodes for i in range(vnodes))

    def preference_list(self, key: str, n: int) -> list[str]:
        if not self.tokens:
            return []
        at = ring_position(key)
        first = next((i for i, (t, _) in enumerate(self.tokens) if t >= at), 0)
        out: list[str] = []
        for step in range(len(self.tokens)):
            owner = self.tokens[(first + step) % len(self.tokens)][1]
            if owner not in out:
                out.append(owner)
            if len(out) == min(n, len(self.nodes)):
                break
        return out

    def shares(self) -> dict[str, float]:
        out = dict.fromkeys(self.nodes, 0.0)
        if len(self.tokens) == 1:
            out[self.tokens[0][1]] = 1.0
            return out
        for i, (t, owner) in enumerate(self.tokens):
            prev = self.tokens[i - 1][0] if i else self.tokens[-1][0] - SPACE
            out[owner] += (t - prev) / SPACE
        return out


def std_dev(values: Iterable[float]) -> float:
    vals = list(values)
    if not vals:
        return 0.0
    mean = sum(vals) / len(vals)
    return (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
