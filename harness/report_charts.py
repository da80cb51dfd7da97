"""The report's pictures: latency and throughput over time, and one row of ops per client.

Rules this module keeps (a person must be able to read them):

- Time runs in seconds since the test began on every x axis; fault windows
  are shaded in each fault kind's own colour (base.faults vocabulary); the
  quiet period and the final reads after the final heal are marked, not
  mixed into the test.
- Latency is log scale with labels at 1-2-5 steps (1-10-100 when the data
  spans more than three decades) and no labels on the minor ticks, so none
  overlap.
- Throughput counts completions per whole second of the test proper
  (0 .. time limit), with seconds without any completion drawn as 0, as a
  step line: it neither spikes on the final reads nor draws a line across
  the quiet period.
- Legends sit above the plots, never over the data.
- The timeline has one row per client slot: a process whose op ended
  `info` is replaced by a fresh process number on the same slot (the
  runner's rule: p, p + concurrency, ...), so its row lists every process
  it was; the final reads, one process each (marked `final`, or invoked
  after the time limit, when clients invoke nothing), share one last row. Processes
  that issued no op have no row. Bars carry "op N" tooltips (N: the
  invocation's history index) with times in seconds.
- Inline SVG only (matplotlib with the Agg backend, or hand-drawn), every
  value from the history escaped.
"""

from __future__ import annotations

import html
import io
import math
from collections import defaultdict
from typing import Any

from base.faults import FaultWindow
from base.history import Op, Pair, pairs
from base.spec import TestSpec
from harness import plain
from nemesis.catalog import VOCABULARY

MAX_TIMELINE_OPS = 3000
OUTCOME_COLOUR = {"ok": "#2da44e", "fail": "#cf222e", "info": "#bf8700"}
AFTER_COLOUR = "#eaeef2"
"""The quiet period and final reads, after the final heal."""
NS = 1e9


def _end(w: FaultWindow) -> float:
    return w.start_s if w.end_s is None else w.end_s


