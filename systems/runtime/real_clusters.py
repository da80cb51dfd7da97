"""Find the cluster file of a running cluster (`harness cluster up`), for the systems' command lines.

    python -m systems.raft.cli put k1 hello          # no --cluster: the running raft cluster

Rules this module keeps:

- Clusters live in the clusters directory: $PICLUSTER_CLUSTERS when set,
  else `clusters/` under the current directory (as `results/` is); one
  directory per cluster, named after it.
- A cluster directory holds `service.json` (its supervisor's record: the
  system, the state, the supervisor's pid) and `cluster.json` (a cluster
  file with the addresses clients reach the nodes at).
- A cluster is running when its record says "up" and its supervisor's pid
  still exists. `find_cluster_file(system)` returns the cluster.json of the
  one running cluster of that system; none, or more than one, is a
  `ClusterFileError` that says what to pass as --cluster.
- It only reads files: nothing is started or asked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from systems.runtime.node_main import ClusterFileError

ENV = "PICLUSTER_CLUSTERS"
SERVICE_FILE = "service.json"
CLUSTER_FILE = "cluster.json"


def clusters_root() -> Path:
    """Where `harness cluster` keeps its clusters."""
    return Path(os.environ.get(ENV) or "clusters").absolute()


def read_service(directory: Path) -> dict[str, Any] | None:
    """A cluster directory's record, or None when it has none (or an unreadable one)."""
    try:
        doc = json.loads((directory / SERVICE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def supervisor_running(doc: dict[str, Any]) -> bool:
    pid = doc.get("supervisor", {}).get("pid") if isinstance(doc.get("supervisor"), dict) else None
    return isinstance(pid, int) and pid > 0 and Path(f"/proc/{pid}").exists()


def running_clusters(system: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """(directory, record) of every running cluster (of `system`, when given), by name."""
    root = clusters_root()
    if not root.is_dir():
        return []
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        doc = read_service(d)
        if doc is None or doc.get("state") != "up" or not supervisor_running(doc):
            continue
        if system is None or doc.get("system") == system:
            out.append((d, doc))
    return out


def find_cluster_file(system: str) -> str:
    """The cluster file of the one running `system` cluster; ClusterFileError when there is none or several."""
    found = running_clusters(system)
    if not found:
        raise ClusterFileError(
            f"no --cluster given and no {system} cluster is running under {clusters_root()} "
            f"(start one with `harness cluster up {system}`, or pass --cluster FILE)")
    if len(found) > 1:
        listed = ", ".join(str(d / CLUSTER_FILE) for d, _ in found)
        raise ClusterFileError(f"no --cluster given and {len(found)} {system} clusters are running; "
                               f"pass one with --cluster: {listed}")
    return str(found[0][0] / CLUSTER_FILE)
