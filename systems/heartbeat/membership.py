"""A node's membership view: per peer a status, an incarnation and a failure detector.

Pure: the caller passes `now` and acts on what the methods return.

Rules (SWIM's incarnation rules, with phi accrual as the suspicion source):

- Every node has an incarnation number, carried in each of its heartbeats. It
  grows when the node restarts (persisted before the first heartbeat) and when
  the node refutes a death verdict about itself. Incarnation 0 means "never
  heard from"; real incarnations start at 1.
- Status comes from phi: alive below `suspect_phi`, suspect from `suspect_phi`,
  dead from `dead_phi`. Suspect is reversible: any fresh heartbeat of the same
  incarnation makes the peer alive again. Dead is a verdict on one
  incarnation and is final for it: a heartbeat of the incarnation declared
  dead does not revive the peer; the observer answers it with `REFUTE`,
  telling the peer to announce a higher incarnation.
- A heartbeat with a higher incarnation than known is a new instance (a
  restart or a refutation): it revives the peer at once, whatever its status,
  and starts a fresh detector (the old instance's timing says nothing about
  the new one). A heartbeat with a lower incarnation is stale and changes
  nothing, ever. Within one incarnation, a heartbeat whose sequence number is
  not above the last one accepted (a duplicate or a reordered frame) is
  ignored.
- If `evaluate` finds that it was itself not called for `stall_s` (the
  observer was paused or starved), the silence it slept through is not the
  peers' fault: every peer that is not already dead gets its silence clock
  reset. Dead verdicts stand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from systems.heartbeat.detector import Detector


class Status(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"


class Outcome(StrEnum):
    """What a heartbeat did to the view."""

    ACCEPTED = "accepted"
    NEW_INCARNATION = "new-incarnation"
    STALE = "stale"
    DUPLICATE = "duplicate"
    REFUTE = "refute"
    UNKNOWN_PEER = "unknown-peer"


@dataclass(frozen=True, slots=True)
class Thresholds:
    suspect_phi: float = 1.0
    dead_phi: float = 8.0
    stall_s: float = 0.5

    def __post_init__(self) -> None:
        assert 0 < self.suspect_phi <= self.dead_phi, "need 0 < suspect_phi <= dead_phi"
        assert self.stall_s > 0


@dataclass(frozen=True, slots=True)
class Transition:
    peer: str
    old: Status
    new: Status
    incarnation: int
    phi: float
    at: float


@dataclass
class PeerState:
    detector: Detector
    since: float
    incarnation: int = 0
    status: Status = Status.ALIVE
    seq: int = -1
    phi: float = 0.0


DetectorFactory = Callable[[float], Detector]


class Membership:
    def __init__(self, peers: list[str], now: float, make_detector: DetectorFactory, thresholds: Thresholds) -> None:
        self.make_detector = make_detector
        self.thresholds = thresholds
        self.peers: dict[str, PeerState] = {p: PeerState(make_detector(now), since=now) for p in sorted(peers)}
        self._last_eval = now
        self.stalls = 0

    def status_for(self, phi: float) -> Status:
        if phi >= self.thresholds.dead_phi:
            return Status.DEAD
        if phi >= self.thresholds.suspect_phi:
            return Status.SUSPECT
        return Status.ALIVE

    def on_heartbeat(self, peer: str, incarnation: int, seq: int, now: float) -> Outcome:
        st = self.peers.get(peer)
        if st is None:
            return Outcome.UNKNOWN_PEER
        if incarnation < st.incarnation:
            return Outcome.STALE
        if incarnation > st.incarnation:
            st.incarnation = incarnation
            st.detector = self.make_detector(now)
            st.seq = seq
            st.phi = 0.0
            self._set(st, Status.ALIVE, now)
            return Outcome.NEW_INCARNATION
        if st.status is Status.DEAD:
            return Outcome.REFUTE
        if seq <= st.seq:
            return Outcome.DUPLICATE
        st.seq = seq
        st.detector.heartbeat(now)
        st.phi = st.detector.phi(now)
        self._set(st, Status.ALIVE, now)
        return Outcome.ACCEPTED

    def evaluate(self, now: float) -> list[Transition]:
        """Recompute every peer's phi and status at `now`; returns the status changes."""
        if now - self._last_eval > self.thresholds.stall_s:
            self.stalls += 1
            for st in self.peers.values():
                if st.status is not Status.DEAD:
                    st.detector.reset(now)
        self._last_eval = now  # not max: a clock that went back must not hide the next stall
        out: list[Transition] = []
        for peer, st in self.peers.items():
            if st.status is Status.DEAD:
                continue
            st.phi = st.detector.phi(now)
            new = self.status_for(st.phi)
            if new is not st.status:
                out.append(Transition(peer, st.status, new, st.incarnation, st.phi, now))
                self._set(st, new, now)
        return out

    def view(self, now: float) -> dict[str, dict[str, Any]]:
        """A msgpack/JSON-safe picture: per peer status, incarnation, phi and ages in seconds."""
        return {
            peer: {
                "status": str(st.status),
                "incarnation": st.incarnation,
                "phi": round(st.phi, 3),
                "since_s": round(max(0.0, now - st.since), 3),
                "heard_s": round(max(0.0, now - st.detector.last), 3),
            }
            for peer, st in self.peers.items()
        }

    @staticmethod
    def _set(st: PeerState, status: Status, now: float) -> None:
        if st.status is not status:
            st.status = status
            st.since = now
