"""The fault vocabulary, and the fault windows a history's nemesis ops describe.

A nemesis package declares the kinds of fault it records (its vocabulary, as
Jepsen's packages do with their `:perf` maps); everything that reads faults
back from a history (the report, the runner's progress line, the checkers,
the no-fault check) reads this vocabulary and never spells an op name again.

Rules this module keeps:

- A `FaultKind` is one kind of fault as a history shows it: the nemesis op
  that starts it (`start`), the ops that end it (`stop`; none for a one-off
  fault such as a corrupted file), whether it targets nodes (`targets` reads
  the node ids from an op's value; None for a cluster-wide fault), its colour,
  what it does to the cluster (`effect`, plus `links` for network faults: the
  (src, dst) pairs whose traffic it drops or degrades, `ANY` matching every
  node) and `describe`, one fault in words for people.
- A `Vocabulary` holds kinds with distinct names and start ops; no op both
  starts one kind and stops another. Several kinds may share a stop op (a
  `restart` brings a node back however it went down).
- `fault_windows(history, vocabulary)` is pure, reads only nemesis ops, and
  ignores ops no kind knows:
  - a node-targeting fault opens with one start op naming its nodes and ends
    once stop ops of its kind have named every one of them (each node's own
    cure time is kept in `cured_at`; a stop op with no nodes cures them all);
  - a cluster-wide fault ends at the next stop op of its kind, or when
    another fault of its kind starts (the new one replaces it);
  - a one-off fault is a window of zero length;
  - a fault still in place when the history ends ends there, `cured=False`.
- A nemesis op carries `package` (the package that inflicted it) when one
  did; `nemesis-error` ops record a fault the cluster refused or a package
  that failed, with the package and the error.
- Times are seconds since the test began (history times are ns).

This module imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

ANY = "*"
"""In a fault's links: any node."""

NEMESIS_ERROR = "nemesis-error"
"""The nemesis op recording a fault that could not be inflicted or cured (value: package, phase, error)."""

OP_FIELDS = frozenset({"index", "time", "process", "type", "f", "value", "package"})
"""The fields every nemesis op has; any other field is the fault's detail (e.g. a partition's shape)."""

NS = 1e9


class Effect(StrEnum):
    """What a fault does to the cluster, for checkers that excuse (or expect) misbehaviour under it."""

    DOWN = "down"
    """The target nodes are not running (killed, powered off)."""
    PAUSED = "paused"
    """The target nodes are frozen."""
    NETWORK = "network"
    """Traffic on some links is dropped or degraded (the kind's `links` says which)."""
    MEMBERSHIP = "membership"
    """The target nodes left the system's membership (they still run)."""
    DISK = "disk"
    """Data on the target nodes' disks was lost or damaged."""
    CLOCK = "clock"
    """The target nodes' clocks were moved."""
    OTHER = "other"


Link = tuple[str, str]
"""(src, dst): traffic from src to dst."""


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One fault, from the op that inflicted it to the op that cured it."""

    kind: str
    start_s: float
    end_s: float | None
    """None while the fault is still in place (a live view); set in every window `fault_windows` returns."""
    nodes: tuple[str, ...]
    """The nodes it targeted (node faults) or touched (network faults)."""
    colour: str
    effect: Effect
    value: Any
    """The start op's value, as recorded."""
    detail: Mapping[str, Any] = field(default_factory=dict)
    """The start op's other fields (e.g. a partition's `shape`)."""
    package: str | None = None
    cured: bool = True
    cured_at: Mapping[str, float] = field(default_factory=dict)
    """Node -> when that node was cured (node faults)."""
    links: frozenset[Link] = frozenset()
    index: int = -1
    """The history index of the start op."""
    description: str = ""

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s

    def cuts(self, src: str, dst: str) -> bool:
        """True when this fault drops or degrades traffic from src to dst."""
        return any(s in (src, ANY) and d in (dst, ANY) for s, d in self.links)

    def node_end_s(self, node: str) -> float | None:
        """When `node` was cured; None when it never was (or the fault is still in place)."""
        if node in self.cured_at:
            return self.cured_at[node]
        return self.end_s if self.cured else None


