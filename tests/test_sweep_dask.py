"""A sweep through a real Dask cluster: a `dask scheduler` and two `dask worker` processes on loopback.

The scheduler and the workers are separate processes started here (the same programs one would start on
the Pis or a lab's machines), stopped by their pids whatever happens. The sweep is the real CLI with
`--scheduler tcp://127.0.0.1:PORT`; its rows must come back to the one summary, from both workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")

pytestmark = [pytest.mark.sim, pytest.mark.slow]

DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its pid: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def wait_for(what: str, cond: object, within_s: float = 90.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {within_s} s")


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """tcp://127.0.0.1:PORT of a scheduler with two single-threaded workers, all real processes."""
    scheduler_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    log = open(tmp_path / "dask.log", "wb")  # noqa: SIM115 (closed below)
    try:
        procs.append(subprocess.Popen([*DASK, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                       "--scheduler-file", str(scheduler_file)], stdout=log, stderr=log))
        wait_for("the scheduler file", lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in (1, 2):
            procs.append(subprocess.Popen([*WORKER, address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                           "--host", "127.0.0.1", "--name", f"w{i}",
                                           "--local-directory", str(tmp_path / f"w{i}")], stdout=log, stderr=log))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for p in reversed(procs):
            stop(p)
        log.close()


def test_a_sweep_runs_on_a_dask_scheduler_and_two_workers(tmp_path: Path, dask_cluster: str) -> None:
    worker_pids = set()
    from distributed import Client

    with Client(dask_cluster, timeout=30) as client:
        worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "sweep", "raft", "--seeds", "1-6", "--scheduler", dask_cluster,
         "--bug", "stale-read", "--nemesis", "leader-isolate", "--time-limit", "10", "--quiet", "1",
         "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "dask tcp://127.0.0.1:" in proc.stdout and "(2 workers)" in proc.stdout
    (sweep_dir,) = (tmp_path / "raft" / "sweeps").iterdir()
    rows = [json.loads(line) for line in (sweep_dir / "summary.jsonl").read_text().splitlines()]
    assert sorted(r["seed"] for r in rows) == [1, 2, 3, 4, 5, 6]
    ran_on = {int(r["worker"].rsplit(":", 1)[1]) for r in rows}
    assert ran_on <= worker_pids and len(ran_on) == 2, (ran_on, worker_pids)
    assert all(r["verdict"] != "error" and r["cpu_s"] > 0 for r in rows), [(r["seed"], r.get("error")) for r in rows]
    assert any(r["verdict"] == "invalid" for r in rows), [(r["seed"], r["verdict"], r.get("failing")) for r in rows]
    for r in rows:
        if r["verdict"] == "invalid":  # a failing run came home from its worker, whole
            assert json.loads((sweep_dir / r["run"] / "results.json").read_text())["valid"] is False
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["engine"].startswith("dask tcp://127.0.0.1:") and meta["done"] == 6
