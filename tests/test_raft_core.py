"""The pure Raft core, driven as whole clusters over an in-memory network (no sockets, no clocks).

Like etcd's raft_test.go: a `Net` persists every Ready, delivers messages
(through filters that drop or cut links), applies committed entries and
checks, on every single send, that what was promised is on "disk":
a granted vote only after the vote is persisted, a successful append only
after the entries are. Tests name the sentence of the paper they check
(Ongaro & Ousterhout, extended version).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from systems.raft.core import CoreConfig, HardState, RaftCore, Role
from systems.raft.log import Entry, RaftLog, Snapshot
from systems.raft.messages import (
    Append,
    AppendResp,
    BadMessage,
    InstallSnapshot,
    Message,
    VoteReq,
    VoteResp,
    from_wire,
    to_wire,
)

Filter = Callable[[Message], bool]
"""Returns True to drop the message."""


@dataclass
class Disk:
    hard: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)

    def last_index(self) -> int:
        if self.entries:
            return self.entries[-1].index
        return self.snapshot.index if self.snapshot else 0


def sm_snapshot(applied: list[bytes | None]) -> bytes:
    """The test state machine (the list of applied commands) as snapshot bytes."""
    return json.dumps([a.decode() if a is not None else None for a in applied]).encode()


def sm_restore(data: bytes) -> list[bytes | None]:
    return [a.encode() if a is not None else None for a in json.loads(data)]


class Net:
    def __init__(self, n: int = 3, *, seed: int = 0, forget_votes: bool = False, **cfg: object) -> None:
        self.forget_votes = forget_votes
        """Plant the double-vote bug: votedFor never reaches the disk."""
        self.ids = [f"n{i}" for i in range(1, n + 1)]
        cfg.setdefault("check_quorum", False)
        self.cfg = cfg
        self.seed = seed
        self.disks = {i: Disk() for i in self.ids}
        self.cores: dict[str, RaftCore] = {}
        self.applied: dict[str, list[bytes | None]] = {}
        self.committed: dict[int, tuple[int, bytes | None]] = {}
        """index -> (term, data) applied by anyone: State Machine Safety says it never differs."""
        self.conflicts: list[tuple[int, tuple, tuple]] = []
        self.leaders: dict[int, str] = {}
        self.down: set[str] = set()
        self.filters: list[Filter] = []
        self.queue: list[Message] = []
        self.sent: list[Message] = []
        self.reads: dict[str, list] = {i: [] for i in self.ids}
        for i in self.ids:
            self.start(i)

    # ------------------------------------------------------------ nodes
    def start(self, i: str) -> None:
        d = self.disks[i]
        cfg = CoreConfig(i, tuple(self.ids), **self.cfg)  # type: ignore[arg-type]
        rng = random.Random(f"{self.seed}-{i}-{len(self.sent)}")
        self.cores[i] = RaftCore(cfg, rng, d.hard, d.snapshot, list(d.entries))
        self.applied[i] = sm_restore(d.snapshot.data) if d.snapshot else []
        self.down.discard(i)

    def crash(self, i: str) -> None:
        """Lose everything but the disk; the node stays down until restart()."""
        self.down.add(i)
        self.queue = [m for m in self.queue if m.dst != i and m.src != i]

    def restart(self, i: str) -> None:
        self.start(i)

    def isolate(self, i: str) -> None:
        self.filters.append(lambda m: i in (m.src, m.dst))

    def cut(self, a: str, b: str) -> None:
        self.filters.append(lambda m: {m.src, m.dst} == {a, b})

    def heal(self) -> None:
        self.filters = []

    # ------------------------------------------------------------ driving
    def _persist_and_collect(self, i: str) -> None:
        c, d = self.cores[i], self.disks[i]
        while c.has_ready():
            rd = c.ready()
            if rd.hard_state:
                d.hard = HardState(rd.hard_state.term, None) if self.forget_votes else rd.hard_state
            if rd.snapshot:
                d.snapshot = rd.snapshot
                d.entries = []
                self.applied[i] = sm_restore(rd.snapshot.data)
            if rd.entries:
                first = rd.entries[0].index
                d.entries = [e for e in d.entries if e.index < first] + list(rd.entries)
            for m in rd.messages:
                self._check_promise(m)
                self.sent.append(m)
                self.queue.append(m)
            for e in rd.committed:
                assert e.index == len(self.applied[i]) + 1, (i, e.index, len(self.applied[i]))
                self.applied[i].append(e.data)
                seen = self.committed.setdefault(e.index, (e.term, e.data))
                if seen != (e.term, e.data):
                    self.conflicts.append((e.index, seen, (e.term, e.data)))
            self.reads[i] += rd.reads
            c.advance(rd)
            if c.role is Role.LEADER:
                assert self.leaders.setdefault(c.term, i) == i, f"two leaders in term {c.term}"

    def _check_promise(self, m: Message) -> None:
        """§5.1: persistent state is updated on stable storage before responding to RPCs."""
        d = self.disks[m.src]
        if isinstance(m, VoteResp) and m.granted and not m.pre and not self.forget_votes:
            assert d.hard.term == m.term and d.hard.vote == m.dst, "vote sent before it was persisted"
        if isinstance(m, AppendResp) and m.success and m.index > 0:
            assert d.last_index() >= m.index, "append acknowledged before the entries were persisted"
        if isinstance(m, VoteReq) and not m.pre and not self.forget_votes:
            assert d.hard.term == m.term and d.hard.vote == m.src, "campaign before persisting the term"

    def pump(self, max_steps: int = 100_000) -> None:
        """Deliver messages until none is left (each step delivers one message)."""
        for i in self.ids:
            if i not in self.down:
                self._persist_and_collect(i)
        steps = 0
        while self.queue:
            steps += 1
            assert steps < max_steps, "network did not settle"
            m = self.queue.pop(0)
            if m.dst in self.down or m.src in self.down or any(f(m) for f in self.filters):
                continue
            self.cores[m.dst].step(m)
            self._persist_and_collect(m.dst)

    def tick(self, i: str, n: int = 1) -> None:
        for _ in range(n):
            self.cores[i].tick()
            self._persist_and_collect(i)
            self.pump()

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for i in self.ids:
                if i not in self.down:
                    self.cores[i].tick()
                    self._persist_and_collect(i)
            self.pump()

    def campaign(self, i: str) -> None:
        """Time i out right now (the other nodes' timers are untouched)."""
        self.cores[i].become_candidate()
        self.pump()

    def elect(self, i: str, tries: int = 5) -> None:
        for _ in range(tries):
            self.campaign(i)
            if self.cores[i].role is Role.LEADER:
                return
        raise AssertionError(f"{i} could not be elected: {self.cores[i].status()}")

    def propose(self, i: str, data: bytes) -> tuple[int, int] | None:
        r = self.cores[i].propose(data)
        self.pump()
        return r

    def leader(self) -> str | None:
        live = [i for i in self.ids if i not in self.down and self.cores[i].role is Role.LEADER]
        return max(live, key=lambda i: self.cores[i].term) if live else None


def cmds(applied: list[bytes | None]) -> list[bytes]:
    return [a for a in applied if a is not None]


# ---------------------------------------------------------------- log


def test_log_append_after_cuts_only_at_the_first_conflict() -> None:
    log = RaftLog(entries=[Entry(1, 1), Entry(1, 2), Entry(2, 3)])
    # A stale, shorter AppendEntries that matches must not erase entry 3 (Log Matching).
    assert log.append_after(1, [Entry(1, 2)]) == 2
    assert log.last_index == 3
    # A conflicting entry cuts the log from there on.
    log.append_after(2, [Entry(3, 3), Entry(3, 4)])
    assert [e.term for e in log.entries] == [1, 1, 3, 3]


def test_log_compaction_keeps_terms_at_the_boundary() -> None:
    log = RaftLog(entries=[Entry(1, i) for i in range(1, 6)])
    log.compact(3, 1)
    assert log.term_at(3) == 1 and log.term_at(2) is None and log.first_index == 4
    assert [e.index for e in log.slice(1, 10)] == [4, 5]


def test_wire_round_trip_and_rejects_garbage() -> None:
    m = Append(3, "n1", "n2", 4, 2, (Entry(3, 5, b"x"), Entry(3, 6, None)), 4, 9)
    assert from_wire(to_wire(m)) == m
    s = InstallSnapshot(3, "n1", "n2", 10, 2, b"{}")
    assert from_wire(to_wire(s)) == s
    v = VoteReq(4, "n1", "n2", 7, 3, pre=True)
    assert from_wire(to_wire(v)) == v
    for bad in [None, {"t": "nope"}, {"t": "vote", "term": "x"}, {**to_wire(m), "entries": [[1]]}]:
        with pytest.raises(BadMessage):
            from_wire(bad)


# ---------------------------------------------------------------- election (§5.2)


def test_initial_election_one_leader_everyone_follows() -> None:
    net = Net(3)
    net.tick("n1", 20)  # n1's timer fires first; the others never tick
    assert net.cores["n1"].role is Role.LEADER
    for i in ("n2", "n3"):
        assert net.cores[i].role is Role.FOLLOWER
        assert net.cores[i].leader == "n1"
        assert net.cores[i].term == net.cores["n1"].term


def test_election_timeouts_are_randomized_within_one_to_two_timeouts() -> None:
    """§5.2: election timeouts are chosen randomly from a fixed interval."""
    net = Net(5, election_ticks=10)
    timeouts = {net.cores[i].timeout for i in net.ids}
    assert all(10 <= t < 20 for t in timeouts)
    assert len(timeouts) > 1


def test_all_ticking_elects_exactly_one_leader() -> None:
    for seed in range(5):
        net = Net(5, seed=seed)
        net.tick_all(60)
        leaders = [i for i in net.ids if net.cores[i].role is Role.LEADER]
        assert len(leaders) == 1, (seed, leaders)


def test_a_server_votes_for_at_most_one_candidate_per_term() -> None:
    """§5.2: each server will vote for at most one candidate in a given term, first-come-first-served."""
    c = RaftCore(CoreConfig("n1", ("n1", "n2", "n3")), random.Random(0))
    c.step(VoteReq(1, "n2", "n1", 0, 0))
    c.step(VoteReq(1, "n3", "n1", 0, 0))
    c.step(VoteReq(1, "n2", "n1", 0, 0))  # a retransmission is granted again
    votes = [(m.dst, m.granted) for m in c.ready().messages if isinstance(m, VoteResp)]
    assert votes == [("n2", True), ("n3", False), ("n2", True)]


def test_vote_refused_to_a_candidate_with_a_less_up_to_date_log() -> None:
    """§5.4.1: the voter denies its vote if its own log is more up-to-date than that of the candidate."""
    entries = [Entry(1, 1), Entry(2, 2)]
    c = RaftCore(CoreConfig("n1", ("n1", "n2", "n3")), random.Random(0), HardState(2, None), None, entries)
    c.step(VoteReq(3, "n2", "n1", 5, 1))  # longer log but older last term
    c.step(VoteReq(4, "n3", "n1", 2, 2))  # same last term, same length
    out = [(m.dst, m.granted) for m in c.ready().messages if isinstance(m, VoteResp)]
    assert out == [("n2", False), ("n3", True)]


def test_vote_survives_a_crash() -> None:
    """Figure 2: votedFor is persistent: a restarted server does not vote twice in its term."""
    net = Net(3)
    net.campaign("n2")
    assert net.cores["n2"].role is Role.LEADER
    term = net.cores["n2"].term
    net.crash("n1")
    net.restart("n1")
    net.cores["n1"].step(VoteReq(term, "n3", "n1", 99, 99))
    granted = [m for m in net.cores["n1"].ready().messages if isinstance(m, VoteResp) and m.granted]
    assert granted == []


def double_vote_scenario(forget_votes: bool) -> Net:
    """n2 votes for n1, restarts, and is asked by n3 (cut off from n1) for a vote in the same term."""
    net = Net(3, forget_votes=forget_votes)
    net.cut("n1", "n3")
    net.filters.append(lambda m: isinstance(m, Append) and m.src == "n1")  # n3's log stays as good as n2's
    net.campaign("n1")
    assert net.cores["n1"].role is Role.LEADER and net.cores["n3"].term == 0
    net.crash("n2")
    net.restart("n2")
    net.campaign("n3")  # n3 moves to term 1, the term n2 already voted in
    return net


def test_restarted_voter_refuses_a_second_candidate_in_the_same_term() -> None:
    net = double_vote_scenario(False)
    assert net.cores["n3"].role is Role.CANDIDATE


def test_double_vote_bug_elects_two_leaders_in_one_term() -> None:
    with pytest.raises(AssertionError, match="two leaders in term 1"):
        double_vote_scenario(True)


def test_pre_vote_keeps_a_cut_off_node_from_inflating_its_term() -> None:
    """Dissertation §9.6: a server first asks whether it could win; only then does it increment its term."""
    net = Net(3, pre_vote=True, check_quorum=True)
    net.tick_all(40)
    leader = net.leader()
    assert leader is not None
    term = net.cores[leader].term
    lonely = next(i for i in net.ids if i != leader)
    net.isolate(lonely)
    net.tick_all(100)  # many election timeouts for the cut-off node
    assert net.cores[lonely].term == term
    assert net.cores[lonely].role is Role.PRE_CANDIDATE
    net.heal()
    net.tick_all(5)
    assert net.leader() == leader and net.cores[leader].term == term
    assert net.cores[lonely].role is Role.FOLLOWER and net.cores[lonely].leader == leader


def test_pre_vote_then_vote_elects_after_the_leader_dies() -> None:
    net = Net(5, pre_vote=True, check_quorum=True)
    net.tick_all(40)
    old = net.leader()
    assert old is not None
    net.crash(old)
    net.tick_all(60)
    new = net.leader()
    assert new is not None and new != old
    assert net.cores[new].term == net.cores[old].term + 1  # no wasted terms


def test_leader_gone_elects_at_once_without_waiting_out_the_election_timeout() -> None:
    """A follower told its leader is gone (a connection refused) pre-votes at once; a peer that
    learned the same grants, so a new leader is elected within a tick, term + 1, nothing lost."""
    net = Net(3, pre_vote=True, check_quorum=True, election_ticks=10)
    net.tick_all(40)
    old = net.leader()
    assert old is not None
    net.propose(old, b"x")
    term = net.cores[old].term
    net.crash(old)
    a, b = (i for i in net.ids if i != old)
    net.cores[b].leader_gone(old)  # b only forgets the leader: it is not asked first
    assert net.cores[b].role is Role.PRE_CANDIDATE
    net.pump()  # a still hears a leader (check-quorum lease): b's pre-vote is refused
    assert net.cores[b].term == term and net.cores[a].role is Role.FOLLOWER
    net.cores[a].leader_gone(old)
    # a refused b since it last heard the leader: it does not campaign too (the two would grant each
    # other's pre-votes and split the vote) but answers b's request now
    assert net.cores[a].role is Role.FOLLOWER and net.cores[a].leader is None
    net.pump()
    new = net.leader()
    assert new == b and net.cores[new].term == term + 1
    net.propose(new, b"y")
    net.tick_all(1)  # the follower learns the commit index from the next heartbeat
    assert cmds(net.applied[a]) == cmds(net.applied[b]) == [b"x", b"y"]


@pytest.mark.parametrize("seed", range(6))
def test_leader_gone_learned_by_both_followers_at_once_elects_the_lower_id_without_a_split(seed: int) -> None:
    """Both followers learn it together and campaign before either hears the other: their early
    pre-vote rounds cross. The lower id goes first, so one election, term + 1, no split vote."""
    net = Net(3, seed=seed, pre_vote=True, check_quorum=True)
    net.tick_all(40)
    old = net.leader()
    assert old is not None
    term = net.cores[old].term
    net.crash(old)
    a, b = sorted(i for i in net.ids if i != old)
    net.cores[b].leader_gone(old)
    net.cores[a].leader_gone(old)
    assert net.cores[a].role is net.cores[b].role is Role.PRE_CANDIDATE
    net.pump()
    assert net.leader() == a and net.cores[a].term == term + 1
    assert net.cores[b].role is Role.FOLLOWER and net.cores[b].leader == a


def test_leader_gone_about_a_live_leader_disrupts_nothing() -> None:
    """A wrong guess (the leader is alive; only one link refuses) is harmless with pre-vote: the
    other follower still hears the leader and refuses, no term changes, the leader stays."""
    net = Net(3, pre_vote=True, check_quorum=True)
    net.tick_all(40)
    leader = net.leader()
    assert leader is not None
    term = net.cores[leader].term
    wrong = next(i for i in net.ids if i != leader)
    net.cores[wrong].leader_gone(leader)
    net.pump()
    assert net.cores[wrong].role is Role.PRE_CANDIDATE and net.cores[wrong].term == term
    net.tick_all(3)  # the next heartbeat brings it back
    assert net.leader() == leader and net.cores[leader].term == term
    assert net.cores[wrong].role is Role.FOLLOWER and net.cores[wrong].leader == leader


def test_leader_gone_is_ignored_unless_it_names_the_leader_we_follow() -> None:
    net = Net(3, pre_vote=True, check_quorum=True)
    net.tick_all(40)
    leader = net.leader()
    assert leader is not None
    other = next(i for i in net.ids if i != leader)
    third = next(i for i in net.ids if i not in (leader, other))
    net.cores[other].leader_gone(third)  # not its leader
    net.cores[leader].leader_gone(leader)  # a leader is no follower
    assert net.cores[other].role is Role.FOLLOWER and net.cores[other].leader == leader
    assert net.cores[leader].role is Role.LEADER


def test_leader_gone_without_pre_vote_only_forgets_the_leader() -> None:
    """Without pre-vote a real election at once could disrupt a live leader: only the lease is
    dropped (it now grants votes), and the election timeout still decides when to campaign."""
    net = Net(3, pre_vote=False, check_quorum=True)
    net.tick_all(40)
    leader = net.leader()
    assert leader is not None
    other = next(i for i in net.ids if i != leader)
    net.cores[other].leader_gone(leader)
    assert net.cores[other].role is Role.FOLLOWER and net.cores[other].leader is None
    assert net.cores[other].term == net.cores[leader].term


def test_leader_steps_down_on_higher_term() -> None:
    """§5.1: if a server discovers that its term is out of date, it reverts to follower state."""
    net = Net(3)
    net.elect("n1")
    net.cores["n1"].step(AppendResp(net.cores["n1"].term + 5, "n2", "n1", False, reject_index=-1))
    assert net.cores["n1"].role is Role.FOLLOWER


def test_isolated_leader_steps_down_with_check_quorum() -> None:
    net = Net(3, election_ticks=10, check_quorum=True)
    net.elect("n1")
    net.isolate("n1")
    net.tick("n1", 25)
    assert net.cores["n1"].role is not Role.LEADER


def test_rejoining_node_with_higher_term_does_not_disrupt_a_live_leader() -> None:
    """Dissertation §4.2.3: servers ignore RequestVote when they believe a current leader exists."""
    net = Net(3, check_quorum=True)
    net.elect("n1")
    leader_term = net.cores["n1"].term
    net.isolate("n3")
    for _ in range(3):
        net.campaign("n3")  # n3's term climbs while it is cut off
    net.heal()
    net.campaign("n3")
    assert net.cores["n1"].role is Role.LEADER and net.cores["n1"].term == leader_term
    net.tick("n1", 2)  # heartbeats bring n3 back (its higher term makes n1 step down at worst)
    net.tick_all(60)
    assert net.leader() is not None


# ---------------------------------------------------------------- replication (§5.3)


def test_replication_commits_on_a_majority_and_all_apply_the_same() -> None:
    net = Net(5)
    net.elect("n1")
    for k in range(10):
        assert net.propose("n1", f"c{k}".encode())
    net.tick("n1", 2)  # heartbeats carry the commit index
    want = [f"c{k}".encode() for k in range(10)]
    for i in net.ids:
        assert cmds(net.applied[i]) == want, i
    assert net.conflicts == []


def test_no_commit_without_a_majority() -> None:
    """§5.3: an entry is committed once the leader has replicated it on a majority."""
    net = Net(5)
    net.elect("n1")
    commit = net.cores["n1"].commit
    for other in ("n3", "n4", "n5"):
        net.isolate(other)
    net.propose("n1", b"x")
    net.tick("n1", 3)
    assert net.cores["n1"].commit == commit
    assert b"x" not in cmds(net.applied["n1"])
    net.heal()
    net.tick("n1", 3)
    assert b"x" in cmds(net.applied["n1"])


def test_fast_backtracking_skips_whole_terms() -> None:
    """§5.3: the follower includes the term of the conflicting entry and the first index it stores
    for that term, so one AppendEntries RPC per term is needed rather than one per entry (Figure 7, f)."""
    leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
    follower_terms = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]
    net = Net(2)
    net.disks["n1"] = Disk(HardState(6, None), None, [Entry(t, i + 1) for i, t in enumerate(leader_terms)])
    net.disks["n2"] = Disk(HardState(3, None), None, [Entry(t, i + 1) for i, t in enumerate(follower_terms)])
    net.start("n1")
    net.start("n2")
    net.elect("n1")
    rejects = [m for m in net.sent if isinstance(m, AppendResp) and not m.success and m.reject_index >= 0]
    assert len(rejects) <= 3, rejects
    lt = [e.term for e in net.cores["n1"].log.entries]
    assert [e.term for e in net.cores["n2"].log.entries] == lt


