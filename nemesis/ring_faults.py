"""Faults aimed at a key's preference list (for the Dynamo-style KV store).

A random partition rarely leaves clients cut off from *every* replica of a
key, yet that is the only case where a write is acknowledged by stand-ins
alone and only hinted handoff can bring it home. This package makes that case
happen on purpose, as a Dynamo operator's worst day would.

Rules it keeps:

- `cut-replicas`: ask the running nodes (`kv.ring`, in sorted order) for the
  ring they use and the keys they store; pick one stored key with `ctx.rng`;
  partition the key's preference list (computed by the same pure ring code
  the nodes use) away from every other node. Clients on the far side keep
  writing through sloppy quorums of stand-ins.
- `split-replicas`: the same choice of key, but the key's first replica
  goes to one side with half of the non-replicas (rounded down) and its
  other replicas to the other side with the rest: writes coordinated by the
  lone replica can reach only it among the real replicas, while strict
  quorums of the others go on serving reads. A coordinator that counts acks
  wrongly shows up as a strict read missing a strict write.
- Both record exactly what they did as the core partition package does
  (`start-partition` with the grudge, cured by `stop-partition`), so reports
  shade it and the final heal cures it. When no node answers, no key is
  stored yet, or the replicas are the whole cluster, it does nothing and
  records nothing.
- Targets come only from `ctx.rng` and the nodes' answers, so a sim run
  reproduces from its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from base.cluster import Capability
from nemesis import grudges
from nemesis.package import NemesisContext, NemesisPackage, Requirements, heal_network
from nemesis.partition import PARTITION
from nemesis.partition import partition as set_partition
from systems.kv.client import Ring
from systems.runtime.api import RpcError

RING_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class RingView:
    members: tuple[str, ...]
    vnodes: int
    n: int
    keys: tuple[str, ...]

    def replicas(self, key: str) -> list[str]:
        return Ring.of(self.members, self.vnodes).preference_list(key, self.n)


def parse_view(answers: list[Any]) -> RingView | None:
    """The first well-formed answer's ring, with the keys of every answer; None when none is usable."""
    ring: tuple[tuple[str, ...], int, int] | None = None
    keys: set[str] = set()
    for a in answers:
        if not isinstance(a, dict):
            continue
        members, vnodes, n = a.get("members"), a.get("vnodes"), a.get("n")
        if ring is None and isinstance(members, list) and members and isinstance(vnodes, int) and isinstance(n, int):
            ring = (tuple(str(m) for m in members), vnodes, n)
        keys.update(k for k in a.get("keys") or [] if isinstance(k, str))
    if ring is None or not keys:
        return None
    return RingView(ring[0], ring[1], ring[2], tuple(sorted(keys)))


def split_off(nodes: list[str], replicas: list[str], rng: random.Random) -> grudges.Grudge | None:
    """A grudge putting replicas[0] with half the non-replicas, the other replicas with the rest."""
    if len(replicas) < 2:
        return None
    others = sorted(set(nodes) - set(replicas))
    rng.shuffle(others)
    k = len(others) // 2
    lone = {replicas[0], *others[:k]}
    return grudges.from_components(nodes, [lone, set(nodes) - lone])


def cut_off(nodes: list[str], replicas: list[str]) -> grudges.Grudge | None:
    """A grudge splitting `replicas` from the other nodes; None when one side would be empty."""
    inside = set(replicas) & set(nodes)
    outside = set(nodes) - inside
    if not inside or not outside:
        return None
    return grudges.from_components(nodes, [inside, outside])


async def ring_view(ctx: NemesisContext) -> RingView | None:
    rt = ctx.cluster.client
    answers = []
    for node in sorted(n for n in ctx.nodes if n not in ctx.killed and n not in ctx.paused):
        try:
            answers.append(await rt.call(node, "kv.ring", {}, timeout=RING_TIMEOUT_S))
        except RpcError:
            continue
    return parse_view(answers)


class CutReplicas:
    """Partition one stored key's replicas away from the rest of the cluster."""

    name = "cut-replicas"

    def grudge(self, ctx: NemesisContext, replicas: list[str]) -> grudges.Grudge | None:
        return cut_off(ctx.nodes, replicas)

    async def start(self, ctx: NemesisContext) -> None:
        view = await ring_view(ctx)
        if view is None:
            return
        key = ctx.rng.choice(view.keys)
        grudge = self.grudge(ctx, view.replicas(key))
        if grudge is None:
            return
        await set_partition(ctx, grudge, shape=f"{self.name} of key {key}")

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)


class SplitReplicas(CutReplicas):
    """Partition one stored key's first replica away from its other replicas."""

    name = "split-replicas"

    def grudge(self, ctx: NemesisContext, replicas: list[str]) -> grudges.Grudge | None:
        return split_off(ctx.nodes, replicas, ctx.rng)


PACKAGES = (
    NemesisPackage(
        name="cut-replicas",
        summary="partition one key's replicas away from every other node",
        make=CutReplicas,
        kinds=(PARTITION,),
        needs=frozenset({Capability.PARTITION}),
        requires=Requirements(systems=frozenset({"kv"}), more_nodes_than_option="n"),
    ),
    NemesisPackage(
        name="split-replicas",
        summary="split one key's replicas, the first from the others",
        make=SplitReplicas,
        kinds=(PARTITION,),
        needs=frozenset({Capability.PARTITION}),
        requires=Requirements(systems=frozenset({"kv"}), min_nodes=2),
    ),
)
