"""The Raft rules as a pure state machine (in the style of etcd-io/raft).

The caller feeds it `tick()`, `step(message)`, `propose(data)` and
`read_index(ctx)`; it never does I/O. `ready()` returns what the caller must
do next, in this order: persist the hard state, the snapshot and the new
entries (one sync covers them all: group commit), then send the messages,
then apply the committed entries and answer the confirmed reads, then call
`advance(ready)`. Persisting BEFORE sending is what makes a vote or an
acknowledgement a promise (§5.1: "updated on stable storage before
responding to RPCs").

Rules (Ongaro & Ousterhout, "In Search of an Understandable Consensus
Algorithm (Extended Version)", Figure 2 and §5–§7):

- Terms: a message with a higher term turns us into a follower of that term
  first; a message with a lower term is answered (so a stale leader learns
  the new term) or ignored.
- Election (§5.2): a follower that hears nothing for a randomized election
  timeout in [election_ticks, 2*election_ticks) becomes a candidate. A vote
  is granted at most once per term, and only to a candidate whose log is at
  least as up-to-date as ours (§5.4.1). With check_quorum, a node that heard
  from a live leader within the election timeout ignores vote requests
  (dissertation §4.2.3, disruptive servers), and a leader that has not heard
  from a majority within an election timeout steps down.
- Replication (§5.3): AppendEntries carries (prev_index, prev_term); a
  follower rejects it unless its log matches there, and then cuts its log at
  the first conflicting entry only. Rejections carry a conflict hint so the
  leader backs nextIndex up a term at a time (a rejection at or below what
  the follower once acknowledged is not answered at once, only at the next
  heartbeat, so a follower that lost entries cannot ping-pong with the
  leader). Each follower's progress is
  probing (one message at a time) or replicating (pipelined, at most
  max_inflight messages in flight).
- Commit (§5.4.2, Figure 8): the leader commits index N when a majority has
  N on disk and log[N].term == currentTerm. (The `commit-old-term` bug drops
  the term condition.) A new leader appends a no-op so its term can commit.
- The leader counts itself only for entries it has persisted (`stable`).
- Snapshots (§7): entries up to a snapshot are dropped; a follower that needs
  them gets InstallSnapshot instead.
- Pre-vote (dissertation §9.6, option): before campaigning, a node asks
  whether it could win at term+1 without changing any term; only a
  majority of yeses starts the real election, so a node cut off by a
  partition does not inflate its term and disrupt the cluster on return.
- Leader gone (`leader_gone`): when the caller learns that the leader's
  process is gone (a connection to it refused), a follower forgets the
  leader and, with pre-vote, campaigns at once rather than waiting out its
  election timeout; pre-vote makes a wrong guess harmless (peers that still
  hear the leader refuse). If a peer asked for its vote since it last heard
  the leader, it answers that request now instead of campaigning too (two
  campaigns at once would grant each other's pre-votes and split the vote);
  if two such early rounds cross anyway, a pre-candidate of an early round
  refuses a peer with a higher id whose log is no more up-to-date than its
  own, so the lower id wins. Rounds started by the election timer keep the
  plain rule.
- ReadIndex (dissertation §6.4): a read is served at the commit index once a
  heartbeat round started after the request was acknowledged by a majority,
  and only after the leader committed an entry of its own term. One round is
  in flight at a time; reads received meanwhile share the next one (as in
  etcd), so a burst of reads costs one round, not one each.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from systems.raft.log import Entry, RaftLog, Snapshot
from systems.raft.messages import Append, AppendResp, InstallSnapshot, Message, VoteReq, VoteResp


class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class ProgressState(Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before answering: currentTerm and votedFor."""

    term: int = 0
    vote: str | None = None


@dataclass(frozen=True, slots=True)
class CoreConfig:
    node_id: str
    peers: tuple[str, ...]
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    max_batch: int = 64
    max_inflight: int = 8
    check_quorum: bool = True
    pre_vote: bool = False
    commit_old_term: bool = False
    """Planted bug: commit earlier-term entries by counting replicas (Figure 8)."""


@dataclass
class Progress:
    """The leader's view of one follower (Figure 2's nextIndex/matchIndex, plus flow control)."""

    next: int
    match: int = 0
    state: ProgressState = ProgressState.PROBE
    inflight: list[int] = field(default_factory=list)
    """Last index of every pipelined AppendEntries not yet acknowledged."""
    probe_sent: bool = False
    acked_seq: int = 0
    recent_active: bool = False
    stalled_ticks: int = 0
    pending_snapshot: int = 0

    def paused(self, max_inflight: int) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.SNAPSHOT:
            return True
        return len(self.inflight) >= max_inflight

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.next = self.match + 1
        self.inflight.clear()
        self.probe_sent = False

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.inflight.clear()


