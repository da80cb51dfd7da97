"""What a node *is*: the program that runs it, how to tell it is ready, and what to wipe before it starts.

The shared process-cluster lifecycle (harness/backends/lifecycle.py) starts,
kills, pauses, restarts and partitions nodes without knowing what they run;
it asks a `NodeProgram`. Today every node is a runtime-seam node
(`RuntimeProgram`: `python -m systems.<name>`); an external program (etcd,
say) is another `NodeProgram` with its own command line, readiness probe and
wipe, run by the same lifecycle on every process backend.

Rules this module keeps:

- A program is given a `NodeSite` (where one node lives on its host: its
  address, data directory, log files, the run's config directory, the host's
  interpreter) and answers with an argv list; it never runs anything itself.
- `config_files(addrs)` are the files every host needs for this run (the
  runtime's cluster.json), named relative to the site's `config_dir`; the
  backend puts them there before any node starts, and again after the
  addresses change (a port taken at start).
- `marker` is one argument that every node process of this run carries
  verbatim on its command line (the runtime's cluster file path); a recorded
  pid is only ever signalled while its command line still shows it, so a pid
  reused by another program is left alone.
- `probe` returns None once the node is ready (for the runtime: `ping`
  answered `ready: true` by the very pid that was started), else a short
  description of what it saw; it never raises for a node that is not up yet.
- `carries_filter` says whether the node has the runtime's packet filter,
  set through control frames; without it, partitions need iptables and link
  faults cannot be made.
- A program whose nodes authenticate (`KeyedProgram`, the runtime's) makes
  fresh keys for each run (`keys(nodes)`, real_auth.ClusterKeys); its
  cluster file points at `KEY_DIR` beside it, where the lifecycle puts them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from base.spec import TestSpec
from systems.runtime.api import RpcError
from systems.runtime.node_main import EXIT_PORT_TAKEN
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_auth import ClusterKeys
from systems.runtime.real_transport import Address

KEY_DIR = "keys"
"""The run's key directory, beside the cluster file on every host (owner-only)."""


@dataclass(frozen=True, slots=True)
class NodeSite:
    """Where one node lives on its host; every path is as the node's host sees it."""

    node: str
    host: str
    """The address the node listens on."""
    port: int
    data_dir: str
    log: str
    """The node's own log file."""
    out: str
    """Where its stdout and stderr go (may be the same file as `log`)."""
    config_dir: str
    """The run's directory on that host, holding `config_files`."""
    python: str
    """The interpreter on that host (for programs written in Python)."""


class NodeProgram(Protocol):
    """What runs as a node, and how the lifecycle tells that it is ready."""

    carries_filter: bool

    def argv(self, site: NodeSite) -> list[str]:
        """The node's command line."""
        ...

    def config_files(self, addrs: dict[str, Address]) -> dict[str, str]:
        """Files (name relative to the config dir -> text) every host needs for a run at these addresses."""
        ...

    def marker(self, config_dir: str) -> str:
        """An argument every node process of this run carries verbatim on its command line."""
        ...

    def wipe(self, site: NodeSite) -> list[str]:
        """Paths removed before the node's first start (a fresh data directory)."""
        ...

    def port_taken(self, status: int | None) -> bool:
        """True if the exit status says the node's port was taken (the cluster may start over elsewhere)."""
        ...

    async def probe(self, client: ClientEndpoint, site: NodeSite, pid: int) -> str | None:
        """None when the node is ready; otherwise what was seen instead."""
        ...


@runtime_checkable
class KeyedProgram(Protocol):
    """A program whose nodes prove who they are with per-run keys."""

    def keys(self, nodes: list[str]) -> ClusterKeys | None:
        """Fresh keys for a run of these nodes (None: this program runs open)."""
        ...


CLUSTER_FILE = "cluster.json"


@dataclass(frozen=True, slots=True)
class RuntimeProgram:
    """A runtime-seam node: `python -m systems.<system> --cluster C --id N --data-dir D --log L`."""

    system: str
    seed: int = 0
    bugs: tuple[str, ...] = ()
    options: dict[str, Any] | None = None
    probe_timeout_s: float = 0.5
    carries_filter: bool = True
    auth: bool = True
    """Nodes authenticate every connection with keys made for the run (real_auth)."""

    @classmethod
    def for_spec(cls, spec: TestSpec) -> RuntimeProgram:
        """The program a spec asks for. `spec.options` already hold the system's defaults (session.prepare)."""
        return cls(system=spec.system, seed=spec.seed, bugs=tuple(spec.bugs), options=dict(spec.options))

    def cluster_file(self, config_dir: str) -> str:
        return f"{config_dir.rstrip('/')}/{CLUSTER_FILE}"

    def argv(self, site: NodeSite) -> list[str]:
        return [
            site.python, "-m", f"systems.{self.system}",
            "--cluster", self.cluster_file(site.config_dir),
            "--id", site.node,
            "--data-dir", site.data_dir,
            "--log", site.log,
        ]

    def config_files(self, addrs: dict[str, Address]) -> dict[str, str]:
        doc = {
            "system": self.system,
            "seed": self.seed,
            "bugs": list(self.bugs),
            "options": dict(self.options or {}),
            "nodes": {n: {"host": h, "port": p} for n, (h, p) in addrs.items()},
        }
        if self.auth:
            doc["auth"] = {"keys": KEY_DIR}
        return {CLUSTER_FILE: json.dumps(doc, indent=2) + "\n"}

    def keys(self, nodes: list[str]) -> ClusterKeys | None:
        return ClusterKeys.generate(nodes) if self.auth else None

    def marker(self, config_dir: str) -> str:
        return self.cluster_file(config_dir)

    def wipe(self, site: NodeSite) -> list[str]:
        return []  # a run's data directories are fresh; a restart keeps what the node synced

    def port_taken(self, status: int | None) -> bool:
        return status == EXIT_PORT_TAKEN

    async def probe(self, client: ClientEndpoint, site: NodeSite, pid: int) -> str | None:
        try:
            reply = await client.control(site.node, "ping", None, timeout=self.probe_timeout_s)
        except RpcError as e:
            return repr(e)
        if isinstance(reply, dict) and reply.get("pid") == pid and reply.get("ready"):
            return None
        return f"ping answered {reply!r} (expected ready from pid {pid})"
