"""The Raft KV's pure parts: state machine (at-most-once), durable storage, client outcomes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from systems.raft.client import RaftClient
from systems.raft.core import HardState
from systems.raft.kvstate import KVState, encode_command
from systems.raft.log import Entry, Snapshot
from systems.raft.storage import RaftStorage
from systems.runtime.api import RemoteError, RpcTimeout, Unreachable, derive_rng
from systems.runtime.sim import DiskStore, DiskView, run

# ---------------------------------------------------------------- state machine


def test_register_ops() -> None:
    kv = KVState()
    assert kv.apply({"f": "get", "key": "x"}) == {"status": "ok", "value": None}
    assert kv.apply({"f": "put", "key": "x", "value": 1})["status"] == "ok"
    assert kv.apply({"f": "cas", "key": "x", "value": [2, 3]}) == {
        "status": "fail",
        "error": "cas-mismatch",
        "value": 1,
    }
    assert kv.apply({"f": "cas", "key": "x", "value": [1, 3]})["status"] == "ok"
    assert kv.read("x") == 3


def test_append_and_txn_fill_in_reads_and_apply_atomically() -> None:
    kv = KVState()
    kv.apply({"f": "append", "key": "l", "value": 1})
    out = kv.apply({"f": "txn", "value": [["append", "l", 2], ["r", "l", None], ["w", "z", 5], ["r", "z", None]]})
    assert out == {"status": "ok", "value": [["append", "l", 2], ["r", "l", [1, 2]], ["w", "z", 5], ["r", "z", 5]]}
    bad = kv.apply({"f": "txn", "value": [["append", "l", 3], ["boom", "l", None]]})
    assert bad["status"] == "fail" and kv.read("l") == [1, 2]  # nothing of the bad txn happened


def test_at_most_once_per_client_seq() -> None:
    """A retried request (same client, same seq) is applied once and answered with the first result."""
    kv = KVState()
    first = kv.apply({"f": "append", "key": "l", "value": "a", "client": "c1", "seq": 1})
    again = kv.apply({"f": "append", "key": "l", "value": "a", "client": "c1", "seq": 1})
    assert first == again and kv.read("l") == ["a"]
    kv.apply({"f": "append", "key": "l", "value": "b", "client": "c1", "seq": 2})
    old = kv.apply({"f": "append", "key": "l", "value": "a", "client": "c1", "seq": 1})
    assert old["status"] == "stale" and kv.read("l") == ["a", "b"]
    # A cas mismatch is remembered too: the retry must not succeed later.
    kv.apply({"f": "cas", "key": "x", "value": [9, 1], "client": "c2", "seq": 1})
    kv.apply({"f": "put", "key": "x", "value": 9})
    assert kv.apply({"f": "cas", "key": "x", "value": [9, 1], "client": "c2", "seq": 1})["status"] == "fail"


def test_sessions_and_digest_survive_a_snapshot() -> None:
    a = KVState(checkpoint_every=2)
    for i in range(1, 6):
        a.apply_entry(i, 1, encode_command({"f": "append", "key": "l", "value": i, "client": "c", "seq": i}))
    b = KVState(checkpoint_every=2)
    b.restore(a.snapshot())
    assert (b.applied_index, b.applied_digest, b.checkpoints) == (a.applied_index, a.applied_digest, a.checkpoints)
    dup = encode_command({"f": "append", "key": "l", "value": 5, "client": "c", "seq": 5})
    b.apply_entry(6, 1, dup)
    assert b.read("l") == [1, 2, 3, 4, 5]


def test_digest_tells_different_applied_prefixes_apart() -> None:
    def digest(cmds: list[bytes | None]) -> str:
        kv = KVState()
        for i, c in enumerate(cmds, start=1):
            kv.apply_entry(i, 1, c)
        return kv.applied_digest

    x, y = encode_command({"f": "put", "key": "k", "value": 1}), encode_command({"f": "put", "key": "k", "value": 2})
    assert digest([None, x]) == digest([None, x])
    assert digest([None, x]) != digest([None, y])
    assert digest([x, None]) != digest([None, x])


# ---------------------------------------------------------------- storage


class Node:
    """A disk that survives crashes the way the simulator's does."""

    def __init__(self) -> None:
        self.store = DiskStore()

    def storage(self, **kw: Any) -> RaftStorage:
        return RaftStorage(DiskView(self.store, lambda: True), **kw)

    def crash(self) -> None:
        self.store.crash()