@dataclass
class Ready:
    """What the caller must do, in order: persist, send, apply, answer reads; then advance()."""

    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    """A snapshot received from the leader: persist it, then restore the state machine from it."""
    entries: list[Entry] = field(default_factory=list)
    """Entries to write after cutting the on-disk log at entries[0].index."""
    messages: list[Message] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)
    reads: list[tuple[Any, int]] = field(default_factory=list)
    """(ctx, index): answer the read once the state machine applied index."""

    def empty(self) -> bool:
        return not (
            self.hard_state or self.snapshot or self.entries or self.messages or self.committed or self.reads
        )


class RaftCore:
    def __init__(
        self,
        config: CoreConfig,
        rng: random.Random,
        hard: HardState = HardState(),
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
    ) -> None:
        self.cfg = config
        self.id = config.node_id
        self.peers = sorted(p for p in config.peers if p != config.node_id)
        self.rng = rng
        self.term = hard.term
        self.vote = hard.vote
        self.snapshot = snapshot
        self.log = RaftLog(snapshot.index if snapshot else 0, snapshot.term if snapshot else 0, entries)
        self.commit = self.log.snapshot_index
        self.applied = self.log.snapshot_index
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self.progress: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.elapsed = 0
        self.heartbeat_elapsed = 0
        self.timeout = self._random_timeout()
        self.seq = 0
        self.pending_reads: list[tuple[Any, int, int]] = []
        """(ctx, read index, heartbeat seq that must be acknowledged by a majority)."""
        self.waiting_reads: list[Any] = []
        """Reads received before this leader committed an entry of its term."""
        self.read_batch: list[Any] = []
        """Reads received while a heartbeat round is in flight: they share the next round."""
        self.read_round = 0
        """The heartbeat seq of the read round in flight (0: none)."""
        self._msgs: list[Message] = []
        self._reads: list[tuple[Any, int]] = []
        self._persisted_hard = HardState(self.term, self.vote)
        self._pending_snapshot: Snapshot | None = None
        self._bcast_pending = False
        """Entries were proposed since the last ready(): send them to the followers then."""
        self.refused_vote: VoteReq | None = None
        """The last vote request refused (check-quorum: we heard a leader) since we last heard it."""
        self.early_round = False
        """This pre-vote round began on `leader_gone`, not on the election timer."""
        self._step: Callable[[Message], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election

    # ------------------------------------------------------------ helpers
    @property
    def quorum(self) -> int:
        return (len(self.peers) + 1) // 2 + 1

    @property
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote)

    def _random_timeout(self) -> int:
        e = self.cfg.election_ticks
        return e + self.rng.randrange(e)

    def _send(self, m: Message) -> None:
        self._msgs.append(m)

    # ------------------------------------------------------------ role changes
    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.leader = None
        self.elapsed = 0
        self.heartbeat_elapsed = 0
        self.timeout = self._random_timeout()
        self.refused_vote = None
        self.early_round = False
        self.votes = {}
        self.progress = {}
        self.pending_reads = []
        self.waiting_reads = []
        self.read_batch = []
        self.read_round = 0

    def become_follower(self, term: int, leader: str | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader
        self._step = self._step_follower
        self._tick = self._tick_election

    def become_pre_candidate(self) -> None:
        self.role = Role.PRE_CANDIDATE
        self.early_round = False
        self.leader = None
        self.elapsed = 0
        self.heartbeat_elapsed = 0
        self.timeout = self._random_timeout()
        self.votes = {self.id: True}
        self.progress = {}
        self.pending_reads = []
        self.waiting_reads = []
        self.read_batch = []
        self.read_round = 0
        self._step = self._step_candidate
        self._tick = self._tick_candidate
        if self._won():
            self.become_candidate()
            return
        self._request_votes()

    def become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.role = Role.CANDIDATE
        self.vote = self.id
        self.votes = {self.id: True}
        self._step = self._step_candidate
        self._tick = self._tick_candidate
        if self._won():
            self.become_leader()
            return
        self._request_votes()

    def _request_votes(self) -> None:
        pre = self.role is Role.PRE_CANDIDATE
        term = self.term + 1 if pre else self.term
        for p in self.peers:
            if p not in self.votes:
                self._send(VoteReq(term, self.id, p, self.log.last_index, self.log.last_term, pre))

    def _campaign(self) -> None:
        if self.cfg.pre_vote:
            self.become_pre_candidate()
        else:
            self.become_candidate()

    def become_leader(self) -> None:
        assert self.role is Role.CANDIDATE
        self._reset(self.term)
        self.vote = self.id
        self.role = Role.LEADER
        self.leader = self.id
        self._step = self._step_leader
        self._tick = self._tick_heartbeat
        last = self.log.last_index
        self.progress = {p: Progress(next=last + 1) for p in self.peers}
        # §8: a no-op entry of the new term lets the leader commit (and learn the commit index).
        self.log.append(Entry(self.term, last + 1, None))
        self._bcast_append()
        self._maybe_commit()

    def _behind(self, last_index: int, last_term: int) -> bool:
        """Our log is strictly less up-to-date than (last_index, last_term)."""
        return (last_term, last_index) > (self.log.last_term, self.log.last_index)

    def _won(self) -> bool:
        return sum(1 for g in self.votes.values() if g) >= self.quorum

    # ------------------------------------------------------------ inputs
    def tick(self) -> None:
        self._tick()

    def leader_gone(self, leader: str) -> None:
        """The caller learned that `leader` is gone (a connection to it was refused).

        A follower of it forgets it, so it no longer refuses votes as one that hears a leader;
        with pre-vote it also campaigns at once instead of at the end of its election timeout.
        Pre-vote keeps that harmless if the leader is in fact alive: a peer that still hears it
        refuses, and no term changes until a majority says it could win."""
        if self.role is not Role.FOLLOWER or self.leader != leader:
            return
        self.leader = None
        asked, self.refused_vote = self.refused_vote, None
        if asked is not None and self.log.is_up_to_date(asked.last_index, asked.last_term):
            # A peer already campaigns (it asked us while we still heard the leader): answer it now
            # rather than campaign too (the two would grant each other's pre-votes and split).
            self.step(asked)
        elif self.cfg.pre_vote:
            self._campaign()
            self.early_round = self.role is Role.PRE_CANDIDATE

    def _tick_election(self) -> None:
        self.elapsed += 1
        if self.elapsed >= self.timeout:
            self._campaign()

    def _tick_candidate(self) -> None:
        # §5.1: servers retry RPCs if they do not receive a response in a timely manner.
        self.heartbeat_elapsed += 1
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._request_votes()
        self._tick_election()

    def _tick_heartbeat(self) -> None:
        self.elapsed += 1
        self.heartbeat_elapsed += 1
        if self.elapsed >= self.cfg.election_ticks:
            self.elapsed = 0
            if self.cfg.check_quorum:
                active = 1 + sum(1 for pr in self.progress.values() if pr.recent_active)
                if active < self.quorum:
                    self.become_follower(self.term, None)
                    return
                for pr in self.progress.values():
                    pr.recent_active = False
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._heartbeat()

    def _heartbeat(self) -> None:
        self.seq += 1
        for p, pr in self.progress.items():
            if pr.state is ProgressState.REPLICATE and pr.inflight:
                pr.stalled_ticks += 1
                if pr.stalled_ticks >= 3:
                    pr.become_probe()  # pipelined messages were lost: fall back to probing
            elif pr.state is ProgressState.SNAPSHOT:
                pr.stalled_ticks += 1
                if pr.stalled_ticks >= 5:
                    pr.become_probe()  # the snapshot (or its answer) was lost: send it again
            elif pr.state is ProgressState.PROBE:
                pr.probe_sent = False
            self._send_heartbeat(p)

    def _send_heartbeat(self, p: str) -> None:
        # No log check (prev_index -1); the commit index is capped at what p is known to hold.
        pr = self.progress[p]
        self._send(Append(self.term, self.id, p, -1, 0, (), min(self.commit, pr.match), self.seq))

    def step(self, m: Message) -> None:
        """Feed one message from a peer."""
        if m.dst != self.id:
            return
        if m.term > self.term:
            if (
                isinstance(m, VoteReq)
                and self.cfg.check_quorum
                and self.leader is not None
                and self.elapsed < self.cfg.election_ticks
            ):
                self.refused_vote = m
                return  # we heard from a live leader recently: do not let a stray candidate disrupt it
            if isinstance(m, VoteReq) and m.pre:
                pass  # a pre-vote never changes our term
            elif isinstance(m, VoteResp) and m.pre and m.granted:
                pass  # a granted pre-vote carries the term we would campaign in
            else:
                leader = m.src if isinstance(m, Append | InstallSnapshot) else None
                self.become_follower(m.term, leader)
        elif m.term < self.term:
            if isinstance(m, Append | InstallSnapshot):
                self._send(AppendResp(self.term, self.id, m.src, False, reject_index=-1))
            elif isinstance(m, VoteReq):
                self._send(VoteResp(self.term, self.id, m.src, False, m.pre))
            return
        if isinstance(m, VoteReq):
            self._handle_vote(m)
            return
        self._step(m)

    def _handle_vote(self, m: VoteReq) -> None:
        up_to_date = self.log.is_up_to_date(m.last_index, m.last_term)
        if m.pre:
            # Would we vote for it at m.term? Nothing changes here whatever the answer.
            grant = m.term > self.term and up_to_date
            if grant and self.early_round and m.src > self.id and not self._behind(m.last_index, m.last_term):
                # Two early rounds at once (both learned the leader is gone): the lower id goes first,
                # or each would grant the other and the vote split. Timer-driven rounds never refuse.
                grant = False
            self._send(VoteResp(m.term if grant else self.term, self.id, m.src, grant, True))
            return
        can_vote = self.vote is None or self.vote == m.src
        grant = can_vote and self.role in (Role.FOLLOWER, Role.PRE_CANDIDATE) and up_to_date
        if grant:
            if self.role is Role.PRE_CANDIDATE:
                self.become_follower(self.term, None)
            self.vote = m.src
            self.elapsed = 0
        self._send(VoteResp(self.term, self.id, m.src, grant))

    def _step_follower(self, m: Message) -> None:
        match m:
            case Append():
                self.elapsed = 0
                self.refused_vote = None
                self.leader = m.src
                self._handle_append(m)
            case InstallSnapshot():
                self.elapsed = 0
                self.refused_vote = None
                self.leader = m.src
                self._handle_snapshot(m)
            case _:
                pass

    def _step_candidate(self, m: Message) -> None:
        match m:
            case Append() | InstallSnapshot():
                self.become_follower(self.term, m.src)
                self._step_follower(m)
            case VoteResp():
                pre = self.role is Role.PRE_CANDIDATE
                if m.pre != pre or (pre and m.granted and m.term != self.term + 1):
                    return  # an answer to another round
                self.votes.setdefault(m.src, m.granted)
                if self._won():
                    if pre:
                        self.become_candidate()
                    else:
                        self.become_leader()
                elif sum(1 for g in self.votes.values() if not g) >= self.quorum:
                    self.become_follower(self.term, None)
            case _:
                pass

    def _step_leader(self, m: Message) -> None:
        if isinstance(m, AppendResp) and m.src in self.progress:
            self._handle_append_resp(m)

    # ------------------------------------------------------------ follower side
    def _handle_append(self, m: Append) -> None:
        if m.prev_index == -1:
            # Heartbeat: the leader caps its commit index at what it knows we hold.
            self._commit_to(m.commit)
            self._send(AppendResp(self.term, self.id, m.src, True, index=-1, seq=m.seq))
            return
        if m.prev_index < self.commit:
            # Everything up to our commit index matches the leader already (Leader Completeness).
            self._send(AppendResp(self.term, self.id, m.src, True, index=self.commit, seq=m.seq))
            return
        if self.log.matches(m.prev_index, m.prev_term):
            last_new = self.log.append_after(m.prev_index, list(m.entries))
            self._commit_to(min(m.commit, last_new))
            self._send(AppendResp(self.term, self.id, m.src, True, index=last_new, seq=m.seq))
            return
        if m.prev_index > self.log.last_index:
            hint_index, hint_term = self.log.last_index + 1, 0
        else:
            hint_term = self.log.term_at(m.prev_index) or 0
            hint_index = self.log.first_index_of_term(m.prev_index)
        self._send(
            AppendResp(
                self.term,
                self.id,
                m.src,
                False,
                reject_index=m.prev_index,
                conflict_index=hint_index,
                conflict_term=hint_term,
                seq=m.seq,
            )
        )

    def _commit_to(self, index: int) -> None:
        if index > self.commit:
            self.commit = min(index, self.log.last_index)

    def _handle_snapshot(self, m: InstallSnapshot) -> None:
        if m.index <= self.commit:
            self._send(AppendResp(self.term, self.id, m.src, True, index=self.commit, seq=m.seq))
            return
        if self.log.matches(m.index, m.snap_term):
            # We hold the snapshot's last entry: keep the log after it, just commit (§7).
            self._commit_to(m.index)
        else:
            snap = Snapshot(m.index, m.snap_term, m.data)
            self.log.restore(m.index, m.snap_term)
            self.snapshot = snap
            self._pending_snapshot = snap
            self.commit = m.index
            self.applied = m.index
        self._send(AppendResp(self.term, self.id, m.src, True, index=m.index, seq=m.seq))

    # ------------------------------------------------------------ leader side
    def _send_append(self, p: str) -> bool:
        """Send p what it needs next. Returns False when nothing was sent (paused or nothing new)."""
        pr = self.progress[p]
        if pr.paused(self.cfg.max_inflight):
            return False
        if pr.state is ProgressState.REPLICATE and pr.next > self.log.last_index:
            return False
        prev = pr.next - 1
        prev_term = self.log.term_at(prev)
        if prev_term is None:
            # The entries it needs are compacted away: send the snapshot instead (§7).
            assert self.snapshot is not None
            s = self.snapshot
            self._send(InstallSnapshot(self.term, self.id, p, s.index, s.term, s.data, self.seq))
            pr.state = ProgressState.SNAPSHOT
            pr.pending_snapshot = s.index
            pr.inflight.clear()
            pr.stalled_ticks = 0
            return True
        entries = self.log.slice(pr.next, pr.next + self.cfg.max_batch - 1)
        self._send(Append(self.term, self.id, p, prev, prev_term, tuple(entries), self.commit, self.seq))
        if pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        elif entries:
            pr.next = entries[-1].index + 1
            pr.inflight.append(entries[-1].index)
        return True

    def _bcast_append(self) -> None:
        for p in self.peers:
            self._send_more(p)

    def _send_more(self, p: str) -> None:
        while self._send_append(p) and self.progress[p].state is ProgressState.REPLICATE:
            pass

    def _handle_append_resp(self, m: AppendResp) -> None:
        pr = self.progress[m.src]
        pr.recent_active = True
        pr.acked_seq = max(pr.acked_seq, m.seq)
        if m.success and m.index == -1:
            # A heartbeat's answer: a lagging follower gets another probe.
            if pr.match < self.log.last_index and pr.state is ProgressState.PROBE:
                pr.probe_sent = False
                self._send_append(m.src)
        elif m.success:
            if m.index > pr.match:
                pr.match = m.index
                pr.stalled_ticks = 0
            pr.inflight = [i for i in pr.inflight if i > m.index]
            if pr.state is ProgressState.PROBE or (
                pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot
            ):
                pr.become_replicate()
            pr.next = max(pr.next, pr.match + 1)
            self._maybe_commit()
            self._send_more(m.src)
        elif m.reject_index >= 0:
            stale = (
                m.reject_index <= pr.match
                if pr.state is ProgressState.REPLICATE
                else m.reject_index != pr.next - 1
            )
            if not stale and pr.state is not ProgressState.SNAPSHOT:
                nxt = m.conflict_index
                if m.conflict_term > 0:
                    own = self.log.last_index_of_term(m.conflict_term)
                    if own is not None:
                        nxt = own + 1
                pr.become_probe()
                pr.next = max(pr.match + 1, min(nxt, m.reject_index))
                if m.reject_index > pr.match:
                    self._send_append(m.src)
                else:
                    # It rejects what it once acknowledged (it lost entries, or diverged under a
                    # planted bug): probing again at once would ping-pong; the next heartbeat retries.
                    pr.probe_sent = True
        self._check_reads()

    def _maybe_commit(self) -> None:
        if self.role is not Role.LEADER:
            return
        matches = sorted([self.log.stable, *(pr.match for pr in self.progress.values())], reverse=True)
        n = matches[self.quorum - 1]
        if n <= self.commit:
            return
        if self.log.term_at(n) != self.term and not self.cfg.commit_old_term:
            return  # Figure 8: never commit an earlier term's entry by counting replicas
        self.commit = n
        if self.waiting_reads and self._committed_in_term():
            waiting, self.waiting_reads = self.waiting_reads, []
            for ctx in waiting:
                self.read_index(ctx)

    def _committed_in_term(self) -> bool:
        return self.log.term_at(self.commit) == self.term

    # ------------------------------------------------------------ client inputs
    def propose(self, data: bytes) -> tuple[int, int] | None:
        """Append a command if leader: returns (index, term), or None (not the leader)."""
        if self.role is not Role.LEADER:
            return None
        e = Entry(self.term, self.log.last_index + 1, data)
        self.log.append(e)
        # Replicated at the next ready(): every proposal made before it shares one AppendEntries per peer.
        self._bcast_pending = True
        if not self.peers:
            self._maybe_commit()  # a one-node cluster commits at once (after persisting)
        return e.index, e.term

    def read_index(self, ctx: Any) -> bool:
        """Ask for a linearizable read point; False when not the leader. The answer comes in ready().reads.

        Reads are batched: one heartbeat round is in flight at a time, and every read received
        meanwhile waits for the next round, which starts (at the then commit index) as soon as the
        current one is acknowledged by a majority. A round started after a read arrived proves
        leadership at a time after it arrived, so the read point is still linearizable."""
        if self.role is not Role.LEADER:
            return False
        if not self._committed_in_term():
            self.waiting_reads.append(ctx)
            return True
        self.read_batch.append(ctx)
        if not self.read_round:
            self._check_reads()  # no round in flight: start one now
        return True

    def _check_reads(self) -> None:
        """Release the reads whose round a majority acknowledged; then start the next round."""
        while True:
            while self.pending_reads:
                ctx, index, seq = self.pending_reads[0]
                acks = 1 + sum(1 for pr in self.progress.values() if pr.acked_seq >= seq)
                if acks < self.quorum:
                    return
                self.pending_reads.pop(0)
                self._reads.append((ctx, index))
            self.read_round = 0
            if not self.read_batch:
                return
            self.seq += 1
            self.read_round = self.seq
            for ctx in self.read_batch:
                self.pending_reads.append((ctx, self.commit, self.seq))
            self.read_batch = []
            for p in self.peers:
                self._send_heartbeat(p)

    def compact(self, index: int, data: bytes) -> Snapshot:
        """The state machine as of `index` (<= applied) is in `data`: drop the log up to there."""
        assert index <= self.applied, (index, self.applied)
        term = self.log.term_at(index)
        assert term is not None
        snap = Snapshot(index, term, data)
        self.snapshot = snap
        self.log.compact(index, term)
        return snap

    # ------------------------------------------------------------ output
    def has_ready(self) -> bool:
        persisted = self._persisted_hard  # compared field by field: no HardState built per call
        log = self.log
        last = log.snapshot_index + len(log.entries)  # log.last_index, inlined: called after every event
        return bool(
            self._bcast_pending
            or self._msgs
            or self._reads
            or self._pending_snapshot
            or self.term != persisted.term
            or self.vote != persisted.vote
            or log.stable < last
            or self.applied < (self.commit if self.commit < last else last)
        )

    def ready(self) -> Ready:
        if self._bcast_pending:
            self._bcast_pending = False
            if self.role is Role.LEADER:
                self._bcast_append()
        persisted = self._persisted_hard
        log = self.log
        last = log.snapshot_index + len(log.entries)
        hard = HardState(self.term, self.vote) if self.term != persisted.term or self.vote != persisted.vote else None
        # log.unstable() and log.slice(applied + 1, min(commit, last)), skipped when they are empty
        entries = log.unstable() if log.stable < last else []
        committed = log.slice(self.applied + 1, min(self.commit, last)) if self.applied < self.commit else []
        rd = Ready(hard, self._pending_snapshot, entries, self._msgs, committed, self._reads)
        self._msgs = []
        self._reads = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller persisted, sent and applied what `rd` held."""
        if rd.hard_state:
            self._persisted_hard = rd.hard_state
        if rd.snapshot is not None and self._pending_snapshot is rd.snapshot:
            self._pending_snapshot = None
        if rd.entries:
            last = rd.entries[-1]
            if self.log.term_at(last.index) == last.term:
                self.log.stable = max(self.log.stable, last.index)
        if rd.committed:
            self.applied = max(self.applied, rd.committed[-1].index)
        if self.role is Role.LEADER:
            self._maybe_commit()

    def status(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "role": self.role.value,
            "leader": self.leader,
            "vote": self.vote,
            "commit_index": self.commit,
            "last_index": self.log.last_index,
            "snapshot_index": self.log.snapshot_index,
        }
