"""The heartbeat node: asyncio glue around `Membership` (all decisions live there).

What a node does:
- At start it reads its incarnation from disk, adds one, writes and syncs it,
  and only then sends its first heartbeat (persist before announcing), so a
  restarted node always announces a higher incarnation than any heartbeat
  its previous instance ever sent.
- Every `heartbeat_interval_s * U(1 - send_jitter, 1 + send_jitter)` it sends a
  one-way `heartbeat` to every peer. The jitter is deliberate (it keeps nodes
  from beating in lockstep, as gossip systems do); the phi detector learns it,
  and it is what exposes a detector that does not learn (`fixed-timeout`).
- Every `tick_s` it re-evaluates phi for every peer and logs status changes.
- A heartbeat of an incarnation it has declared dead is answered with a
  one-way `declared-dead`; a node told it was declared dead at its current
  incarnation refutes: it persists incarnation + 1 and beats at once.
- `view` (RPC) answers {"node", "incarnation", "peers": {peer: {status,
  incarnation, phi, since_s, heard_s}}, "stalls"}, evaluated at the moment
  of the call.

Defaults, and why (see also checkers/heartbeat.py for the matching bounds):
interval 0.1 s with +-50 % jitter gives a mean of 0.1 s and a stddev of about
0.03 s; with `min_std_s` 0.05 and `acceptable_pause_s` 0.75 a silent peer
is suspect after about 0.9 s and dead after about 1.1 s, ten intervals: far
beyond any gap the jitter, loopback or the simulator's network makes (and a
whole-machine stall is excused by the observer's own stall check), yet
quick enough that a 2.5 s kill (the shortest the nemesis holds a fault at
its default interval) is detected with time to spare.

Bugs (config.bugs):
- `fixed-timeout`: the detector is a fixed timeout of one nominal interval
  (`fixed_timeout_s` when set). Half of all jittered gaps exceed it, so live,
  reachable peers are declared dead all the time, with or without faults.
- `no-incarnation`: the incarnation is neither persisted nor ever raised: the
  node always announces 1 and ignores `declared-dead`. Once any observer has
  declared it dead (a kill, a pause, a partition longer than ~1 s), its
  heartbeats look like the dead instance's and it stays dead there forever;
  a restart is never recognised.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

from systems.heartbeat.detector import Detector, FixedTimeout, PhiAccrual
from systems.heartbeat.membership import DetectorFactory, Membership, Outcome, Thresholds
from systems.heartbeat.messages import BadMessage, DeclaredDead, Heartbeat
from systems.runtime.api import Message, NodeConfig, Runtime

INCARNATION_FILE = "incarnation"


@dataclass(frozen=True, slots=True)
class Options:
    heartbeat_interval_s: float = 0.1
    send_jitter: float = 0.5
    tick_s: float = 0.05
    window: int = 100
    min_std_s: float = 0.05
    acceptable_pause_s: float = 0.75
    max_sample_s: float = 1.0
    suspect_phi: float = 1.0
    dead_phi: float = 8.0
    stall_s: float = 0.5
    fixed_timeout_s: float = 0.0
    """Timeout of the `fixed-timeout` bug; 0 means one heartbeat interval."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Options:
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                kw[f.name] = int(d[f.name]) if f.type == "int" else float(d[f.name])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_detector_factory(opts: Options, fixed_timeout: bool) -> DetectorFactory:
    if fixed_timeout:
        timeout_s = opts.fixed_timeout_s or opts.heartbeat_interval_s

        def fixed(now: float) -> Detector:
            return FixedTimeout(now, timeout_s=timeout_s)

        return fixed

    def phi(now: float) -> Detector:
        return PhiAccrual(
            now,
            interval_s=opts.heartbeat_interval_s,
            window=opts.window,
            min_std_s=opts.min_std_s,
            acceptable_pause_s=opts.acceptable_pause_s,
            max_sample_s=opts.max_sample_s,
        )

    return phi


def read_incarnation(raw: bytes | None) -> int:
    try:
        return max(0, int(raw.decode())) if raw else 0
    except (UnicodeDecodeError, ValueError):
        return 0


