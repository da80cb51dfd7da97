"""Node processes of the local backend: start, signal, reap, and remember their pids.

Rules this module keeps:

- A node is `sys.executable -m systems.<system> --cluster C --id N
  --data-dir run_dir/data/N --log run_dir/nodes/N.log`, in its own session
  (terminal signals do not reach it; the backend decides when it dies), its
  stdout and stderr appended to the same log file (a crash's traceback lands
  beside its JSON records). The repository root is put on PYTHONPATH.
- Only pids this object started are ever signalled, and every child that
  was started is reaped (`wait`) when it is killed or at `kill_all`.
- The pids of live children are kept in run_dir/local-state.json (rewritten
  atomically on every change) so that a harness that crashed can be cleaned
  up later with `cleanup_stale(run_dir)`, which signals a recorded pid only
  if /proc/<pid>/cmdline still shows our `-m systems.<system> ... --cluster C`
  command (a pid reused by another program is left alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import systems

REPO_ROOT = Path(systems.__file__).resolve().parent.parent
STATE_FILE = "local-state.json"


class NodeProcesses:
    def __init__(self, run_dir: Path, system: str, cluster_file: Path, python: str = sys.executable) -> None:
        self.run_dir = run_dir
        self.system = system
        self.cluster_file = cluster_file
        self.python = python
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started_pids: list[int] = []
        """Every pid ever started in this run (for tests and post-mortems)."""

    def command(self, node: str) -> list[str]:
        return [
            self.python, "-m", f"systems.{self.system}",
            "--cluster", str(self.cluster_file),
            "--id", node,
            "--data-dir", str(self.run_dir / "data" / node),
            "--log", str(self.log_path(node)),
        ]

    def log_path(self, node: str) -> Path:
        return self.run_dir / "nodes" / f"{node}.log"

    def start(self, node: str) -> subprocess.Popen[bytes]:
        assert node not in self.procs, f"{node} is already running"
        (self.run_dir / "data" / node).mkdir(parents=True, exist_ok=True)
        self.log_path(node).parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(self.log_path(node), "ab") as out:
            proc = subprocess.Popen(
                self.command(node), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd=str(REPO_ROOT), start_new_session=True,
            )
        self.procs[node] = proc
        self.started_pids.append(proc.pid)
        self.save_state()
        return proc

    def pid(self, node: str) -> int | None:
        p = self.procs.get(node)
        return p.pid if p is not None else None

    def alive(self, node: str) -> bool:
        p = self.procs.get(node)
        return p is not None and p.poll() is None

    def signal(self, node: str, sig: int) -> bool:
        p = self.procs.get(node)
        if p is None or p.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(sig)
        return True

    def kill(self, node: str, timeout_s: float = 10.0) -> int | None:
        """SIGKILL and reap; returns the exit status, None if it was not running."""
        p = self.procs.pop(node, None)
        if p is None:
            return None
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGKILL)
        try:
            rc = p.wait(timeout_s)
        finally:
            self.save_state()
        return rc

    def kill_all(self, grace_s: float = 1.0) -> None:
        """Continue paused children, ask them to stop (SIGTERM), then SIGKILL stragglers; reap all."""
        procs = list(self.procs.items())
        for _, p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for _, p in procs:
            left = deadline - time.monotonic()
            try:
                p.wait(max(left, 0.0))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGKILL)
        for node, p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10.0)
            if p.poll() is not None:
                self.procs.pop(node, None)
        self.save_state()

    def save_state(self) -> None:
        state = {
            "harness_pid": os.getpid(),
            "system": self.system,
            "cluster": str(self.cluster_file),
            "pids": {n: p.pid for n, p in sorted(self.procs.items()) if p.poll() is None},
        }
        path = self.run_dir / STATE_FILE
        tmp = path.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, path)


def is_our_node(pid: int, system: str, cluster: str) -> bool:
    """True if /proc says `pid` runs `-m systems.<system> ... --cluster <cluster>`."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    argv = raw.decode(errors="replace").split("\x00")
    return (
        f"systems.{system}" in argv
        and "-m" in argv
        and "--cluster" in argv
        and cluster in argv
    )


def cleanup_stale(run_dir: Path | str) -> list[int]:
    """Kill node processes recorded in run_dir/local-state.json that are still ours; returns their pids."""
    path = Path(run_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    killed: list[int] = []
    for pid in state.get("pids", {}).values():
        if isinstance(pid, int) and is_our_node(pid, state.get("system", ""), state.get("cluster", "")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    state["pids"] = {}
    path.write_text(json.dumps(state, indent=2) + "\n")
    return killed
