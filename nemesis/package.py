"""What a nemesis package is: the fault protocol, its context, and its declaration.

A package is one fault you can ask for by name (`--nemesis kill`). Its module
declares it with a `NemesisPackage`: the name, a one-line summary, how to make
one, the fault kinds it records (base.faults.FaultKind: op names, targets,
colour, effect, words), the cluster capabilities it needs and what else it
requires of the run. The catalog (nemesis/catalog.py) finds every module with
`PACKAGES` and refuses a package that cannot apply before anything starts.

Rules every package keeps:
- `start` inflicts the fault through the backend-neutral `Cluster` API and
  records exactly what it did (`ctx.record(op, value)`, with the op names of
  the kinds it declared), after the fault is in place; `stop` cures exactly
  that and records it too. Either may be called when there is nothing to do.
- A package never leaves the cluster worse than it found it after `stop`;
  `ctx` tracks killed and paused nodes and the network faults in place, so
  the final heal (nemesis/heal.py) can finish any cure.
- Targets come from `ctx.rng` (seeded), or from what the nodes report, so a
  sim run reproduces from its seed.
- Ops recorded while a package acts carry its name (`package`), so a
  history says which package inflicted each fault.
"""

from __future__ import annotations

import contextvars
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from base.cluster import Capability, Cluster
from base.faults import OP_FIELDS, FaultKind

Sink = Callable[[str, Any, dict[str, Any]], None]
"""Where recorded nemesis ops go: (f, value, extra fields)."""
LeaderFinder = Callable[[], Awaitable[str | None]]

ACTING: contextvars.ContextVar[str | None] = contextvars.ContextVar("nemesis_package", default=None)
"""The package acting right now (set by the schedule; inherited by tasks a package starts)."""


@dataclass
class NemesisContext:
    cluster: Cluster
    rng: random.Random
    sink: Sink
    find_leader: LeaderFinder | None = None
    system: str = ""
    """The system under test, for faults shaped per system (nemesis/partition.py's shape weights)."""
    killed: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    network_cures: list[str] = field(default_factory=list)
    """The stop ops to record once the network is healed, one per network fault in place."""
    recorded: Counter[str] = field(default_factory=Counter)
    """Package -> how many ops it has recorded (the schedule tells a package that found nothing to do by it)."""
    interval_s: float | None = None
    """The random schedule's fault spacing (a package that waits for a target waits in proportion). None: no
    random schedule."""
    stop_at: float | None = None
    """When the random schedule stops dealing faults (test clock; the clients stop then too): a package that
    waits for something to hit waits no longer than this. None: no schedule said."""

    @property
    def nodes(self) -> list[str]:
        return list(self.cluster.nodes)

    def record(self, f: str, value: Any, **detail: Any) -> None:
        """Record a nemesis op, naming the package acting; `detail` adds fields (e.g. a partition's shape)."""
        clash = set(detail) & OP_FIELDS
        if clash:
            raise ValueError(f"nemesis op detail may not use the reserved field(s) {sorted(clash)}")
        package = ACTING.get()
        extra = {**({"package": package} if package else {}), **detail}
        self.sink(f, value, extra)
        if package:
            self.recorded[package] += 1

    def network_fault(self, stop_op: str) -> None:
        """Note a network fault in place, to be recorded cured by `stop_op` when the network heals."""
        if stop_op not in self.network_cures:
            self.network_cures.append(stop_op)

    async def pick_target(self, candidates: list[str], leader_bias: float = 0.5) -> str | None:
        """A node to hit: the leader with probability `leader_bias` when one is known, else random."""
        if not candidates:
            return None
        if self.find_leader is not None and self.rng.random() < leader_bias:
            leader = await self.find_leader()
            if leader in candidates:
                return leader
        return self.rng.choice(sorted(candidates))

    def running(self) -> list[str]:
        return sorted(n for n in self.nodes if n not in self.killed and n not in self.paused)


