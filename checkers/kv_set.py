"""The set-full checker for the KV store's `set` workload (Jepsen's set-full idea).

Rules this checker keeps:

- An element is *acknowledged* when its `add` completed ok, *indeterminate*
  when it ended info (or never completed), *failed* when it ended fail.
- Final reads (ops with `"final": true`) run after the heal and the quiet
  period. Every acknowledged element must be in every ok final read of its
  key: one missing from all of them is *lost*, one missing from only some is
  *not converged*. An element that was never attempted, or whose add
  certainly failed, must never be read (*unexpected*). Any of these makes the
  result invalid. With no ok final read of a key the verdict is "unknown".
- A non-final read that misses an element whose add was acknowledged before
  the read began (earlier in the history) is *stale*. Dynamo allows stale reads under sloppy quorums,
  so they are counted, not failed, except a *quorum violation*: both the
  read and the add reported a strict quorum, which must intersect when
  R + W > N (the test's options; 2 + 2 > 3 by default). That is invalid;
  with R + W <= N such reads are allowed and only counted.
- Stable visibility of an acknowledged element: the first read after which
  every read of its key contains it; its latency is measured from the add's
  acknowledgement (negative when it was visible before the ack arrived).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from base.history import Op, Pair, pairs

MAX_EVIDENCE = 50
MAX_STABLE = 500
"""Per-element visibility records kept in the result (the histogram uses all of them)."""


@dataclass(frozen=True, slots=True)
class Read:
    index: int
    start_index: int
    key: str
    start_ns: int
    end_ns: int
    elements: frozenset[int]
    strict: bool
    final: bool
    node: str | None


def _reads(ps: list[Pair]) -> list[Read]:
    out = []
    for p in ps:
        inv, done = p.invoke, p.complete
        if inv.get("f") != "read" or done is None or done["type"] != "ok" or not isinstance(done.get("value"), list):
            continue
        out.append(
            Read(
                index=done["index"],
                start_index=inv["index"],
                key=inv.get("key"),
                start_ns=inv["time"],
                end_ns=done["time"],
                elements=frozenset(e for e in done["value"] if isinstance(e, int)),
                strict=done.get("quorum") == "strict",
                final=bool(inv.get("final")),
                node=inv.get("node"),
            )
        )
    return out


def _percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def check(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    ps = pairs(history)
    adds = [p for p in ps if p.invoke.get("f") == "add"]
    reads = _reads(ps)
    by_key: dict[str, list[Read]] = defaultdict(list)
    for r in reads:
        by_key[r.key].append(r)
    for rs in by_key.values():
        rs.sort(key=lambda r: (r.start_ns, r.index))

    acked: dict[tuple[str, int], Pair] = {}
    attempted: set[tuple[str, int]] = set()
    failed: set[tuple[str, int]] = set()
    for p in adds:
        el = (p.invoke.get("key"), p.invoke.get("value"))
        attempted.add(el)
        if p.type == "ok":
            acked[el] = p
        elif p.type == "fail":
            failed.add(el)

    lost: list[dict[str, Any]] = []
    unconverged: list[dict[str, Any]] = []
    unexpected: list[dict[str, Any]] = []
    unknown_keys: list[str] = []
    recovered = 0
    keys = sorted({k for k, _ in attempted} | set(by_key), key=str)
    for key in keys:
        finals = [r for r in by_key.get(key, []) if r.final]
        if not finals:
            if any(k == key for k, _ in acked):
                unknown_keys.append(key)
            continue
        for (k, e), p in acked.items():
            if k != key:
                continue
            missing = [r.node for r in finals if e not in r.elements]
            if len(missing) == len(finals):
                lost.append({"key": key, "element": e, "add_index": p.complete["index"]})
            elif missing:
                unconverged.append({"key": key, "element": e, "missing_on": missing})
        seen = set().union(*(r.elements for r in finals))
        recovered += sum(1 for e in seen if (key, e) in attempted and (key, e) not in acked and (key, e) not in failed)

    for r in reads:
        for e in sorted(r.elements):
            if (r.key, e) not in attempted or (r.key, e) in failed:
                why = "never attempted" if (r.key, e) not in attempted else "its add failed"
                unexpected.append({"key": r.key, "element": e, "read_index": r.index, "why": why})

    stale_reads = 0
    violations: list[dict[str, Any]] = []
    latencies_s: list[float] = []
    stable: list[dict[str, Any]] = []
    never_stable: list[dict[str, Any]] = []
    for (key, e), p in acked.items():
        ack_ns = p.complete["time"]
        rs = [r for r in by_key.get(key, []) if r.end_ns >= p.invoke["time"]]
        last_miss = -1
        for i, r in enumerate(rs):
            if e not in r.elements:
                last_miss = i
        if last_miss + 1 < len(rs):
            stable_ns = rs[last_miss + 1].start_ns
            latencies_s.append((stable_ns - ack_ns) / 1e9)
            stable.append({"key": key, "element": e, "acked_ns": ack_ns, "stable_ns": stable_ns})
        elif rs:
            never_stable.append({"key": key, "element": e})
    acked_by_key: dict[str, list[tuple[int, int, Pair]]] = defaultdict(list)
    for (k, e), p in acked.items():
        acked_by_key[k].append((p.complete["index"], e, p))
    for lst in acked_by_key.values():
        lst.sort(key=lambda t: (t[0], t[1]))
    for r in reads:
        if r.final:
            continue
        misses = []
        for ack_index, e, p in acked_by_key.get(r.key, []):
            if ack_index > r.start_index:
                break
            if e not in r.elements:
                misses.append((e, p))
        if not misses:
            continue
        stale_reads += 1
        strict_misses = [(e, p) for e, p in misses if r.strict and p.complete.get("quorum") == "strict"]
        for e, p in strict_misses[:3]:
            violations.append(
                {"key": r.key, "element": e, "add_index": p.complete["index"], "read_index": r.index}
            )

    opts = test.get("options") or {}
    overlapping = int(opts.get("r", 2)) + int(opts.get("w", 2)) > int(opts.get("n", 3))
    valid: bool | str = True
    if lost or unconverged or unexpected or (violations and overlapping):
        valid = False
    elif unknown_keys:
        valid = "unknown"
    parts = []
    if lost:
        parts.append(f"{len(lost)} acknowledged adds lost")
    if unconverged:
        parts.append(f"{len(unconverged)} acknowledged adds missing from some final reads")
    if unexpected:
        parts.append(f"{len(unexpected)} reads of elements never (successfully) added")
    if violations and overlapping:
        parts.append(f"{len(violations)} strict-quorum reads missed a strict-quorum add acknowledged before them")
    if not parts:
        parts.append(
            f"all {len(acked)} acknowledged adds present in every final read"
            if not unknown_keys
            else f"no final read for keys {', '.join(unknown_keys)}"
        )
    parts.append(f"{stale_reads} stale reads")
    return {
        "valid": valid,
        "summary": "; ".join(parts),
        "kind": "kv_set",
        "acknowledged": len(acked),
        "attempted": len(attempted),
        "recovered": recovered,
        "lost_count": len(lost),
        "lost": lost[:MAX_EVIDENCE],
        "not_converged": unconverged[:MAX_EVIDENCE],
        "unexpected": unexpected[:MAX_EVIDENCE],
        "stale_reads": stale_reads,
        "quorum_violations": violations[:MAX_EVIDENCE],
        "quorum_violation_count": len(violations),
        "stable_latency_s": {
            "count": len(latencies_s),
            "p50": _percentile(latencies_s, 0.5),
            "p95": _percentile(latencies_s, 0.95),
            "max": max(latencies_s, default=None),
        },
        "stable_latencies_s": [round(x, 6) for x in latencies_s],
        "stable": sorted(stable, key=lambda x: x["acked_ns"])[:MAX_STABLE],
        "never_stable": never_stable[:MAX_EVIDENCE],
    }


def render_html(result: dict[str, Any]) -> str:
    """A histogram of stable-visibility latencies (inline SVG)."""
    xs = [float(x) for x in result.get("stable_latencies_s", [])]
    if not xs:
        return "<p>No acknowledged element was read after its add.</p>"
    lo, hi = min(xs), max(xs)
    bins = 30
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for x in xs:
        counts[min(bins - 1, int((x - lo) / width))] += 1
    top = max(counts)
    bars = "".join(
        f'<rect x="{40 + i * 16}" y="{150 - 130 * c / top:.1f}" width="14" height="{130 * c / top:.1f}" '
        f'fill="#4a7ab5"><title>{lo + i * width:.3f}s..{lo + (i + 1) * width:.3f}s: {c}</title></rect>'
        for i, c in enumerate(counts)
    )
    return (
        f"<p>When acknowledged adds became stably visible (s after the ack; {len(xs)} elements, "
        f"never stable: {len(result.get('never_stable', []))}).</p>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="540" height="175">{bars}'
        f'<text x="40" y="168" font-size="11">{lo:.3f}s</text>'
        f'<text x="500" y="168" font-size="11" text-anchor="end">{hi:.3f}s</text>'
        f'<text x="36" y="24" font-size="11" text-anchor="end">{top}</text></svg>'
    )
