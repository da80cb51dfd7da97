"""report.html: one self-contained page a person can open offline.

Rules: no external scripts, styles or fonts; plots are inline SVG
(harness/report_charts.py); every value from the history is HTML-escaped.
It shows, in order: the verdict and how to reproduce the run; what the page's
numbers and colours mean, said once; each checker's verdict and summary with
its evidence; for an invalid linearizability or Elle verdict, what went wrong
in the system's own terms (harness/explain.py); latency and throughput over
time with fault windows shaded; the faults table; a timeline of ops per
client; then the workload's own sections and the checkers' own pictures.
Faults are read from the history with the catalog's vocabulary
(base.faults): one table row per fault saying what it did, and every chart
shaded in each fault kind's own colour. Above everything else: a run whose
history is partial (interrupted, or torn) and a run whose requested faults
did not all take effect say so. Ops are "op N" (N: the history index of the
invocation) and times are seconds everywhere, evidence included.
"""

from __future__ import annotations

import html
import importlib
import json
import shlex
from pathlib import Path
from typing import Any

from base.faults import FaultWindow, fault_windows
from base.history import Op
from base.spec import TestSpec
from harness import explain
from harness.report_charts import OUTCOME_COLOUR, latency_and_throughput_svg, timeline_svg
from nemesis.catalog import VOCABULARY

VERDICT_WORD = {True: "valid", False: "INVALID", "unknown": "unknown"}
VERDICT_COLOUR = {True: "#1a7f37", False: "#cf222e", "unknown": "#9a6700"}
TIME_KEYS = frozenset({"time", "complete_time"})
"""Evidence fields holding history times (ns), shown in seconds."""


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


def partial_banner(results: dict[str, Any]) -> str:
    """A warning above everything when the history is partial (results' `partial`, harness/checking.py)."""
    partial = results.get("partial")
    if not partial:
        return ""
    title = "Interrupted" if results.get("interrupted") else "Partial history"
    return (
        f'<p class="warning"><b>{title}:</b> {html.escape(str(partial))}. The verdict is therefore at best '
        "unknown: what was recorded was checked (an anomaly found in it is real), but the part of the test that "
        "never ran proves nothing.</p>"
    )


def how_to_read(spec: TestSpec) -> str:
    """What the page's numbers and colours mean, said once."""
    ok, fail, info = (f'<span class="swatch" style="background:{OUTCOME_COLOUR[t]}"></span>' for t in OUTCOME_COLOUR)
    return (
        '<p class="muted">How to read this page: times are seconds since the test began. '
        "<b>op N</b> is the operation whose invocation is line N of history.jsonl (counted from 0); "
        "checkers and pictures all number ops this way (Elle's T383 is op 383). "
        f"{ok} ok: it happened. {fail} fail: it certainly did not happen. "
        f"{info} info (amber): its outcome is unknown, it may still take effect at any later time, so the "
        f"client that issued it never issues again: its slot carries on as a fresh process number "
        f"(p, then p + {spec.concurrency}, …; the concurrency), drawn on the same row. "
        "Shaded bands are faults in place, in each kind's colour (see the faults table).</p>"
    )


def _in_seconds(x: Any) -> Any:
    """Evidence with history times (ns) shown as seconds."""
    if isinstance(x, dict):
        return {k: (f"{v / 1e9:.3f} s" if k in TIME_KEYS and isinstance(v, int) else _in_seconds(v))
                for k, v in x.items()}
    if isinstance(x, list):
        return [_in_seconds(v) for v in x]
    return x


def _verdict_span(v: Any) -> str:
    key = v if v in (True, False) else "unknown"
    return f'<span class="verdict" style="background:{VERDICT_COLOUR[key]}">{VERDICT_WORD[key]}</span>'


