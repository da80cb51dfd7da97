"""One whole test, start to finish: run directory, cluster, runner, checkers, report.

Rules:
- test.json is written before anything starts; history.jsonl grows line by
  line; results.json and report.html are written last (and again by
  `harness check`).
- results/latest moves to the run once its cluster is up (the body runs).
- clock.json records where history time 0 lies on the cluster's clock (`t0_s`: virtual in sim) and
  on the wall (`wall_s`), so a sim journal or a netns capture lines up with the history.
- A backend `SetupError` before the cluster is up becomes `SetupFailed`
  (one line; nothing ran, the caller may discard the run directory); the
  same error later, or any other, propagates unchanged.
- The backend owns teardown; this module owns the history file, which is
  closed on every path so what was observed is on disk.
- A run stopped by SIGINT or SIGTERM is marked: `mark_interrupted` writes
  interrupted.json (which signal, when, how far the history got) into the
  run directory, and every later `check` reads it, so results.json, the
  report and `harness serve` say the history is partial. A torn last line
  (the harness died mid-write) makes a history partial too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from base.history import HistoryWriter, Op, read_history
from base.spec import TestSpec
from harness import registry
from harness.backends.base import Cluster, SetupError
from harness.checking import run_checkers
from harness.report import write_report
from harness.rundir import create_run_dir, point_latest, read_spec, write_json, write_test_json
from harness.runner import Runner, Stats

INTERRUPTED_FILE = "interrupted.json"
CLOCK_FILE = "clock.json"


class SetupFailed(RuntimeError):
    """The backend could not set the run up; nothing ran. The message is one line."""


def prepare(spec: TestSpec, results_root: Path) -> TestSpec:
    """Validate names, create the run directory and write test.json; returns the spec with run_dir set."""
    registry.make_workload(spec)
    registry.check_bugs(spec.system, spec.bugs)
    registry.check_options(spec.system, spec.backend, spec.options)
    options = {**registry.default_options(spec.system), **spec.options}
    run_dir = create_run_dir(results_root, spec)
    spec = replace(spec, run_dir=str(run_dir), options=options)
    write_test_json(run_dir, spec)
    return spec


def execute(
    spec: TestSpec,
    *,
    on_start: Callable[[Runner], None] | None = None,
    on_op: Callable[[Op], None] | None = None,
) -> Stats:
    """Run the test against a fresh cluster, appending to history.jsonl. Raises on interruption."""
    run_dir = spec.path
    workload = registry.make_workload(spec)
    find_leader = getattr(registry.workload_module(spec.system), "find_leader", None)
    backend = registry.make_backend(spec.backend)
    program = registry.node_program(spec)  # an external system's program; None: the runtime's own nodes
    history = HistoryWriter(run_dir / "history.jsonl")
    stats = Stats()
    started = False

    async def body(cluster: Cluster) -> None:
        nonlocal stats, started
        started = True
        if run_dir.parent.name == spec.system:  # results/<system>/<run>, as prepare made it
            point_latest(run_dir)
        runner = Runner(spec, cluster, workload, history, find_leader=find_leader, on_op=on_op)
        stats = runner.stats
        # history time 0 on the cluster's clock and on the wall: message-flow diagrams align journals and captures
        wall_at_t0 = time.time() - (cluster.client.now() - runner.t0)
        write_json(run_dir / CLOCK_FILE, {"t0_s": runner.t0, "wall_s": wall_at_t0})
        if on_start is not None:
            on_start(runner)
        await runner.run()

    try:
        if program is None:
            backend.run(spec, body)
        else:
            backend.run(spec, body, program=program)
    except SetupError as e:
        if started:
            raise
        raise SetupFailed(str(e)) from e
    finally:
        history.close()
    return stats


def mark_interrupted(run_dir: Path, signal_name: str, exit_code: int) -> dict[str, Any]:
    """Record that the run was stopped by a signal (see the module rules); returns what was written."""
    last_s = 0.0
    history = run_dir / "history.jsonl"
    if history.exists():
        try:
            ops = read_history(history).ops
        except ValueError:
            ops = []
        last_s = max((op["time"] / 1e9 for op in ops if isinstance(op.get("time"), int)), default=0.0)
    mark = {
        "signal": signal_name,
        "exit_code": exit_code,
        "last_op_s": round(last_s, 3),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(run_dir / INTERRUPTED_FILE, mark)
    return mark


def read_interrupted(run_dir: Path) -> dict[str, Any] | None:
    """What `mark_interrupted` recorded, or None for a run that was not interrupted."""
    path = run_dir / INTERRUPTED_FILE
    if not path.exists():
        return None
    try:
        mark = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        mark = None
    return mark if isinstance(mark, dict) else {"signal": "unknown", "unreadable": str(path)}


def check(run_dir: Path) -> dict[str, Any]:
    """(Re-)run the checkers on a run directory's history; write results.json and report.html."""
    spec = read_spec(run_dir)
    read = read_history(run_dir / "history.jsonl")
    started = time.monotonic()
    results = run_checkers(spec, read.ops, torn_tail=read.torn_tail, interrupted=read_interrupted(run_dir))
    results["check_time_s"] = round(time.monotonic() - started, 3)
    write_json(run_dir / "results.json", results)
    write_report(run_dir, spec, read.ops, results)
    return results
