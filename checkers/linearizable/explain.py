"""Draw a linearizability result as a self-contained HTML fragment with inline SVG.

Rules: no external JS, CSS or fonts; every string from the history is
escaped; the fragment depends on nothing but the result dict (what
check_history returned, possibly read back from results.json).

For each key that is not linearizable (or not decided) the picture shows the
operations around the point where the search got stuck, one row per process,
as bars from invocation to completion on the event-order axis (an op of
unknown outcome runs to the right edge, dashed); a bar's tooltip names it
"op N" (N: its invocation's history index) with its times in seconds. Ops in the longest
linearizable prefix are green and numbered in their linearized order; the ops
that cannot take effect next are red, those that could but lead nowhere orange.
"""

from __future__ import annotations

from html import escape
from typing import Any

ROW_H = 26
BAR_H = 18
LEFT = 90
WIDTH = 960
COLORS = {"prefix": "#9fd89f", "stuck": "#f08a8a", "dead-end": "#f6cf8e", "other": "#d6d6d6"}
VERDICT = {True: "linearizable", False: "NOT linearizable", "unknown": "unknown"}


def _verdict(v: Any) -> str:
    return VERDICT.get(v, "unknown") if isinstance(v, bool) or v == "unknown" else "unknown"


def render_html(result: dict[str, Any]) -> str:
    """An HTML fragment (a <section>) explaining `result`."""
    out = ['<section class="linearizable" style="font-family:sans-serif;font-size:13px">']
    out.append(f"<h3>Linearizability ({escape(str(result.get('model', '')))}): "
               f"{escape(_verdict(result.get('valid')))}</h3>")
    out.append(f"<p>{escape(str(result.get('summary', '')))}</p>")
    keys: dict[str, dict[str, Any]] = result.get("keys", {}) or {}
    numbering = escape(str(result.get("numbering", "op")))
    if keys:
        out.append('<table style="border-collapse:collapse"><tr><th align="left">key</th><th>verdict</th>'
                   '<th>ops</th><th>longest prefix</th><th>steps</th><th align="left">note</th></tr>')
        for name, r in sorted(keys.items(), key=lambda kv: _rank(kv[1].get("valid"))):
            out.append(
                f"<tr><td>{escape(name)}</td><td>{escape(_verdict(r.get('valid')))}</td>"
                f"<td>{r.get('ops', '')}</td><td>{r.get('longest_prefix', '')}</td><td>{r.get('steps', '')}</td>"
                f"<td>{escape(str(r.get('reason', '')))}</td></tr>"
            )
        out.append("</table>")
    for name, r in sorted(keys.items(), key=lambda kv: _rank(kv[1].get("valid"))):
        if r.get("valid") is True or not r.get("drawn"):
            continue
        out.append(f"<h4>key {escape(name)}: {escape(_verdict(r.get('valid')))}</h4>")
        if r.get("valid") is False:
            out.append(f"<p>After the longest linearizable prefix ({r.get('longest_prefix', '?')} ops) the state is "
                       f"<code>{escape(str(r.get('state')))}</code>. Ops that could come next:</p><ul>")
            for s in r.get("stuck", []):
                out.append(f"<li>{escape(str(s.get('description')))} — process {escape(str(s.get('process')))}, "
                           f"{numbering} {escape(str(s.get('index')))}: {escape(str(s.get('why')))}</li>")
            out.append("</ul>")
        out.append(_svg(r, numbering))
    out.append("</section>")
    return "\n".join(out)


def _svg(r: dict[str, Any], numbering: str = "op") -> str:
    drawn: list[dict[str, Any]] = r["drawn"]
    order = {_ident(p): n for n, p in enumerate(r.get("prefix", []), start=r.get("prefix_start", 1))}
    processes = sorted({str(d["process"]) for d in drawn}, key=lambda p: (len(p), p))
    row = {p: i for i, p in enumerate(processes)}
    lo = min(d["call"] for d in drawn)
    hi = max(d["ret"] if d.get("ret") is not None else d["call"] for d in drawn) + 1
    span = max(1, hi - lo)
    right = WIDTH - 10

    def x(pos: int) -> float:
        return LEFT + (pos - lo) * (right - LEFT) / span

    height = ROW_H * len(processes) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" style="background:#fff">']
    for p, i in row.items():
        y = 10 + i * ROW_H
        parts.append(f'<text x="4" y="{y + 13}" font-size="11">process {escape(p)}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y + BAR_H + 3}" x2="{right}" y2="{y + BAR_H + 3}" stroke="#eee"/>')
    for d in drawn:
        y = 10 + row[str(d["process"])] * ROW_H
        x0 = x(d["call"])
        x1 = x(d["ret"]) if d.get("ret") is not None else right
        w = max(3.0, x1 - x0)
        role = d.get("role", "other")
        dash = ' stroke-dasharray="4 2"' if d.get("ret") is None else ""
        stroke = "#b00" if role == "stuck" else "#555"
        n = order.get(_ident(d))
        done = f" → {d.get('complete_index')}" if d.get("complete_index") is not None else ""
        tip = (f"{numbering} {d.get('index')}{done}: {d.get('description')} | process {d.get('process')} | "
               f"{d.get('type')}" + (f" | linearized #{n}" if n else "") + _span(d))
        parts.append(f'<g><title>{escape(tip)}</title><rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{BAR_H}" '
                     f'rx="3" fill="{COLORS.get(role, COLORS["other"])}" stroke="{stroke}"{dash}/>')
        label = str(d.get("description", ""))
        max_chars = int(w / 6.5)
        if max_chars >= 3:
            if len(label) > max_chars:
                label = label[: max_chars - 1] + "…"
            parts.append(f'<text x="{x0 + 3:.1f}" y="{y + 13}" font-size="11">{escape(label)}</text>')
        if n:
            parts.append(f'<text x="{x0:.1f}" y="{y - 1}" font-size="8" fill="#060">#{n}</text>')
        parts.append("</g>")
    ly = height - 8
    parts.append(f'<text x="{LEFT}" y="{ly}" font-size="11">green: linearized prefix (#order) · '
                 f'red: cannot take effect next · orange: could, but leads nowhere · grey: other · '
                 f'dashed: outcome unknown · x: event order</text>')
    parts.append("</svg>")
    return "".join(parts)


def _span(d: dict[str, Any]) -> str:
    """The op's time in seconds since the test began (history times are ns)."""
    start, end = d.get("time"), d.get("complete_time")
    if not isinstance(start, int | float):
        return ""
    return f" | {start / 1e9:.3f}–{end / 1e9:.3f} s" if isinstance(end, int | float) else f" | from {start / 1e9:.3f} s"


def _rank(valid: Any) -> int:
    """Table order: violations first, then undecided keys, then linearizable ones."""
    return 0 if valid is False else (2 if valid is True else 1)


def _ident(d: dict[str, Any]) -> tuple[Any, Any]:
    return (d.get("call"), d.get("process"))
