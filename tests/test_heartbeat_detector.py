"""The heartbeat system's pure parts: phi arithmetic, membership rules, messages, and the node's incarnation."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from systems.heartbeat.detector import PHI_MAX, FixedTimeout, PhiAccrual, phi_of
from systems.heartbeat.membership import Membership, Outcome, Status, Thresholds
from systems.heartbeat.messages import BadMessage, DeclaredDead, Heartbeat
from systems.heartbeat.node import INCARNATION_FILE, HeartbeatNode, Options, start_node
from systems.runtime.api import NodeConfig

# -- phi arithmetic ------------------------------------------------------------------------------


def test_phi_is_log10_2_at_the_mean_and_grows_with_silence() -> None:
    assert phi_of(1.0, 1.0, 0.1) == pytest.approx(math.log10(2), abs=1e-9)
    values = [phi_of(t / 10, 1.0, 0.1) for t in range(0, 40)]
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert values[0] < 1e-6 and values[-1] > 100


def test_phi_never_overflows_and_is_capped() -> None:
    assert phi_of(1e9, 0.1, 0.01) == PHI_MAX
    assert phi_of(-1e9, 0.1, 0.01) == 0.0


def feed(d: PhiAccrual, gaps: list[float], t: float = 0.0) -> float:
    for g in gaps:
        t += g
        d.heartbeat(t)
    return t


def test_detector_phi_grows_with_silence_and_drops_on_heartbeat() -> None:
    d = PhiAccrual(0.0, interval_s=0.1, min_std_s=0.02, acceptable_pause_s=0.0)
    t = feed(d, [0.1] * 50)
    phis = [d.phi(t + s / 100) for s in range(0, 60, 5)]
    assert all(a < b for a, b in itertools.pairwise(phis[2:]))
    assert phis[-1] > 8
    d.heartbeat(t + 0.6)
    assert d.phi(t + 0.6) < 0.1


def test_detector_adapts_to_interval_jitter() -> None:
    """The same silence is less suspicious from a peer whose heartbeats have always been irregular."""
    rng = random.Random(7)
    steady = PhiAccrual(0.0, interval_s=0.1, min_std_s=0.005, acceptable_pause_s=0.0)
    jittery = PhiAccrual(0.0, interval_s=0.1, min_std_s=0.005, acceptable_pause_s=0.0)
    t1 = feed(steady, [0.1] * 100)
    t2 = feed(jittery, [rng.uniform(0.02, 0.18) for _ in range(100)])
    assert jittery.std_s > 5 * steady.std_s
    assert steady.phi(t1 + 0.2) > 8 > jittery.phi(t2 + 0.2)


def test_detector_forgets_old_samples_and_does_not_learn_outages() -> None:
    d = PhiAccrual(0.0, interval_s=0.1, window=10, max_sample_s=1.0)
    t = feed(d, [0.5] * 10)
    assert d.mean_s == pytest.approx(0.5)
    t = feed(d, [0.1] * 10, t)
    assert d.mean_s == pytest.approx(0.1)
    feed(d, [30.0], t)  # a partition: not a sample
    assert d.mean_s == pytest.approx(0.1)


def test_default_options_suspect_then_dead_after_about_one_second() -> None:
    """The numbers node.py's docstring promises for the default jittered schedule."""
    o = Options()
    rng = random.Random(3)
    d = PhiAccrual(
        0.0, interval_s=o.heartbeat_interval_s, min_std_s=o.min_std_s, acceptable_pause_s=o.acceptable_pause_s
    )
    j = o.send_jitter
    t = feed(d, [o.heartbeat_interval_s * rng.uniform(1 - j, 1 + j) for _ in range(200)])
    assert d.phi(t + 1.5 * o.heartbeat_interval_s) < 0.01
    assert d.phi(t + 0.8) < o.suspect_phi <= d.phi(t + 1.0) < o.dead_phi <= d.phi(t + 1.25)


