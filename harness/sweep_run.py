"""One seed of a sweep, as a worker process runs it: build the run, execute it on sim, judge it.

Rules this module keeps:
- `run_seed(task)` is the only thing a worker runs (a local process or a
  Dask worker on another machine, which imports it by name). It takes plain
  data (the seed's whole TestSpec as JSON, and what to keep) and returns
  plain data: one summary row, and, for a run worth keeping, the run
  directory's files (zlib-compressed), so results come home the same way
  from any machine and the driver alone writes the sweep directory.
- It never raises: a run that crashed is a row with verdict `error` and the
  traceback. `cpu_s` is the CPU time of the thread that ran the seed (the
  run is single-threaded), the robust figure on a shared machine and the
  same on every engine; `process_cpu_s` is the whole worker process's over
  the same span, which also counts the engine's own threads (Dask's).
- The run happens in a private temporary directory that is removed
  afterwards; nothing of a passing run outlives its row unless asked.
- The verdict words: `valid` (true), `invalid` (false), `unknown` (the
  checkers could not decide, never counted as passing) and `error`.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import traceback
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from base.history import read_history
from base.spec import TestSpec
from harness import registry
from harness.checking import effective, run_checkers
from harness.rundir import write_test_json

VERDICT_WORDS = {True: "valid", False: "invalid"}
KEEP = ("failing", "all", "none")
NOT_ANOMALIES = frozenset({"stable", "never_stable", "kills", "restarts", "list", "suspicions", "notes"})
"""Evidence lists of a failing checker that are not themselves violations."""


def verdict_word(valid: Any) -> str:
    return VERDICT_WORDS.get(valid, "unknown") if isinstance(valid, bool) else "unknown"


def prepare_at(spec: TestSpec, run_dir: Path) -> TestSpec:
    """As session.prepare, but into a given directory (a sweep's runs are not results/<system>/<run>)."""
    registry.make_workload(spec)
    registry.check_bugs(spec.system, spec.bugs)
    options = {**registry.default_options(spec.system), **spec.options}
    (run_dir / "nodes").mkdir(parents=True)
    spec = replace(spec, run_dir=str(run_dir), options=options)
    write_test_json(run_dir, spec)
    return spec


def anomaly_kinds(results: dict[str, Any]) -> list[str]:
    """What each failing checker found, by name: Elle's anomalies, counted violations, or its evidence lists."""
    kinds: list[str] = []
    for name, r in results.get("checkers", {}).items():
        if effective(r) is not False:
            continue
        found: list[str] = []
        if isinstance(r.get("anomalies"), dict):
            found = sorted(r["anomalies"])
        elif isinstance(r.get("violation_counts"), dict):
            found = sorted(k for k, v in r["violation_counts"].items() if v)
        else:
            found = sorted(
                k
                for k, v in r.items()
                if k not in NOT_ANOMALIES and isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
            )
        kinds += [f"{name}: {k}" for k in found] or [name]
    return kinds


def pack(run_dir: Path) -> dict[str, bytes]:
    """Every file under run_dir, by relative path, compressed."""
    return {
        p.relative_to(run_dir).as_posix(): zlib.compress(p.read_bytes(), 6)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def unpack(files: dict[str, bytes], into: Path) -> None:
    root = into.resolve()
    for rel, blob in files.items():
        path = (into / rel).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"refusing to write {rel!r} outside {into}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zlib.decompress(blob))


def run_seed(task: dict[str, Any]) -> dict[str, Any]:
    """Run one seed (see the module rules); returns its row, with `files` when the run is kept."""
    from harness.session import check, execute

    spec = TestSpec.from_json(task["spec"])
    keep = task.get("keep", "failing")
    row: dict[str, Any] = {"seed": spec.seed, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    cpu0, process0, wall0 = time.thread_time(), time.process_time(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"picluster-seed{spec.seed}-") as tmp:
        run_dir = Path(tmp) / "run"
        try:
            spec = prepare_at(spec, run_dir)
            execute(spec)
            read = read_history(run_dir / "history.jsonl")
            results = run_checkers(spec, read.ops, torn_tail=read.torn_tail)
            row.update(judged(results, read.ops))
            row["virtual_s"] = _virtual_s(run_dir)
        except Exception as e:
            row.update(
                verdict="error", valid="unknown", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()
            )
        if keep == "all" or (keep == "failing" and row["verdict"] != "valid"):
            if row["verdict"] != "error":
                check(run_dir)  # results.json and report.html, as `harness check` writes them
            row["files"] = pack(run_dir)
    row["cpu_s"] = round(time.thread_time() - cpu0, 3)
    row["process_cpu_s"] = round(time.process_time() - process0, 3)
    row["wall_s"] = round(time.monotonic() - wall0, 3)
    return row


def judged(results: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    checkers = results.get("checkers", {})
    return {
        "verdict": verdict_word(results.get("valid")),
        "valid": results.get("valid"),
        "anomalies": anomaly_kinds(results),
        "failing": {n: str(r.get("summary", ""))[:300] for n, r in checkers.items() if effective(r) is not True},
        "faults": (results.get("faults") or {}).get("summary", ""),
        "ops": sum(1 for op in ops if op.get("type") == "invoke" and op.get("process") != "nemesis"),
    }


def _virtual_s(run_dir: Path) -> float | None:
    import json

    try:
        return round(float(json.loads((run_dir / "sim.json").read_text())["virtual_time_s"]), 3)
    except (OSError, ValueError, KeyError, TypeError):
        return None