def test_pipelining_respects_the_inflight_window() -> None:
    net = Net(3, max_batch=2, max_inflight=3)
    net.elect("n1")
    net.cut("n1", "n2")
    net.cut("n1", "n3")  # hold every append back: only the window may be sent
    before = len(net.sent)
    for k in range(20):
        net.cores["n1"].propose(f"c{k}".encode())
    net.pump()
    appends = [m for m in net.sent[before:] if isinstance(m, Append) and m.entries and m.dst == "n2"]
    # n2 was probing (its last answer is lost): at most one probe or a window of 3 in flight.
    assert 1 <= len(appends) <= 3
    net.heal()
    net.tick("n1", 6)
    for i in net.ids:
        assert len(cmds(net.applied[i])) == 20


def test_lost_messages_are_recovered_by_heartbeats() -> None:
    rng = random.Random(7)
    net = Net(3)
    net.elect("n1")
    net.filters.append(lambda m: rng.random() < 0.3)
    for k in range(30):
        if net.leader():
            net.propose(net.leader(), f"c{k}".encode())  # type: ignore[arg-type]
        net.tick_all(1)
    net.heal()
    net.tick_all(60)
    lead = net.leader()
    assert lead is not None
    net.propose(lead, b"final")
    net.tick_all(3)
    apps = [cmds(net.applied[i]) for i in net.ids]
    assert apps[0] == apps[1] == apps[2] and apps[0][-1] == b"final"
    assert net.conflicts == []


