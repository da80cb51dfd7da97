"""The ssh backend's cluster file: which hosts run which node, how to reach them, how to power them.

    [cluster]                       # defaults for every node, and cluster-wide settings
    user = "pi"
    key = "~/.ssh/picluster"
    known_hosts = "~/.ssh/known_hosts"
    accept_new_host_keys = false
    switch_off = ["..."]            # optional commands run on the harness machine
    switch_on = ["..."]
    [nodes.n1]
    host = "192.168.1.11"
    power_off = ["..."]             # optional, per node
    power_on = ["..."]
    link_down = ["..."]             # optional, per node: pull its cable (e.g. a managed switch port off)
    link_up = ["..."]
    [consoles.pdu]                  # optional: a console (PDU, managed switch) the commands above may script
    spawn = ["telnet", "192.168.1.60"]
    # power_off = {console = "pdu", steps = [{send = "olOff 1"}, {expect = "Success"}]}  (see console.py)

Rules this module keeps:

- Parsing is strict: bad TOML, a missing required field, a wrong type or an
  unknown key raise one `ClusterConfigError` whose message names the file
  and the field (`nodes.n2.port: ...`). Nothing is guessed.
- A node's settings are its own table over the [cluster] defaults over the
  built-in defaults (ssh_port 22, port 7000, python "python3", sudo false,
  data_dir "picluster" i.e. under the login's home directory).
- Commands (power_off, power_on, link_down, link_up per node; switch_off,
  switch_on for the cluster) are argv lists, or
  a string split with shlex; they run on the harness machine without a
  shell. `{node}` and `{host}` in an argument are replaced by the node's id
  and host, and nothing else is interpreted. A command may instead be a
  script of expect/send steps on a console declared under [consoles.NAME]
  (harness/backends/console.py), played with pexpect.
- Node ids are n1, n2, ... as the harness names them; a run of N nodes uses
  n1..nN, which must all be in the file.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.base import SetupError
from harness.backends.console import Console, ConsoleScript, parse_console, parse_script


class ClusterConfigError(SetupError, ValueError):
    """The cluster file cannot be used; the message names the file and the field."""


NODE_DEFAULTABLE: dict[str, type | tuple[type, ...]] = {
    "user": str,
    "ssh_port": int,
    "key": str,
    "python": str,
    "data_dir": str,
    "sudo": bool,
    "port": int,
}
NODE_ONLY: dict[str, type | tuple[type, ...]] = {
    "host": str,
    "power_off": (list, str, dict),
    "power_on": (list, str, dict),
    "link_down": (list, str, dict),
    "link_up": (list, str, dict),
}
CLUSTER_ONLY: dict[str, type | tuple[type, ...]] = {
    "known_hosts": str,
    "accept_new_host_keys": bool,
    "switch_off": (list, str, dict),
    "switch_on": (list, str, dict),
    "boot_timeout_s": (int, float),
    "connect_timeout_s": (int, float),
}
DEFAULTS: dict[str, Any] = {"ssh_port": 22, "port": 7000, "python": "python3", "sudo": False, "data_dir": "picluster"}
NODE_ID = re.compile(r"n[1-9][0-9]*")
Command = tuple[str, ...] | ConsoleScript
"""A power, switch or link command: a program's argv, or a script on a console."""


@dataclass(frozen=True, slots=True)
class NodeHost:
    node: str
    host: str
    user: str
    ssh_port: int
    key: str | None
    python: str
    data_dir: str
    sudo: bool
    port: int
    power_off: Command | None = None
    power_on: Command | None = None
    link_down: Command | None = None
    link_up: Command | None = None

    @property
    def where(self) -> str:
        return f"node {self.node} ({self.user}@{self.host}:{self.ssh_port})"


@dataclass(frozen=True, slots=True)
class SshClusterConfig:
    source: str
    nodes: dict[str, NodeHost]
    known_hosts: str = "~/.ssh/known_hosts"
    accept_new_host_keys: bool = False
    switch_off: Command | None = None
    switch_on: Command | None = None
    boot_timeout_s: float = 180.0
    connect_timeout_s: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)

    def select(self, nodes: list[str]) -> list[NodeHost]:
        """The hosts for a run's node ids, in order; a clear error when the file lacks one."""
        missing = [n for n in nodes if n not in self.nodes]
        if missing:
            have = ", ".join(sorted(self.nodes, key=_node_order))
            raise ClusterConfigError(
                f"{self.source}: the run wants node {missing[0]} but the file describes only {have} "
                f"(use --nodes {len(self.nodes)})"
            )
        return [self.nodes[n] for n in nodes]


def _node_order(n: str) -> int:
    return int(n[1:]) if NODE_ID.fullmatch(n) else 10**9


