"""Anomalies in words and pictures: prose for each edge of a cycle, inline SVG diagrams.

Rules:

- Every cycle is told as Elle tells it: "Let T1 = ..., then T1 < T2 because
  ..., ..., however T3 < T1 because ...: a cycle." Each step names the key
  and values that prove it, and txns by T<invocation index>.
- Diagrams are self-contained SVG (no scripts, no external styles or fonts),
  nodes on a circle, one curved arrow per dependency, coloured and labelled by
  relation; marker ids are derived from a per-diagram counter so several
  diagrams can share one page.
- Every string from the history is HTML-escaped before it reaches markup.
"""

from __future__ import annotations

import math
from html import escape
from itertools import count
from typing import Any

from checkers.elle.cycles import Step
from checkers.elle.graph import NAMES, PROCESS, REALTIME, RW, WR, WW, DepGraph
from checkers.elle.history import TxnHistory

COLOURS = {"ww": "#c0392b", "wr": "#2471a3", "rw": "#d68910", "process": "#7d3c98", "realtime": "#566573"}


def _v(x: Any) -> str:
    return "nil" if x is None else repr(x)


def step_text(g: DepGraph, th: TxnHistory, s: Step, kind: str) -> str:
    """Why txn a precedes txn b, in one clause."""
    a, b = th.txns[s.a], th.txns[s.b]
    an, bn = a.name, b.name
    why = g.why.get((s.a, s.b, s.rel))
    appends = kind == "list-append"
    if s.rel == WW and why:
        k, v1, v2 = why
        if appends:
            return f"{an} < {bn} because {bn} appended {_v(v2)} to key {_v(k)} after {an} appended {_v(v1)}"
        return (f"{an} < {bn} because {an} wrote {_v(v1)} to key {_v(k)} and {bn} later overwrote it with "
                f"{_v(v2)}, which came later in the version order")
    if s.rel == WR and why:
        k, v = why
        return f"{an} < {bn} because {bn} read {an}'s {'append' if appends else 'write'} of {_v(v)} to key {_v(k)}"
    if s.rel == RW and why:
        k, seen, nxt = why
        if appends:
            if seen is None:
                return (f"{an} < {bn} because {an} read key {_v(k)} and saw the initial (empty) state, "
                        f"which {bn} changed by appending {_v(nxt)}")
            return (f"{an} < {bn} because {an} read key {_v(k)} ending in {_v(seen)} and did not see "
                    f"{bn}'s append of {_v(nxt)}, which came after it")
        return (f"{an} < {bn} because {an} read key {_v(k)} = {_v(seen)}, and {bn} wrote {_v(nxt)}, "
                "which came later in the version order")
    if s.rel == PROCESS:
        return f"{an} < {bn} because process {a.process} executed {an} before {bn}"
    if s.rel == REALTIME:
        return f"{an} < {bn} because {an} completed (op {a.complete_index}) before {bn} was invoked (op {b.index})"
    return f"{an} < {bn} ({NAMES[s.rel]})"


def cycle_evidence(g: DepGraph, th: TxnHistory, steps: list[Step], kind: str, typ: str) -> dict[str, Any]:
    """Evidence for one cycle: the txns, each step with its reason, and the whole story in prose."""
    clauses = [step_text(g, th, s, kind) for s in steps]
    lets = "; ".join(f"{th.txns[s.a].name} = {th.txns[s.a].raw!r}" for s in steps)
    body = ", ".join(clauses[:-1])
    story = f"Let {lets}. Then {body}. However, {clauses[-1]}: a cycle ({typ})."
    return {
        "type": typ,
        "cycle": [th.txns[s.a].view() for s in steps],
        "steps": [
            {
                "from": th.txns[s.a].name,
                "to": th.txns[s.b].name,
                "rel": NAMES[s.rel],
                "why": list(g.why.get((s.a, s.b, s.rel), ())),
                "text": clauses[i],
            }
            for i, s in enumerate(steps)
        ],
        "explanation": story,
    }


def _t(op: Any) -> str:
    return f"T{op.get('index')}" if isinstance(op, dict) else "a txn"


def describe(typ: str, ev: dict[str, Any]) -> str:
    """One sentence for a non-cycle anomaly."""
    t = _t(ev.get("op"))
    k = _v(ev.get("key"))
    match typ:
        case "G1a":
            return (f"{t} read {_v(ev['element'])} from key {k}, written only by {_t(ev['writer'])}, "
                    "which failed (aborted read)")
        case "G1b":
            return (f"{t} read {_v(ev['element'])} from key {k}, an intermediate write of {_t(ev['writer'])} "
                    "that it later overwrote (intermediate read)")
        case "internal":
            return f"{t} read {_v(ev['read'])} from key {k}, but its own earlier operations imply {_v(ev['expected'])}"
        case "future-read":
            return f"{t} read key {k} and saw {_v(ev['element'])}, which it appended only later in the same txn"
        case "duplicate-elements":
            return f"{t} read key {k} and saw some elements more than once: {_v(ev['duplicates'])}"
        case "incompatible-order":
            r1, r2 = ev["values"]
            return (f"reads of key {k} saw {_v(r1)} and {_v(r2)}: neither is a prefix of the other, "
                    "so no single order of appends explains both")
        case "garbage-read":
            return f"{t} read {_v(ev['element'])} from key {k}, a value no transaction ever wrote"
        case "cyclic-versions":
            return (f"the versions of key {k} are ordered in a cycle among {_v(ev['scc'])} "
                    f"(from {', '.join(ev['sources'])})")
        case "dirty-update":
            return (f"key {k} took the values {_v(ev['values'])}: a committed txn built on state "
                    "written by a failed one (dirty update)")
        case "lost-update":
            names = ", ".join(_t(x) for x in ev["txns"])
            return f"{names} all read key {k} = {_v(ev['value'])} and all wrote it: all but one update is lost"
        case "empty-transaction-graph":
            return "no transaction depends on another: there is nothing to check"
        case "cycle-search-timeout":
            return (f"the search for {ev['anomaly_spec_type']} in a component of {ev['scc_size']} txns was cut short "
                    "by the time limit")
        case "witness-not-found":
            return f"no serial order proving the verdict was found: {ev['reason']}"
    if typ.endswith("-cycle-exists"):
        return (f"a cycle that {ev['not']} forbids exists among {ev['scc_size']} txns "
                f"({', '.join(ev['scc'][:8])}{'…' if len(ev['scc']) > 8 else ''}), though no specific one was shown")
    if typ.startswith("no-serial-order"):
        return f"no serial order explains every read: {ev['reason']}"
    return f"{typ}: {ev!r}"


