"""Mutual exclusion, judged from what lock clients believed: was there a moment two clients held the lock?

Input: a lock history: client ops `acquire`, `hold` (the critical section)
and `release`, plus nemesis ops. A pure function of the history.

Rules:

- A process believes it holds the lock from the completion of an `acquire`
  that ended `ok`, until the earliest of: the invocation of its next
  `release` (whatever that release's outcome: the client stopped believing
  when it began to let go); the completion of a `hold` whose value says
  `lost: true` (the client saw its session lost and stopped its critical
  section there); the end of the history (it never let go).
- An acquire that ended `fail` or `info` gives no belief: the client did
  not come to think it held the lock.
- Two holds of different processes that overlap (the later start before
  the earlier end, strictly; a hold never let go lasts past the end of the
  history) are a violation. Each comes with its evidence:
  both holds (process, node, acquire and release ops, lease, key revision,
  whether the holder's lease had lapsed by its own deadline when it
  released), the overlap, and the nemesis ops of the 10 s before it.
- Verdict: False on any violation; "unknown" when no client ever acquired
  the lock (nothing was tested); True otherwise.
- `render_html(result)` draws every hold as a bar on its process's row,
  the overlaps in red.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from base.history import Op, pairs

MAX_VIOLATIONS = 20
MAX_HOLDS_DRAWN = 2000
CONTEXT_NS = 10_000_000_000


@dataclass
class Hold:
    process: Any
    start: int
    """ns: the acquire's completion."""
    end: int | None = None
    """ns: when the belief ended (None: never, up to the end of the history)."""
    node: str | None = None
    acquire: Op = field(default_factory=dict)
    ended_by: str = "end of history"
    release: Op | None = None

    def evidence(self) -> dict[str, Any]:
        value = self.acquire.get("value") if isinstance(self.acquire.get("value"), dict) else {}
        released = (self.release or {}).get("value")
        return {
            "process": self.process,
            "node": self.node,
            "from_s": round(self.start / 1e9, 4),
            "to_s": None if self.end is None else round(self.end / 1e9, 4),
            "ended_by": self.ended_by,
            "acquire_index": self.acquire.get("index"),
            "lease": value.get("lease"),
            "key_revision": value.get("rev"),
            "lease_lapsed_at_release": released.get("lease_lapsed") if isinstance(released, dict) else None,
            "release": None if self.release is None else {k: self.release.get(k) for k in
                                                          ("index", "type", "error") if k in self.release},
        }


def holds(history: list[Op]) -> list[Hold]:
    """Every belief interval, in order of start."""
    out: list[Hold] = []
    open_hold: dict[Any, Hold] = {}
    for p in pairs(history):
        f, c = p.invoke.get("f"), p.complete
        process = p.invoke.get("process")
        held = open_hold.get(process)
        if f == "acquire" and c is not None and c.get("type") == "ok":
            h = Hold(process=process, start=int(c["time"]), node=c.get("node"), acquire=c)
            open_hold[process] = h
            out.append(h)
        elif f == "hold" and held is not None and c is not None and _lost(c):
            held.end, held.ended_by = int(c["time"]), "its session was lost during the critical section"
            del open_hold[process]
        elif f == "release" and held is not None:
            held.end, held.ended_by = int(p.invoke["time"]), "it began to release"
            held.release = c
            del open_hold[process]
    out.sort(key=lambda h: h.start)
    return out


def _lost(op: Op) -> bool:
    value = op.get("value")
    return isinstance(value, dict) and value.get("lost") is True


def _nemesis_between(history: list[Op], start: int, end: int) -> list[dict[str, Any]]:
    return [
        {"time_s": round(op["time"] / 1e9, 3), "f": op.get("f"), "value": op.get("value")}
        for op in history
        if op.get("process") == "nemesis" and start <= op.get("time", -1) <= end
    ]