@dataclass(frozen=True, slots=True)
class FaultKind:
    name: str
    start: str
    stop: tuple[str, ...]
    colour: str
    effect: Effect
    describe: Callable[[FaultWindow], str]
    """One fault in words ("killed n3 for 4.2 s"); see `held` for the timing phrase."""
    targets: Callable[[Any], tuple[str, ...]] | None = None
    """The nodes an op's value names; None: a cluster-wide fault."""
    links: Callable[[Any], frozenset[Link]] | None = None
    """For network faults: the links a start op's value cuts or degrades."""
    summary: str = ""
    """What this kind of fault is, in a few words (for legends and the README)."""

    @property
    def one_off(self) -> bool:
        return not self.stop


@dataclass(frozen=True, slots=True)
class NemesisErrorRecord:
    """A fault the cluster refused, or a package that failed, as the history recorded it."""

    time_s: float
    package: str | None
    phase: str
    error: str


class Vocabulary:
    """Fault kinds by name, by start op and by stop op."""

    def __init__(self, kinds: Iterable[FaultKind]) -> None:
        self.kinds: dict[str, FaultKind] = {}
        self._by_start: dict[str, FaultKind] = {}
        self._by_stop: dict[str, list[FaultKind]] = {}
        for kind in kinds:
            if kind.name in self.kinds:
                if self.kinds[kind.name] is kind:
                    continue
                raise ValueError(f"fault kind {kind.name!r} is declared twice")
            if kind.start in self._by_start:
                raise ValueError(f"op {kind.start!r} starts both {self._by_start[kind.start].name!r} and {kind.name!r}")
            self.kinds[kind.name] = kind
            self._by_start[kind.start] = kind
            for op in kind.stop:
                self._by_stop.setdefault(op, []).append(kind)
        both = set(self._by_start) & set(self._by_stop)
        if both:
            raise ValueError(f"op {sorted(both)[0]!r} both starts and stops a fault")

    def __iter__(self) -> Iterator[FaultKind]:
        return iter(self.kinds.values())

    def __len__(self) -> int:
        return len(self.kinds)

    def starting(self, f: str) -> FaultKind | None:
        return self._by_start.get(f)

    def stopping(self, f: str) -> list[FaultKind]:
        return list(self._by_stop.get(f, ()))

    def colour(self, kind: str) -> str:
        k = self.kinds.get(kind)
        return k.colour if k is not None else UNKNOWN_COLOUR

    def op_names(self) -> set[str]:
        return set(self._by_start) | set(self._by_stop)


UNKNOWN_COLOUR = "#d0d7de"


# -- reading ops ----------------------------------------------------------------------------------


def node_list(value: Any) -> tuple[str, ...]:
    """The node ids of an op value that is a list of them (the common shape); () for anything else."""
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if isinstance(v, str))
    return ()


def grudge_links(value: Any) -> frozenset[Link]:
    """The links a grudge ({dst: [src, ...]}: dst drops traffic from each src) cuts."""
    if not isinstance(value, Mapping):
        return frozenset()
    return frozenset((str(src), str(dst)) for dst, srcs in value.items() for src in srcs or () if isinstance(src, str))


def _secs(op: Mapping[str, Any]) -> float:
    t = op.get("time", 0)
    return float(t) / NS if isinstance(t, int | float) else 0.0


# -- words ----------------------------------------------------------------------------------------


def seconds(t: float) -> str:
    return f"{t:.1f} s"


def held(w: FaultWindow) -> str:
    """The timing phrase of a fault: 'for 4.2 s', 'since 3.1 s', 'from 3.1 s, never cured'."""
    if w.end_s is None:
        return f"since {seconds(w.start_s)}"
    if not w.cured:
        return f"from {seconds(w.start_s)}, never cured"
    if w.end_s == w.start_s:
        return f"at {seconds(w.start_s)}"
    return f"for {seconds(w.end_s - w.start_s)}"


def names(nodes: Iterable[str]) -> str:
    return " ".join(nodes) or "no node"


# -- windows --------------------------------------------------------------------------------------


@dataclass
class _Open:
    kind: FaultKind
    window: FaultWindow
    remaining: set[str]
    cured_at: dict[str, float]