def load(path: str | Path) -> SshClusterConfig:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClusterConfigError(f"cluster file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClusterConfigError(f"cannot read cluster file {p}: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ClusterConfigError(f"cluster file {p} is not valid TOML: {e}") from None
    return parse(data, str(p))


def _typed(source: str, where: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join({list: "a list of strings", dict: "a console script"}.get(k, k.__name__) for k in kinds)
        raise ClusterConfigError(f"{source}: {where}{key}: must be {names}, got {value!r}")
    return value


def command(source: str, where: str, value: Any, consoles: dict[str, Console] | None = None) -> Command | None:
    if value is None:
        return None
    if isinstance(value, dict):
        try:
            return parse_script(where, value, consoles or {})
        except ValueError as e:
            raise ClusterConfigError(f"{source}: {e}") from None
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as e:
            raise ClusterConfigError(f"{source}: {where}: cannot split command {value!r}: {e}") from None
    else:
        argv = list(value)
    if not argv or not all(isinstance(a, str) and a for a in argv):
        raise ClusterConfigError(f"{source}: {where}: must be a non-empty command (a list of non-empty strings)")
    return tuple(argv)


def parse(data: dict[str, Any], source: str = "cluster file") -> SshClusterConfig:
    unknown = sorted(set(data) - {"cluster", "nodes", "consoles"})
    if unknown:
        raise ClusterConfigError(f"{source}: unknown top-level key {unknown[0]!r} (known: cluster, nodes, consoles)")
    consoles = _consoles(source, data.get("consoles", {}))
    cluster = data.get("cluster", {})
    if not isinstance(cluster, dict):
        raise ClusterConfigError(f"{source}: cluster: must be a table")
    allowed = {**NODE_DEFAULTABLE, **CLUSTER_ONLY}
    for key, value in cluster.items():
        if key not in allowed:
            raise ClusterConfigError(f"{source}: cluster.{key}: unknown key (known: {', '.join(sorted(allowed))})")
        _typed(source, "cluster.", key, value, allowed[key])
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        raise ClusterConfigError(f"{source}: nodes: missing; describe each node as a [nodes.n1] table")
    defaults = {**DEFAULTS, **{k: v for k, v in cluster.items() if k in NODE_DEFAULTABLE}}
    nodes: dict[str, NodeHost] = {}
    for nid, raw in nodes_raw.items():
        where = f"nodes.{nid}"
        if not NODE_ID.fullmatch(nid):
            raise ClusterConfigError(f"{source}: {where}: node ids are n1, n2, ... (got {nid!r})")
        if not isinstance(raw, dict):
            raise ClusterConfigError(f"{source}: {where}: must be a table")
        known = {**NODE_DEFAULTABLE, **NODE_ONLY}
        for key, value in raw.items():
            if key not in known:
                raise ClusterConfigError(f"{source}: {where}.{key}: unknown key (known: {', '.join(sorted(known))})")
            _typed(source, f"{where}.", key, value, known[key])
        merged = {**defaults, **raw}
        for key in ("host", "user"):
            if not merged.get(key):
                raise ClusterConfigError(f"{source}: {where}.{key}: missing (set it here or in [cluster])")
        for key in ("ssh_port", "port"):
            if not 1 <= merged[key] <= 65535:
                raise ClusterConfigError(f"{source}: {where}.{key}: must be in 1..65535, got {merged[key]}")
        nodes[nid] = NodeHost(
            node=nid,
            host=merged["host"],
            user=merged["user"],
            ssh_port=merged["ssh_port"],
            key=merged.get("key"),
            python=merged["python"],
            data_dir=merged["data_dir"],
            sudo=merged["sudo"],
            port=merged["port"],
            power_off=command(source, f"{where}.power_off", raw.get("power_off"), consoles),
            power_on=command(source, f"{where}.power_on", raw.get("power_on"), consoles),
            link_down=command(source, f"{where}.link_down", raw.get("link_down"), consoles),
            link_up=command(source, f"{where}.link_up", raw.get("link_up"), consoles),
        )
    ids = sorted(nodes, key=_node_order)
    if ids != [f"n{i}" for i in range(1, len(ids) + 1)]:
        raise ClusterConfigError(f"{source}: nodes: ids must be n1..n{len(ids)} without gaps (got {', '.join(ids)})")
    addrs = [(n.host, n.port) for n in nodes.values()]
    if len(set(addrs)) != len(addrs):
        raise ClusterConfigError(f"{source}: nodes: two nodes share the same host and port")
    return SshClusterConfig(
        source=source,
        nodes={n: nodes[n] for n in ids},
        known_hosts=cluster.get("known_hosts", "~/.ssh/known_hosts"),
        accept_new_host_keys=cluster.get("accept_new_host_keys", False),
        switch_off=command(source, "cluster.switch_off", cluster.get("switch_off"), consoles),
        switch_on=command(source, "cluster.switch_on", cluster.get("switch_on"), consoles),
        boot_timeout_s=float(cluster.get("boot_timeout_s", 180.0)),
        connect_timeout_s=float(cluster.get("connect_timeout_s", 10.0)),
    )


def _consoles(source: str, raw: Any) -> dict[str, Console]:
    if not isinstance(raw, dict):
        raise ClusterConfigError(f"{source}: consoles: must be tables like [consoles.pdu]")
    try:
        return {name: parse_console(name, table) for name, table in raw.items()}
    except ValueError as e:
        raise ClusterConfigError(f"{source}: {e}") from None


def expand(argv: tuple[str, ...], node: NodeHost | None = None) -> list[str]:
    """The command with `{node}` and `{host}` replaced (literally; nothing else is interpreted)."""
    out = []
    for a in argv:
        if node is not None:
            a = a.replace("{node}", node.node).replace("{host}", node.host)
        out.append(a)
    return out
