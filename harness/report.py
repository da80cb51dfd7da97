"""report.html: one self-contained page a person can open offline.

Rules: no external scripts, styles or fonts; plots are inline SVG (matplotlib
with the Agg backend, or hand-drawn SVG for the timeline); every value from
the history is HTML-escaped. It shows, in order: the verdict and how to
reproduce the run, each checker's verdict and summary with its evidence,
latency and throughput over time with fault windows shaded, a per-process
timeline, then the workload's own sections and the checkers' own pictures.
Faults are read from the history with the catalog's vocabulary
(base.faults): one table row per fault saying what it did, and every chart
shaded in each fault kind's own colour. A run whose requested faults did not
all take effect says so above everything else.
"""

from __future__ import annotations

import html
import importlib
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from base.faults import FaultWindow, fault_windows
from base.history import Op, pairs
from base.spec import TestSpec
from nemesis.catalog import VOCABULARY

MAX_TIMELINE_OPS = 3000
VERDICT_WORD = {True: "valid", False: "INVALID", "unknown": "unknown"}
VERDICT_COLOUR = {True: "#1a7f37", False: "#cf222e", "unknown": "#9a6700"}
OUTCOME_COLOUR = {"ok": "#2da44e", "fail": "#cf222e", "info": "#bf8700"}


def _svg_of(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.find("<svg") :]


def latency_and_throughput_svg(history: list[Op], windows: list[FaultWindow]) -> str:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ps = [p for p in pairs(history) if p.complete is not None]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for w in windows:
        for ax in (ax1, ax2):
            ax.axvspan(w.start_s, _end(w), color=w.colour, alpha=0.25, lw=0)
    kinds = sorted({w.kind for w in windows})
    by_outcome: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for p in ps:
        xs, ys = by_outcome[p.type]
        xs.append(p.invoke["time"] / 1e9)
        ys.append(max((p.complete["time"] - p.invoke["time"]) / 1e6, 1e-3))  # type: ignore[index]
    for outcome in ("ok", "fail", "info"):
        xs, ys = by_outcome.get(outcome, ([], []))
        if xs:
            ax1.scatter(xs, ys, s=6, color=OUTCOME_COLOUR[outcome], label=outcome, alpha=0.7, lw=0)
    ax1.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}")
    ax1.yaxis.set_major_formatter(plain)
    ax1.yaxis.set_minor_formatter(plain)
    ax1.set_ylabel("latency (ms)")
    ax1.legend(loc="upper right", fontsize=8)
    buckets: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for p in ps:
        buckets[p.type][int(p.complete["time"] / 1e9)] += 1  # type: ignore[index]
    for outcome in ("ok", "fail", "info"):
        series = buckets.get(outcome)
        if series:
            xs = sorted(series)
            ax2.plot(xs, [series[x] for x in xs], color=OUTCOME_COLOUR[outcome], label=outcome, lw=1.2)
    ax2.set_ylabel("ops/s")
    ax2.set_xlabel("time (s); shaded bands: faults in place")
    handles, _ = ax2.get_legend_handles_labels()
    handles += [Patch(color=VOCABULARY.colour(k), alpha=0.25, label=k) for k in kinds]
    ax2.legend(handles=handles, loc="lower left", fontsize=8, ncol=4)
    fig.tight_layout()
    svg = _svg_of(fig)
    plt.close(fig)
    return svg


