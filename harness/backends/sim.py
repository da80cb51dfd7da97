"""The `sim` backend: the whole cluster inside one deterministic simulation.

Rules this module keeps (besides those of harness/backends/base.py):

- The world is built from the spec alone: `spec.seed`, `spec.nodes`,
  `spec.bugs`, `spec.options` (session.prepare has put the system's
  DEFAULT_OPTIONS under them; nodes fill in their own defaults anyway), so
  the seed reproduces the run. The system's `start_node` comes from
  harness.registry. Simulator settings may come from
  `spec.options["sim"]`: the NetConfig fields (`base_s`, `tail_s`, `loss`,
  `duplicate`, `reorder`) and `sync_s`, `time_limit_s`.
- `run(spec, body)` starts every node (the system's `start_node`), awaits
  `body(cluster)` on the virtual-time loop, and on every exit path stops
  every node, cancels every task, closes the loop, and writes each node's
  log to run_dir/nodes/<id>.log, the message journal to
  run_dir/journal.jsonl and the seed, digest and counters to run_dir/sim.json
  (when the spec has a run_dir).
- `cluster.client.now()` is virtual time. Fault methods are idempotent and
  act at once (nothing here waits in real time). `corrupt_file` flips bytes
  in both the node's current and durable disk content (the medium lies).
- `set_clock` moves a node's clock in the world (deterministic: it acts at
  the virtual instant the nemesis asks); `set_disk_fault` puts a disk fault
  on the node's store for its current incarnation (a restart starts without
  it, as a new process does on the real backends); `lose_power` is
  `kill`: a sim crash always loses unsynced writes. A restarted node's
  clock is back on true time (a new process, as on the real backends).
- Virtual time is bounded (default: 20 x the test's own length, at least an
  hour) so a body that waits forever ends with `SimTimeLimit`, never a hang.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from base.cluster import CORE_CAPABILITIES, Capability, Grudge, LinkFault
from base.spec import TestSpec
from harness import registry
from systems.runtime.api import NodeConfig, Runtime, check_disk_name
from systems.runtime.sim import NetConfig, SimWorld

T = TypeVar("T")

_WORLD_KEYS = ("sync_s", "time_limit_s")


class SimCluster:
    """`Cluster` over a `SimWorld`."""

    capabilities = CORE_CAPABILITIES | {Capability.CORRUPT}

    def __init__(self, world: SimWorld, run_dir: Path) -> None:
        self.world = world
        self.nodes = list(world.nodes)
        self.client: Runtime = world.client("client")
        self.run_dir = run_dir

    def is_up(self, node: str) -> bool:
        return self.world.is_up(node)

    async def kill(self, node: str) -> None:
        self.world.crash(node)

    async def restart(self, node: str) -> None:
        if not self.world.is_up(node):
            self.world.clocks[node].change({"reset": True})  # a new process starts on true time, as on real
        await self.world.restart(node)

    async def pause(self, node: str) -> None:
        self.world.pause(node)

    async def resume(self, node: str) -> None:
        self.world.resume(node)

    async def partition(self, grudge: Grudge) -> None:
        self.world.partition(grudge)

    async def set_links(self, faults: dict[tuple[str, str], LinkFault]) -> None:
        self.world.set_links(faults)

    async def heal(self) -> None:
        self.world.heal()

    async def set_clock(self, node: str, change: dict[str, Any]) -> dict[str, Any]:
        self._check(node)
        reply = self.world.clocks[node].change(change)
        self._log(node, "clock-changed", change=change, **reply)
        return reply

    async def set_disk_fault(self, node: str, fault: dict[str, Any] | None) -> dict[str, Any]:
        self._check(node)
        faults = self.world.stores[node].faults
        reply = faults.clear() if fault is None else faults.set(fault)
        self._log(node, "disk-fault", **reply)
        return reply

    async def lose_power(self, node: str) -> None:
        self.world.crash(node)

    def _check(self, node: str) -> None:
        if node not in self.world.stores:
            raise ValueError(f"unknown node {node!r} (nodes: {', '.join(self.nodes)})")

    def _log(self, node: str, event: str, **fields: Any) -> None:
        rt = self.world.runtimes.get(node)
        if rt is not None and self.world.is_up(node):
            rt.log.warning(event, **fields)

    async def corrupt_file(self, node: str, name: str, offsets: list[int]) -> list[int]:
        """The medium changes under the node: both what it reads now and what survives a crash."""
        store = self.world.stores[node]
        current = store.current.get(check_disk_name(name))
        if current is None:
            raise FileNotFoundError(f"{node} has no file {name}")
        flipped = [o for o in offsets if 0 <= o < len(current)]
        for o in flipped:
            current[o] ^= 0xFF
        durable = store.durable.get(name)
        if durable is not None:
            buf = bytearray(durable)
            for o in flipped:
                if o < len(buf):
                    buf[o] ^= 0xFF
            store.durable[name] = bytes(buf)
        return flipped


def sim_settings(spec: TestSpec) -> tuple[NetConfig, dict[str, Any]]:
    """Split `spec.options["sim"]` into the network config and the world's own settings."""
    raw = dict(spec.options.get("sim") or {})
    world = {k: raw.pop(k) for k in _WORLD_KEYS if k in raw}
    if "time_limit_s" not in world:
        test_s = spec.time_limit_s + spec.quiet_s + 10 * spec.op_timeout_s
        world["time_limit_s"] = max(3600.0, 20 * test_s)
    return NetConfig.from_dict(raw), world


class SimBackend:
    name = "sim"

    def __init__(self, *, keep_journal: bool = True) -> None:
        self.keep_journal = keep_journal
        self.world: SimWorld | None = None
        """The last run's world (its journal, logs and stats stay readable after the run)."""

    @staticmethod
    def capabilities(spec: TestSpec) -> frozenset[str]:
        return SimCluster.capabilities

    def run(self, spec: TestSpec, body: Callable[[SimCluster], Awaitable[T]]) -> T:
        module = registry.system_module(spec.system)
        config = NodeConfig(system=spec.system, bugs=tuple(spec.bugs), options=dict(spec.options), seed=spec.seed)
        net, settings = sim_settings(spec)
        world = SimWorld(spec.seed, spec.nodes, net=net, keep_journal=self.keep_journal, **settings)
        self.world = world
        run_dir = Path(spec.run_dir) if spec.run_dir else None
        cluster = SimCluster(world, run_dir if run_dir is not None else Path("."))

        async def main() -> T:
            for node in world.nodes:
                await world.start(node, module.start_node, config)
            return await body(cluster)

        try:
            return world.run(main())
        finally:
            if run_dir is not None:
                write_outputs(world, run_dir)


def write_outputs(world: SimWorld, run_dir: Path) -> None:
    """Each node's log as nodes/<id>.log, and the message journal as journal.jsonl."""
    nodes_dir = run_dir / "nodes"
    nodes_dir.mkdir(parents=True, exist_ok=True)
    for node in world.nodes:
        lines = world.logs.get(node, [])
        (nodes_dir / f"{node}.log").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if world.journal.keep:
        (run_dir / "journal.jsonl").write_text(world.journal.to_jsonl(), encoding="utf-8")
    summary = {
        "seed": world.seed,
        "digest": world.digest(),
        "virtual_time_s": world.loop.time(),
        "stats": world.stats,
        "net": dataclasses.asdict(world.net.config),
    }
    (run_dir / "sim.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def make_backend() -> SimBackend:
    return SimBackend()
