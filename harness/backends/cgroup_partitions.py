"""Partitions between external programs on the local backend: a cgroup per node, iptables rules that
match the sending node's cgroup (root only; `networks.Chains`).

Nodes on one machine share the loopback interface, and an external program (etcd) has no packet
filter of ours, so neither the runtime filter nor a source address can say who sent a packet; the
sending socket's cgroup can (`-m cgroup --path`, cgroup v2).

Rules this module keeps:

- `missing()` says what this machine lacks (root, iptables, a cgroup2 mount); empty when usable.
- Each node runs in `<cgroup2>/picluster-<run>/<node>`: `wrap(node, argv)` is an argv that joins the
  cgroup and then execs the program, so the pid the lifecycle holds is the node's and its first
  packet already carries its cgroup. A restarted node joins again.
- One top chain `PC-<run>` is jumped to from OUTPUT for TCP on `lo`. It marks each new connection
  (CONNMARK, within MARK_MASK) with the number of the node that opened it, then jumps to one chain
  per node, `PC-<run>-<i>`.
- `set_drops(Y, sources)` rewrites Y's chain atomically (iptables-restore): for each source X, drop
  what X's cgroup sends to one of Y's endpoints (connections X opens), and the answers on every
  connection Y opened (its connmark) to one of X's endpoints: those are matched by the connection's
  original destination, not by cgroup, because the kernel sends a SYN-ACK from a request socket that
  the cgroup match cannot see. That is "Y drops every packet from X" for connections in both
  directions, as an INPUT rule does on a host of its own. The harness's client is in no node's cgroup
  and opens connections no node's mark names, so it is never dropped.
- Every chain and cgroup is recorded in the run's HostsState before it is created; `remove()`
  (teardown) and `harness cleanup` (hosts_state.cleanup_state) remove them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.hosts_state import HostsState, remove_cgroups, remove_chains

MARK_MASK = 0x00FF0000
MARK_SHIFT = 16
MAX_NODES = 255
Endpoint = tuple[str, int]


def cgroup2_root(mounts: str | None = None) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on a hybrid host)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def missing() -> list[str]:
    """What keeps this machine from partitioning local external nodes (empty when nothing does)."""
    out = []
    if os.geteuid() != 0:
        out.append("root (iptables rules and a cgroup per node)")
    for tool in ("iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            out.append(f"the `{tool}` command (apt-get install iptables)")
    if cgroup2_root() is None:
        out.append("a cgroup2 mount (cgroup v2)")
    return out


def _ipt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, timeout=30, check=False)


class CgroupChains:
    """One run's node cgroups and iptables chains in this machine's own namespace (see module rules)."""

    parallel = False  # one machine's iptables: one writer at a time

    def __init__(self, run_id: str, nodes: list[str], endpoints: Callable[[str], list[Endpoint]],
                 state: HostsState, root: Path | None = None) -> None:
        if len(nodes) > MAX_NODES:
            raise ValueError(f"at most {MAX_NODES} nodes can be told apart by connection marks")
        found = root or cgroup2_root()
        if found is None:
            raise RuntimeError("no cgroup2 mount: local partitions of external programs need cgroup v2")
        tag = "".join(c for c in run_id if c.isalnum())[-10:]
        self.nodes = list(nodes)
        self.endpoints = endpoints
        """Where a node listens (every address and port other nodes connect to), asked at each change."""
        self.state = state
        self.group = found / f"picluster-{tag}"
        self.top = f"PC-{tag}"

    # -- names ------------------------------------------------------------------------------------
    def chain(self, node: str) -> str:
        return f"{self.top}-{self.nodes.index(node)}"

    def mark(self, node: str) -> str:
        return f"{(self.nodes.index(node) + 1) << MARK_SHIFT:#x}/{MARK_MASK:#x}"

    def cgroup_path(self, node: str) -> str:
        """The node's cgroup as the iptables match names it (relative to the cgroup2 root)."""
        return f"{self.group.name}/{node}"

    def procs_file(self, node: str) -> Path:
        return self.group / node / "cgroup.procs"

    # -- setting up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make every node's cgroup and the top chain (recorded first); before any node starts."""
        self.state.add_cgroup(str(self.group))
        self.group.mkdir(exist_ok=True)
        for node in self.nodes:
            self.state.add_cgroup(str(self.group / node))
            (self.group / node).mkdir(exist_ok=True)
        self.state.add_chain(self.top)
        for node in self.nodes:
            self.state.add_chain(self.chain(node))
        lines = ["*filter", f":{self.top} - [0:0]"]
        lines += [f":{self.chain(n)} - [0:0]" for n in self.nodes]
        for node in self.nodes:
            lines.append(f"-A {self.top} -m conntrack --ctstate NEW -m cgroup --path {self.cgroup_path(node)} "
                         f"-j CONNMARK --set-xmark {self.mark(node)}")
        lines += [f"-A {self.top} -j {self.chain(n)}" for n in self.nodes]
        self._restore(lines)
        if _ipt("-C", "OUTPUT", "-o", "lo", "-p", "tcp", "-j", self.top).returncode != 0:
            r = _ipt("-I", "OUTPUT", "-o", "lo", "-p", "tcp", "-j", self.top)
            if r.returncode != 0:
                raise RuntimeError(f"iptables: could not jump to {self.top}: {r.stderr.strip()}")

    def wrap(self, node: str, argv: list[str]) -> list[str]:
        """`argv` started inside the node's cgroup (the shell joins it, then execs the program)."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.procs_file(node)), *argv]

    # -- networks.Chains --------------------------------------------------------------------------
    def install(self, node: str) -> None:
        """Nothing per host to redo: the machine's iptables outlive a node's power cycle."""
        return None

    def set_drops(self, node: str, sources: list[str]) -> None:
        chain = self.chain(node)
        lines = ["*filter", f":{chain} - [0:0]"]
        for src in sources:
            for host, port in self.endpoints(node):  # connections src opens to node
                lines.append(f"-A {chain} -m cgroup --path {self.cgroup_path(src)} -m conntrack --ctdir ORIGINAL "
                             f"-d {host}/32 -p tcp --dport {port} -j DROP")
            for host, port in self.endpoints(src):  # src's answers on connections node opened to it
                lines.append(f"-A {chain} -m conntrack --ctdir REPLY --ctorigdst {host} --ctorigdstport {port} "
                             f"-m connmark --mark {self.mark(node)} -j DROP")
        self._restore(lines)

    # -- tearing down -----------------------------------------------------------------------------
    def remove(self) -> list[str]:
        """Remove the chains and the cgroups (the nodes must be stopped first); a line per thing removed."""
        done = remove_chains(self.state)
        return done + remove_cgroups(self.state)

    def _restore(self, lines: list[str]) -> None:
        text = "\n".join([*lines, "COMMIT", ""])
        r = subprocess.run(["iptables-restore", "-w", "--noflush"], input=text, capture_output=True, text=True,
                           timeout=30, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"iptables-restore failed: {r.stderr.strip()}")