def test_fixed_timeout_is_all_or_nothing() -> None:
    d = FixedTimeout(0.0, timeout_s=0.1)
    assert d.phi(0.1) == 0.0 and d.phi(0.1001) == PHI_MAX
    d.heartbeat(0.15)
    assert d.phi(0.2) == 0.0


# -- membership rules ----------------------------------------------------------------------------


def membership(now: float = 0.0) -> Membership:
    def make(t: float) -> PhiAccrual:
        return PhiAccrual(t, interval_s=0.1, min_std_s=0.05, acceptable_pause_s=0.2)

    return Membership(["n2", "n3"], now, make, Thresholds(suspect_phi=1.0, dead_phi=8.0, stall_s=0.5))


def beat(m: Membership, peer: str, inc: int, t0: float, t1: float, step: float = 0.1) -> float:
    seq = m.peers[peer].seq + 1 if m.peers[peer].incarnation == inc else 1
    t = t0
    while t <= t1 + 1e-9:
        m.on_heartbeat(peer, inc, seq, t)
        m.evaluate(t)
        seq += 1
        t += step
    return t - step


def silent_until(m: Membership, t0: float, t1: float, step: float = 0.05) -> list[Any]:
    out = []
    t = t0
    while t <= t1 + 1e-9:
        out += m.evaluate(t)
        t += step
    return out


def test_first_heartbeat_is_a_new_incarnation_and_silence_goes_suspect_then_dead() -> None:
    m = membership()
    assert m.on_heartbeat("n2", 1, 1, 0.0) is Outcome.NEW_INCARNATION
    t = beat(m, "n2", 1, 0.1, 2.0)
    assert m.peers["n2"].status is Status.ALIVE
    changes = [(c.peer, c.new) for c in silent_until(m, t, t + 2.0) if c.peer == "n2"]
    assert changes == [("n2", Status.SUSPECT), ("n2", Status.DEAD)]


def test_a_peer_never_heard_from_is_declared_dead_too() -> None:
    m = membership()
    silent_until(m, 0.0, 2.0)
    assert m.peers["n3"].status is Status.DEAD and m.peers["n3"].incarnation == 0
    assert m.on_heartbeat("n3", 1, 1, 2.0) is Outcome.NEW_INCARNATION
    assert m.peers["n3"].status is Status.ALIVE


def test_suspect_is_reversible_by_a_heartbeat_of_the_same_incarnation() -> None:
    m = membership()
    t = beat(m, "n2", 1, 0.0, 2.0)
    silent_until(m, t, t + 0.4)
    assert m.peers["n2"].status is Status.SUSPECT
    assert m.on_heartbeat("n2", 1, m.peers["n2"].seq + 1, t + 0.45) is Outcome.ACCEPTED
    assert m.peers["n2"].status is Status.ALIVE


def test_dead_is_final_for_its_incarnation_and_a_higher_one_revives_at_once() -> None:
    m = membership()
    t = beat(m, "n2", 3, 0.0, 2.0)
    silent_until(m, t, t + 2.0)
    assert m.peers["n2"].status is Status.DEAD
    seq = m.peers["n2"].seq
    assert m.on_heartbeat("n2", 3, seq + 1, t + 2.1) is Outcome.REFUTE
    m.evaluate(t + 2.1)
    assert m.peers["n2"].status is Status.DEAD
    assert m.on_heartbeat("n2", 4, 1, t + 2.2) is Outcome.NEW_INCARNATION
    assert m.peers["n2"].status is Status.ALIVE and m.peers["n2"].incarnation == 4
    assert m.evaluate(t + 2.25) == []