class HeartbeatNode:
    def __init__(self, rt: Runtime, opts: Options, bugs: tuple[str, ...], incarnation: int) -> None:
        self.rt = rt
        self.opts = opts
        self.no_incarnation = "no-incarnation" in bugs
        factory = make_detector_factory(opts, "fixed-timeout" in bugs)
        thresholds = Thresholds(opts.suspect_phi, opts.dead_phi, opts.stall_s)
        self.membership = Membership(rt.peers, rt.now(), factory, thresholds)
        self.incarnation = incarnation
        """The durable incarnation: the only one ever announced."""
        self._target = incarnation
        self._seq = 0
        self.counts: Counter[str] = Counter()

    def start(self) -> None:
        self.rt.serve("heartbeat", self.on_heartbeat)
        self.rt.serve("declared-dead", self.on_declared_dead)
        self.rt.serve("view", self.on_view)
        self.rt.spawn(self.beat_loop(), name="heartbeat-beat")
        self.rt.spawn(self.tick_loop(), name="heartbeat-tick")

    def beat_all(self) -> None:
        self._seq += 1
        msg = Heartbeat(self.incarnation, self._seq).to_wire()
        for peer in self.rt.peers:
            self.rt.send(peer, "heartbeat", msg)

    async def beat_loop(self) -> None:
        j = self.opts.send_jitter
        while True:
            self.beat_all()
            await self.rt.sleep(self.opts.heartbeat_interval_s * self.rt.rng.uniform(1 - j, 1 + j))

    async def tick_loop(self) -> None:
        while True:
            await self.rt.sleep(self.opts.tick_s)
            self.evaluate()

    def evaluate(self) -> None:
        stalls = self.membership.stalls
        for t in self.membership.evaluate(self.rt.now()):
            self.rt.log.info(
                "status", peer=t.peer, old=str(t.old), new=str(t.new), inc=t.incarnation, phi=round(t.phi, 2)
            )
        if self.membership.stalls != stalls:
            self.rt.log.warning("stalled", note="observer was not running; peers' silence clocks reset")

    async def on_heartbeat(self, src: str, msg: Message) -> None:
        try:
            hb = Heartbeat.decode(msg)
        except BadMessage as e:
            self.rt.log.warning("bad-heartbeat", src=src, error=str(e))
            return
        outcome = self.membership.on_heartbeat(src, hb.incarnation, hb.seq, self.rt.now())
        self.counts[str(outcome)] += 1
        if outcome is Outcome.REFUTE:
            self.rt.send(src, "declared-dead", DeclaredDead(hb.incarnation).to_wire())
        elif outcome in (Outcome.NEW_INCARNATION, Outcome.STALE, Outcome.UNKNOWN_PEER):
            self.rt.log.info(str(outcome), peer=src, inc=hb.incarnation)

    async def on_declared_dead(self, src: str, msg: Message) -> None:
        try:
            notice = DeclaredDead.decode(msg)
        except BadMessage as e:
            self.rt.log.warning("bad-declared-dead", src=src, error=str(e))
            return
        if self.no_incarnation or notice.incarnation < self._target:
            return
        self._target = notice.incarnation + 1
        self.rt.log.info("refute", by=src, declared=notice.incarnation, new=self._target)
        await persist_incarnation(self.rt, self._target)
        if self._target > self.incarnation:
            self.incarnation = self._target
            self.beat_all()

    async def on_view(self, src: str, msg: Message) -> dict[str, Any]:
        self.evaluate()
        now = self.rt.now()
        return {
            "node": self.rt.node_id,
            "incarnation": self.incarnation,
            "peers": self.membership.view(now),
            "stalls": self.membership.stalls,
        }


async def persist_incarnation(rt: Runtime, incarnation: int) -> None:
    rt.disk.write(INCARNATION_FILE, str(incarnation).encode())
    await rt.disk.sync(INCARNATION_FILE)


async def start_node(rt: Runtime, config: NodeConfig) -> None:
    opts = Options.from_dict(config.options)
    if "no-incarnation" in config.bugs:
        incarnation = 1
    else:
        incarnation = read_incarnation(rt.disk.read(INCARNATION_FILE)) + 1
        await persist_incarnation(rt, incarnation)
    node = HeartbeatNode(rt, opts, config.bugs, incarnation)
    node.start()
    rt.log.info("heartbeat-started", incarnation=incarnation, bugs=list(config.bugs))