def _svg_of(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.find("<svg") :]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Major tick values for a log axis spanning lo..hi (the first at or below lo, the last at or above hi):
    1-2-5 steps, or powers of ten when the data spans more than three decades."""
    lo = max(lo, 1e-3)
    hi = max(hi, lo * 1.01)
    subs = (1.0,) if hi / lo > 1e3 else (1.0, 2.0, 5.0)
    candidates = [round(s * 10.0**e, 6) for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
                  for s in subs]
    first = max(t for t in candidates if t <= lo * 1.0001)
    last = min(t for t in candidates if t >= hi / 1.0001)
    return [t for t in candidates if first <= t <= last]


def throughput(ps: list[Pair], seconds: int) -> dict[str, list[int]]:
    """Completions per whole second 0..seconds-1 by outcome (final ops left out), 0 where there were none."""
    out = {t: [0] * seconds for t in OUTCOME_COLOUR}
    for p in ps:
        if p.complete is None or is_final(p, seconds):
            continue
        s = int(p.complete["time"] // NS)
        if 0 <= s < seconds:
            out[p.type][s] += 1
    return out


def _after_heal(spec: TestSpec, history: list[Op]) -> tuple[float, float] | None:
    """(final heal, end of the history) in seconds, when the run got past its time limit."""
    end = max((op.get("time", 0) for op in history), default=0) / NS
    return (spec.time_limit_s, end) if end > spec.time_limit_s else None


def latency_and_throughput_svg(spec: TestSpec, history: list[Op], windows: list[FaultWindow]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.patches import Patch

    ps = [p for p in pairs(history) if p.complete is not None]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.2), sharex=True)
    after = _after_heal(spec, history)
    for ax in (ax1, ax2):
        for w in windows:
            ax.axvspan(w.start_s, _end(w), color=w.colour, alpha=0.25, lw=0)
        if after is not None:
            ax.axvspan(*after, color=AFTER_COLOUR, alpha=0.8, lw=0)
        ax.grid(axis="y", color="#d0d7de", lw=0.5)
    points: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for p in ps:
        xs, ys = points[p.type]
        xs.append(p.invoke["time"] / NS)
        ys.append(max((p.complete["time"] - p.invoke["time"]) / 1e6, 1e-3))  # type: ignore[index]
    for outcome in OUTCOME_COLOUR:
        xs, ys = points.get(outcome, ([], []))
        if xs:
            ax1.scatter(xs, ys, s=7, color=OUTCOME_COLOUR[outcome], alpha=0.75, lw=0)
    ax1.set_yscale("log")
    all_y = [y for _, ys in points.values() for y in ys]
    if all_y:
        ticks = log_ticks(min(all_y), max(all_y))
        ax1.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax1.set_ylim(ticks[0] / 1.2, ticks[-1] * 1.2)
    ax1.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    ax1.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax1.set_ylabel("latency (ms, log scale)")
    seconds = max(1, int(spec.time_limit_s))
    rates = throughput(ps, seconds)
    xs = list(range(seconds + 1))
    for outcome, series in rates.items():
        if any(series):
            ax2.step(xs, [*series, series[-1]], where="post", color=OUTCOME_COLOUR[outcome], lw=1.3)
    ax2.set_ylim(bottom=0)
    ax2.set_ylabel("completed ops per second")
    ax2.set_xlabel("time since the test began (s)")
    handles = [Patch(color=OUTCOME_COLOUR[o], label=o) for o in OUTCOME_COLOUR if points.get(o, ([],))[0]]
    handles += [Patch(color=VOCABULARY.colour(k), alpha=0.25, label=k) for k in sorted({w.kind for w in windows})]
    if after is not None:
        handles.append(Patch(color=AFTER_COLOUR, label="after the final heal: quiet, then final reads"))
    ax1.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=min(len(handles), 5),
               fontsize=8, frameon=False)
    fig.tight_layout()
    svg = _svg_of(fig)
    plt.close(fig)
    return svg


# -- the timeline ------------------------------------------------------------------------------------------


def is_final(p: Pair, time_limit_s: float) -> bool:
    """A final op: marked so, or invoked after the time limit (clients invoke nothing later; the runner's
    final ops come after the final heal and the quiet period)."""
    return bool(p.invoke.get("final")) or p.invoke.get("time", 0) >= time_limit_s * NS


def _rows(ps: list[Pair], concurrency: int, time_limit_s: float) -> tuple[dict[Any, str], list[str]]:
    """Process -> row key, and the row keys in order: one per client slot, then "final"."""
    row_of: dict[Any, str] = {}
    for p in ps:
        proc = p.invoke["process"]
        if is_final(p, time_limit_s):
            row_of[proc] = "final"
        elif isinstance(proc, int) and concurrency > 0:
            row_of.setdefault(proc, f"slot {proc % concurrency}")
        else:
            row_of.setdefault(proc, f"p{proc}")
    slots = sorted({r for r in row_of.values() if r != "final"}, key=lambda r: (len(r), r))
    return row_of, slots + (["final"] if "final" in row_of.values() else [])


def _row_label(row: str, row_of: dict[Any, str]) -> str:
    if row == "final":
        return "final reads"
    procs = sorted((p for p, r in row_of.items() if r == row), key=str)
    label = ", ".join(f"p{p}" for p in procs[:3])
    return label + (f" +{len(procs) - 3}" if len(procs) > 3 else "")


def tick_step(span_s: float) -> float:
    for step in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600):
        if span_s / step <= 12:
            return float(step)
    return 1200.0


def timeline_svg(spec: TestSpec, history: list[Op], windows: list[FaultWindow]) -> str:
    """One row per client slot, one bar per op from invoke to completion, coloured by outcome."""
    every = pairs(history)
    ps = every[:MAX_TIMELINE_OPS]
    if not ps:
        return "<p>No client operations.</p>"
    end_ns = max(op.get("time", 0) for op in history) or 1
    row_of, rows = _rows(ps, spec.concurrency, spec.time_limit_s)
    index = {r: i for i, r in enumerate(rows)}
    width, left, row_h, top = 1000, 92, 13, 4
    plot_h = row_h * len(rows)
    height = plot_h + top + 22
    scale = (width - left - 10) / end_ns
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="10" '
             'font-family="sans-serif">']
    for w in windows:
        x = left + w.start_s * NS * scale
        parts.append(
            f'<rect x="{x:.1f}" y="{top}" width="{max(1.0, (_end(w) - w.start_s) * NS * scale):.1f}" '
            f'height="{plot_h}" fill="{w.colour}" opacity="0.3">'
            f"<title>{html.escape(f'{w.kind}: {w.description}')}</title></rect>"
        )
    step = tick_step(end_ns / NS)
    t = 0.0
    while t <= end_ns / NS + 1e-9:
        x = left + t * NS * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h + 3}" stroke="#d0d7de"/>'
                     f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{t:g} s</text>')
        t += step
    for row, i in index.items():
        parts.append(f'<text x="2" y="{top + i * row_h + 10}">{html.escape(_row_label(row, row_of))}</text>')
    for p in ps:
        start = p.invoke["time"]
        end = p.complete["time"] if p.complete else end_ns
        x = left + start * scale
        y = top + index[row_of[p.invoke["process"]]] * row_h + 1
        title = html.escape(
            f"{plain.op_name(p.invoke.get('index'))} (process {p.invoke['process']}, node {p.invoke.get('node')}): "
            f"{plain.op_words(p.invoke, p.complete)}; {p.type}; {start / NS:.3f}–{end / NS:.3f} s"
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{max(1.0, (end - start) * scale):.1f}" height="{row_h - 3}" '
            f'fill="{OUTCOME_COLOUR[p.type]}"><title>{title}</title></rect>'
        )
    parts.append("</svg>")
    cut = (f"<p class='muted'>Only the first {MAX_TIMELINE_OPS} of {len(every)} ops are drawn.</p>"
           if len(every) > MAX_TIMELINE_OPS else "")
    return "".join(parts) + cut