class Fault(Protocol):
    name: str

    async def start(self, ctx: NemesisContext) -> None: ...

    async def stop(self, ctx: NemesisContext) -> None: ...


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a package needs of a run besides cluster capabilities."""

    leader: bool = False
    """A system that reports a leader (its workload module has `find_leader`)."""
    min_nodes: int = 1
    systems: frozenset[str] = frozenset()
    """The systems it works on; empty: any."""
    more_nodes_than_option: str | None = None
    """A system option the node count must exceed (kv's replication factor `n`)."""
    runtime_rpc: bool = False
    """It steers by what the nodes answer to the runtime's own RPCs (their `status`): runtime-seam systems only,
    not an external program such as etcd."""


@dataclass(frozen=True, slots=True)
class NemesisPackage:
    """A package's declaration: what it is called, what it does, what it records and what it needs."""

    name: str
    summary: str
    make: Callable[[], Fault]
    kinds: tuple[FaultKind, ...]
    needs: frozenset[Capability] = frozenset()
    requires: Requirements = Requirements()


@dataclass(frozen=True, slots=True)
class Target:
    """What a run offers a nemesis, all known before the cluster starts."""

    system: str
    backend: str
    node_count: int
    capabilities: frozenset[str]
    reports_leader: bool
    options: Mapping[str, Any] = field(default_factory=dict)
    external: bool = False
    """The system's nodes are an external program (etcd), which speaks none of the runtime's RPCs."""


def system_refusal(pkg: NemesisPackage, system: str, reports_leader: bool, external: bool = False) -> str | None:
    req = pkg.requires
    if req.systems and system not in req.systems:
        return f"the {pkg.name} nemesis works on {', '.join(sorted(req.systems))} only, not {system}"
    if req.runtime_rpc and external:
        return (f"the {pkg.name} nemesis steers by the runtime's status RPC, which {system}'s nodes (an external "
                f"program) do not answer")
    if req.leader and not reports_leader:
        return f"the {pkg.name} nemesis needs a system that reports a leader; {system} does not"
    return None


def backend_refusal(pkg: NemesisPackage, backend: str, capabilities: frozenset[str]) -> str | None:
    missing = sorted(str(c) for c in pkg.needs if c not in capabilities)
    if missing:
        what = " and ".join(CAPABILITY_WORDS.get(c, c) for c in missing)
        return f"the {pkg.name} nemesis needs a cluster that can {what}; the {backend} backend's cannot"
    return None


def nodes_refusal(pkg: NemesisPackage, node_count: int, options: Mapping[str, Any]) -> str | None:
    req = pkg.requires
    if node_count < req.min_nodes:
        return f"the {pkg.name} nemesis needs at least {req.min_nodes} nodes; this run has {node_count}"
    opt = req.more_nodes_than_option
    if opt is not None and isinstance(options.get(opt), int) and node_count <= options[opt]:
        return f"the {pkg.name} nemesis needs more nodes than option {opt} ({options[opt]}); this run has {node_count}"
    return None


def refusal(pkg: NemesisPackage, target: Target) -> str | None:
    """Why `pkg` cannot apply to this run (one line), or None when it can."""
    return (
        system_refusal(pkg, target.system, target.reports_leader, target.external)
        or backend_refusal(pkg, target.backend, target.capabilities)
        or nodes_refusal(pkg, target.node_count, target.options)
    )


CAPABILITY_WORDS = {
    Capability.KILL: "kill and restart nodes",
    Capability.PAUSE: "pause nodes",
    Capability.PARTITION: "partition the network",
    Capability.LINKS: "degrade links",
    Capability.CABLE: "pull a node's cable",
    Capability.SWITCH: "turn the switch off",
    Capability.PLUG: "cut a node's power",
    Capability.CORRUPT: "flip bytes on a node's disk",
    Capability.CLOCK: "move a node's clock",
    Capability.DISK_FAULT: "make a node's disk fail, fill up or slow down",
}


class UnsupportedFault(RuntimeError):
    """The cluster lacks a method a fault needs (a package used where the catalog would refuse it)."""


def cluster_method(ctx: NemesisContext, fault: str, name: str) -> Callable[..., Any]:
    m = getattr(ctx.cluster, name, None)
    if m is None:
        raise UnsupportedFault(f"the {fault!r} nemesis needs {name}() which {type(ctx.cluster).__name__} does not have")
    return m


async def heal_network(ctx: NemesisContext) -> None:
    """Remove every network fault in place and record each one's cure."""
    if not ctx.network_cures:
        return
    await ctx.cluster.heal()
    cures, ctx.network_cures = ctx.network_cures, []
    for op in cures:
        ctx.record(op, None)