def entries(term: int, lo: int, hi: int) -> list[Entry]:
    return [Entry(term, i, f"e{i}".encode()) for i in range(lo, hi + 1)]


def test_storage_round_trip_with_a_conflicting_suffix_cut() -> None:
    node = Node()

    async def go() -> None:
        s = node.storage()
        await s.save(HardState(2, "n1"), None, entries(1, 1, 5))
        await s.save(HardState(3, None), None, entries(3, 4, 6))  # the follower's 4..5 conflicted
    run(go())
    node.crash()
    loaded = node.storage().load()
    assert loaded.hard == HardState(3, None)
    assert [(e.term, e.index) for e in loaded.entries] == [(1, 1), (1, 2), (1, 3), (3, 4), (3, 5), (3, 6)]


def test_compaction_bounds_the_log_and_reload_starts_after_the_snapshot() -> None:
    node = Node()

    async def go() -> None:
        s = node.storage(segment_entries=10)
        await s.save(HardState(1, "n1"), None, entries(1, 1, 100))
        assert s.sizes()["log_segments"] == 10
        await s.compact(Snapshot(90, 1, b"state"))
        await s.save(None, None, entries(1, 101, 102))
        # Segments 1..90 are deleted whole; nothing was rewritten: 91..100 and 101..102 remain.
        assert s.sizes()["log_records"] == 12 and s.sizes()["log_segments"] == 2

    run(go())
    node.crash()
    loaded = node.storage().load()
    assert loaded.snapshot == Snapshot(90, 1, b"state")
    assert [e.index for e in loaded.entries] == list(range(91, 103))


def test_installed_snapshot_replaces_the_log() -> None:
    node = Node()

    async def go() -> None:
        s = node.storage()
        await s.save(HardState(1, "n1"), None, entries(1, 1, 3))
        await s.save(HardState(4, None), Snapshot(50, 3, b"s"), entries(4, 51, 52))

    run(go())
    node.crash()
    loaded = node.storage().load()
    assert loaded.snapshot is not None and loaded.snapshot.index == 50
    assert [e.index for e in loaded.entries] == [51, 52]


def test_no_fsync_bug_loses_everything_in_a_crash() -> None:
    node = Node()

    async def go() -> None:
        await node.storage(sync=False).save(HardState(5, "n2"), None, entries(5, 1, 3))

    run(go())
    node.crash()
    loaded = node.storage().load()
    assert loaded.hard == HardState() and loaded.entries == []


def test_double_vote_bug_forgets_the_vote() -> None:
    node = Node()

    async def go() -> None:
        await node.storage(persist_vote=False).save(HardState(5, "n2"), None, [])

    run(go())
    node.crash()
    assert node.storage().load().hard == HardState(5, None)


def test_torn_last_record_is_dropped() -> None:
    node = Node()

    async def go() -> None:
        await node.storage().save(HardState(1, None), None, entries(1, 1, 3))

    run(go())
    view = DiskView(node.store, lambda: True)
    [name] = view.list("log/")
    data = view.read(name)
    assert data is not None
    view.write(name, data[:-3])
    loaded = node.storage().load()
    assert loaded.torn_tail and [e.index for e in loaded.entries] == [1, 2]


def test_a_cut_across_segments_drops_the_later_ones() -> None:
    node = Node()

    async def go() -> None:
        s = node.storage(segment_entries=4)
        await s.save(HardState(1, "n1"), None, entries(1, 1, 10))
        await s.save(HardState(2, None), None, entries(2, 3, 4))  # conflicts from 3: 5..10 must go

    run(go())
    node.crash()
    loaded = node.storage(segment_entries=4).load()
    assert [(e.term, e.index) for e in loaded.entries] == [(1, 1), (1, 2), (2, 3), (2, 4)]
    assert not loaded.torn_tail


