"""Anomaly names, consistency models, and which anomalies rule out which models.

Rules (the lattice is Elle's, Kingsbury & Alvaro 2020, written down here as
data; the sources are Adya, Bailis et al., Cerone et al., Daudjee & Salem):

- Models have a canonical name (Adya's PL-1 … PL-SS where there is one) and a
  friendly one; a user may give either. MODEL_IMPLIES links a model to the
  weaker models it implies; a history that rules out a model rules out every
  model that implies it.
- Each model directly forbids a few anomalies (FORBIDS); it forbids those of
  every model it implies too, and every anomaly that implies a forbidden one
  (ANOMALY_IMPLIES: G0 implies G1c, G-single-item implies G-single, an -item
  cycle without process edges implies its -process variant, a -process one
  its -realtime variant, and so on).
- `boundary(found)` is Elle's answer to "which models does this history rule
  out": "not" holds the weakest ruled-out models (the strongest statement:
  the history is not even read-committed), "also_not" every stronger one.
- Cycle names: G0 (write-write only), G1c (write-read, no anti-dependency),
  G-single-item (exactly one read-write anti-dependency), G-nonadjacent-item
  (several, no two adjacent), G2-item (several, some adjacent); a cycle that
  needs a real-time edge is "-realtime", else one that needs a process edge
  "-process". Items only: we have no predicates, so no G-single/G2 proper.
- Differences from Elle, on purpose: PL-SS is called strict-serializable (Elle
  prints strong-serializable; both names are accepted); garbage-read (a read
  of a value nobody wrote and not the initial value) is forbidden by
  read-uncommitted, like duplicate-elements; no-serial-order (and its -process
  and -realtime variants) says an exhaustive search of a small history found
  no serial order explaining every read although no cycle could be named: it
  rules out serializable (strong-session-serializable, strict-serializable).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

CANONICAL: dict[str, str] = {
    "consistent-view": "PL-2+",
    "conflict-serializable": "PL-3",
    "cursor-stability": "PL-CS",
    "forward-consistent-view": "PL-FCV",
    "monotonic-snapshot-read": "PL-MSR",
    "monotonic-view": "PL-2L",
    "read-committed": "PL-2",
    "read-uncommitted": "PL-1",
    "repeatable-read": "PL-2.99",
    "serializable": "PL-3",
    "snapshot-isolation": "PL-SI",
    "strict-serializable": "PL-SS",
    "strong-serializable": "PL-SS",
    "update-serializable": "PL-3U",
    "strong-session-read-uncommitted": "strong-session-PL-1",
    "strong-session-read-committed": "strong-session-PL-2",
    "strong-read-uncommitted": "strong-PL-1",
    "strong-read-committed": "strong-PL-2",
}
ALIASES = {"strict-1sr": "strict-serializable", "serializability": "serializable", "si": "snapshot-isolation"}

_NOT_FRIENDLY = ("conflict-serializable", "strong-serializable")
FRIENDLY: dict[str, str] = {c: f for f, c in CANONICAL.items() if f not in _NOT_FRIENDLY}

_MODEL_IMPLIES_FRIENDLY: dict[str, tuple[str, ...]] = {
    "causal-cerone": ("read-atomic",),
    "consistent-view": ("cursor-stability", "monotonic-view"),
    "conflict-serializable": ("view-serializable",),
    "cursor-stability": ("read-committed", "PL-2"),
    "forward-consistent-view": ("consistent-view",),
    "PL-2": ("PL-1",),
    "PL-3": ("repeatable-read", "update-serializable"),
    "update-serializable": ("forward-consistent-view",),
    "monotonic-atomic-view": ("read-committed",),
    "monotonic-view": ("PL-2",),
    "monotonic-snapshot-read": ("PL-2",),
    "parallel-snapshot-isolation": ("causal-cerone", "update-atomic"),
    "prefix": ("causal-cerone",),
    "read-atomic": ("monotonic-atomic-view",),
    "read-committed": ("read-uncommitted",),
    "repeatable-read": ("cursor-stability", "monotonic-atomic-view"),
    "update-atomic": ("read-atomic",),
    "serializable": ("repeatable-read", "snapshot-isolation", "view-serializable"),
    "session-serializable": ("1SR",),
    "snapshot-isolation": (
        "forward-consistent-view", "monotonic-atomic-view", "monotonic-snapshot-read",
        "parallel-snapshot-isolation", "prefix",
    ),
    "strict-serializable": (
        "PL-3", "serializable", "linearizable", "snapshot-isolation", "strong-snapshot-isolation",
        "strong-session-serializable",
    ),
    "strong-session-PL-1": ("PL-1",),
    "strong-session-PL-2": ("PL-2", "strong-session-PL-1"),
    "strong-PL-1": ("strong-session-PL-1",),
    "strong-PL-2": ("strong-session-PL-2", "strong-PL-1"),
    "strong-session-serializable": ("serializable", "strong-session-snapshot-isolation"),
    "strong-session-snapshot-isolation": ("snapshot-isolation", "strong-session-PL-2"),
    "strong-serializable": ("session-serializable",),
    "strong-snapshot-isolation": ("strong-session-snapshot-isolation", "strong-PL-2"),
    "linearizable": ("sequential",),
    "sequential": ("causal",),
    "causal": ("writes-follow-reads", "PRAM"),
    "PRAM": ("monotonic-reads", "monotonic-writes", "read-your-writes"),
}

_FORBIDS_FRIENDLY: dict[str, tuple[str, ...]] = {
    "causal-cerone": ("internal", "G1a"),
    "cursor-stability": ("G1", "G-cursor", "lost-update"),
    "monotonic-view": ("G1", "G-monotonic"),
    "monotonic-snapshot-read": ("G1", "G-MSR"),
    "consistent-view": ("G1", "G-single"),
    "forward-consistent-view": ("G1", "G-SIb"),
    "parallel-snapshot-isolation": ("internal", "G1a"),
    "PL-3": ("G1", "G2", "predicate-read-miss", "PL-3-cycle-exists", "no-serial-order"),
    "PL-2": ("G1", "PL-2-cycle-exists"),
    "PL-1": ("G0", "duplicate-elements", "cyclic-versions", "garbage-read", "PL-1-cycle-exists"),
    "prefix": ("internal", "G1a"),
    "serializable": ("internal",),
    "snapshot-isolation": ("internal", "G1", "G-SI", "G-nonadjacent", "PL-SI-cycle-exists"),
    "read-atomic": ("internal", "G1a", "future-read"),
    "repeatable-read": ("G1", "G2-item", "PL-2.99-cycle-exists", "lost-update"),
    "update-atomic": ("lost-update",),
    "strict-serializable": ("G1", "G1c-realtime", "G2-realtime", "PL-SS-cycle-exists", "no-serial-order-realtime"),
    "strong-session-PL-1": ("strong-session-PL-1-cycle-exists", "G0-process"),
    "strong-session-PL-2": ("strong-session-PL-2-cycle-exists", "G1c-process"),
    "strong-PL-1": ("strong-PL-1-cycle-exists", "G0-realtime"),
    "strong-PL-2": ("strong-PL-2-cycle-exists", "G1c-realtime"),
    "strong-session-snapshot-isolation": (
        "internal", "G1-process", "G-nonadjacent-process", "strong-session-snapshot-isolation-cycle-exists",
    ),
    "strong-snapshot-isolation": (
        "internal", "G1-realtime", "G-nonadjacent-realtime", "strong-snapshot-isolation-cycle-exists",
    ),
    "strong-session-serializable": (
        "G1-process", "G2-process", "strong-session-serializable-cycle-exists", "no-serial-order-process",
    ),
    "update-serializable": ("G1", "G-update"),
}

ANOMALY_IMPLIES: dict[str, tuple[str, ...]] = {
    "G0": ("G1c", "G0-process"),
    "G0-process": ("G1c-process", "G0-realtime"),
    "G0-realtime": ("G1c-realtime",),
    "G1a": ("G1",),
    "G1b": ("G1",),
    "G1c": ("G1", "G1c-process"),
    "G1c-process": ("G1c-realtime", "G1-process"),
    "G1c-realtime": ("G1-realtime",),
    "G1": ("G1-process",),
    "G1-process": ("G1-realtime",),
    "G-single-item": ("G-single", "G-single-item-process", "G-nonadjacent-item"),
    "G-single-item-process": ("G-single-process", "G-single-item-realtime", "G-nonadjacent-item-process"),
    "G-single-item-realtime": ("G-single-realtime", "G-nonadjacent-item-realtime"),
    "G-single": ("G-nonadjacent", "GSIb", "G-single-process"),
    "G-single-process": ("G-nonadjacent-process", "G-single-realtime"),
    "G-single-realtime": ("G-nonadjacent-realtime",),
    "G-nonadjacent-item": ("G-nonadjacent", "G2-item", "G-nonadjacent-item-process"),
    "G-nonadjacent-item-process": ("G-nonadjacent-process", "G2-item-process", "G-nonadjacent-item-realtime"),
    "G-nonadjacent-item-realtime": ("G2-item-realtime", "G-nonadjacent-realtime"),
    "G-nonadjacent": ("G2", "G-nonadjacent-process"),
    "G-nonadjacent-process": ("G2-process", "G-nonadjacent-realtime"),
    "G-nonadjacent-realtime": ("G2-realtime",),
    "G2": ("G2-process",),
    "G2-item": ("G2", "G2-item-process"),
    "G2-item-process": ("G2-process", "G2-item-realtime"),
    "G2-item-realtime": ("G2-realtime",),
    "G2-process": ("G2-realtime",),
    "GSIa": ("GSI",),
    "GSIb": ("GSI",),
    "incompatible-order": ("G1a",),
    "future-read": ("G1c",),
    "dirty-update": ("G1a",),
    "lost-update": ("write-skew", "G2-item"),
    "write-skew": ("G2",),
    "no-serial-order": ("no-serial-order-process",),
    "no-serial-order-process": ("no-serial-order-realtime",),
}
"""a -> b: a history showing anomaly a also shows b."""

SEVERITY: dict[str, tuple[str, ...]] = {
    "G0": ("G1c",),
    "G0-process": ("G1c-process",),
    "G0-realtime": ("G1c-realtime",),
    "G1c": ("G-single", "G2-item"),
    "G1c-process": ("G-single-process", "G2-item-process"),
    "G1c-realtime": ("G-single-realtime", "G2-item-realtime"),
    "G2": ("G0-process",),
    "G2-process": ("G0-realtime",),
}
"""a -> b: a is worse than b without implying it; only orders the cycle search, worst first."""

CYCLE_BASES = ("G0", "G1c", "G-single-item", "G-nonadjacent-item", "G2-item")
CYCLE_TYPES = tuple(b + s for s in ("", "-process", "-realtime") for b in CYCLE_BASES)
UNKNOWN_TYPES = ("empty-transaction-graph", "cycle-search-timeout", "witness-not-found")
"""Reported whenever found; they make a verdict "unknown" (never True), not False."""


def _canon(name: str) -> str:
    return CANONICAL.get(name, name)


def _dag(edges: Mapping[str, Iterable[str]], canon: bool) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, bs in edges.items():
        a2 = _canon(a) if canon else a
        out.setdefault(a2, set())
        for b in bs:
            b2 = _canon(b) if canon else b
            out[a2].add(b2)
            out.setdefault(b2, set())
    return out


def _reverse(g: dict[str, set[str]]) -> dict[str, set[str]]:
    r: dict[str, set[str]] = {v: set() for v in g}
    for a, bs in g.items():
        for b in bs:
            r[b].add(a)
    return r


MODEL_IMPLIES = _dag(_MODEL_IMPLIES_FRIENDLY, canon=True)
_MODEL_IMPLIED_BY = _reverse(MODEL_IMPLIES)
FORBIDS = _dag(_FORBIDS_FRIENDLY, canon=True)
_ANOMALY_OUT = _dag(ANOMALY_IMPLIES, canon=False)
_ANOMALY_IN = _reverse(_ANOMALY_OUT)
_FORBIDDEN_BY: dict[str, set[str]] = {}
for _m, _as in FORBIDS.items():
    for _a in _as:
        _FORBIDDEN_BY.setdefault(_a, set()).add(_m)
ALL_MODELS = (frozenset(MODEL_IMPLIES) | frozenset(CANONICAL) | frozenset(CANONICAL.values())
              | frozenset(_canon(m) for m in _FORBIDS_FRIENDLY))


def _reach(g: Mapping[str, Iterable[str]], start: Iterable[str]) -> set[str]:
    seen = set(start)
    todo = deque(seen)
    while todo:
        for b in g.get(todo.popleft(), ()):
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


def friendly(model: str) -> str:
    return FRIENDLY.get(model, model)


def model(name: str) -> str:
    """The friendly name of a model we know; ValueError naming the known ones otherwise."""
    name = ALIASES.get(name, name)
    if name not in ALL_MODELS:
        known = ", ".join(sorted({friendly(m) for m in ALL_MODELS}))
        raise ValueError(f"unknown consistency model {name!r}; known: {known}")
    return friendly(_canon(name))


def implied_models(models: Iterable[str]) -> set[str]:
    """Canonical names of the models and every model they imply."""
    return _reach(MODEL_IMPLIES, (_canon(model(m)) for m in models))


def implied_anomalies(anomalies: Iterable[str]) -> set[str]:
    return _reach(_ANOMALY_OUT, anomalies)


def anomalies_implying(anomalies: Iterable[str]) -> set[str]:
    return _reach(_ANOMALY_IN, anomalies)


def prohibited_by(models: Iterable[str]) -> set[str]:
    """Every anomaly whose presence rules out at least one of the models."""
    direct: set[str] = set()
    for m in implied_models(models):
        direct |= FORBIDS.get(m, set())
    return anomalies_implying(direct)


def impossible_models(anomalies: Iterable[str]) -> set[str]:
    """Canonical names of every model the anomalies rule out."""
    direct = {m for a in implied_anomalies(anomalies) for m in _FORBIDDEN_BY.get(a, ())}
    return _reach(_MODEL_IMPLIED_BY, direct)


def weakest(models: Iterable[str]) -> set[str]:
    """The models of the set that imply no other model of the set."""
    ms = set(models)
    return {m for m in ms if not (_reach(MODEL_IMPLIES, [m]) - {m}) & ms}


def strongest(models: Iterable[str]) -> set[str]:
    """The models of the set implied by no other model of the set."""
    ms = {_canon(m) for m in models}
    return {m for m in ms if not (_reach(_MODEL_IMPLIED_BY, [m]) - {m}) & ms}


def boundary(anomalies: Iterable[str]) -> dict[str, list[str]]:
    """{"not": weakest ruled-out models, "also_not": the other ruled-out ones}, friendly names, sorted."""
    impossible = impossible_models(anomalies)
    is_not = weakest(impossible)
    return {
        "not": sorted({friendly(m) for m in is_not}),
        "also_not": sorted({friendly(m) for m in impossible - is_not} - {friendly(m) for m in is_not}),
    }


def _depths() -> dict[str, int]:
    """Elle's search order: depth in the implication-plus-severity DAG, roots first."""
    g = _dag({**ANOMALY_IMPLIES}, canon=False)
    for a, bs in SEVERITY.items():
        g.setdefault(a, set()).update(bs)
        for b in bs:
            g.setdefault(b, set())
    indeg = {v: 0 for v in g}
    for bs in g.values():
        for b in bs:
            indeg[b] += 1
    depth: dict[str, int] = {}
    level = [v for v, d in indeg.items() if d == 0]
    d = 0
    while level:
        nxt = []
        for v in level:
            depth[v] = d
            for b in g[v]:
                indeg[b] -= 1
                if indeg[b] == 0:
                    nxt.append(b)
        level, d = nxt, d + 1
    for anomalies in FORBIDS.values():
        for a in anomalies:
            depth.setdefault(a, 0)
    return depth


