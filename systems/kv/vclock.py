"""Vector clocks with dots: versions of one key, kept as concurrent siblings.

Rules this module keeps (dotted version vectors, as in Riak's DVV):

- Every write is one event named by a *dot* (node, counter). The node that
  coordinates a write issues the dot, with counter = (the largest counter of
  that node it has seen for this key) + 1, so a node never issues one dot twice
  for a key as long as it keeps the key's clock (the store never forgets it).
- A sibling is (value, dot, ctx): ctx is the causal context the writer had
  read, i.e. the vector clock of the versions it meant to replace.
- A sibling s is *obsolete* once some other version's context covers its dot
  (ctx[s.node] >= s.counter). A write with context C keeps every sibling whose
  dot C does not cover: concurrent writes survive side by side as siblings,
  and a write naming the context it read supersedes exactly what it read.
- Merging two states of a key is a union by dot followed by dropping obsolete
  siblings: commutative, associative, idempotent; replicas that have exchanged
  their states hold the same siblings.
- `Versioned.clock` is the join of every dot and context ever merged into the
  state; it is the context a read returns.
- `lww` (last writer wins on the writer's timestamp, ties by dot) is there for
  the LWW register and the planted `lww-clock` bug; it loses concurrent writes.
- Pure: no I/O, no clock; values are opaque msgpack-able data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

VClock = dict[str, int]


class VersionError(ValueError):
    """A malformed encoded version from a peer."""


def join(*clocks: Mapping[str, int]) -> VClock:
    """Pointwise maximum, keys sorted (so encodings are stable)."""
    out: VClock = {}
    for c in clocks:
        for k, v in c.items():
            if v > out.get(k, 0):
                out[k] = v
    return dict(sorted(out.items()))


def descends(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True when a has seen everything b has (a >= b pointwise)."""
    return all(a.get(k, 0) >= v for k, v in b.items())


def concurrent(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return not descends(a, b) and not descends(b, a)


@dataclass(frozen=True, slots=True)
class Dot:
    node: str
    counter: int

    def covered_by(self, clock: Mapping[str, int]) -> bool:
        return clock.get(self.node, 0) >= self.counter


@dataclass(frozen=True, slots=True)
class Sibling:
    value: Any
    dot: Dot
    ctx: VClock = field(default_factory=dict)
    ts: float = 0.0
    """The coordinator's clock reading (with its skew) when written: used only by LWW."""

    def clock(self) -> VClock:
        """The sibling's full version vector (its context plus its own dot)."""
        return join(self.ctx, {self.dot.node: self.dot.counter})

    def encode(self) -> list[Any]:
        return [self.value, self.dot.node, self.dot.counter, self.ctx, self.ts]

    @classmethod
    def decode(cls, raw: Any) -> Sibling:
        try:
            value, node, counter, ctx, ts = raw
            if not isinstance(node, str) or not isinstance(counter, int) or not isinstance(ctx, dict):
                raise TypeError
            clean = {str(k): int(v) for k, v in ctx.items()}
            return cls(value, Dot(node, counter), dict(sorted(clean.items())), float(ts))
        except (TypeError, ValueError) as e:
            raise VersionError(f"bad sibling {raw!r}") from e


def _order(s: Sibling) -> tuple[str, int]:
    return (s.dot.node, s.dot.counter)


@dataclass(frozen=True, slots=True)
class Versioned:
    """Everything a replica knows about one key."""

    siblings: tuple[Sibling, ...] = ()
    clock: VClock = field(default_factory=dict)

    @property
    def values(self) -> list[Any]:
        return [s.value for s in self.siblings]

    def dots(self) -> list[tuple[str, int]]:
        return [_order(s) for s in self.siblings]

    def next_dot(self, node: str) -> Dot:
        return Dot(node, self.clock.get(node, 0) + 1)

    def encode(self) -> dict[str, Any]:
        return {"s": [s.encode() for s in self.siblings], "c": self.clock}

    @classmethod
    def decode(cls, raw: Any) -> Versioned:
        if not isinstance(raw, dict) or not isinstance(raw.get("s"), list) or not isinstance(raw.get("c"), dict):
            raise VersionError(f"bad versioned value {raw!r}")
        sibs = tuple(sorted((Sibling.decode(s) for s in raw["s"]), key=_order))
        try:
            clock = {str(k): int(v) for k, v in raw["c"].items()}
        except (TypeError, ValueError) as e:
            raise VersionError(f"bad clock {raw['c']!r}") from e
        return cls(sibs, join(clock, *(s.clock() for s in sibs)))


def _prune(sibs: Iterable[Sibling]) -> tuple[Sibling, ...]:
    """Union by dot, then drop every sibling another sibling's context covers."""
    by_dot: dict[tuple[str, int], Sibling] = {}
    for s in sibs:
        by_dot.setdefault(_order(s), s)
    alive = [
        s
        for s in by_dot.values()
        if not any(t is not s and s.dot.covered_by(t.ctx) for t in by_dot.values())
    ]
    return tuple(sorted(alive, key=_order))


def lww(sibs: Iterable[Sibling]) -> tuple[Sibling, ...]:
    """Keep only the sibling with the greatest (ts, node, counter)."""
    best = max(sibs, key=lambda s: (s.ts, s.dot.node, s.dot.counter), default=None)
    return () if best is None else (best,)


def merge(a: Versioned, b: Versioned, *, last_writer_wins: bool = False) -> Versioned:
    """The state holding everything both a and b hold (see the module rules)."""
    sibs = _prune((*a.siblings, *b.siblings))
    if last_writer_wins:
        sibs = lww(sibs)
    return Versioned(sibs, join(a.clock, b.clock))


def update(
    state: Versioned,
    node: str,
    value: Any,
    ctx: Mapping[str, int],
    ts: float = 0.0,
    *,
    last_writer_wins: bool = False,
) -> tuple[Versioned, Sibling]:
    """Apply a client write coordinated by `node` with read context `ctx`."""
    # Never issue a dot the context already covers (it would be born obsolete).
    counter = max(state.clock.get(node, 0), ctx.get(node, 0)) + 1
    new = Sibling(value, Dot(node, counter), dict(sorted(ctx.items())), ts)
    kept = [s for s in state.siblings if not s.dot.covered_by(ctx)]
    sibs = _prune((*kept, new))
    if last_writer_wins:
        sibs = lww(sibs)
    return Versioned(sibs, join(state.clock, new.clock())), new


def merge_all(states: Iterable[Versioned], *, last_writer_wins: bool = False) -> Versioned:
    out = Versioned()
    for s in states:
        out = merge(out, s, last_writer_wins=last_writer_wins)
    return out