# ---------------------------------------------------------------- Figure 8 (§5.4.2)


def figure8(bug: bool) -> Net:
    """The scenario of Figure 8, with max_batch=1 so one entry can be replicated without the next."""
    net = Net(5, max_batch=1, commit_old_term=bug)
    net.elect("n1")
    # (a) n1 replicates X (its term) to n2 only.
    for other in ("n3", "n4", "n5"):
        net.cut("n1", other)
    x_index, x_term = net.propose("n1", b"X")  # type: ignore[misc]
    assert net.disks["n2"].last_index() == x_index
    # (b) n1 crashes; n5 is elected by n3, n4 (n2's log is more up-to-date) and appends its no-op at X's index.
    net.crash("n1")
    net.heal()
    net.filters.append(lambda m: m.src == "n5" and isinstance(m, Append))
    net.elect("n5")
    t5 = net.cores["n5"].term
    assert net.cores["n5"].log.term_at(x_index) == t5 and net.disks["n2"].entries[-1].term == x_term
    # (c) n5 crashes; n1 restarts, is elected and replicates X (old term) to n3 but not its own no-op.
    net.crash("n5")
    net.heal()
    net.restart("n1")
    def holds_x_and_would_get_the_noop(m: Message) -> bool:
        new = isinstance(m, Append) and any(e.term > t5 for e in m.entries)
        return m.src == "n1" and new and net.disks[m.dst].last_index() >= x_index

    net.filters.append(holds_x_and_would_get_the_noop)
    net.filters.append(lambda m: {m.src, m.dst} == {"n1", "n4"} and isinstance(m, Append))
    net.elect("n1")
    # n2 acknowledges X, which it holds (as its answer to an append of X alone would).
    net.cores["n1"].step(AppendResp(net.cores["n1"].term, "n2", "n1", True, index=x_index))
    net.pump()  # no heartbeat: n2 and n3 do not learn any new commit index
    holders = [i for i in ("n1", "n2", "n3") if net.disks[i].entries and net.disks[i].last_index() >= x_index]
    assert len(holders) == 3  # X is stored on a majority
    # (d) n1 crashes; n5 comes back, is elected (its last term is newer) and overwrites X everywhere.
    net.crash("n1")
    net.heal()
    net.restart("n5")
    net.elect("n5")
    net.tick("n5", 5)
    return net