def test_a_stale_incarnation_never_revives_and_never_feeds_the_detector() -> None:
    m = membership()
    t = beat(m, "n2", 5, 0.0, 1.0)
    silent_until(m, t, t + 2.0)
    assert m.on_heartbeat("n2", 4, 999, t + 2.1) is Outcome.STALE
    assert m.peers["n2"].status is Status.DEAD and m.peers["n2"].incarnation == 5
    m2 = membership()
    t = beat(m2, "n2", 5, 0.0, 1.0)
    last = m2.peers["n2"].detector.last
    assert m2.on_heartbeat("n2", 4, 999, t + 0.05) is Outcome.STALE
    assert m2.peers["n2"].detector.last == last


def test_duplicates_and_reordered_heartbeats_are_ignored() -> None:
    m = membership()
    m.on_heartbeat("n2", 1, 5, 0.0)
    assert m.on_heartbeat("n2", 1, 5, 0.01) is Outcome.DUPLICATE
    assert m.on_heartbeat("n2", 1, 4, 0.02) is Outcome.DUPLICATE
    assert m.on_heartbeat("n2", 1, 6, 0.1) is Outcome.ACCEPTED
    assert m.on_heartbeat("n9", 1, 1, 0.1) is Outcome.UNKNOWN_PEER


def test_an_observer_that_stalled_does_not_blame_its_peers_but_dead_verdicts_stand() -> None:
    m = membership()
    beat(m, "n2", 1, 0.0, 1.0)  # evaluated at every beat: n3, never heard, goes dead meanwhile
    assert m.peers["n3"].status is Status.DEAD
    assert m.evaluate(4.0) == []  # 3 s without evaluating: the observer was paused
    assert m.stalls == 1
    assert m.peers["n2"].status is Status.ALIVE and m.peers["n3"].status is Status.DEAD
    silent_until(m, 4.0, 6.0)
    assert m.peers["n2"].status is Status.DEAD


def test_view_is_plain_data() -> None:
    m = membership()
    m.on_heartbeat("n2", 2, 1, 0.0)
    v = m.view(0.25)
    assert v["n2"] == {"status": "alive", "incarnation": 2, "phi": 0.0, "since_s": 0.25, "heard_s": 0.25}
    assert v["n3"]["incarnation"] == 0


events = st.lists(
    st.one_of(
        st.tuples(st.just("beat"), st.sampled_from(["n2", "n3"]), st.integers(0, 4), st.integers(0, 6)),
        st.tuples(st.just("wait"), st.floats(0.0, 1.5)),
    ),
    max_size=60,
)


@given(events)
def test_incarnation_rules_hold_for_any_sequence_of_heartbeats_and_silences(evs: list[tuple[Any, ...]]) -> None:
    """Known incarnations never go down; a higher one always revives; a stale one never changes anything."""
    m = membership()
    t = 0.0
    for ev in evs:
        if ev[0] == "wait":
            t += ev[1]
            m.evaluate(t)
            continue
        _, peer, inc, seq = ev
        before = (m.peers[peer].incarnation, m.peers[peer].status, m.peers[peer].seq)
        outcome = m.on_heartbeat(peer, inc, seq, t)
        after = m.peers[peer]
        assert after.incarnation == max(before[0], inc)
        if inc > before[0]:
            assert outcome is Outcome.NEW_INCARNATION and after.status is Status.ALIVE
        elif inc < before[0]:
            assert outcome is Outcome.STALE and (after.incarnation, after.status, after.seq) == before
        elif before[1] is Status.DEAD:
            assert outcome is Outcome.REFUTE and after.status is Status.DEAD
        else:
            assert after.status in (Status.ALIVE, before[1])


# -- messages ------------------------------------------------------------------------------------


def test_messages_round_trip_and_reject_garbage() -> None:
    assert Heartbeat.decode(Heartbeat(3, 9).to_wire()) == Heartbeat(3, 9)
    assert DeclaredDead.decode(DeclaredDead(2).to_wire()) == DeclaredDead(2)
    for bad in (None, [], {"inc": -1, "seq": 0}, {"inc": "1", "seq": 0}, {"inc": True, "seq": 1}, {"inc": 1}):
        with pytest.raises(BadMessage):
            Heartbeat.decode(bad)


