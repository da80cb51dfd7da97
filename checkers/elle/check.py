"""The check pipeline shared by both workloads: extract, infer, order, find cycles, prove, verdict.

Rules:

- What to look for: consistency models (default strict-serializable) and/or
  specific anomalies, as in Elle. The anomalies they forbid are "reportable",
  with the three that make a verdict unknown (empty-transaction-graph,
  cycle-search-timeout, witness-not-found). An unknown model or anomaly name
  is a ValueError naming the known ones.
- Bad input (see history.py, and duplicate written values) gives "unknown"
  with a one-line "error", never an exception and never "valid".
- Real-time edges are added when a reportable anomaly needs them, else
  process edges when one needs those (Elle's rule: real time implies process
  order, so one suffices).
- Verdict, as Elle's: False when a forbidden anomaly was found; otherwise
  "unknown" when a reportable one was (nothing to check, a search cut short,
  no proof); otherwise True. For models at least as strong as serializable,
  True also needs a witness (witness.py): a serial order, respecting real
  time for strict-serializable and process order for
  strong-session-serializable, that replays every read. A small history whose
  orders were all searched without one gets a no-serial-order anomaly.
- "not"/"also_not" are Elle's boundary of everything found, reportable or
  not; anomalies the models allow are kept apart in "other_anomalies".
  A cycle-exists anomaly is dropped when something specific already rules its
  model out.
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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from checkers.elle import anomalies as A
from checkers.elle import list_append, rw_register, witness
from checkers.elle.cycles import Deadline, cycle_exists, find_cycles
from checkers.elle.explain import cycle_evidence, describe
from checkers.elle.graph import DEPS, PROCESS, REALTIME, DepGraph
from checkers.elle.history import HistoryError, extract, process_order, realtime_order

WORKLOADS = ("list-append", "rw-register")


def models_of(consistency: str | Iterable[str] | None) -> list[str]:
    """Friendly names of the requested models ("a,b" or a list); ValueError for an unknown one."""
    if consistency is None:
        return []
    names = consistency.split(",") if isinstance(consistency, str) else list(consistency)
    return [A.model(n.strip()) for n in names if n.strip()]


def anomalies_of(anomalies: str | Iterable[str] | None) -> list[str]:
    if anomalies is None:
        return []
    names = [n.strip() for n in (anomalies.split(",") if isinstance(anomalies, str) else anomalies)]
    known = set(A.DEPTH) | set(A.UNKNOWN_TYPES) | set(A.ANOMALY_IMPLIES)
    for n in names:
        if n and n not in known:
            raise ValueError(f"unknown anomaly {n!r}; known: {', '.join(sorted(known))}")
    return [n for n in names if n]


def check(
    history: list[dict[str, Any]],
    workload: str = "list-append",
    *,
    consistency: str | Iterable[str] | None = "strict-serializable",
    anomalies: str | Iterable[str] | None = None,
    time_limit_s: float = 120.0,
    max_evidence: int = 32,
    lines: Sequence[int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    **infer_options: Any,
) -> dict[str, Any]:
    """Check a transactional history; see the module rules. `lines[i]` numbers history[i] in errors."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")
    models = models_of(consistency)
    wanted = anomalies_of(anomalies)
    if not models and not wanted:
        models = ["strict-serializable"]
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check(history, workload, models, wanted, time_limit_s, max_evidence, lines, clock, infer_options)
    finally:
        if was_enabled:
            gc.enable()


