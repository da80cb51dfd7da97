"""The check pipeline shared by both workloads: extract, infer, order, search, classify, verdict.

Rules:

- A history whose txn ops are malformed gives "unknown" with an "error",
  never an exception.
- The verdict is False when an anomaly the requested model forbids was found;
  otherwise "unknown" when the cycle search was cut short by the time limit
  or nothing could be checked (no committed txn); otherwise True.
- Process and real-time edges are added only when the requested model
  forbids anomalies that need them.
- Searches run per component in a fixed order, weakest anomaly first (G0,
  G1c, G-single, G2), then again with process/real-time edges; each search
  reports at most one cycle per component of a type not yet seen there.
- Evidence is kept for at most `max_evidence` anomalies of each type; every
  one is counted.
- Deterministic: same history, same result (apart from the timing figures).
- The cyclic garbage collector is paused while a check runs (it allocates
  millions of small acyclic objects, which only make the collector rescan)
  and restored afterwards on every exit path.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from checkers.elle import anomalies as A
from checkers.elle.explain import cycle_evidence, describe
from checkers.elle.graph import DEPS, NAMES, PROCESS, REALTIME, RW, WR, WW, Deadline, DepGraph, search
from checkers.elle.history import MalformedTxn, extract, process_order, realtime_order

Infer = Callable[..., None]


def _searches(extra: int) -> list[tuple[int, int]]:
    plain = [(WW, WW), (WR, WW | WR), (RW, WW | WR), (RW, DEPS)]
    if not extra:
        return plain
    return [*plain, (extra, WW | extra), (extra, WW | WR | extra), (RW, WW | WR | extra), (RW, DEPS | extra)]


def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run the check with the cyclic garbage collector paused; see _run."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(*args, **kwargs)
    finally:
        if was_enabled:
            gc.enable()


def _run(
    history: list[dict[str, Any]],
    infer: Infer,
    kind: str,
    *,
    consistency: str,
    time_limit_s: float,
    max_evidence: int = 32,
    clock: Callable[[], float] = time.monotonic,
    **infer_options: Any,
) -> dict[str, Any]:
    model = A.model(consistency)
    t0 = clock()
    deadline = Deadline(t0 + time_limit_s, clock)
    found: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    warnings: list[str] = []

    def report(typ: str, ev: dict[str, Any]) -> None:
        counts[typ] = counts.get(typ, 0) + 1
        evs = found.setdefault(typ, [])
        if len(evs) < max_evidence:
            if "steps" not in ev:
                ev = {**ev, "text": describe(typ, ev)}
            evs.append(ev)

    try:
        th = extract(history)
    except MalformedTxn as e:
        return {
            "valid": "unknown",
            "summary": f"cannot check a malformed history: {e}",
            "consistency": model,
            "anomaly_types": [],
            "anomalies": {},
            "anomaly_counts": {},
            "not": [],
            "error": str(e),
        }
    g = DepGraph(len(th.txns))
    infer(th, g, report, warnings.append, **infer_options)

    need_process, need_realtime = A.needs_order(model)
    extra = 0
    if need_process or need_realtime:
        extra |= PROCESS
        process_order(th, lambda a, b: g.link(a, b, PROCESS))
    if need_realtime:
        extra |= REALTIME
        realtime_order(th.events, lambda a, b: g.link(a, b, REALTIME))
    t_graph = clock()

    comps = g.components()
    for comp in comps:
        seen: set[str] = set()
        for required, allowed in _searches(extra):
            if deadline.passed():
                break
            for steps in search(g, comp, required, allowed, deadline):
                typ = A.cycle_type([NAMES[s.rel] for s in steps])
                if typ not in seen:
                    seen.add(typ)
                    report(typ, cycle_evidence(g, th, steps, kind, typ))
                    break
        if deadline.passed():
            break
    t_end = clock()

    types = set(found)
    forbidden = A.forbidden_by(model, types)
    n_ok = sum(1 for t in th.txns if t.type == "ok")
    if forbidden:
        valid: bool | str = False
    elif deadline.hit or n_ok == 0:
        valid = "unknown"
    else:
        valid = True

    ordered = {t: found[t] for t in sorted(found, key=_type_rank)}
    return {
        "valid": valid,
        "summary": _summary(model, valid, forbidden, types, counts, n_ok, deadline.hit),
        "consistency": model,
        "anomaly_types": list(ordered),
        "anomalies": ordered,
        "anomaly_counts": {t: counts[t] for t in ordered},
        "not": A.ruled_out(types),
        "stats": {
            "txns": len(th.txns),
            "ok": n_ok,
            "info": len(th.txns) - n_ok,
            "failed": len(th.failed),
            "edges": g.edge_count(),
            "cyclic_components": len(comps),
            "search_complete": not deadline.hit,
            "graph_s": round(t_graph - t0, 3),
            "search_s": round(t_end - t_graph, 3),
        },
        "warnings": warnings,
    }


def _type_rank(typ: str) -> tuple[int, str]:
    order = [*A.NON_CYCLE, *A.CYCLE_BASES]
    base = typ.removesuffix("-realtime").removesuffix("-process")
    return (order.index(base) if base in order else len(order), typ)


def _summary(
    model: str,
    valid: bool | str,
    forbidden: list[str],
    types: set[str],
    counts: dict[str, int],
    n_ok: int,
    cut_short: bool,
) -> str:
    if valid is False:
        listed = ", ".join(f"{t} ({counts[t]})" for t in sorted(forbidden, key=_type_rank))
        return f"not {model}: {listed}"
    if n_ok == 0:
        return "no committed transactions to check"
    tail = ""
    if types:
        tail = "; found only anomalies it allows: " + ", ".join(sorted(types, key=_type_rank))
    if cut_short:
        return f"cycle search cut short by the time limit; no anomaly forbidden by {model} found so far{tail}"
    return f"{n_ok} committed transactions consistent with {model}{tail}"