# -- the node's incarnation, against a tiny fake runtime -----------------------------------------


class FakeDisk:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.durable: dict[str, bytes] = {}

    def read(self, name: str) -> bytes | None:
        return self.files.get(name)

    def write(self, name: str, data: bytes) -> None:
        self.files[name] = data

    async def sync(self, name: str) -> None:
        self.durable[name] = self.files[name]

    def crash(self) -> None:
        self.files = dict(self.durable)


class FakeLog:
    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: None


class FakeRuntime:
    def __init__(self, disk: FakeDisk) -> None:
        self.node_id, self.peers, self.disk, self.log = "n1", ["n2", "n3"], disk, FakeLog()
        self.rng = random.Random(1)
        self.t = 0.0
        self.sent: list[tuple[str, str, Any]] = []
        self.handlers: dict[str, Any] = {}

    def now(self) -> float:
        return self.t

    def send(self, dst: str, method: str, msg: Any) -> None:
        self.sent.append((dst, method, msg))

    def serve(self, method: str, handler: Any) -> None:
        self.handlers[method] = handler

    def spawn(self, coro: Any, name: str = "") -> None:
        coro.close()


def test_incarnation_is_persisted_before_start_and_grows_on_every_restart() -> None:
    disk = FakeDisk()
    for expected in (1, 2, 3):
        disk.crash()
        rt = FakeRuntime(disk)
        asyncio.run(start_node(rt, NodeConfig("heartbeat")))  # type: ignore[arg-type]
        assert disk.durable[INCARNATION_FILE] == str(expected).encode()
        view = asyncio.run(rt.handlers["view"]("client", None))
        assert view["incarnation"] == expected


def test_a_node_declared_dead_refutes_with_a_higher_durable_incarnation() -> None:
    disk = FakeDisk()
    node = HeartbeatNode(FakeRuntime(disk), Options(), (), 4)  # type: ignore[arg-type]
    asyncio.run(node.on_declared_dead("n2", DeclaredDead(4).to_wire()))
    assert node.incarnation == 5 and disk.durable[INCARNATION_FILE] == b"5"
    assert {(dst, m, msg["inc"]) for dst, m, msg in node.rt.sent} == {("n2", "heartbeat", 5), ("n3", "heartbeat", 5)}
    asyncio.run(node.on_declared_dead("n3", DeclaredDead(4).to_wire()))  # an older verdict: already refuted
    assert node.incarnation == 5


def test_the_no_incarnation_bug_always_announces_one_and_never_refutes() -> None:
    disk = FakeDisk()
    rt = FakeRuntime(disk)
    asyncio.run(start_node(rt, NodeConfig("heartbeat", bugs=("no-incarnation",))))  # type: ignore[arg-type]
    assert INCARNATION_FILE not in disk.durable
    asyncio.run(rt.handlers["declared-dead"]("n2", {"inc": 1}))
    assert asyncio.run(rt.handlers["view"]("client", None))["incarnation"] == 1


@pytest.mark.parametrize("make", [lambda: PhiAccrual(0.0, interval_s=0.5), lambda: FixedTimeout(0.0, timeout_s=2.0)],
                         ids=["phi", "fixed-timeout"])
def test_a_clock_that_went_back_does_not_keep_a_silent_peer_alive(make: Any) -> None:
    """Heard until 10.0 on a clock running ahead; the clock is reset 9 s back and the peer falls silent:
    its silence counts from the reset, not from a stamp the clock will not reach for 9 s."""
    d = make()
    for i in range(1, 21):
        d.heartbeat(i * 0.5)
    assert d.phi(1.0) < 1.0  # just heard, as far as the observer can tell
    assert d.phi(4.5) >= 8.0  # 3.5 s of silence (was 0: "last heard at 10.0" lay in the future)
