"""Run a workload's checkers over a history and combine their verdicts.

Rules:
- A checker sees only the history and the test spec; `harness check` on a
  copied run directory therefore gives the same results.
- A checker that raises yields "unknown" with the error, never a pass.
- Documented weaknesses: when a checker result carries "expected" (or the
  spec's `expect` names the checker), a verdict equal to the expectation
  counts as valid ("behaving as designed") and is marked so; any other
  verdict counts as itself.
- The worst effective verdict wins (base.verdict.merge_valid).
- A partial history (the run was interrupted by a signal, or its last line
  is torn because the harness died mid-write) is at best "unknown": what a
  checker did find still counts (an anomaly is an anomaly), but a clean
  result proves nothing about the part that never ran (the final reads
  above all). The `history` checker says so; results.json carries
  `partial` (one line why) and `interrupted` (what session.mark_interrupted
  recorded).
- Three checkers always run: `history` (well-formed pairs, partial or not), `stats`
  (counts and latency percentiles per operation) and `faults`: a run in
  which a requested nemesis package never took effect (no fault window of
  it in the history), or in which the nemesis recorded an error (a fault the
  cluster refused), is at best "unknown" unless the spec allows it
  (`--allow-no-faults`). It reads only the history, so `harness check` agrees
  with the run; results.json carries its finding as `faults` too.
"""

from __future__ import annotations

import traceback
from collections import Counter, defaultdict
from typing import Any

from base.faults import fault_windows, nemesis_errors, took_effect
from base.history import HistoryError, Op, pairs
from base.spec import TestSpec
from base.verdict import merge_valid
from harness.registry import make_workload
from nemesis.catalog import KINDS_OF, VOCABULARY


def run_checkers(
    spec: TestSpec, history: list[Op], *, torn_tail: bool = False, interrupted: dict[str, Any] | None = None
) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {
        "history": check_well_formed(history, torn_tail, interrupted),
        "stats": stats(history),
        "faults": check_faults(spec, history, interrupted),
    }
    workload = make_workload(spec)
    test = spec.to_json()
    for name, checker in workload.checkers().items():
        try:
            result = dict(checker(history, test))
        except Exception as e:
            result = {
                "valid": "unknown",
                "summary": f"checker crashed: {type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
            }
        expected = spec.expect.get(name, result.get("expected"))
        if expected is not None:
            result["expected"] = expected
            result["as_designed"] = result.get("valid") == expected
        results[name] = result
    out: dict[str, Any] = {
        "valid": merge_valid(effective(r) for r in results.values()),
        "faults": {k: v for k, v in results["faults"].items() if k != "valid"},
        "checkers": results,
    }
    if results["history"].get("partial"):
        out["partial"] = results["history"]["partial"]
    if interrupted is not None:
        out["interrupted"] = interrupted
    return out


def effective(result: dict[str, Any]) -> Any:
    if "expected" in result:
        return True if result.get("as_designed") else result.get("valid", "unknown")
    return result.get("valid", "unknown")


