"""report.html: one self-contained page a person can open offline.

Rules: no external scripts, styles or fonts; plots are inline SVG (matplotlib
with the Agg backend, or hand-drawn SVG for the timeline); every value from
the history is HTML-escaped. It shows, in order: the verdict and how to
reproduce the run, each checker's verdict and summary with its evidence,
latency and throughput over time with fault windows shaded, a per-process
timeline, then the workload's own sections and the checkers' own pictures.
"""

from __future__ import annotations

import html
import importlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.history import Op, pairs
from base.spec import TestSpec
from nemesis.catalog import FAULT_CURES, PER_NODE_OPS

MAX_TIMELINE_OPS = 3000
VERDICT_WORD = {True: "valid", False: "INVALID", "unknown": "unknown"}
VERDICT_COLOUR = {True: "#1a7f37", False: "#cf222e", "unknown": "#9a6700"}
OUTCOME_COLOUR = {"ok": "#2da44e", "fail": "#cf222e", "info": "#bf8700"}
FAULT_COLOUR = {
    "kill": "#ff8182",
    "pause": "#d4a72c",
    "start-partition": "#54aeff",
    "power-off": "#6e7781",
    "start-links": "#c297ff",
    "link-down": "#fb8f44",
    "switch-off": "#24292f",
    "leave": "#8c959f",
}
"""Fault windows are shaded in their kind's colour; unknown kinds in grey."""


def fault_colour(label: str) -> str:
    return FAULT_COLOUR.get(label.split(" ")[0], "#d0d7de")


@dataclass(frozen=True, slots=True)
class FaultWindow:
    start_s: float
    end_s: float
    label: str


def fault_windows(history: list[Op]) -> list[FaultWindow]:
    """Intervals during which a fault was in place, from the nemesis ops."""
    end_of_history = max((op.get("time", 0) for op in history), default=0) / 1e9
    open_faults: dict[tuple[str, str], tuple[float, str]] = {}
    out: list[FaultWindow] = []
    cures = {v: k for k, v in FAULT_CURES.items()}
    for op in history:
        if op.get("process") != "nemesis":
            continue
        f, t = op.get("f", ""), op.get("time", 0) / 1e9
        value = op.get("value")
        nodes = value if isinstance(value, list) and f in PER_NODE_OPS else [""]
        for node in nodes:
            if f in FAULT_CURES:
                open_faults[(f, str(node))] = (t, f"{f} {node}".strip())
            elif f in cures:
                start = open_faults.pop((cures[f], str(node)), None)
                if start is not None:
                    out.append(FaultWindow(start[0], t, start[1]))
    out.extend(FaultWindow(t, end_of_history, label) for t, label in open_faults.values())
    return sorted(out, key=lambda w: (w.start_s, w.label))


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
            ax.axvspan(w.start_s, w.end_s, color=fault_colour(w.label), alpha=0.25, lw=0)
    kinds = sorted({w.label.split(" ")[0] for w in windows})
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
    handles += [Patch(color=fault_colour(k), alpha=0.25, label=k) for k in kinds]
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
            f'<rect x="{x:.1f}" y="0" width="{max(1.0, (w.end_s - w.start_s) * 1e9 * scale):.1f}" '
            f'height="{height - 20}" fill="{fault_colour(w.label)}" opacity="0.3">'
            f"<title>{html.escape(w.label)}</title></rect>"
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
    for key, value in sorted(_options_set(spec).items()):
        shown = value if isinstance(value, str) and not _parses_as_json(value) else json.dumps(value)
        parts += ["--option", f"{key}={shown}"]
    return " ".join(parts)


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _options_set(spec: TestSpec) -> dict[str, Any]:
    """The spec's options that differ from the system's defaults (what the command line must repeat)."""
    try:
        from harness.registry import default_options

        defaults = default_options(spec.system)
    except Exception:
        defaults = {}
    return {k: v for k, v in spec.options.items() if defaults.get(k, object()) != v}


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;max-width:1100px;color:#1f2328}
h1{font-size:22px} h2{font-size:17px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}
.verdict{color:#fff;border-radius:4px;padding:2px 8px;font-weight:600}
table{border-collapse:collapse} td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:400px;font-size:12px}
code{background:#f6f8fa;padding:1px 4px} .muted{color:#59636e}
"""


def render(spec: TestSpec, history: list[Op], results: dict[str, Any]) -> str:
    windows = fault_windows(history)
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
    fault_rows = "".join(
        f'<tr><td>{w.start_s:.2f}</td><td>{w.end_s:.2f}</td><td><span style="background:{fault_colour(w.label)}">'
        f"&nbsp;&nbsp;</span> {html.escape(w.label)}</td></tr>"
        for w in windows
    )
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
<p class="muted">backend {html.escape(spec.backend)} · {spec.node_count} nodes · concurrency {spec.concurrency} ·
 rate {spec.rate:g}/s · {spec.time_limit_s:g}s · seed {spec.seed} · planted bugs: {html.escape(bugs)}</p>
<p>Reproduce: <code>{html.escape(reproduce_command(spec))}</code>
 · re-check: <code>harness check {html.escape(spec.run_dir)}</code></p>
<h2>Checkers</h2><table><tr><th>checker</th><th>verdict</th><th>what it found</th></tr>{"".join(rows)}</table>
<h2>Latency and throughput</h2>{plots}
<h2>Faults</h2><table><tr><th>from (s)</th><th>to (s)</th><th>fault</th></tr>{fault_rows}</table>
<h2>Operations per process</h2><p class="muted">green ok, red fail, amber info (unknown);
 hover a bar for the op.</p>{timeline_svg(history, windows)}
{"".join(extra)}
</body></html>
"""


def write_report(run_dir: Path, spec: TestSpec, history: list[Op], results: dict[str, Any]) -> Path:
    path = run_dir / "report.html"
    path.write_text(render(spec, history, results), encoding="utf-8")
    return path