_ids = count()


def cycle_svg(ev: dict[str, Any]) -> str:
    """A small self-contained SVG drawing of a cycle's txns and dependencies."""
    steps = ev["steps"]
    n = len(steps)
    r = max(80.0, 32.0 * n)
    pad = 70.0
    size = 2 * (r + pad)
    cx = cy = r + pad
    uid = f"elle{next(_ids)}"
    pos = {}
    for i, s in enumerate(steps):
        ang = -math.pi / 2 + 2 * math.pi * i / n
        pos[s["from"]] = (cx + r * math.cos(ang), cy + r * math.sin(ang))
    # Crop to the drawing: node extents plus room for the bent arrows and their labels.
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    x0, y0 = max(0.0, min(xs) - pad), max(0.0, min(ys) - pad)
    w, h = min(size, max(xs) + pad) - x0, min(size, max(ys) + pad) - y0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" '
        f'viewBox="{x0:.0f} {y0:.0f} {w:.0f} {h:.0f}" font-family="sans-serif" font-size="12">',
        "<defs>",
    ]
    for rel, colour in COLOURS.items():
        parts.append(
            f'<marker id="{uid}-{rel}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    parts.append("</defs>")
    radius = {name: max(18.0, 4.0 + 3.6 * len(name)) for name in pos}
    for s in steps:
        (x1, y1), (x2, y2) = pos[s["from"]], pos[s["to"]]
        dx, dy = x2 - x1, y2 - y1
        dist = math.hypot(dx, dy) or 1.0
        ux, uy = dx / dist, dy / dist
        sx, sy = x1 + ux * radius[s["from"]], y1 + uy * radius[s["from"]]
        ex, ey = x2 - ux * radius[s["to"]], y2 - uy * radius[s["to"]]
        # Bend each arrow to its right so opposite arrows between two nodes do not overlap.
        bend = 0.25 * dist
        mx, my = (sx + ex) / 2 - uy * bend, (sy + ey) / 2 + ux * bend
        colour = COLOURS.get(s["rel"], "#000")
        parts.append(
            f'<path d="M{sx:.1f},{sy:.1f} Q{mx:.1f},{my:.1f} {ex:.1f},{ey:.1f}" fill="none" '
            f'stroke="{colour}" stroke-width="2" marker-end="url(#{uid}-{escape(s["rel"])})"/>'
        )
        lx, ly = (sx + 2 * mx + ex) / 4, (sy + 2 * my + ey) / 4
        parts.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" fill="{colour}" text-anchor="middle" '
            f'dominant-baseline="middle" stroke="#fff" stroke-width="3" paint-order="stroke">'
            f"{escape(s['rel'])}</text>"
        )
    for name, (x, y) in pos.items():
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius[name]:.0f}" fill="#fdfefe" stroke="#333"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" dominant-baseline="middle">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(result: dict[str, Any], *, per_type: int = 5) -> str:
    """A self-contained HTML fragment: verdict, ruled-out models, each anomaly in prose and picture."""
    valid = result.get("valid")
    colour = {True: "#1e8449", False: "#c0392b"}.get(valid, "#b9770e")
    out = [
        '<section class="elle" style="font-family:sans-serif">',
        f'<p style="color:{colour};font-weight:bold">{escape(str(result.get("summary", "")))}</p>',
    ]
    if result.get("not"):
        also = result.get("also_not") or []
        tail = f" (nor, so, {escape(', '.join(also))})" if also else ""
        out.append(f"<p>Not {escape(', '.join(result['not']))}{tail}.</p>")
    counts = result.get("anomaly_counts", {})
    for typ, evs in result.get("anomalies", {}).items():
        out.append(f"<h4>{escape(typ)} ({counts.get(typ, len(evs))})</h4>")
        for ev in evs[:per_type]:
            if "steps" in ev:
                out.append("<div style='margin:0 0 1em 0'>")
                out.append(f"<p>{escape(ev['explanation'])}</p>")
                out.append(cycle_svg(ev))
                out.append("</div>")
            else:
                out.append(f"<p>{escape(ev.get('text') or describe(typ, ev))}</p>")
        if len(evs) > per_type:
            out.append(f"<p>… and {len(evs) - per_type} more in results.json.</p>")
    other = result.get("other_anomalies") or {}
    if other:
        listed = ", ".join(f"{t} ({len(evs)})" for t, evs in other.items())
        out.append(f"<p>Also found, allowed by the model checked: {escape(listed)}.</p>")
    witness = result.get("witness")
    if isinstance(witness, dict) and witness.get("reason"):
        out.append(f"<p class='muted'>Serial order: {escape(str(witness['reason']))}.</p>")
    for w in result.get("warnings", []):
        out.append(f"<p style='color:#b9770e'>Warning: {escape(w)}</p>")
    out.append("</section>")
    return "\n".join(out)
