"""A cluster's directory: where `harness cluster` keeps what later commands need to find the cluster.

    clusters/<name>/                 (the root: $PICLUSTER_CLUSTERS, else ./clusters)
      service.json      the record (below)
      cluster.json      a runtime cluster file with the addresses clients reach the nodes at
      faults.jsonl      every fault made and cured by hand, as nemesis ops (history format)
      supervisor.log    the supervisor's own output
      control.sock      the supervisor's control socket
      hosts-state.json  what the supervisor created, for `harness cleanup` (harness/hosts_state.py)
      nodes/<id>.log    each node's log (local, netns; on ssh the logs stay on the hosts)
      data/<id>/        each node's data directory (local, netns)

The record (service.json): the request (`system`, `backend`, `nodes`,
`seed`, `bugs`, `options`, `cluster_file` for ssh), the `state`
(starting, up, stopping, down, failed; `error` says why it failed), the
`supervisor` ({pid, started, socket}), per node its `address`, `pid`,
`process` state and `restarts`, the cluster's `capabilities`, and the last
few `events`.

Rules this module keeps:

- The root is the one the systems' command lines read
  (systems/runtime/real_clusters.py); a cluster's name is its directory's.
- The record is rewritten whole and atomically (temp file + rename). The
  command line writes it before the supervisor starts and after the
  supervisor is gone; the supervisor alone writes it in between.
- A cluster is `running` while its record says up (or starting, or
  stopping) and its supervisor process is alive: the same pid *and* the
  same start time as recorded, so a reused pid never counts.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.hosts_state import start_time
from systems.runtime.real_clusters import CLUSTER_FILE, SERVICE_FILE, clusters_root

FAULTS_FILE = "faults.jsonl"
SUPERVISOR_LOG = "supervisor.log"
SOCKET_FILE = "control.sock"
EVENTS_KEPT = 30
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
LIVE_STATES = ("starting", "up", "stopping")


class ClusterError(ValueError):
    """A cluster cannot be found or used as asked; the message is one line saying what to do."""


@dataclass(frozen=True)
class ClusterDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def record_path(self) -> Path:
        return self.path / SERVICE_FILE

    @property
    def cluster_file(self) -> Path:
        return self.path / CLUSTER_FILE

    @property
    def faults_file(self) -> Path:
        return self.path / FAULTS_FILE

    @property
    def supervisor_log(self) -> Path:
        return self.path / SUPERVISOR_LOG

    def node_log(self, node: str) -> Path:
        return self.path / "nodes" / f"{node}.log"

    # -- the record ------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.record_path.exists()

    def read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.record_path.read_text())
        except FileNotFoundError:
            raise ClusterError(f"{self.path} is not a cluster directory (no {SERVICE_FILE})") from None
        except (OSError, ValueError) as e:
            raise ClusterError(f"{self.record_path} cannot be read: {e}") from None
        if not isinstance(doc, dict):
            raise ClusterError(f"{self.record_path} is not a cluster record")
        return doc

    def write(self, doc: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.record_path.with_name(f".{SERVICE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.record_path)

    def update(self, **changes: Any) -> dict[str, Any]:
        doc = self.read()
        doc.update(changes)
        self.write(doc)
        return doc

    # -- the supervisor --------------------------------------------------------------------------
    def socket_path(self) -> Path:
        """The control socket: in the directory, or (a path too long for AF_UNIX) under /tmp."""
        inside = self.path.resolve() / SOCKET_FILE
        if len(str(inside)) < 100:
            return inside
        import hashlib

        return Path("/tmp") / f"picluster-{hashlib.sha256(str(inside).encode()).hexdigest()[:16]}.sock"

    def running(self, doc: dict[str, Any] | None = None) -> bool:
        doc = doc if doc is not None else self.read()
        return doc.get("state") in LIVE_STATES and supervisor_alive(doc)


def supervisor_alive(doc: dict[str, Any]) -> bool:
    sup = doc.get("supervisor") or {}
    pid, started = sup.get("pid"), sup.get("started")
    if not isinstance(pid, int) or pid <= 0:
        return False
    now = start_time(pid)
    return now is not None and (not isinstance(started, int) or started <= 0 or now == started)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ClusterError(f"bad cluster name {name!r}: letters, digits, '.', '_' and '-', starting with a letter "
                           f"or digit")
    return name


def all_clusters(root: Path | None = None) -> list[ClusterDir]:
    root = root or clusters_root()
    if not root.is_dir():
        return []
    return [ClusterDir(d) for d in sorted(root.iterdir()) if (d / SERVICE_FILE).exists()]


def locate(name: str | None, directory: Path | None = None, *, live_only: bool = True) -> ClusterDir:
    """The cluster a command means: --dir, else --name under the root, else the only running one."""
    if directory is not None:
        c = ClusterDir(directory.absolute())
        c.read()
        return c
    if name is not None:
        c = ClusterDir(clusters_root() / check_name(name))
        if not c.exists():
            known = ", ".join(x.name for x in all_clusters()) or "none"
            raise ClusterError(f"no cluster named {name!r} under {clusters_root()} (clusters: {known})")
        return c
    clusters = all_clusters()
    live = [c for c in clusters if c.running()]
    pool = live if live_only or live else clusters
    if len(pool) == 1:
        return pool[0]
    if not pool:
        raise ClusterError(f"no cluster is running under {clusters_root()}; start one with "
                           f"`harness cluster up SYSTEM`")
    raise ClusterError(f"{len(pool)} clusters under {clusters_root()} ({', '.join(c.name for c in pool)}); "
                       f"say which with --name")
