"""A sweep's page (index.html in its directory), and the list of sweeps `harness serve` shows.

Rules: the page is self-contained and offline; it is rendered from
sweep.json's figures and the summary rows alone, so it can be rebuilt from
the directory. Seeds that did not pass (invalid, unknown, error) come first,
in full: their anomaly kinds, what each failing checker said, the swarm
draw, the faults, CPU seconds, a link to the kept run's report and the
command that replays the seed. Passing seeds are summarised in one compact
table. Every value is escaped.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

COLOURS = {"valid": "#1a7f37", "invalid": "#cf222e", "unknown": "#9a6700", "error": "#8250df"}
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328}"
    "table{border-collapse:collapse;margin:8px 0 20px}td,th{padding:4px 10px;text-align:left;"
    "vertical-align:top;border-bottom:1px solid #d0d7de}code{font-size:12px;background:#f6f8fa;padding:1px 4px}"
    ".v{font-weight:600}small{color:#59636e}"
)


def describe(record: dict[str, Any]) -> str:
    """A swarm draw in one line, for the sweep's table."""
    if not record:
        return ""
    weights = record.get("pace", {}).get("weights", {})
    faults = " ".join(f"{n}x{weights.get(n, 1)}" if weights.get(n, 1) != 1 else n for n in record.get("nemesis", []))
    options = " ".join(f"{k}={v}" for k, v in record.get("options", {}).items())
    return (
        f"{record.get('node_count')} nodes, {record.get('workload')}, {record.get('time_limit_s'):g} s, "
        f"{record.get('rate'):g} op/s x{record.get('concurrency')}, every {record.get('nemesis_interval_s'):g} s: "
        f"{faults}" + (f"; {options}" if options else "")
    )


def _e(x: Any) -> str:
    return html.escape(str(x))


def _verdict(word: str) -> str:
    return f'<span class="v" style="color:{COLOURS.get(word, "#59636e")}">{_e(word)}</span>'


def render(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    rows = sorted(rows, key=lambda r: r.get("seed", 0))
    bad = [r for r in rows if r.get("verdict") != "valid"]
    good = [r for r in rows if r.get("verdict") == "valid"]
    counts = meta.get("counts") or dict(Counter(r.get("verdict") for r in rows))
    title = f"sweep of {meta.get('system')}: {meta.get('done', len(rows))} of {meta.get('seeds')} seeds" + (
        ", swarm" if meta.get("swarm") else ""
    )
    head = " · ".join(f"{_verdict(k)} {counts.get(k, 0)}" for k in ("valid", "invalid", "unknown", "error"))
    figures = (
        f"CPU {meta.get('cpu_s', '?')} s · wall {meta.get('wall_s', '?')} s · "
        f"{meta.get('seeds_per_min', '?')} seeds/min · {_e(meta.get('engine', ''))} · "
        f"load average {_e(meta.get('load_avg', '?'))}"
    )
    anomalies = Counter(k for r in rows for k in r.get("anomalies", []))
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{_e(title)}</title><style>{STYLE}</style>",
        f"<h1>{_e(title)}</h1><p>{head}</p><p><small>{figures}</small></p>",
        f"<p><code>{_e(meta.get('command', ''))}</code></p>",
    ]
    if meta.get("interrupted"):
        parts.append("<p><b>The sweep was interrupted</b>: the seeds below are those that finished.</p>")
    if anomalies:
        items = "".join(f"<tr><td>{_e(k)}</td><td>{n}</td></tr>" for k, n in anomalies.most_common())
        parts.append(f"<h2>Anomaly kinds</h2><table><tr><th>kind</th><th>seeds</th></tr>{items}</table>")
    parts.append(f"<h2>Seeds that did not pass ({len(bad)})</h2>")
    if bad:
        parts.append(
            "<table><tr><th>seed</th><th>verdict</th><th>what the checkers found</th><th>test</th>"
            "<th>CPU s</th><th>replay</th></tr>" + "".join(_bad_row(r) for r in bad) + "</table>"
        )
    else:
        parts.append("<p>none</p>")
    parts.append(f"<h2>Passing seeds ({len(good)})</h2>")
    if good:
        cpu = [r["cpu_s"] for r in good if isinstance(r.get("cpu_s"), int | float)]
        parts.append(
            f"<p><small>{len(good)} seeds valid; CPU per seed median "
            f"{sorted(cpu)[len(cpu) // 2] if cpu else '?'} s</small></p>"
        )
        parts.append(
            "<details><summary>every passing seed</summary><table><tr><th>seed</th><th>ops</th>"
            "<th>faults</th><th>test</th><th>CPU s</th></tr>"
            + "".join(_good_row(r) for r in good)
            + "</table></details>"
        )
    return "".join(parts)