def check(history: list[Op], test: dict[str, Any] | None = None) -> dict[str, Any]:
    hs = holds(history)
    if not hs:
        return {"valid": "unknown", "summary": "no client ever acquired the lock: nothing was tested",
                "holds": 0, "violations": [], "kind": "lock"}
    times = [op["time"] for op in history if "time" in op]
    history_end = max(times) if times else 0
    violations: list[dict[str, Any]] = []
    count = 0
    longest = 0
    forever = float("inf")  # a hold never let go lasts past the end of the history
    for i, a in enumerate(hs):
        a_end = forever if a.end is None else a.end
        for b in hs[i + 1:]:
            if b.start >= a_end:
                break
            if b.process == a.process:
                continue
            b_end = forever if b.end is None else b.end
            lo, hi = b.start, min(a_end, b_end)
            if lo >= hi:
                continue
            shown_hi = max(lo, history_end) if hi == forever else hi
            count += 1
            longest = max(longest, shown_hi - lo)
            if len(violations) < MAX_VIOLATIONS:
                violations.append({
                    "overlap_s": [round(lo / 1e9, 4), round(shown_hi / 1e9, 4)],
                    "overlap_ms": round((shown_hi - lo) / 1e6, 3),
                    "until_end": hi == forever,
                    "holders": [a.evidence(), b.evidence()],
                    "earlier_lease_lapsed": a.evidence()["lease_lapsed_at_release"],
                    "nemesis": _nemesis_between(history, lo - CONTEXT_NS, hi),
                })
    drawn = [[h.process, round(h.start / 1e9, 4), None if h.end is None else round(h.end / 1e9, 4)]
             for h in hs[:MAX_HOLDS_DRAWN]]
    base = {"holds": len(hs), "processes": len({h.process for h in hs}), "drawn": drawn,
            "end_s": round(history_end / 1e9, 4), "kind": "lock"}
    if count:
        first = violations[0]
        a, b = first["holders"]
        return {
            "valid": False,
            "summary": (f"{count} moment(s) when two clients both believed they held the lock, the longest "
                        f"{longest / 1e6:.1f} ms; first at {first['overlap_s'][0]:.3f} s: process {b['process']} "
                        f"acquired while process {a['process']} still held it"),
            "violations": violations,
            "violation_count": count,
            **base,
        }
    return {"valid": True, "violations": [], "violation_count": 0,
            "summary": f"{len(hs)} holds by {base['processes']} processes, never two at once", **base}


def render_html(result: dict[str, Any]) -> str:
    """Every hold as a bar on its process's row; overlaps in red."""
    drawn = result.get("drawn") or []
    if not drawn:
        return ""
    end_s = max(float(result.get("end_s") or 0.0), max((d[2] or 0.0) for d in drawn), 1e-9)
    procs = sorted({d[0] for d in drawn}, key=str)
    row = {p: i for i, p in enumerate(procs)}
    width, left, h = 900, 70, 14
    scale = (width - left - 10) / end_s
    parts = []
    for p in procs:
        y = row[p] * (h + 4) + 4
        parts.append(f'<text x="2" y="{y + h - 3}" font-size="11">p{html.escape(str(p))}</text>')
    for process, start, end in drawn:
        stop = end_s if end is None else end
        y = row[process] * (h + 4) + 4
        parts.append(f'<rect x="{left + start * scale:.1f}" y="{y}" width="{max((stop - start) * scale, 1):.1f}" '
                     f'height="{h}" fill="#2da44e"><title>p{html.escape(str(process))} held '
                     f'{start:.3f}-{stop:.3f} s</title></rect>')
    for v in result.get("violations") or []:
        lo, hi = v["overlap_s"]
        parts.append(f'<rect x="{left + lo * scale:.1f}" y="0" width="{max((hi - lo) * scale, 2):.1f}" '
                     f'height="{len(procs) * (h + 4) + 4}" fill="#cf222e" opacity="0.45">'
                     f"<title>two holders {lo:.3f}-{hi:.3f} s</title></rect>")
    height = len(procs) * (h + 4) + 8
    return (f'<p class="muted">Who held the lock when (green); red: two holders at once.</p>'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{"".join(parts)}</svg>')