def _evidence(result: dict[str, Any]) -> str:
    shown = {k: v for k, v in result.items() if k not in ("valid", "summary", "traceback")}
    text = json.dumps(_in_seconds(shown), indent=1, default=str, ensure_ascii=False)
    if len(text) > 20000:
        text = text[:20000] + "\n… (cut; see results.json)"
    return f"<details><summary>evidence</summary><pre>{html.escape(text)}</pre></details>"


def _checker_picture(name: str, result: dict[str, Any]) -> str:
    """A checker module's own render_html(result), if it has one (by result 'kind' or checker name).
    Elle's results are drawn by harness/explain.py instead (in the page's op numbering)."""
    if explain.is_elle(result):
        return ""
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


def _default_options(system: str) -> dict[str, Any]:
    try:
        from harness.registry import default_options

        return default_options(system)
    except (ValueError, ImportError):
        return {}


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
    parts += ["--rate", f"{spec.rate:g}", "--interval", f"{spec.nemesis_interval_s:g}", "--quiet", f"{spec.quiet_s:g}"]
    for bug in spec.bugs:
        parts += ["--bug", bug]
    defaults = _default_options(spec.system)
    for key, value in spec.options.items():
        if key not in defaults or defaults[key] != value:
            parts += ["--option", shlex.quote(f"{key}={json.dumps(value, separators=(',', ':'))}")]
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
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;vertical-align:middle}
.plain{font-size:15px;margin-bottom:2px} .formal{margin-top:2px;color:#59636e}
h3{font-size:15px;margin-top:18px} .cycle{margin:0 0 16px 12px} li{margin:3px 0}
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
        plots = latency_and_throughput_svg(spec, history, windows)
    except Exception as e:
        plots = f"<p>could not plot: {html.escape(repr(e))}</p>"
    try:
        wrong = explain.render(spec, history, results, windows)
    except Exception as e:  # an explanation that cannot be drawn must not cost the rest of the report
        wrong = f"<p>could not explain: {html.escape(repr(e))}</p>"
    extra = []
    for title, fragment in _workload_sections(spec, history, results):
        extra.append(f"<h2>{html.escape(title)}</h2>{fragment}")
    for name, r in checkers.items():
        picture = _checker_picture(name, r)
        if picture:
            extra.append(f"<h2>{html.escape(name)}</h2>{picture}")
    bugs = ", ".join(spec.bugs) or "none"
    faults = ", ".join(spec.nemesis) or "no faults"
    rate = f"{spec.rate:g} ops/s" if spec.rate > 0 else "unpaced (--rate 0)"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(spec.system)} {html.escape(",".join(spec.nemesis))}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(spec.system)} / {html.escape(spec.workload)} under {html.escape(faults)}
 {_verdict_span(results.get("valid", "unknown"))}</h1>
{partial_banner(results)}
{faults_banner(results)}
<p class="muted">backend {html.escape(spec.backend)} · {spec.node_count} nodes · concurrency {spec.concurrency} ·
 rate {rate} · {spec.time_limit_s:g} s · seed {spec.seed} · planted bugs: {html.escape(bugs)}</p>
<p>Reproduce: <code>{html.escape(reproduce_command(spec))}</code>
 · re-check: <code>harness check {html.escape(spec.run_dir)}</code></p>
{how_to_read(spec)}
<h2>Checkers</h2><table><tr><th>checker</th><th>verdict</th><th>what it found</th></tr>{"".join(rows)}</table>
{f"<h2>What went wrong</h2>{wrong}" if wrong else ""}
<h2>Latency and throughput</h2>{plots}
<h2>Faults</h2>{faults_table(windows)}
<h2>Operations per client</h2><p class="muted">One row per client slot (its process numbers at the left),
 the final reads on the last row; hover a bar for the op.</p>{timeline_svg(spec, history, windows)}
{"".join(extra)}
</body></html>
"""


def write_report(run_dir: Path, spec: TestSpec, history: list[Op], results: dict[str, Any]) -> Path:
    path = run_dir / "report.html"
    path.write_text(render(spec, history, results), encoding="utf-8")
    return path
