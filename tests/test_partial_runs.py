"""Partial runs are marked as such everywhere, and never called valid.

A run stopped by SIGINT (exit 130) or SIGTERM (exit 143) is torn down, marked
`interrupted` in results.json, at the top of the report and in `harness serve`,
and its partial history is checked at once; `harness check` later says the
history is partial. A history whose last line is torn (the harness died
mid-write) is read up to that line and said to be partial too. A run that was
never checked is listed by `harness serve` with the command that checks it,
not with a link to a report that does not exist.
"""

from __future__ import annotations

import html
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from base.spec import TestSpec
from harness.serve import index_html
from harness.session import check, execute, prepare

ROOT = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def interrupt_a_sim_run(results: Path, sig: signal.Signals) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Start a long sim run, wait until its history has grown, send `sig`; the finished process and its run."""
    proc = subprocess.Popen(
        [*HARNESS, "run", "echo", "--backend", "sim", "--nemesis", "kill", "--interval", "2", "--nodes", "3",
         "--time-limit", "3600", "--seed", "5", "--results", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        run_dir = None
        while time.monotonic() < deadline and proc.poll() is None:
            histories = list(results.glob("echo/*/history.jsonl"))
            if histories and histories[0].read_text().count('"f": "kill"') >= 2:
                run_dir = histories[0].parent
                break
            time.sleep(0.05)
        assert run_dir is not None, "the run never got going"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), run_dir


@pytest.mark.sim
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_is_marked_everywhere(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    results = tmp_path / "results"
    done, run_dir = interrupt_a_sim_run(results, sig)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "Task was destroyed" not in done.stderr
    assert f"interrupted ({sig.name})" in done.stdout
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["interrupted"]["signal"] == sig.name
    assert on_disk["valid"] != True  # noqa: E712 - "unknown" (or False), never valid
    assert "the history is partial" in on_disk["partial"] and "final reads never ran" in on_disk["partial"]
    report = html.unescape((run_dir / "report.html").read_text())
    assert "Interrupted:" in report[: report.index("<h2>")]
    assert "interrupted: partial history" in index_html(results)

    again = harness("check", str(run_dir))
    assert again.returncode == 2, again.stdout + again.stderr  # unknown
    assert "the history is partial: the run was interrupted" in again.stdout.replace("\n", " ")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = TestSpec(system="echo", workload="echo", nemesis=("kill",), backend="sim", node_count=3, concurrency=3,
                    time_limit_s=6.0, nemesis_interval_s=1.0, quiet_s=0.5, seed=3)
    spec = prepare(spec, tmp_path_factory.mktemp("results"))
    execute(spec)
    assert check(spec.path)["valid"] is True
    return spec.path


def copy_run(run_dir: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, to)
    return to


def test_check_tolerates_a_torn_last_line_and_says_the_history_is_partial(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path / "torn")
    lines = (run / "history.jsonl").read_text().splitlines(keepends=True)
    (run / "history.jsonl").write_text("".join(lines[:40]) + lines[40][:17])  # killed mid-write of line 41
    proc = harness("check", str(run))
    assert proc.returncode == 2, proc.stdout + proc.stderr  # unknown: a partial history proves nothing more
    said = proc.stdout.replace("\n", " ")
    assert "last line was torn" in said and "the verdict is at best unknown" in said
    results = json.loads((run / "results.json").read_text())
    assert results["checkers"]["history"]["torn_tail"] is True
    whole = json.loads((finished_run / "results.json").read_text())["checkers"]["history"]["ops"]
    assert results["checkers"]["history"]["ops"] < whole  # read up to the torn line, nothing lost before it
    assert "Partial history:" in html.unescape((run / "report.html").read_text())


def test_a_torn_line_in_the_middle_is_still_an_error(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path / "corrupt")
    lines = (run / "history.jsonl").read_text().splitlines(keepends=True)
    lines[10] = lines[10][:17] + "\n"
    (run / "history.jsonl").write_text("".join(lines))
    proc = harness("check", str(run))
    assert proc.returncode == 64 and "history.jsonl:11" in proc.stdout, proc.stdout + proc.stderr


def test_serve_lists_a_run_never_checked_with_the_command_that_checks_it(finished_run: Path, tmp_path: Path) -> None:
    root = tmp_path / "results"
    run = copy_run(finished_run, root / "echo" / finished_run.name)
    (run / "results.json").unlink()
    (run / "report.html").unlink()
    page = index_html(root)
    assert f"harness check {run}" in html.unescape(page)
    assert "report.html" not in page  # no link to a report that does not exist
    assert "never checked" in page
    check(run)
    page = index_html(root)
    assert "report.html" in page and "harness check" not in page
