"""The command line in a terminal, as a person uses it: pexpect drives `harness` in a pseudo-terminal.

`harness run` on a terminal shows a live progress panel (rich), and Ctrl-C typed at the terminal (the
terminal's interrupt character, so the kernel signals the foreground process group, nodes and all, as it
does for a person) tears the cluster down, says so, checks the partial history and exits 130. `harness
serve` prints where it serves and stops on Ctrl-C without a traceback.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

import pexpect
import pytest
from support import process_gone

ROOT = Path(__file__).resolve().parents[1]
A = r"(?:\x1b\[[0-9;]*m)*"
"""Colour codes rich puts around words on a terminal."""
ENV = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40", "PYTHONUNBUFFERED": "1"}


def spawn(*args: str, timeout: float = 120) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "harness.cli", *args], cwd=str(ROOT), env=ENV, timeout=timeout,
                          encoding="utf-8", codec_errors="replace", dimensions=(40, 120))
    child.logfile_read = None
    return child


def wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.real
def test_harness_run_in_a_terminal_shows_live_progress_and_ctrl_c_tears_down(tmp_path: Path) -> None:
    child = spawn("run", "echo", "--nemesis", "pause", "--nodes", "3", "--time-limit", "600", "--interval", "1",
                  "--seed", "11", "--results", str(tmp_path))
    try:
        child.expect(r"seed 11\r\n")
        child.expect(r"run directory (\S+)\r\n")
        run_dir = Path(child.match.group(1))
        # the live panel (drawn in place: the cursor hidden, lines rewritten), with counts that grow
        child.expect_exact("\x1b[?25l")
        child.expect(r"ok/fail/info\s+(\d+)/\d+/\d+")
        child.expect(r"faults\s+")
        child.expect(r"ops/s\s+[\d.]+")
        child.expect(r"ok/fail/info\s+([1-9]\d*)/\d+/\d+", timeout=120)
        pids: list[int] = []

        def nodes_recorded() -> bool:
            state = json.loads((run_dir / "hosts-state.json").read_text())
            pids[:] = state["pids"]
            return len(pids) == 3

        wait_for(nodes_recorded, "the three node pids in hosts-state.json")
        assert not any(process_gone(p) for p in pids)
        child.sendintr()  # Ctrl-C, typed
        child.expect(rf"interrupted{A} \(SIGINT\): cluster torn down; checking the partial history \(Ctrl-C to skip\)")
        child.expect(rf"verdict {A}(\w+){A}; report ")
        assert child.match.group(1) in ("UNKNOWN", "INVALID")  # never valid: the final reads never ran
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 130, (child.exitstatus, child.signalstatus)
    assert "Traceback" not in (child.before or "")
    wait_for(lambda: all(process_gone(p) for p in pids), "every node process to be gone", timeout=30)
    assert json.loads((run_dir / "interrupted.json").read_text())["signal"] == "SIGINT"
    assert json.loads((run_dir / "hosts-state.json").read_text())["pids"] == []
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is not True and "interrupted" in results["partial"]


def test_harness_serve_in_a_terminal_says_where_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    child = spawn("serve", "--results", str(tmp_path), "--port", "0", timeout=60)
    try:
        child.expect(r"serving \S+ at (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)")
        url = child.match.group(1)
        with urllib.request.urlopen(url + "api/runs", timeout=30) as r:
            assert json.loads(r.read())["total"] == 0
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "")


def test_a_usage_error_in_a_terminal_is_one_line_before_any_seed(tmp_path: Path) -> None:
    child = spawn("run", "echo", "--nemesis", "no-such-fault", "--results", str(tmp_path), timeout=60)
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before or "")
    lines = [line for line in text.splitlines() if line.strip()]
    assert child.exitstatus == 64 and len(lines) == 1 and lines[0].startswith("error:"), lines
    assert not list(tmp_path.iterdir())