class FaultTracker:
    """Reads nemesis ops one at a time and keeps the faults in place (the one interpreter of them)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._open: list[_Open] = []
        self._closed: list[FaultWindow] = []
        self.errors: list[NemesisErrorRecord] = []
        self.last_s = 0.0

    def feed(self, op: Mapping[str, Any]) -> None:
        self.last_s = max(self.last_s, _secs(op))
        if op.get("process") != "nemesis":
            return
        f, t, value = str(op.get("f", "")), _secs(op), op.get("value")
        if f == NEMESIS_ERROR:
            v = value if isinstance(value, Mapping) else {}
            package, phase, error = v.get("package"), str(v.get("phase", "")), str(v.get("error", ""))
            self.errors.append(NemesisErrorRecord(t, package if isinstance(package, str) else None, phase, error))
            return
        for kind in self.vocabulary.stopping(f):
            self._stop(kind, value, t)
        kind = self.vocabulary.starting(f)
        if kind is not None:
            self._start(kind, op, t)

    def _start(self, kind: FaultKind, op: Mapping[str, Any], t: float) -> None:
        value = op.get("value")
        links = kind.links(value) if kind.links is not None else frozenset()
        if kind.targets is not None:
            nodes = kind.targets(value)
            if not nodes:
                return
        else:
            self._stop(kind, None, t)  # a new cluster-wide fault replaces the one in place
            nodes = tuple(sorted({n for link in links for n in link if n != ANY}))
        package = op.get("package")
        w = FaultWindow(
            kind=kind.name,
            start_s=t,
            end_s=None,
            nodes=nodes,
            colour=kind.colour,
            effect=kind.effect,
            value=value,
            detail={k: v for k, v in op.items() if k not in OP_FIELDS},
            package=package if isinstance(package, str) else None,
            links=links,
            index=int(op.get("index", -1)) if isinstance(op.get("index", -1), int) else -1,
        )
        if kind.one_off:
            self._close(kind, w, t, {}, cured=True)
        else:
            self._open.append(_Open(kind, w, set(nodes), {}))

    def _stop(self, kind: FaultKind, value: Any, t: float) -> None:
        named = set(kind.targets(value)) if kind.targets is not None and value is not None else None
        still: list[_Open] = []
        for o in self._open:
            if o.kind is not kind:
                still.append(o)
                continue
            if kind.targets is not None:
                for n in sorted(o.remaining if named is None else o.remaining & named):
                    o.cured_at[n] = t
                    o.remaining.discard(n)
                if o.remaining:
                    still.append(o)
                    continue
            self._close(kind, o.window, t, o.cured_at, cured=True)
        self._open = still

    def _close(self, kind: FaultKind, w: FaultWindow, t: float, cured_at: dict[str, float], *, cured: bool) -> None:
        done = replace(w, end_s=t, cured=cured, cured_at=dict(cured_at))
        self._closed.append(replace(done, description=kind.describe(done)))

    def in_place(self) -> list[FaultWindow]:
        """The faults in place now (end_s None), described as such, oldest first."""
        out = []
        for o in self._open:
            w = replace(o.window, cured_at=dict(o.cured_at))
            out.append(replace(w, description=o.kind.describe(w)))
        return out

    def windows(self) -> list[FaultWindow]:
        """Every fault: cured ones, and those still in place ending at the last op seen (cured=False)."""
        out = list(self._closed)
        for o in self._open:
            w = replace(o.window, end_s=self.last_s, cured=False, cured_at=dict(o.cured_at))
            out.append(replace(w, description=o.kind.describe(w)))
        return sorted(out, key=lambda w: (w.start_s, w.index))


def fault_windows(history: Iterable[Mapping[str, Any]], vocabulary: Vocabulary) -> list[FaultWindow]:
    """Every fault in a history, by start time; see the module docstring for the rules."""
    tracker = FaultTracker(vocabulary)
    for op in history:
        tracker.feed(op)
    return tracker.windows()


def nemesis_errors(history: Iterable[Mapping[str, Any]]) -> list[NemesisErrorRecord]:
    """The faults the cluster refused (or packages that failed), as recorded."""
    tracker = FaultTracker(Vocabulary(()))
    for op in history:
        tracker.feed(op)
    return tracker.errors


def took_effect(
    requested: Sequence[str], windows: Sequence[FaultWindow], kinds_of: Mapping[str, Iterable[str]]
) -> dict[str, int]:
    """How many faults each requested package inflicted. A window names its package; a window that
    names none (an older history) counts for every requested package that records its kind."""
    counts = dict.fromkeys(requested, 0)
    for w in windows:
        if w.package is not None:
            if w.package in counts:
                counts[w.package] += 1
            continue
        for name in requested:
            if w.kind in set(kinds_of.get(name, ())):
                counts[name] += 1
    return counts
