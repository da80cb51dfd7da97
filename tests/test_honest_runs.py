"""Runs whose faults did not all happen say so, and are never called valid for it.

A run where a requested fault never took effect (the time limit too short for one, a fault the
cluster refused) is at best `unknown` unless `--allow-no-faults`; results.json, the console and
the top of the report say which and why; `harness check` reaches the same verdict from the
history alone. The report's faults table has one row per fault, saying what it did.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from base.history import read_history
from base.spec import TestSpec
from harness.report import render
from harness.session import check, execute, prepare
from nemesis.catalog import VOCABULARY

ROOT = Path(__file__).resolve().parents[1]


def sim_run(tmp_path: Path, **kw: Any) -> tuple[dict[str, Any], Path]:
    spec = TestSpec(**{"system": "echo", "workload": "echo", "nemesis": ("partition", "kill"), "backend": "sim",
                       "node_count": 3, "concurrency": 3, "time_limit_s": 3.0, "quiet_s": 0.5, "seed": 2, **kw})
    spec = prepare(spec, tmp_path)
    execute(spec)
    return check(spec.path), spec.path


def test_a_run_too_short_for_any_fault_is_not_valid(tmp_path: Path) -> None:
    results, run_dir = sim_run(tmp_path)
    assert not [op for op in read_history(run_dir / "history.jsonl").ops if op["process"] == "nemesis"]
    assert results["checkers"]["echo"]["valid"] is True  # the system did nothing wrong ...
    assert results["valid"] == "unknown"  # ... but nothing it was asked to survive happened
    faults = results["faults"]
    assert faults["missing"] == ["partition", "kill"]
    assert "time limit was 3 s" in faults["headline"]
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["valid"] == "unknown" and on_disk["faults"]["missing"] == ["partition", "kill"]
    report = html.unescape((run_dir / "report.html").read_text())
    top = report[: report.index("<h2>")]
    assert "requested faults never took effect: partition, kill" in top
    assert check(run_dir)["valid"] == "unknown"  # harness check agrees, from the history alone


def test_allow_no_faults_lets_the_verdict_stand_and_says_so(tmp_path: Path) -> None:
    results, run_dir = sim_run(tmp_path, allow_no_faults=True)
    assert results["valid"] is True
    assert "allowed by --allow-no-faults" in results["checkers"]["faults"]["summary"]
    assert "--allow-no-faults" in html.unescape((run_dir / "report.html").read_text())


def test_a_fault_the_cluster_refused_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    # The CLI refuses `switch` on sim before a run; a program calling the harness directly still gets
    # an honest run: the refusal is a nemesis-error op, the run completes, the verdict is unknown.
    results, run_dir = sim_run(tmp_path, nemesis=("switch", "kill"), time_limit_s=12.0, nemesis_interval_s=2.0)
    ops = read_history(run_dir / "history.jsonl").ops
    errors = [op for op in ops if op["f"] == "nemesis-error"]
    assert errors and errors[0]["value"]["package"] == "switch" and "switch_off" in errors[0]["value"]["error"]
    assert any(op["f"] == "kill" for op in ops) and any(op.get("final") or op["index"] > errors[-1]["index"]
                                                         for op in ops if op["process"] != "nemesis")
    assert results["valid"] == "unknown"
    assert results["faults"]["missing"] == ["switch"]
    assert "switch (the cluster refused it: UnsupportedFault" in results["faults"]["headline"]


def test_the_console_says_which_faults_never_happened(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "echo", "--backend", "sim", "--nemesis", "partition",
         "--time-limit", "2", "--quiet", "0.5", "--nodes", "3", "--seed", "1", "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr  # unknown
    assert "faults: requested faults never took effect: partition" in proc.stdout
    assert "verdict UNKNOWN" in proc.stdout


# -- the faults table -------------------------------------------------------------------------------------


S = 1_000_000_000


def nem(t: float, f: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    return {"time": round(t * S), "process": "nemesis", "type": "info", "f": f, "value": value, **extra}


def table_rows(page: str) -> list[list[str]]:
    start = page.index("<h2>Faults</h2>")
    section = page[start : page.index("<h2>", start + 5)]
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).replace("\xa0", " ").strip()
             for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", r)] for r in rows]


def test_the_faults_table_has_one_row_per_fault_saying_what_it_did() -> None:
    halves = {"n1": ["n3", "n4", "n5"], "n2": ["n3", "n4", "n5"], "n3": ["n1", "n2"], "n4": ["n1", "n2"],
              "n5": ["n1", "n2"]}
    ops = [
        nem(1.0, "start-partition", halves, package="partition", shape="halves"),
        nem(4.0, "stop-partition", None, package="partition"),
        nem(5.0, "power-off", ["n1", "n2", "n3", "n4", "n5"], package="power"),
        nem(6.5, "power-on", ["n1", "n2", "n3", "n4", "n5"], package="power"),
        nem(7.0, "kill", ["n3"], package="kill"),
        nem(11.2, "restart", ["n3"], package="kill"),
        nem(12.0, "pause", ["n2"], package="pause"),
        {"time": 13 * S, "process": 0, "type": "invoke", "f": "echo", "value": 1, "node": "n1"},
        {"time": 13 * S + 1000, "process": 0, "type": "ok", "f": "echo", "value": 1, "node": "n1"},
    ]
    history = [{**op, "index": i} for i, op in enumerate(ops)]
    spec = TestSpec(system="echo", workload="echo", nemesis=("partition", "power", "kill", "pause"))
    page = render(spec, history, {"valid": True, "checkers": {}})
    header, *rows = table_rows(page)
    assert header == ["from (s)", "to (s)", "for (s)", "fault", "what it did", "package"]
    assert rows == [
        ["1.00", "4.00", "3.00", "partition", "n1 n2 | n3 n4 n5 (halves) for 3.0 s", "partition"],
        ["5.00", "6.50", "1.50", "power-off", "powered off n1 n2 n3 n4 n5 for 1.5 s", "power"],
        ["7.00", "11.20", "4.20", "kill", "killed n3 for 4.2 s", "kill"],
        ["12.00", "13.00 (never cured)", "1.00", "pause", "paused n2 from 12.0 s, never cured", "pause"],
    ]
    charts = page[page.index("<h2>Latency"): page.index("<h2>Faults")]
    timeline = page[page.index("<h2>Operations"):]
    for kind in ("partition", "power-off", "kill", "pause"):
        colour = VOCABULARY.colour(kind)
        assert colour.lower() in charts.lower(), kind  # shaded in the kind's own colour
        assert f'fill="{colour}"' in timeline, kind