def timeline_svg(history: list[Op], windows: list[FaultWindow]) -> str:
    """One row per process, one bar per op from invoke to completion, coloured by outcome."""
    ps = pairs(history)[:MAX_TIMELINE_OPS]
    if not ps:
        return "<p>No client operations.</p>"
    end_ns = max(op.get("time", 0) for op in history) or 1
    processes = sorted({p.invoke["process"] for p in ps}, key=lambda x: (str(type(x)), x))
    row = {proc: i for i, proc in enumerate(processes)}
    width, left, row_h = 1000, 60, 12
    height = row_h * len(processes) + 30
    scale = (width - left - 10) / end_ns
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="9">']
    for w in windows:
        x = left + w.start_s * 1e9 * scale
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{max(1.0, (_end(w) - w.start_s) * 1e9 * scale):.1f}" '
            f'height="{height - 20}" fill="{w.colour}" opacity="0.3">'
            f"<title>{html.escape(f'{w.kind}: {w.description}')}</title></rect>"
        )
    for proc, i in row.items():
        parts.append(f'<text x="2" y="{i * row_h + 9}">p{html.escape(str(proc))}</text>')
    for p in ps:
        start = p.invoke["time"]
        end = p.complete["time"] if p.complete else end_ns
        x = left + start * scale
        y = row[p.invoke["process"]] * row_h + 1
        title = html.escape(
            f"{p.invoke.get('f')} {p.invoke.get('key', '')} {json.dumps(p.invoke.get('value'))} -> "
            f"{p.type} {json.dumps(p.complete.get('value')) if p.complete else ''} on {p.invoke.get('node')}"
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{max(1.0, (end - start) * scale):.1f}" height="{row_h - 3}" '
            f'fill="{OUTCOME_COLOUR[p.type]}"><title>{title}</title></rect>'
        )
    parts.append(f'<text x="{left}" y="{height - 5}">0 s</text>')
    parts.append(f'<text x="{width - 60}" y="{height - 5}">{end_ns / 1e9:.1f} s</text></svg>')
    return "".join(parts)


def _end(w: FaultWindow) -> float:
    return w.start_s if w.end_s is None else w.end_s


def faults_table(windows: list[FaultWindow]) -> str:
    """One row per fault: when, for how long, its kind (in its colour), what it did, which package."""
    if not windows:
        return "<p>No fault was in place during this run.</p>"
    rows = []
    for w in windows:
        to = f"{_end(w):.2f}" if w.cured else f"{_end(w):.2f} (never cured)"
        rows.append(
            f"<tr><td>{w.start_s:.2f}</td><td>{html.escape(to)}</td><td>{_end(w) - w.start_s:.2f}</td>"
            f'<td><span style="background:{w.colour}">&nbsp;&nbsp;</span> {html.escape(w.kind)}</td>'
            f"<td>{html.escape(w.description)}</td><td>{html.escape(w.package or '')}</td></tr>"
        )
    return (
        "<table><tr><th>from (s)</th><th>to (s)</th><th>for (s)</th><th>fault</th><th>what it did</th>"
        f"<th>package</th></tr>{''.join(rows)}</table>"
    )


def faults_banner(results: dict[str, Any]) -> str:
    """A warning above everything when requested faults did not all take effect (results' `faults`)."""
    faults = results.get("faults") or {}
    headline = faults.get("headline")
    if not headline:
        return ""
    tail = " The verdict was allowed to stand (--allow-no-faults)." if faults.get("allowed") else (
        " The verdict is therefore at best unknown (rerun with a longer --time-limit, or pass --allow-no-faults)."
    )
    return f'<p class="warning"><b>Faults:</b> {html.escape(headline)}.{html.escape(tail)}</p>'


def _verdict_span(v: Any) -> str:
    key = v if v in (True, False) else "unknown"
    return f'<span class="verdict" style="background:{VERDICT_COLOUR[key]}">{VERDICT_WORD[key]}</span>'


def _evidence(result: dict[str, Any]) -> str:
    shown = {k: v for k, v in result.items() if k not in ("valid", "summary", "traceback")}
    text = json.dumps(shown, indent=1, default=str)
    if len(text) > 20000:
        text = text[:20000] + "\n… (cut; see results.json)"
    return f"<details><summary>evidence</summary><pre>{html.escape(text)}</pre></details>"


def _checker_picture(name: str, result: dict[str, Any]) -> str:
    """A checker module's own render_html(result), if it has one (by result 'kind' or checker name)."""
    for module_name in (result.get("kind"), name):
        if not module_name:
            continue
        try:
            module = importlib.import_module(f"checkers.{module_name}")
        except ImportError:
            continue
        render = getattr(module, "render_html", None)
        if render is not None:
            try:
                return str(render(result))
            except Exception as e:
                return f"<p>(could not draw {html.escape(name)}: {html.escape(str(e))})</p>"
    return ""