def test_figure8_an_old_term_entry_on_a_majority_is_not_committed() -> None:
    """§5.4.2: Raft never commits log entries from previous terms by counting replicas."""
    net = figure8(bug=False)
    assert net.conflicts == []
    assert b"X" not in cmds(net.applied["n1"])


def test_figure8_bug_commits_then_loses_an_entry() -> None:
    net = figure8(bug=True)
    assert b"X" in cmds(net.applied["n1"])  # committed and applied by the buggy leader...
    assert net.conflicts, "...and then replaced at the same index by the next leader"


# ---------------------------------------------------------------- snapshots (§7)


def test_snapshot_installs_on_a_far_behind_follower() -> None:
    """§7: the leader sends snapshots to followers that lag behind (their entries are compacted away)."""
    net = Net(3)
    net.elect("n1")
    net.crash("n3")
    for k in range(30):
        net.propose("n1", f"c{k}".encode())
    net.tick("n1", 2)
    leader = net.cores["n1"]
    snap = leader.compact(leader.applied, sm_snapshot(net.applied["n1"]))
    assert leader.log.first_index > 1
    net.restart("n3")
    net.tick("n1", 8)
    assert any(isinstance(m, InstallSnapshot) and m.dst == "n3" for m in net.sent)
    assert net.cores["n3"].log.snapshot_index == snap.index
    net.propose("n1", b"after")
    net.tick("n1", 3)
    assert net.applied["n3"] == net.applied["n1"]
    assert cmds(net.applied["n3"])[-1] == b"after"
    assert net.conflicts == []


