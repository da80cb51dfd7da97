"""Leader-targeting fault packages: faults aimed at whoever leads, in the orders that break consensus.

Each package's `start` launches a loop of rounds that runs until `stop`;
every round picks its victims from what the nodes report (the `status` RPC:
role, term, vote, commit_index; or `ctx.find_leader`) and from `ctx.rng`, so
a sim run reproduces from its seed.

- leader-churn: kill the leader, restart it after a short random delay, again.
- leader-isolate: cut the leader off from every other node a few seconds
  (long enough for the rest to elect another), heal, again.
- figure8: the Raft paper's Figure 8, played with slowed links (5+ nodes):
  leader L1 replicates to one follower F only; L1 dies and P is elected by
  the rest and dies before its entries spread; L1 returns and L1 or F (Q)
  wins, pushing the old-term entries to the rest; the moment Q's commit
  index moves, {L1, F} are cut off and P returns. Healthy Raft only moves
  Q's commit index once Q's own entry is on a majority, so P cannot win then.
- voter-crash: kill the leader X, bridge the others through X (the two
  sides cannot talk), restart X, and the moment X reports a vote in a new
  term, kill and restart it at once: both sides campaign in one term, and
  a voter that forgot its vote elects both.

Rules every package keeps (besides nemesis/package.py's):
- Every fault is recorded with the core kinds' ops (nemesis/kill.py,
  partition.py, flaky.py): kill/restart, start-partition/stop-partition (a
  new partition replacing the one in place is recorded as stop-partition
  then start-partition), start-links/stop-links.
- They need a system whose nodes report a leader (the `status` RPC; the
  workload module's `find_leader`): the catalog refuses them elsewhere.
- `stop` ends the round at its next step, then heals the network and
  restarts whatever the package killed; nothing is left broken. If the
  schedule is cancelled instead, the loop ends too and the runner's final
  heal cures what is left (ctx tracks it).
- Rounds wait on what nodes report with bounded deadlines; a round whose
  events did not line up gives up cleanly, and the next round tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from base.cluster import Capability
from base.links import LinkFault
from nemesis import grudges
from nemesis.flaky import LINKS, set_links
from nemesis.kill import KILL, restart
from nemesis.kill import kill as kill_node
from nemesis.package import NemesisContext, NemesisPackage, Requirements, heal_network
from nemesis.partition import PARTITION, STOP_OP
from nemesis.partition import partition as set_partition

POLL_S = 0.01
STATUS_TIMEOUT_S = 0.2


class _Stopped(Exception):
    """Raised inside a round when `stop` was asked for."""


class _Looping:
    """Runs `round` again and again from `start` until `stop`."""

    name = ""

    def __init__(self) -> None:
        self._task: asyncio.Future[None] | None = None
        self._stopping = False
        self._parent: asyncio.Task[Any] | None = None
        self.killed: set[str] = set()

    async def start(self, ctx: NemesisContext) -> None:
        self._stopping = False
        self._parent = asyncio.current_task()
        self._task = asyncio.ensure_future(self._loop(ctx))

    async def stop(self, ctx: NemesisContext) -> None:
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(_Stopped):
                await self._task
            self._task = None
        await self._cleanup(ctx)

    async def _loop(self, ctx: NemesisContext) -> None:
        with contextlib.suppress(_Stopped):
            while not self._stopping:
                await self.round(ctx)

    async def round(self, ctx: NemesisContext) -> None:
        raise NotImplementedError

    async def _cleanup(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)
        await restart(ctx, sorted(n for n in self.killed if n in ctx.killed))
        self.killed.clear()

    # -- steps -------------------------------------------------------------------------------

    async def nap(self, ctx: NemesisContext, seconds: float) -> None:
        """Sleep on the test clock; raises _Stopped as soon as stop was asked for."""
        rt = ctx.cluster.client
        end = rt.now() + seconds
        while True:
            if self._stopping or (self._parent is not None and self._parent.done()):
                raise _Stopped  # asked to stop, or the schedule itself was cancelled
            left = end - rt.now()
            if left <= 0:
                return
            await rt.sleep(min(left, 0.05))

    async def kill(self, ctx: NemesisContext, node: str) -> None:
        if node in ctx.killed:
            return
        await kill_node(ctx, node)
        self.killed.add(node)

    async def restart(self, ctx: NemesisContext, node: str) -> None:
        self.killed.discard(node)
        await restart(ctx, [node])

    async def partition(self, ctx: NemesisContext, grudge: grudges.Grudge, shape: str) -> None:
        if STOP_OP in ctx.network_cures:
            ctx.record(STOP_OP, None)
        await set_partition(ctx, grudge, shape=shape)

    async def slow_links(self, ctx: NemesisContext, delay_s: float) -> None:
        await set_links(ctx, LinkFault(delay_s=round(delay_s, 4)))

    async def status(self, ctx: NemesisContext, node: str) -> dict[str, Any] | None:
        if node in ctx.killed or node in ctx.paused:
            return None
        try:
            st = await ctx.cluster.client.call(node, "status", None, timeout=STATUS_TIMEOUT_S)
        except Exception:  # an unreachable node simply has nothing to say
            return None
        return st if isinstance(st, dict) else None

    async def leader_among(self, ctx: NemesisContext, nodes: list[str]) -> tuple[str, dict[str, Any]] | None:
        """The node among `nodes` reporting itself leader with the highest term, and its status."""
        best: tuple[str, dict[str, Any]] | None = None
        for n in sorted(nodes):
            st = await self.status(ctx, n)
            leads = st is not None and st.get("role") == "leader" and isinstance(st.get("term"), int)
            if st is not None and leads and (best is None or st["term"] > best[1]["term"]):
                best = (n, st)
        return best

    async def wait_leader(
        self, ctx: NemesisContext, nodes: list[str], within_s: float
    ) -> tuple[str, dict[str, Any]] | None:
        rt = ctx.cluster.client
        deadline = rt.now() + within_s
        while True:
            found = await self.leader_among(ctx, nodes)
            if found is not None or rt.now() >= deadline:
                return found
            await self.nap(ctx, POLL_S)

    async def wait_status(
        self, ctx: NemesisContext, node: str, cond: Callable[[dict[str, Any]], bool], within_s: float
    ) -> dict[str, Any] | None:
        rt = ctx.cluster.client
        deadline = rt.now() + within_s
        while True:
            st = await self.status(ctx, node)
            if st is not None and cond(st):
                return st
            if rt.now() >= deadline:
                return None
            await self.nap(ctx, POLL_S)

    async def end_round(self, ctx: NemesisContext, rest_s: tuple[float, float]) -> None:
        await self._cleanup(ctx)
        await self.nap(ctx, ctx.rng.uniform(*rest_s))


class LeaderChurn(_Looping):
    name = "leader-churn"

    async def round(self, ctx: NemesisContext) -> None:
        found = await self.leader_among(ctx, ctx.nodes)
        if found is None:
            await self.nap(ctx, 0.2)
            return
        await self.kill(ctx, found[0])
        await self.nap(ctx, ctx.rng.uniform(0.05, 1.2))
        await self.restart(ctx, found[0])
        await self.nap(ctx, ctx.rng.uniform(0.3, 1.5))


class LeaderIsolate(_Looping):
    name = "leader-isolate"

    async def round(self, ctx: NemesisContext) -> None:
        found = await self.leader_among(ctx, ctx.nodes)
        if found is None:
            await self.nap(ctx, 0.2)
            return
        await self.partition(ctx, grudges.isolate(ctx.nodes, ctx.rng, found[0]), "isolate-leader")
        await self.nap(ctx, ctx.rng.uniform(2.5, 5.0))
        await self.end_round(ctx, (0.3, 1.0))


class Figure8(_Looping):
    name = "figure8"

    async def round(self, ctx: NemesisContext) -> None:
        nodes = sorted(ctx.nodes)
        found = await self.leader_among(ctx, nodes)
        if len(nodes) < 5 or found is None:
            await self.nap(ctx, 0.2)
            return
        l1 = found[0]
        f = ctx.rng.choice([n for n in nodes if n != l1])
        pair = {l1, f}
        rest = [n for n in nodes if n not in pair]
        await self.slow_links(ctx, ctx.rng.uniform(0.05, 0.2))
        # (a) L1 can reach F only: what clients write now lands on L1 and F, uncommitted.
        first = grudges.from_components(nodes, [pair, set(rest)])
        await self.partition(ctx, first, "figure8 (a): leader and one follower")
        await self.nap(ctx, ctx.rng.uniform(0.3, 0.8))
        # (b) L1 dies, F is cut off, the rest elect P, which dies before its entries spread.
        await self.kill(ctx, l1)
        await self.partition(ctx, grudges.from_components(nodes, [{f}, set(rest), {l1}]), "figure8 (b): the rest elect")
        got = await self.wait_leader(ctx, rest, 5.0)
        if got is None:
            return await self.end_round(ctx, (0.5, 1.0))
        p = got[0]
        # (c) P dies, cut off first so its frames still in flight are lost too. L1 returns; only
        # L1 or F can win (the rest cannot hear each other), and Q spreads its log.
        others = [n for n in rest if n != p]
        sees = {n: {n, l1, f} for n in others}
        sees.update({p: {p}, l1: set(nodes) - {p}, f: set(nodes) - {p}})
        await self.partition(ctx, grudges.from_visibility(nodes, sees), "figure8 (c): old leader returns")
        await self.kill(ctx, p)
        await self.restart(ctx, l1)
        got = await self.wait_leader(ctx, nodes, 5.0)
        if got is None or got[0] not in pair:
            return await self.end_round(ctx, (0.5, 1.0))
        q, st = got
        c0 = st.get("commit_index", 0)
        moved = await self.wait_status(ctx, q, lambda s: s.get("commit_index", 0) > c0, 3.0)
        if moved is None:
            return await self.end_round(ctx, (0.5, 1.0))
        # (d) The moment Q commits anything, cut L1 and F off and bring P back.
        await self.partition(ctx, grudges.from_components(nodes, [pair, set(rest)]), "figure8 (d): cut after commit")
        await self.restart(ctx, p)
        await self.wait_leader(ctx, rest, 5.0)
        await self.nap(ctx, 0.5)
        await self.end_round(ctx, (1.0, 2.0))


class VoterCrash(_Looping):
    name = "voter-crash"

    async def round(self, ctx: NemesisContext) -> None:
        nodes = sorted(ctx.nodes)
        found = await self.leader_among(ctx, nodes)
        if len(nodes) < 3 or found is None:
            await self.nap(ctx, 0.2)
            return
        x, st = found
        term0 = st["term"]
        others = [n for n in nodes if n != x]
        ctx.rng.shuffle(others)
        half = len(others) // 2
        left, right = set(others[:half]), set(others[half:])
        await self.slow_links(ctx, ctx.rng.uniform(0.1, 0.3))
        await self.kill(ctx, x)
        sees = {n: {x} | (left if n in left else right) for n in others}
        sees[x] = set(nodes)
        await self.partition(ctx, grudges.from_visibility(nodes, sees), "voter-crash: bridged through the voter")
        await self.nap(ctx, ctx.rng.uniform(1.5, 2.5))  # both sides time out; neither can win without x
        await self.restart(ctx, x)
        voted = await self.wait_status(
            ctx, x, lambda s: s.get("term", 0) > term0 and s.get("vote") not in (None, x), 4.0
        )
        if voted is not None:
            await self.kill(ctx, x)
            await self.nap(ctx, ctx.rng.uniform(0.01, 0.1))
            await self.restart(ctx, x)
            await self.nap(ctx, ctx.rng.uniform(1.0, 2.0))
        await self.end_round(ctx, (1.0, 2.0))


NEEDS_ALL = frozenset({Capability.KILL, Capability.PARTITION, Capability.LINKS})

PACKAGES = (
    NemesisPackage(
        name="leader-churn",
        summary="kill the current leader, restart it after a short random delay, repeat",
        make=LeaderChurn,
        kinds=(KILL,),
        needs=frozenset({Capability.KILL}),
        requires=Requirements(leader=True, runtime_rpc=True),
    ),
    NemesisPackage(
        name="leader-isolate",
        summary="cut the current leader off for a few seconds, heal, repeat",
        make=LeaderIsolate,
        kinds=(PARTITION,),
        needs=frozenset({Capability.PARTITION}),
        requires=Requirements(leader=True, runtime_rpc=True, min_nodes=2),
    ),
    NemesisPackage(
        name="figure8",
        summary="Raft's Figure 8, played out: leaders crash right after replicating to a minority",
        make=Figure8,
        kinds=(KILL, PARTITION, LINKS),
        needs=NEEDS_ALL,
        requires=Requirements(leader=True, runtime_rpc=True, min_nodes=5),
    ),
    NemesisPackage(
        name="voter-crash",
        summary="restart the tie-breaking voter right after it votes (two candidates in one term)",
        make=VoterCrash,
        kinds=(KILL, PARTITION, LINKS),
        needs=NEEDS_ALL,
        requires=Requirements(leader=True, runtime_rpc=True, min_nodes=3),
    ),
)
