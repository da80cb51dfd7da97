"""The harness end to end on the local backend, with the echo system: real processes on loopback.

What a user relies on: the run directory is complete, `harness check` gives
the same verdict on a copy elsewhere, a torn history is still checked, bad
usage is one clear line with exit 64, and Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import process_gone, run_dir_of

pytestmark = pytest.mark.real

HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def echo_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("results")
    proc = harness("run", "echo", "--nemesis", "kill,pause,partition", "--time-limit", "6", "--interval", "1",
                   "--quiet", "1", "--nodes", "3", "--seed", "11", "--results", str(root))
    return proc, run_dir_of(proc.stdout)


def test_a_run_writes_the_whole_run_directory(echo_run):
    proc, run_dir = echo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "seed 11"
    for name in ("test.json", "history.jsonl", "results.json", "report.html"):
        assert (run_dir / name).is_file(), name
    assert sorted(p.name for p in (run_dir / "nodes").glob("*.log")) == ["n1.log", "n2.log", "n3.log"]
    assert (run_dir.parents[1] / "latest").resolve() == run_dir.resolve()
    test = json.loads((run_dir / "test.json").read_text())
    assert test["seed"] == 11 and test["nodes"] == ["n1", "n2", "n3"]
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert any(op["process"] == "nemesis" for op in history), "the nemesis did nothing"
    assert "<svg" in (run_dir / "report.html").read_text()


def test_check_on_a_copy_elsewhere_gives_the_same_verdict(echo_run, tmp_path):
    _, run_dir = echo_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    before = json.loads((run_dir / "results.json").read_text())
    proc = harness("check", str(copy))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = json.loads((copy / "results.json").read_text())
    assert after["valid"] == before["valid"] is True


def test_a_torn_history_is_still_checked_and_says_so(echo_run, tmp_path):
    _, run_dir = echo_run
    copy = tmp_path / "torn"
    shutil.copytree(run_dir, copy)
    text = (copy / "history.jsonl").read_text()
    (copy / "history.jsonl").write_text(text[: len(text) - 25])
    proc = harness("check", str(copy))
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    results = json.loads((copy / "results.json").read_text())
    assert results["checkers"]["history"]["torn_tail"] is True


def test_a_corrupt_history_is_a_clear_error(echo_run, tmp_path):
    _, run_dir = echo_run
    copy = tmp_path / "corrupt"
    shutil.copytree(run_dir, copy)
    lines = (copy / "history.jsonl").read_text().splitlines(keepends=True)
    lines[3] = "{{ not json\n"
    (copy / "history.jsonl").write_text("".join(lines))
    proc = harness("check", str(copy))
    assert proc.returncode == 64
    assert "history.jsonl:4" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [(["run", "nosuch"], "unknown system"), (["run", "echo", "--bug", "nosuch"], "no bug switch"),
     (["run", "echo", "--nemesis", "meteor"], "unknown nemesis"), (["check", "/nonexistent/run"], "does not exist")],
)
def test_bad_usage_is_one_clear_line_and_exit_64(args, message, tmp_path):
    proc = harness(*args, "--results", str(tmp_path)) if args[0] == "run" else harness(*args)
    assert proc.returncode == 64, proc.stdout + proc.stderr
    assert message in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_sigint_mid_run_leaves_no_process_and_a_checkable_history(tmp_path):
    proc = subprocess.Popen(
        [*HARNESS, "run", "echo", "--nemesis", "pause", "--time-limit", "60", "--interval", "0.5", "--nodes", "3",
         "--results", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        run_dir = None
        pids: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            runs = list(tmp_path.glob("echo/*/hosts-state.json"))
            if runs:
                run_dir = runs[0].parent
                state = json.loads(runs[0].read_text() or "{}")
                pids = [int(p) for p in state.get("pids", [])]
                history = run_dir / "history.jsonl"
                paused = history.exists() and '"pause"' in history.read_text()
                if len(pids) == 3 and paused:
                    break
            time.sleep(0.1)
        assert run_dir is not None and len(pids) == 3, "the run never got going"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out
    assert [p for p in pids if not process_gone(p)] == []
    check = harness("check", str(run_dir))
    assert check.returncode in (0, 1, 2), check.stdout + check.stderr
    assert (run_dir / "results.json").exists()