def _bad_row(r: dict[str, Any]) -> str:
    found = "".join(f"<div><b>{_e(name)}</b>: {_e(text)}</div>" for name, text in (r.get("failing") or {}).items())
    if r.get("error"):
        found += f"<div><b>error</b>: {_e(r['error'])}</div>"
    kinds = ", ".join(r.get("anomalies", []))
    seed = _e(r.get("seed"))
    link = f'<a href="{_e(r["run"])}/report.html">{seed}</a>' if r.get("run") else seed
    return (
        f"<tr><td>{link}</td><td>{_verdict(str(r.get('verdict')))}</td>"
        f"<td>{f'<div><small>{_e(kinds)}</small></div>' if kinds else ''}{found}</td>"
        f"<td><small>{_e(describe(r.get('swarm') or {}))}{'<br>' if r.get('swarm') else ''}"
        f"{_e(r.get('faults', ''))}</small></td>"
        f"<td>{_e(r.get('cpu_s'))}</td><td><code>{_e(r.get('replay', ''))}</code></td></tr>"
    )


def _good_row(r: dict[str, Any]) -> str:
    return (
        f"<tr><td>{_e(r.get('seed'))}</td><td>{_e(r.get('ops', ''))}</td><td><small>{_e(r.get('faults', ''))}"
        f"</small></td><td><small>{_e(describe(r.get('swarm') or {}))}</small></td>"
        f"<td>{_e(r.get('cpu_s'))}</td></tr>"
    )


def write_page(sweep_dir: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    path = sweep_dir / "index.html"
    path.write_text(render(meta, rows), encoding="utf-8")
    return path


def read_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """The summary rows on disk (a torn last line, from a killed sweep, is skipped)."""
    rows = []
    try:
        lines = (sweep_dir / "summary.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def list_sweeps(root: Path) -> list[dict[str, Any]]:
    """Every sweep under results/, newest first: its path, system and figures."""
    out = []
    for meta_path in root.glob("*/sweeps/*/sweep.json"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        out.append({"path": meta_path.parent.relative_to(root).as_posix(), "name": meta_path.parent.name, **meta})
    return sorted(out, key=lambda s: s["name"], reverse=True)


def sweeps_section(root: Path) -> str:
    """The sweeps table for `harness serve`'s index ('' when there are none)."""
    sweeps = list_sweeps(root)
    if not sweeps:
        return ""
    rows = []
    for s in sweeps:
        counts = s.get("counts") or {}
        verdicts = " ".join(
            f"{_verdict(k)} {counts[k]}" for k in ("valid", "invalid", "unknown", "error") if counts.get(k)
        )
        rows.append(
            f'<tr><td><a href="{_e(s["path"])}/index.html">{_e(s["path"])}</a></td>'
            f"<td>{_e(s.get('done', '?'))}/{_e(s.get('seeds', '?'))}{' swarm' if s.get('swarm') else ''}</td>"
            f"<td>{verdicts or 'running'}</td></tr>"
        )
    return "<h2>sweeps</h2><table><tr><th>sweep</th><th>seeds</th><th>verdicts</th></tr>" + "".join(rows) + "</table>"