def test_records_of_a_log_an_installed_snapshot_replaced_are_not_loaded() -> None:
    """A crash after the leader's snapshot was synced but before the old segments' deletion was:
    the old records after the snapshot belong to a replaced log (their term is below its term)."""
    node = Node()

    async def go() -> None:
        s = node.storage()
        await s.save(HardState(2, "n1"), None, entries(2, 1, 60))
        await s._write_snapshot(Snapshot(50, 3, b"s"))  # the crash comes before the deletes

    run(go())
    node.crash()
    loaded = node.storage().load()
    assert loaded.snapshot is not None and loaded.snapshot.index == 50
    assert loaded.entries == [] and loaded.torn_tail


def test_segments_survive_a_reload_and_appends_continue() -> None:
    node = Node()

    async def go() -> None:
        s = node.storage(segment_entries=3)
        await s.save(HardState(1, "n1"), None, entries(1, 1, 7))

    async def more() -> None:
        s = node.storage(segment_entries=3)
        assert [e.index for e in s.load().entries] == list(range(1, 8))
        await s.save(None, None, entries(1, 8, 9))

    run(go())
    node.crash()
    run(more())
    node.crash()
    loaded = node.storage(segment_entries=3).load()
    assert [e.index for e in loaded.entries] == list(range(1, 10)) and not loaded.torn_tail


# ---------------------------------------------------------------- client outcomes


class ScriptedRt:
    """Just enough Runtime for the client: `call` answers from a script, time moves by the call's timeout."""

    def __init__(self, script: Callable[[str, dict[str, Any]], Any]) -> None:
        self.script = script
        self.t = 0.0
        self.rng = derive_rng(0, "client")
        self.calls: list[str] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s

    async def call(self, dst: str, method: str, msg: Any, timeout: float = 1.0) -> Any:
        self.calls.append(dst)
        self.t += 0.01
        out = self.script(dst, msg)
        if isinstance(out, Exception):
            if isinstance(out, RpcTimeout):
                self.t += timeout
            raise out
        return out


def outcome(script: Callable[[str, dict[str, Any]], Any], f: str = "put", **kw: Any) -> tuple[Any, ScriptedRt]:
    rt = ScriptedRt(script)
    client = RaftClient(rt, ["n1", "n2", "n3"], home="n1", **kw)  # type: ignore[arg-type]

    async def go() -> Any:
        return await client.request(f, "k", [1, 2] if f == "cas" else 1, timeout_s=3)

    return run(go()), rt


def test_client_follows_the_leader_hint() -> None:
    def script(dst: str, msg: dict[str, Any]) -> Any:
        return {"status": "ok", "value": 1, "term": 2} if dst == "n3" else {"status": "not-leader", "leader": "n3"}

    out, rt = outcome(script)
    assert out.type == "ok" and rt.calls == ["n1", "n3"]


def test_client_fails_only_when_nothing_can_have_happened() -> None:
    out, _ = outcome(lambda dst, msg: Unreachable("down") if dst != "n2" else {"status": "not-leader"})
    assert out.type == "fail"


def test_client_reports_info_after_a_timeout_even_if_later_answers_are_definite() -> None:
    seen: list[str] = []

    def script(dst: str, msg: dict[str, Any]) -> Any:
        seen.append(dst)
        return RpcTimeout("slow") if len(seen) == 1 else {"status": "not-leader"}

    out, _ = outcome(script)
    assert out.type == "info"


def test_client_retries_with_the_same_request_id() -> None:
    ids: list[tuple[str, int]] = []

    def script(dst: str, msg: dict[str, Any]) -> Any:
        ids.append((msg["client"], msg["seq"]))
        return RemoteError("x", definite=False) if len(ids) < 3 else {"status": "ok"}

    out, _ = outcome(script)
    assert out.type == "ok" and len(set(ids)) == 1 and len(ids) == 3


def test_cas_mismatch_is_a_definite_fail_and_unfinished_reads_fail() -> None:
    out, _ = outcome(lambda d, m: {"status": "fail", "error": "cas-mismatch", "value": 7}, f="cas")
    assert out.type == "fail" and out.error == "cas-mismatch"
    out, _ = outcome(lambda d, m: RpcTimeout("slow"), f="get")
    assert out.type == "fail"


@pytest.mark.parametrize("status", ["unknown", "stale"])
def test_client_in_doubt_answers_are_info(status: str) -> None:
    out, _ = outcome(lambda d, m: {"status": status})
    assert out.type == "info"