def test_snapshot_that_is_older_than_the_commit_index_is_ignored() -> None:
    entries = [Entry(1, i) for i in range(1, 6)]
    c = RaftCore(CoreConfig("n2", ("n1", "n2")), random.Random(0), HardState(1, "n1"), None, entries)
    c.step(Append(1, "n1", "n2", 5, 1, (), 5, 0))
    c.ready()
    c.step(InstallSnapshot(1, "n1", "n2", 3, 1, b"[]"))
    rd = c.ready()
    assert rd.snapshot is None and c.log.last_index == 5


# ---------------------------------------------------------------- persistence and restarts


def test_whole_cluster_crash_keeps_committed_entries() -> None:
    """Figure 2: log[] and currentTerm are persistent; after every node restarts, committed entries stay."""
    net = Net(3)
    net.elect("n1")
    for k in range(5):
        net.propose("n1", f"c{k}".encode())
    for i in net.ids:
        net.crash(i)
    for i in net.ids:
        net.restart(i)
    net.tick_all(60)
    lead = net.leader()
    assert lead is not None
    net.tick_all(3)
    for i in net.ids:
        assert cmds(net.applied[i])[:5] == [f"c{k}".encode() for k in range(5)]
    assert net.conflicts == []


# ---------------------------------------------------------------- ReadIndex (dissertation §6.4)