DEPTH = _depths()


def depth_order(types: Iterable[str]) -> list[str]:
    """Anomaly types ordered as Elle searches and lists them: shallow (worst) first, then by name."""
    return sorted(types, key=lambda t: (DEPTH.get(t, 0), t))


def cycle_type(rels: list[str]) -> str:
    """Name a cycle from its edge relations in cycle order ("ww", "wr", "rw", "process", "realtime")."""
    n = len(rels)
    n_rw = rels.count("rw")
    if n_rw == 0:
        base = "G1c" if "wr" in rels else "G0"
    elif n_rw == 1:
        base = "G-single-item"
    else:
        adjacent = any(rels[i] == "rw" and rels[(i + 1) % n] == "rw" for i in range(n))
        base = "G2-item" if adjacent else "G-nonadjacent-item"
    if "realtime" in rels:
        return base + "-realtime"
    if "process" in rels:
        return base + "-process"
    return base


MODELS: dict[str, frozenset[str]] = {
    name: frozenset(prohibited_by([name]))
    for name in (
        "read-uncommitted", "read-committed", "repeatable-read", "snapshot-isolation", "serializable",
        "strong-session-read-committed", "strong-session-snapshot-isolation", "strong-session-serializable",
        "strong-read-committed", "strong-snapshot-isolation", "strict-serializable",
    )
}
"""The models most people ask for, weakest first, with every anomaly each forbids."""
