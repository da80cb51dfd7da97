"""Where node processes run and how they are started, signalled and reaped: the `Processes` strategy.

The shared lifecycle (harness/backends/lifecycle.py) drives a `Processes`;
this module defines the protocol and `LocalProcesses`, which runs nodes on
this machine, optionally inside a network namespace each (`ip netns exec NS`
execs the program in place, so the pid held is the node's). The ssh backend
has its own (harness/backends/ssh_processes.py).

Rules every `Processes` keeps:

- Blocking methods; the lifecycle calls them from worker threads.
- `start` returns the new pid, recorded in the run's HostsState (whose
  marker is the program's) as soon as it exists, so `harness cleanup` can
  find it after a killed harness; a pid is forgotten only once it was
  reaped (or found gone).
- Only pids this object started are ever signalled; `kill` is SIGKILL and
  reap; `lost` is what a power cut does to the node's process; `stop_all`
  (teardown, never raises) continues every node, asks it to stop (SIGTERM),
  SIGKILLs stragglers after a grace period and reaps them all.
- A node that died on its own reads as not `alive`, and `exit_status`
  says how it ended; `start` reaps it first.

Rules of `LocalProcesses`:

- `corrupt_file` flips bytes of a file under the node's data directory in
  place and fsyncs it, whether or not the node runs (a disk that lies).

- A node is the program's argv (wrapped by `wrap` if given, e.g. to join
  a cgroup; prefixed by `ip netns exec NS` for a namespace), in its own session (terminal signals do not reach it; the
  backend decides when it dies), stdout and stderr appended to its `out`
  file, the repository root on PYTHONPATH and as working directory.
- Every node's key file goes into the run directory's KEY_DIR (0700; files
  0600), beside the harness's own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import systems
from harness.backends.node_program import KEY_DIR, NodeProgram, NodeSite
from harness.hosts_state import HostsState
from systems.runtime.api import check_disk_name
from systems.runtime.real_auth import ClusterKeys, node_key_file, write_key_files

REPO_ROOT = Path(systems.__file__).resolve().parent.parent


class Processes(Protocol):
    """One run's node processes, wherever they run."""

    started_pids: list[int]
    """Every pid started in this run (for tests and post-mortems)."""

    def site(self, node: str) -> NodeSite: ...

    def describe(self, node: str) -> str:
        """How an error names the node ("node n1", "node n1 (pi@10.0.0.11:22)")."""
        ...

    def write_config(self, files: dict[str, str]) -> None:
        """Put the program's config files into every host's config dir."""
        ...

    def write_keys(self, keys: ClusterKeys) -> None:
        """Give every node host its own key file, in KEY_DIR of its config dir (owner-only)."""
        ...

    def remove_keys(self) -> None:
        """Teardown: the run's keys die with it. Never raises."""
        ...

    def start(self, node: str) -> int: ...

    def alive(self, node: str) -> bool: ...

    def pid(self, node: str) -> int | None: ...

    def exit_status(self, node: str) -> int | None:
        """How a node that died on its own ended (None while it runs or when unknown)."""
        ...

    def signal(self, node: str, sig: signal.Signals) -> bool:
        """Send sig to a live node; False if it was not running."""
        ...

    def kill(self, node: str) -> None:
        """SIGKILL and reap (nothing if it is not running)."""
        ...

    def lost(self, node: str) -> None:
        """The node's machine lost its power: its process is gone (killed here, forgotten on a real host)."""
        ...

    def log_tail(self, node: str, lines: int = 15) -> str: ...

    def stop_all(self, grace_s: float = 1.0) -> None:
        """Teardown: continue, TERM, then KILL after grace_s, and reap every node. Never raises."""
        ...


