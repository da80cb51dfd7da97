"""What a netns or ssh run created, written down before it is created, so a crashed run can be undone.

Rules this module keeps:

- A run's state is one JSON document (changed under a lock: hosts are set up
  and torn down from several threads), kept in two places: run_dir/hosts-state.json
  and a well-known directory (`state_dir()`: /run/picluster when writable, else
  results/.hosts-state) as `<run_id>.json`. Both are rewritten atomically
  (temp file + rename) on every change.
- Intent first: a resource is recorded *before* the command that creates it
  runs, so a crash between the two leaves a record of something that may
  not exist; cleanup tolerates that. A resource is forgotten only after it
  was removed.
- Cleanup (`cleanup_state`) removes exactly what the record names: network
  namespaces by name, links (bridge, veth) by name, node processes by pid
  only when /proc/<pid>/cmdline still carries the run's marker (the run's
  cluster file path), remote iptables chains and remote pids through SSH, and
  the run's key directory (`keys` beside the cluster file: run_dir/keys, and
  on an ssh host beside the recorded marker when it is a cluster.json), so a
  killed run's keys do not outlive it.
  It never lists the machine's namespaces, links or processes and guesses
  by pattern.
- A state whose harness is still running (the same pid *and* the same start
  time as recorded) is left alone unless `force` is given (a live run cleans
  up after itself).
- Every backend but sim keeps one (local records its node pids), so
  `leftovers()` finds what any killed harness left, and `harness run` can
  say so before it starts. A run directory from before this record (only
  local-state.json) is read too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_NAME = "hosts-state.json"
KEY_DIR = "keys"
"""The run's key directory beside its cluster file (node_program.KEY_DIR)."""
WELL_KNOWN = Path("/run/picluster")
FALLBACK = Path("results/.hosts-state")


def state_dir() -> Path:
    """/run/picluster if we may write there (root), else results/.hosts-state (relative to cwd)."""
    override = os.environ.get("PICLUSTER_STATE_DIR")
    if override:
        return Path(override)
    try:
        WELL_KNOWN.mkdir(parents=True, exist_ok=True)
        if os.access(WELL_KNOWN, os.W_OK):
            return WELL_KNOWN
    except OSError:
        pass
    return FALLBACK.resolve()


