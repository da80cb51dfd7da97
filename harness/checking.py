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
- Two checkers always run: `history` (well-formed pairs) and `stats`
  (counts and latency percentiles per operation).
"""

from __future__ import annotations

import traceback
from collections import Counter, defaultdict
from typing import Any

from base.history import HistoryError, Op, pairs
from base.spec import TestSpec
from base.verdict import merge_valid
from harness.registry import make_workload


def run_checkers(spec: TestSpec, history: list[Op], *, torn_tail: bool = False) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {
        "history": check_well_formed(history, torn_tail),
        "stats": stats(history),
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
    return {"valid": merge_valid(effective(r) for r in results.values()), "checkers": results}


def effective(result: dict[str, Any]) -> Any:
    if "expected" in result:
        return True if result.get("as_designed") else result.get("valid", "unknown")
    return result.get("valid", "unknown")


def check_well_formed(history: list[Op], torn_tail: bool) -> dict[str, Any]:
    try:
        ps = pairs(history)
    except HistoryError as e:
        return {"valid": "unknown", "summary": f"history is malformed: {e}"}
    open_ops = sum(1 for p in ps if p.complete is None)
    summary = f"{len(ps)} client ops, {open_ops} never completed"
    if torn_tail:
        summary += "; the last line was torn (the run was interrupted) and was skipped"
    return {"valid": True, "summary": summary, "ops": len(ps), "open": open_ops, "torn_tail": torn_tail}


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