def check_well_formed(history: list[Op], torn_tail: bool, interrupted: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        ps = pairs(history)
    except HistoryError as e:
        return {"valid": "unknown", "summary": f"history is malformed: {e}"}
    open_ops = sum(1 for p in ps if p.complete is None)
    summary = f"{len(ps)} client ops, {open_ops} never completed"
    partial = partial_reason(history, torn_tail, interrupted)
    result: dict[str, Any] = {"valid": True, "ops": len(ps), "open": open_ops, "torn_tail": torn_tail}
    if partial:
        summary = f"{partial}; {summary}"
        result.update(valid="unknown", partial=partial)
    return {**result, "summary": summary}


def partial_reason(history: list[Op], torn_tail: bool, interrupted: dict[str, Any] | None) -> str:
    """One line saying why the history is partial, or "" when it is whole."""
    reasons = []
    if interrupted is not None:
        sig = interrupted.get("signal", "a signal")
        at = interrupted.get("last_op_s")
        reasons.append(f"the run was interrupted ({sig}" + (f", last op at {at:.1f} s)" if isinstance(at, int | float)
                                                            else ")"))
    if torn_tail:
        reasons.append("its last line was torn (the harness died mid-write) and was skipped")
    if not reasons:
        return ""
    finals = any(op.get("final") for op in history)
    tail = "" if finals else ", and the final reads never ran"
    return f"the history is partial: {'; '.join(reasons)}{tail}"


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def stats(history: list[Op]) -> dict[str, Any]:
    """Counts by f and outcome, latency percentiles (ms) of ok ops, and throughput."""
    try:
        ps = pairs(history)
    except HistoryError as e:
        return {"valid": "unknown", "summary": f"no stats: {e}"}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    latencies: dict[str, list[float]] = defaultdict(list)
    for p in ps:
        f = str(p.invoke.get("f"))
        counts[f][p.type] += 1
        if p.complete is not None and p.type == "ok":
            latencies[f].append((p.complete["time"] - p.invoke["time"]) / 1e6)
    by_f = {}
    for f in sorted(counts):
        lat = sorted(latencies[f])
        by_f[f] = {
            **{t: counts[f][t] for t in ("ok", "fail", "info")},
            "p50_ms": round(_percentile(lat, 0.5), 3),
            "p99_ms": round(_percentile(lat, 0.99), 3),
            "max_ms": round(lat[-1], 3) if lat else 0.0,
        }
    times = [op["time"] for op in history if "time" in op]
    span_s = (max(times) - min(times)) / 1e9 if times else 0.0
    total_ok = sum(c["ok"] for c in counts.values())
    total = sum(sum(c.values()) for c in counts.values())
    return {
        "valid": True,
        "summary": f"{total} ops ({total_ok} ok) over {span_s:.1f}s",
        "by_f": by_f,
        "ops_per_s": round(total / span_s, 2) if span_s else 0.0,
    }


def check_faults(spec: TestSpec, history: list[Op], interrupted: dict[str, Any] | None = None) -> dict[str, Any]:
    """Did every requested nemesis package inflict at least one fault, and none fail? (see the docstring)"""
    names = [n for n in spec.nemesis if n not in ("none", "")]
    if not names:
        return {"valid": True, "summary": "no faults were requested", "requested": [], "missing": []}
    windows = fault_windows(history, VOCABULARY)
    errors = nemesis_errors(history)
    counts = took_effect(names, windows, KINDS_OF)
    missing = [n for n, c in counts.items() if c == 0]
    error_text = [f"{e.package or 'nemesis'} {e.phase} at {e.time_s:.1f} s: {e.error}" for e in errors]
    if missing:
        by_reason: dict[str, list[str]] = {}
        for n in missing:
            by_reason.setdefault(_why_missing(n, spec, windows, errors, interrupted), []).append(n)
        reasons = [f"{', '.join(ns)} ({why})" for why, ns in by_reason.items()]
        headline = "requested faults never took effect: " + "; ".join(reasons)
    elif errors:
        headline = f"the nemesis failed {len(errors)} time(s): {error_text[0]}"
    else:
        headline = ""
    took = ", ".join(f"{n} x{c}" for n, c in counts.items() if c)
    summary = f"faults that took effect: {took or 'none'}"
    valid: Any = True
    if headline:
        summary = f"{headline}; {summary}"
        if spec.allow_no_faults:
            summary += " (allowed by --allow-no-faults)"
        else:
            valid = "unknown"
    return {
        "valid": valid,
        "summary": summary,
        "headline": headline,
        "requested": names,
        "took_effect": counts,
        "missing": missing,
        "errors": error_text,
        "allowed": spec.allow_no_faults,
    }


def _why_missing(
    name: str, spec: TestSpec, windows: list[Any], errors: list[Any], interrupted: dict[str, Any] | None
) -> str:
    mine = [e for e in errors if e.package == name]
    if mine:
        return f"the cluster refused it: {mine[0].error}"
    if interrupted is not None:
        return "the run was interrupted before it came"
    if not windows and not errors and spec.time_limit_s < 2 * spec.nemesis_interval_s:
        i = spec.nemesis_interval_s
        return f"a fault takes {i:g}-{2 * i:g} s (1-2 x --interval) to fit; the time limit was {spec.time_limit_s:g} s"
    return "it was never scheduled, or found nothing to do"