@dataclass
class HostsState:
    """The record of one run's resources. Mutate through the methods: each one saves."""

    run_id: str
    backend: str
    run_dir: str
    marker: str = ""
    """A string every node process of this run carries on its command line (the cluster file path)."""
    harness_pid: int = field(default_factory=os.getpid)
    harness_started: int = 0
    """The harness process's start time (clock ticks after boot, /proc/<pid>/stat); filled in from the pid."""
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    """iptables chains in this machine's own namespace (local partitions of external programs), top first."""
    cgroups: list[str] = field(default_factory=list)
    """cgroup directories made for the run's nodes, parents first."""
    remote: list[dict[str, Any]] = field(default_factory=list)
    """One entry per ssh host: {"node", "host", "port", "user", "key", "sudo", "chain", "pids", "marker"}."""
    extra_dir: Path | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.harness_started:
            self.harness_started = start_time(self.harness_pid) or 0

    # -- persistence --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "run_id": self.run_id,
            "backend": self.backend,
            "run_dir": self.run_dir,
            "marker": self.marker,
            "harness_pid": self.harness_pid,
            "harness_started": self.harness_started,
            "netns": list(self.netns),
            "links": list(self.links),
            "pids": list(self.pids),
            "chains": list(self.chains),
            "cgroups": list(self.cgroups),
            "remote": [dict(r) for r in self.remote],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HostsState:
        return cls(
            run_id=str(d["run_id"]),
            backend=str(d.get("backend", "")),
            run_dir=str(d.get("run_dir", "")),
            marker=str(d.get("marker", "")),
            harness_pid=int(d.get("harness_pid", 0)),
            harness_started=int(d.get("harness_started", 0)) or -1,
            netns=[str(x) for x in d.get("netns", [])],
            links=[str(x) for x in d.get("links", [])],
            pids=[int(x) for x in d.get("pids", [])],
            chains=[str(x) for x in d.get("chains", [])],
            cgroups=[str(x) for x in d.get("cgroups", [])],
            remote=[dict(r) for r in d.get("remote", [])],
        )

    def paths(self) -> list[Path]:
        out = []
        if self.run_dir:
            out.append(Path(self.run_dir) / STATE_NAME)
        out.append((self.extra_dir or state_dir()) / f"{self.run_id}.json")
        return out

    def save(self) -> None:
        """Rewrite both copies; safe from several threads at once (the ssh backend works hosts in parallel)."""
        with self._lock:
            text = json.dumps(self.to_json(), indent=2) + "\n"
            for path in self.paths():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                tmp.write_text(text)
                os.replace(tmp, path)

    def is_empty(self) -> bool:
        return not (self.netns or self.links or self.pids or self.remote or self.chains or self.cgroups)

    def finish(self) -> None:
        """Everything is gone: drop the well-known copy, leave an empty record in the run dir."""
        with self._lock:
            self.netns, self.links, self.pids, self.remote = [], [], [], []
            self.chains, self.cgroups = [], []
            *in_run_dir, well_known = self.paths()
            for path in in_run_dir:
                if path.parent.is_dir():
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
                    os.replace(tmp, path)
            with contextlib.suppress(FileNotFoundError):
                well_known.unlink()

    # -- recording ----------------------------------------------------------------------------
    def add_netns(self, name: str) -> None:
        _add(self.netns, name)
        self.save()

    def add_link(self, name: str) -> None:
        _add(self.links, name)
        self.save()

    def add_pid(self, pid: int) -> None:
        _add(self.pids, pid)
        self.save()

    def add_chain(self, name: str) -> None:
        _add(self.chains, name)
        self.save()

    def add_cgroup(self, path: str) -> None:
        _add(self.cgroups, path)
        self.save()

    def drop_chain(self, name: str) -> None:
        if name in self.chains:
            self.chains.remove(name)
            self.save()

    def drop_cgroup(self, path: str) -> None:
        if path in self.cgroups:
            self.cgroups.remove(path)
            self.save()

    def drop_pid(self, pid: int) -> None:
        if pid in self.pids:
            self.pids.remove(pid)
            self.save()

    def drop_netns(self, name: str) -> None:
        if name in self.netns:
            self.netns.remove(name)
            self.save()

    def drop_link(self, name: str) -> None:
        if name in self.links:
            self.links.remove(name)
            self.save()

    def remote_entry(self, node: str) -> dict[str, Any]:
        for r in self.remote:
            if r.get("node") == node:
                return r
        raise KeyError(node)

    def set_remote(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.remote = [r for r in self.remote if r.get("node") != entry["node"]] + [dict(entry)]
            self.save()

    def drop_remote(self, node: str) -> None:
        with self._lock:
            self.remote = [r for r in self.remote if r.get("node") != node]
            self.save()


def _add(items: list[Any], item: Any) -> None:
    if item not in items:
        items.append(item)


# -- finding and cleaning ---------------------------------------------------------------------
def load(path: Path) -> HostsState:
    """Read a state file; saving it again rewrites the same well-known directory it came from."""
    path = Path(path)
    state = HostsState.from_json(json.loads(path.read_text()))
    state.extra_dir = state_dir() if path.name == STATE_NAME else path.parent
    return state


LEGACY_LOCAL = "local-state.json"
"""What the local backend kept before it kept a HostsState: {"system", "cluster", "pids": {node: pid}}."""


def load_run_dir(run_dir: Path) -> HostsState | None:
    """The record a run directory holds (hosts-state.json, or an older local-state.json); None if neither."""
    path = Path(run_dir) / STATE_NAME
    if path.exists():
        return load(path)
    legacy = Path(run_dir) / LEGACY_LOCAL
    if not legacy.exists():
        return None
    data = json.loads(legacy.read_text())
    pids = [int(p) for p in dict(data.get("pids", {})).values()]
    state = HostsState(run_id=f"local-{Path(run_dir).name}", backend="local", run_dir=str(run_dir),
                       marker=str(data.get("cluster", "")), harness_pid=int(data.get("harness_pid", 0)),
                       harness_started=-1, pids=pids)
    state.extra_dir = state_dir()
    return state


def describe(state: HostsState) -> str:
    """What a record still names, in words: "local run /x: 3 node processes"."""
    parts = []
    for items, one, many in ((state.pids, "node process", "node processes"), (state.netns, "namespace", "namespaces"),
                             (state.links, "link", "links"), (state.remote, "host", "hosts"),
                             (state.chains, "iptables chain", "iptables chains"), (state.cgroups, "cgroup", "cgroups")):
        if items:
            parts.append(f"{len(items)} {one if len(items) == 1 else many}")
    where = state.run_dir or state.run_id
    return f"{state.backend} run {where}: {', '.join(parts) or 'nothing'}"


def leftovers(directory: Path | None = None) -> list[HostsState]:
    """Records of runs whose harness is gone but that still name something to remove.

    A record that names only node pids, none of which is still one of the run's processes, has
    nothing left to remove: it is forgotten here (quietly)."""
    out = []
    for _path, state in recorded_states(directory):
        if state.is_empty() or harness_alive(state.harness_pid, state.harness_started):
            continue
        only_pids = not (state.netns or state.links or state.remote)
        if only_pids and not any(pid_carries(pid, state.marker) for pid in state.pids):
            with contextlib.suppress(OSError):
                state.finish()
            continue
        out.append(state)
    return out


def recorded_states(directory: Path | None = None) -> Iterator[tuple[Path, HostsState]]:
    """Every state file in the well-known directory (unreadable ones are skipped)."""
    d = directory or state_dir()
    if not d.is_dir():
        return
    for path in sorted(d.glob("*.json")):
        try:
            yield path, load(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue


def pid_carries(pid: int, marker: str) -> bool:
    """True if process `pid` exists and its command line contains `marker` as one argument."""
    if not marker:
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return marker in raw.decode(errors="replace").split("\x00")


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (None if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19]) if len(fields) > 19 else None


def harness_alive(pid: int, started: int = 0) -> bool:
    """True if `pid` is a live process other than us and still the harness that wrote the record: the
    same start time when one was recorded, else (an old record) a process that looks like a harness."""
    if pid <= 0 or pid == os.getpid():
        return False
    if started > 0:
        return start_time(pid) == started
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"python" in raw or b"harness" in raw or b"pytest" in raw


Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


RemoteCleaner = Callable[[dict[str, Any]], list[str]]


def _link_exists(run: Runner, link: str) -> bool:
    return run(["ip", "link", "show", "dev", link]).returncode == 0


def _link_lingers(run: Runner, link: str, checks: int = 10, every_s: float = 0.1) -> bool:
    """True when the link is still there after a short while (the kernel removes veths asynchronously)."""
    for i in range(checks):
        if not _link_exists(run, link):
            return False
        if i + 1 < checks:
            time.sleep(every_s)
    return True


def cleanup_state(
    state: HostsState,
    *,
    run: Runner = _run,
    remote_cleaner: RemoteCleaner | None = None,
) -> list[str]:
    """Remove every resource the state records; returns a line per thing removed (or failed)."""
    done: list[str] = []
    for pid in list(state.pids):
        if pid_carries(pid, state.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
                done.append(f"killed pid {pid}")
        state.drop_pid(pid)
    for entry in list(state.remote):
        if remote_cleaner is None:
            from harness.backends.ssh_remote import clean_remote_entry

            remote_cleaner = clean_remote_entry
        try:
            done.extend(remote_cleaner(entry))
            state.drop_remote(str(entry.get("node")))
        except Exception as e:  # an unreachable host keeps its record for the next cleanup
            done.append(f"FAILED on {entry.get('node')} ({entry.get('host')}): {e}")
    for ns in list(state.netns):
        r = run(["ip", "netns", "delete", ns])
        if r.returncode == 0:
            done.append(f"deleted netns {ns}")
        state.drop_netns(ns)
    keys = Path(state.run_dir) / KEY_DIR if state.run_dir else None
    if keys is not None and keys.is_dir():
        shutil.rmtree(keys, ignore_errors=True)
        done.append(f"removed the run's keys {keys}")
    for link in list(state.links):
        if _link_exists(run, link):
            run(["ip", "link", "delete", "dev", link])
            # Judge by what is left: a veth also vanishes by itself once its peer's namespace is deleted.
            if _link_lingers(run, link):
                done.append(f"FAILED to delete link {link} (it stays recorded for the next cleanup)")
                continue
            done.append(f"deleted link {link}")
        state.drop_link(link)
    done.extend(remove_chains(state, run=run))
    done.extend(remove_cgroups(state))
    if state.is_empty():
        state.finish()
    return done


def remove_chains(state: HostsState, *, run: Runner = _run) -> list[str]:
    """Unhook and delete the recorded chains of this machine's iptables (the first is the one OUTPUT jumps to)."""
    if not state.chains:
        return []
    top = state.chains[0]
    while run(["iptables", "-w", "-D", "OUTPUT", "-o", "lo", "-p", "tcp", "-j", top]).returncode == 0:
        pass
    for chain in state.chains:
        run(["iptables", "-w", "-F", chain])
    done = []
    for chain in list(state.chains):
        r = run(["iptables", "-w", "-X", chain])
        if r.returncode == 0:
            done.append(f"deleted chain {chain}")
        elif run(["iptables", "-w", "-n", "-L", chain]).returncode == 0:
            done.append(f"FAILED to delete chain {chain}: {r.stderr.strip()} (it stays recorded)")
            continue
        state.drop_chain(chain)
    return done


def remove_cgroups(state: HostsState, *, attempts: int = 20, every_s: float = 0.05) -> list[str]:
    """Remove the recorded cgroup directories, children first (a node's cgroup empties once it is reaped)."""
    done = []
    for path in sorted(state.cgroups, key=len, reverse=True):
        error = _rmdir_patiently(path, attempts, every_s)
        if error is not None:
            done.append(f"FAILED to remove cgroup {path}: {error} (it stays recorded)")
            continue
        done.append(f"removed cgroup {path}")
        state.drop_cgroup(path)
    return done


def _rmdir_patiently(path: str, attempts: int, every_s: float) -> OSError | None:
    """None once `path` is gone (or never was); the last error if it is still busy after every attempt."""
    for i in range(attempts):
        try:
            os.rmdir(path)
            return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if i + 1 == attempts:
                return e
            time.sleep(every_s)
    return None