def _workload_sections(spec: TestSpec, history: list[Op], results: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        module = importlib.import_module(f"workloads.{spec.system}")
    except ImportError:
        return []
    sections = getattr(module, "report_sections", None)
    if sections is None:
        return []
    try:
        return list(sections(history, results))
    except Exception as e:
        return [("workload sections", f"<p>could not render: {html.escape(repr(e))}</p>")]


def reproduce_command(spec: TestSpec) -> str:
    parts = [
        "harness run",
        spec.system,
        "--workload",
        spec.workload,
        "--nemesis",
        ",".join(spec.nemesis) or "none",
    ]
    parts += ["--backend", spec.backend, "--seed", str(spec.seed), "--nodes", str(spec.node_count)]
    parts += ["--time-limit", f"{spec.time_limit_s:g}", "--concurrency", str(spec.concurrency)]
    parts += ["--rate", f"{spec.rate:g}"]
    for bug in spec.bugs:
        parts += ["--bug", bug]
    if spec.allow_no_faults:
        parts.append("--allow-no-faults")
    return " ".join(parts)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;max-width:1100px;color:#1f2328}
h1{font-size:22px} h2{font-size:17px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}
.verdict{color:#fff;border-radius:4px;padding:2px 8px;font-weight:600}
table{border-collapse:collapse} td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:400px;font-size:12px}
code{background:#f6f8fa;padding:1px 4px} .muted{color:#59636e}
.warning{background:#fff8c5;border:1px solid #d4a72c;border-radius:4px;padding:8px}
"""


def render(spec: TestSpec, history: list[Op], results: dict[str, Any]) -> str:
    windows = fault_windows(history, VOCABULARY)
    checkers = results.get("checkers", {})
    rows = []
    for name, r in checkers.items():
        designed = ""
        if "expected" in r:
            designed = " (as designed)" if r.get("as_designed") else " (NOT as designed)"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{_verdict_span(r.get('valid', 'unknown'))}"
            f"{html.escape(designed)}</td><td>{html.escape(str(r.get('summary', '')))}{_evidence(r)}</td></tr>"
        )
    try:
        plots = latency_and_throughput_svg(history, windows)
    except Exception as e:
        plots = f"<p>could not plot: {html.escape(repr(e))}</p>"
    extra = []
    for title, fragment in _workload_sections(spec, history, results):
        extra.append(f"<h2>{html.escape(title)}</h2>{fragment}")
    for name, r in checkers.items():
        picture = _checker_picture(name, r)
        if picture:
            extra.append(f"<h2>{html.escape(name)}</h2>{picture}")
    bugs = ", ".join(spec.bugs) or "none"
    faults = ", ".join(spec.nemesis) or "no faults"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(spec.system)} {html.escape(",".join(spec.nemesis))}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(spec.system)} / {html.escape(spec.workload)} under {html.escape(faults)}
 {_verdict_span(results.get("valid", "unknown"))}</h1>
{faults_banner(results)}
<p class="muted">backend {html.escape(spec.backend)} · {spec.node_count} nodes · concurrency {spec.concurrency} ·
 rate {spec.rate:g}/s · {spec.time_limit_s:g}s · seed {spec.seed} · planted bugs: {html.escape(bugs)}</p>
<p>Reproduce: <code>{html.escape(reproduce_command(spec))}</code>
 · re-check: <code>harness check {html.escape(spec.run_dir)}</code></p>
<h2>Checkers</h2><table><tr><th>checker</th><th>verdict</th><th>what it found</th></tr>{"".join(rows)}</table>
<h2>Latency and throughput</h2>{plots}
<h2>Faults</h2>{faults_table(windows)}
<h2>Operations per process</h2><p class="muted">green ok, red fail, amber info (unknown);
 hover a bar for the op.</p>{timeline_svg(history, windows)}
{"".join(extra)}
</body></html>
"""


def write_report(run_dir: Path, spec: TestSpec, history: list[Op], results: dict[str, Any]) -> Path:
    path = run_dir / "report.html"
    path.write_text(render(spec, history, results), encoding="utf-8")
    return path
