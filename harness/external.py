"""External systems: nodes that are a program of their own (etcd), run by the shared process lifecycle.

A system package is external when it names a program in `EXTERNAL` (see
systems/etcd). It declares, as pure functions, what the lifecycle needs:
`argv(binary, node, data_dir, config_dir, addrs, options)`,
`config_files(addrs)`, `marker(config_dir)`, `wipe(data_dir)`, and a health
check (`HEALTH_PATH`, `healthy(body)`). `ExternalProgram` turns that into
a `NodeProgram` (harness/backends/node_program.py); nothing else in the
lifecycle or the runner knows the difference.

Rules this module keeps:

- The program has no packet filter of its own (`carries_filter` False):
  partitions need iptables (netns, ssh; on local, as root, rules matching
  each node's cgroup: harness/backends/cgroup_partitions.py), and link
  faults cannot be made.
- `endpoints(node)` is every address and port other members connect to
  (the module's `endpoints(node, addrs)`, else the client address alone).
- `config_files(addrs)` is called before any node starts (and again when
  the addresses change); it also fixes the addresses `argv` gives every
  member, so the two always agree.
- Readiness: at a node's first start, its health check must pass (HTTP GET
  of `HEALTH_PATH` on its client address), so a run begins with a cluster
  that serves; at a restart, its client port accepting connections is
  enough, because a member restarted into a minority (a partition, the
  other members killed) cannot be healthy until the fault is cured, and
  the nemesis must not wait for that.
- `probe` never raises; it says what it saw instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from harness.backends.node_program import NodeSite
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_transport import Address


def is_external(module: ModuleType) -> bool:
    return isinstance(getattr(module, "EXTERNAL", None), str)


async def http_get(host: str, port: int, path: str, timeout_s: float) -> tuple[int, bytes]:
    """(status, body) of a plain HTTP/1.1 GET; raises OSError or TimeoutError."""

    async def go() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, body = raw.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise OSError(f"not an HTTP answer: {raw[:60]!r}")
        return int(parts[1]), body

    return await asyncio.wait_for(go(), timeout_s)


async def accepts(host: str, port: int, timeout_s: float) -> str | None:
    """None if a TCP connection to host:port is accepted, else what went wrong."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as e:
        return f"{host}:{port} does not accept connections ({e!r})"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


@dataclass
class ExternalProgram:
    """A `NodeProgram` for an external system package (see the module rules)."""

    system: str
    module: ModuleType
    options: dict[str, Any]
    binary: str = ""
    probe_timeout_s: float = 0.5
    carries_filter: bool = False
    addrs: dict[str, Address] = field(default_factory=dict)
    """Every node's client address as the members see each other (set by `config_files`)."""
    started_once: set[str] = field(default_factory=set)
    """Nodes that have been healthy once: a restart only waits for their client port."""

    def __post_init__(self) -> None:
        self.binary = self.binary or str(self.module.EXTERNAL)

    def argv(self, site: NodeSite) -> list[str]:
        if site.node not in self.addrs:
            raise RuntimeError(f"{self.system}: no address for {site.node}; config_files() must come first")
        return list(self.module.argv(self.binary, site.node, site.data_dir, site.config_dir, self.addrs,
                                     self.options))

    def config_files(self, addrs: dict[str, Address]) -> dict[str, str]:
        self.addrs = dict(addrs)
        return dict(self.module.config_files(self.addrs))

    def endpoints(self, node: str) -> list[Address]:
        find = getattr(self.module, "endpoints", None)
        return list(find(node, self.addrs)) if find is not None else [self.addrs[node]]

    def marker(self, config_dir: str) -> str:
        return str(self.module.marker(config_dir))

    def wipe(self, site: NodeSite) -> list[str]:
        return list(self.module.wipe(site.data_dir))

    def port_taken(self, status: int | None) -> bool:
        return False  # an external program says so only in its log, not in its exit status

    async def probe(self, client: ClientEndpoint, site: NodeSite, pid: int) -> str | None:
        if site.node in self.started_once:
            return await accepts(site.host, site.port, self.probe_timeout_s)
        try:
            status, body = await http_get(site.host, site.port, self.module.HEALTH_PATH, self.probe_timeout_s)
        except (OSError, TimeoutError) as e:
            return f"{self.module.HEALTH_PATH} did not answer ({e!r})"
        if status == 200 and self.module.healthy(body):
            self.started_once.add(site.node)
            return None
        return f"{self.module.HEALTH_PATH} answered {status} {body[:80]!r}"