def test_read_index_needs_a_heartbeat_round_from_a_majority() -> None:
    net = Net(3)
    net.elect("n1")
    c = net.cores["n1"]
    net.isolate("n1")
    assert c.read_index("r1")
    net.pump()
    assert net.reads["n1"] == []  # nobody confirmed that n1 is still the leader
    net.heal()
    net.tick("n1", 1)  # one heartbeat round
    assert net.reads["n1"] == [("r1", c.commit)]


def test_read_index_waits_for_the_leader_to_commit_in_its_term() -> None:
    net = Net(3)
    net.cut("n1", "n2")
    net.cut("n1", "n3")
    net.cores["n1"].become_candidate()
    for p in ("n2", "n3"):
        net.cores["n1"].step(VoteResp(net.cores["n1"].term, p, "n1", True))
    assert net.cores["n1"].role is Role.LEADER
    assert net.cores["n1"].read_index("r")
    net.pump()
    assert net.reads["n1"] == []
    net.heal()
    net.tick("n1", 2)
    assert [ctx for ctx, _ in net.reads["n1"]] == ["r"]


def test_read_index_refused_by_a_follower() -> None:
    net = Net(3)
    net.elect("n1")
    assert net.cores["n2"].read_index("x") is False


def test_messages_for_someone_else_or_from_stale_terms_are_harmless() -> None:
    net = Net(3)
    net.elect("n1")
    term = net.cores["n2"].term
    net.cores["n2"].step(Append(term - 1, "n3", "n2", 0, 0, (Entry(term - 1, 1, b"zz"),), 1, 0))
    net.cores["n2"].step(Append(term, "n1", "n9", 0, 0, (), 0, 0))
    rd = net.cores["n2"].ready()
    assert [type(m).__name__ for m in rd.messages] == ["AppendResp"]
    assert rd.messages[0].term == term and not rd.messages[0].success  # type: ignore[union-attr]