def _check(
    history: list[dict[str, Any]],
    kind: str,
    models: list[str],
    wanted: list[str],
    time_limit_s: float,
    max_evidence: int,
    lines: Sequence[int] | None,
    clock: Callable[[], float],
    infer_options: dict[str, Any],
) -> dict[str, Any]:
    t0 = clock()
    deadline = Deadline(t0 + time_limit_s, clock)
    prohibited = A.prohibited_by(models) | A.anomalies_implying(wanted)
    reportable = prohibited | set(A.UNKNOWN_TYPES)
    implied = A.implied_models(models) if models else set()
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

    initial = rw_register.Initial(infer_options.pop("initial", None), infer_options.pop("initial_by_key", None))
    try:
        th = extract(history, kind, lines)
        g = DepGraph(len(th.txns))
        if kind == "list-append":
            observed = list_append.infer(th, g, report, warnings.append, **infer_options)
        else:
            observed = rw_register.infer(th, g, report, warnings.append, initial=initial, **infer_options)
    except HistoryError as e:
        return _bad_input(models, wanted, str(e))

    need_realtime = any(t.endswith("-realtime") for t in prohibited)
    need_process = not need_realtime and any(t.endswith("-process") for t in prohibited)
    present = DEPS
    if need_realtime:
        present |= REALTIME
        realtime_order(th.events, lambda a, b: g.link(a, b, REALTIME))
    elif need_process:
        present |= PROCESS
        process_order(th, lambda a, b: g.link(a, b, PROCESS))
    if g.edge_count() == 0:
        report("empty-transaction-graph", {"txns": len(th.txns)})
    t_graph = clock()

    names = lambda ids: [th.txns[i].name for i in ids]  # noqa: E731
    exists = cycle_exists(g, present, names)

    def on_cycle(typ: str, steps: list[Any]) -> None:
        report(typ, cycle_evidence(g, th, steps, kind, typ))

    def on_timeout(typ: str, size: int, searched: list[str]) -> None:
        report("cycle-search-timeout", {"anomaly_spec_type": typ, "does_not_contain": searched, "scc_size": size})

    n_comps = find_cycles(g, present, deadline, on_cycle, on_timeout)
    specific = {t for t in found if not t.endswith("-cycle-exists")}
    ruled_out = A.impossible_models(specific)
    for case in exists:
        if A.CANONICAL.get(case["not"], case["not"]) not in ruled_out:
            report(case["type"], case)
    t_search = clock()

    proof: dict[str, Any] | None = None
    n_ok = sum(1 for t in th.txns if t.type == "ok")
    if "PL-3" in implied and not (set(found) & prohibited) and "empty-transaction-graph" not in found:
        mask = DEPS | (REALTIME if "PL-SS" in implied else 0)
        mask |= PROCESS if "strong-session-serializable" in implied and present & PROCESS else 0
        include = {t.id for t in th.txns if t.type == "ok"} | observed
        w = witness.find(th.txns, include, g, mask, kind, initial, deadline)
        proof = {"found": w.found, "exhaustive": w.exhaustive, "txns": len(include), "reason": w.reason}
        if not w.found and w.exhaustive:
            report(_no_order_type(th.txns, include, g, mask, kind, initial, deadline), {"reason": w.reason})
        elif not w.found:
            report("witness-not-found", {"reason": w.reason, "txns": len(include)})
    t_end = clock()

    types = set(found)
    bad = types & prohibited
    shown = types & reportable
    if bad:
        valid: bool | str = False
    elif shown:
        valid = "unknown"
    else:
        valid = True
    anomaly_types = sorted(shown)
    result = {
        "valid": valid,
        "summary": _summary(models, wanted, valid, bad, shown, counts, n_ok, found),
        "consistency": models[0] if len(models) == 1 else models,
        "anomalies_checked": wanted,
        "anomaly_types": anomaly_types,
        "anomalies": {t: found[t] for t in anomaly_types},
        "anomaly_counts": {t: counts[t] for t in anomaly_types},
        **A.boundary(types),
        "other_anomalies": {t: found[t] for t in A.depth_order(types - reportable)},
        "witness": proof,
        "stats": {
            "txns": len(th.txns),
            "ok": n_ok,
            "info": len(th.txns) - n_ok,
            "failed": len(th.failed),
            "edges": g.edge_count(),
            "relations": g.rel_counts(),
            "cyclic_components": n_comps,
            "search_complete": not deadline.hit,
            "graph_s": round(t_graph - t0, 3),
            "search_s": round(t_search - t_graph, 3),
            "witness_s": round(t_end - t_search, 3),
        },
        "warnings": warnings,
    }
    return result


def _no_order_type(txns: list[Any], include: set[int], g: DepGraph, mask: int, kind: str,
                   initial: Callable[[Any], Any], deadline: Deadline) -> str:
    """Name a proven absence of serial order by the weakest order it already fails under."""
    if mask == DEPS or not witness.find(txns, include, g, DEPS, kind, initial, deadline).found:
        return "no-serial-order"
    return "no-serial-order-realtime" if mask & REALTIME else "no-serial-order-process"


def _bad_input(models: list[str], wanted: list[str], error: str) -> dict[str, Any]:
    return {
        "valid": "unknown",
        "summary": f"cannot check this history: {error}",
        "consistency": models[0] if len(models) == 1 else models,
        "anomalies_checked": wanted,
        "anomaly_types": [],
        "anomalies": {},
        "anomaly_counts": {},
        "not": [],
        "also_not": [],
        "other_anomalies": {},
        "witness": None,
        "error": error,
        "warnings": [],
    }


def _summary(models: list[str], wanted: list[str], valid: bool | str, bad: set[str], shown: set[str],
             counts: dict[str, int], n_ok: int, found: dict[str, Any]) -> str:
    target = " and ".join(models) if models else "free of " + ", ".join(wanted)
    if valid is False:
        listed = ", ".join(f"{t} ({counts[t]})" for t in A.depth_order(bad))
        return f"not {target}: {listed}"
    if valid == "unknown":
        why = []
        if "empty-transaction-graph" in shown:
            why.append(f"no transaction depends on another ({n_ok} committed): nothing to check")
        if "cycle-search-timeout" in shown:
            why.append("the cycle search was cut short by the time limit")
        if "witness-not-found" in shown:
            why.append("no cycle found, but no serial order proving " + target + " was found either: "
                       + found["witness-not-found"][0]["reason"])
        return "unknown: " + "; ".join(why)
    allowed = sorted(set(found) - shown)
    tail = f"; found only anomalies it allows: {', '.join(allowed)}" if allowed else ""
    return f"{n_ok} committed transactions consistent with {target}{tail}"
