"""A harness killed with SIGKILL on the local backend cleans nothing up; `harness run` notices what it left
and says the exact command, and `harness cleanup RUN_DIR` removes every node process of that run, and its keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness.cli"]


def process_state(pid: int) -> str | None:
    """The one-letter state of a live process ("S", "T" for stopped, ...); None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return None if state == "Z" else state


def test_cleanup_after_sigkill_of_the_harness_leaves_no_process_of_the_run(tmp_path: Path) -> None:
    env = {**os.environ, "PICLUSTER_STATE_DIR": str(tmp_path / "well-known"), "COLUMNS": "400"}
    proc = subprocess.Popen(
        [*HARNESS, "run", "echo", "--nemesis", "pause", "--time-limit", "120", "--interval", "0.3", "--nodes", "3",
         "--seed", "4", "--results", str(tmp_path / "results")],
        cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    run_dir: Path | None = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            states = list((tmp_path / "results").glob("echo/*/hosts-state.json"))
            if states:
                run_dir = states[0].parent
                pids = [int(p) for p in json.loads(states[0].read_text() or "{}").get("pids", [])]
                if len(pids) == 3 and any(process_state(p) == "T" for p in pids):
                    break  # one node is SIGSTOPped right now
            time.sleep(0.02)
        assert run_dir is not None and len(pids) == 3, "the run never got going"
        assert any(process_state(p) == "T" for p in pids), "no node was paused within the deadline"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = [p for p in pids if process_state(p) is not None]
    assert left == pids, "every node should be orphaned after SIGKILL of the harness"

    # the next run notices, and names the command
    again = subprocess.run(
        [*HARNESS, "run", "echo", "--nemesis", "none", "--time-limit", "0", "--quiet", "0", "--nodes", "1",
         "--results", str(tmp_path / "results2")],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120,
    )
    assert f"remove it with `harness cleanup {run_dir}`" in again.stdout, again.stdout + again.stderr
    assert "3 node processes" in again.stdout

    assert sorted(p.name for p in (run_dir / "keys").iterdir()) == [
        "client.key", "harness.key", "node-n1.key", "node-n2.key", "node-n3.key"]  # the killed run's keys
    cleanup = subprocess.run([*HARNESS, "cleanup", str(run_dir)], cwd=str(ROOT), env=env, capture_output=True,
                             text=True, timeout=120)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert sorted(int(w) for line in cleanup.stdout.splitlines() if "killed pid" in line
                  for w in line.split() if w.isdigit()) == sorted(pids)
    deadline = time.monotonic() + 30
    while any(process_state(p) is not None for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if process_state(p) is not None] == []
    assert json.loads((run_dir / "hosts-state.json").read_text())["pids"] == []
    assert not (run_dir / "keys").exists(), "the run's keys should die with it"
    assert not list((tmp_path / "well-known").glob("*.json")), "the well-known record should be gone"

    # nothing is left to notice or to clean
    second = subprocess.run([*HARNESS, "cleanup"], cwd=str(ROOT), env=env, capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 0 and "nothing to clean" in second.stdout
