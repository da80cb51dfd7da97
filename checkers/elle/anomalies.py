"""Anomaly names, consistency models, and which anomalies each model forbids.

Rules:

- Cycle anomalies follow Adya's formalism as Elle names them: G0 (a cycle of
  write-write edges), G1c (write-write and write-read edges, at least one
  write-read), G-single (exactly one read-write anti-dependency), G-nonadjacent
  (several anti-dependencies, no two adjacent), G2-item (several
  anti-dependencies, some adjacent). A cycle that needs a process-order edge
  is suffixed "-process", one that needs a real-time edge "-realtime".
- Non-cycle anomalies (G1a aborted read, G1b intermediate read, internal,
  duplicate-appends, incompatible-order, garbage-read, cyclic-versions) are
  forbidden by every model from read-committed up; the last five show the
  store is broken at any level.
- A model forbids the plain cycle types of its level; "strong-session-X" also
  forbids their -process variants and "strong-X"/"strict-serializable" their
  -process and -realtime variants.
- MODELS lists models from weakest to strongest in a fixed order; results list
  ruled-out models in that order.
"""

from __future__ import annotations

CYCLE_BASES = ("G0", "G1c", "G-single", "G-nonadjacent", "G2-item")
NON_CYCLE = (
    "G1a",
    "G1b",
    "internal",
    "duplicate-appends",
    "incompatible-order",
    "garbage-read",
    "cyclic-versions",
)
BROKEN = ("internal", "duplicate-appends", "incompatible-order", "garbage-read", "cyclic-versions")

_RU = {"G0", *BROKEN}
_RC = _RU | {"G1a", "G1b", "G1c"}
_SI = _RC | {"G-single", "G-nonadjacent"}
_RR = _SI | {"G2-item"}
_SER = _RR


def _with(base: set[str], *suffixes: str) -> frozenset[str]:
    cycles = {b for b in base if b in CYCLE_BASES}
    return frozenset(base | {f"{c}-{s}" for c in cycles for s in suffixes})


MODELS: dict[str, frozenset[str]] = {
    "read-uncommitted": frozenset(_RU),
    "read-committed": frozenset(_RC),
    "snapshot-isolation": frozenset(_SI),
    "repeatable-read": frozenset(_RR),
    "serializable": frozenset(_SER),
    "strong-session-snapshot-isolation": _with(_SI, "process"),
    "strong-snapshot-isolation": _with(_SI, "process", "realtime"),
    "strong-session-serializable": _with(_SER, "process"),
    "strict-serializable": _with(_SER, "process", "realtime"),
}
ALIASES = {
    "strong-serializable": "strict-serializable",
    "serializability": "serializable",
    "si": "snapshot-isolation",
}


def model(name: str) -> str:
    """The canonical model name; ValueError for one we do not know."""
    canon = ALIASES.get(name, name)
    if canon not in MODELS:
        raise ValueError(f"unknown consistency model {name!r}; known: {', '.join(MODELS)}")
    return canon


def needs_order(name: str) -> tuple[bool, bool]:
    """(process, realtime): which order edges the model's check must add to the graph."""
    forbidden = MODELS[model(name)]
    return (
        any(a.endswith("-process") for a in forbidden),
        any(a.endswith("-realtime") for a in forbidden),
    )


def ruled_out(anomaly_types: set[str]) -> list[str]:
    """Every model in MODELS that forbids at least one of the given anomalies."""
    return [m for m, forbidden in MODELS.items() if forbidden & anomaly_types]


def forbidden_by(name: str, anomaly_types: set[str]) -> list[str]:
    """The anomalies, among those given, that the model forbids (sorted)."""
    return sorted(MODELS[model(name)] & anomaly_types)


def cycle_type(rels: list[str]) -> str:
    """Name a cycle from its edge relations, in cycle order.

    rels holds one of "ww", "wr", "rw", "process", "realtime" per edge.
    """
    n_rw = rels.count("rw")
    if n_rw == 0:
        base = "G1c" if "wr" in rels else "G0"
    elif n_rw == 1:
        base = "G-single"
    else:
        n = len(rels)
        adjacent = any(rels[i] == "rw" and rels[(i + 1) % n] == "rw" for i in range(n))
        base = "G2-item" if adjacent else "G-nonadjacent"
    if "realtime" in rels:
        return base + "-realtime"
    if "process" in rels:
        return base + "-process"
    return base