def file_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def flip_bytes(path: Path, offsets: list[int]) -> list[int]:
    """XOR 0xFF the byte at each offset inside the file, then fsync it; the offsets flipped."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        flipped = [o for o in offsets if 0 <= o < size]
        for o in flipped:
            f.seek(o)
            b = f.read(1)
            f.seek(o)
            f.write(bytes([b[0] ^ 0xFF]))
        f.flush()
        os.fsync(f.fileno())
    return flipped


class LocalProcesses:
    """Node processes on this machine, each optionally inside its own network namespace."""

    def __init__(
        self,
        run_dir: Path,
        program: NodeProgram,
        state: HostsState,
        *,
        hosts: dict[str, tuple[str, int]],
        python: str = sys.executable,
        namespace: Callable[[str], str] | None = None,
        wrap: Callable[[str, list[str]], list[str]] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.program = program
        self.state = state
        self.hosts = hosts
        """node -> (address, port) it listens on; `readdress` replaces it when the ports change."""
        self.python = python
        self.namespace = namespace
        self.wrap = wrap
        """Turns a node's argv into the argv that starts it (e.g. inside its cgroup); None: as it is."""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started_pids: list[int] = []
        self._wiped: set[str] = set()
        self._lock = threading.Lock()

    # -- where ------------------------------------------------------------------------------------
    def site(self, node: str) -> NodeSite:
        host, port = self.hosts[node]
        log = str(self.run_dir / "nodes" / f"{node}.log")
        return NodeSite(node=node, host=host, port=port, data_dir=str(self.run_dir / "data" / node), log=log,
                        out=log, config_dir=str(self.run_dir), python=self.python)

    def describe(self, node: str) -> str:
        return f"node {node}"

    def corrupt_file(self, node: str, name: str, offsets: list[int]) -> list[int]:
        """Flip bytes of the node's file `name` (a disk name) in place; see the module rules."""
        return flip_bytes(Path(self.site(node).data_dir) / check_disk_name(name), offsets)

    def write_config(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            path = self.run_dir / name
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    def write_keys(self, keys: ClusterKeys) -> None:
        write_key_files(self.run_dir / KEY_DIR, {node_key_file(n): c.to_json() for n, c in keys.nodes.items()})

    def remove_keys(self) -> None:
        shutil.rmtree(self.run_dir / KEY_DIR, ignore_errors=True)

    def command(self, node: str) -> list[str]:
        argv = self.program.argv(self.site(node))
        if self.wrap is not None:
            argv = self.wrap(node, argv)
        if self.namespace is not None:
            return ["ip", "netns", "exec", self.namespace(node), *argv]
        return argv

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, node: str) -> int:
        with self._lock:
            old = self.procs.get(node)
            if old is not None:
                assert old.poll() is not None, f"{node} is already running"
                self._reap(node)  # it died on its own
            site = self.site(node)
            if node not in self._wiped:  # before the first start only: a restart keeps the data
                for path in self.program.wipe(site):
                    shutil.rmtree(path, ignore_errors=True)
                self._wiped.add(node)
            Path(site.data_dir).mkdir(parents=True, exist_ok=True)
            Path(site.out).parent.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
            env.setdefault("PYTHONUNBUFFERED", "1")
            with open(site.out, "ab") as out:
                proc = subprocess.Popen(
                    self.command(node), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=env, cwd=str(REPO_ROOT), start_new_session=True,
                )
            self.procs[node] = proc
            self.started_pids.append(proc.pid)
            self.state.add_pid(proc.pid)
            return proc.pid

    def alive(self, node: str) -> bool:
        p = self.procs.get(node)
        return p is not None and p.poll() is None

    def pid(self, node: str) -> int | None:
        p = self.procs.get(node)
        return p.pid if p is not None else None

    def exit_status(self, node: str) -> int | None:
        p = self.procs.get(node)
        return None if p is None else p.poll()

    def signal(self, node: str, sig: signal.Signals) -> bool:
        p = self.procs.get(node)
        if p is None or p.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(sig)
        return True

    def kill(self, node: str) -> None:
        with self._lock:
            p = self.procs.get(node)
            if p is None:
                return
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGKILL)
            self._reap(node)

    def lost(self, node: str) -> None:
        self.kill(node)  # a namespace or a loopback node has no plug of its own: its process dies

    def _reap(self, node: str, timeout_s: float = 10.0) -> None:
        p = self.procs[node]
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout_s)
        if p.poll() is not None:
            del self.procs[node]
            self.state.drop_pid(p.pid)

    def log_tail(self, node: str, lines: int = 15) -> str:
        return f"tail of {self.site(node).out}:\n{file_tail(Path(self.site(node).out), lines)}"

    def stop_all(self, grace_s: float = 1.0) -> None:
        with self._lock:
            procs = list(self.procs.items())
            for _, p in procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(signal.SIGCONT)
                        p.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for _, p in procs:
                try:
                    p.wait(max(deadline - time.monotonic(), 0.0))
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(signal.SIGKILL)
            for node, _ in procs:
                self._reap(node)
