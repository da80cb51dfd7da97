"""The KV store's write-ahead log: what survives a crash, torn tails, group commit, compaction."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from systems.kv.store import WAL_DIR, Hint, Store
from systems.kv.vclock import Versioned
from systems.runtime.real_disk import RealDisk
from systems.runtime.sim import DiskStore, DiskView, run


class Node:
    """A disk that survives crashes the way the simulator's does."""

    def __init__(self) -> None:
        self.disk = DiskStore()

    def store(self, **kw: Any) -> Store:
        return Store(DiskView(self.disk, lambda: True), **kw)

    def crash(self) -> None:
        self.disk.crash()


def values(s: Store, key: str) -> list[Any]:
    return s.get(key).values


async def put(s: Store, key: str, value: Any) -> None:
    """An overwrite: the context is everything the store has seen of the key."""
    await s.update(key, "n1", value, s.get(key).clock, 0.0, owned=True)


def test_acknowledged_changes_survive_a_crash_and_unsynced_ones_do_not() -> None:
    node = Node()

    async def go() -> None:
        s = node.store()
        await s.update("a", "n1", 1, {}, 0.0, owned=True)
        await s.merge_held("b", (await node.store().update("b", "n9", 2, {}, 0.0, owned=False))[0])
        await s.add_hint(Hint("n3", "b"))
        s._install("c", s.get("a"), True)  # installed, never synced: not acknowledged

    run(go())
    node.crash()
    s = node.store()
    assert values(s, "a") == [1] and s.owned["a"] is True
    assert s.get_held("b").values == [2]
    assert s.hints() == [Hint("n3", "b")]
    assert "c" not in s.data


def test_a_dropped_hint_stays_dropped_once_something_later_is_synced() -> None:
    node = Node()

    async def go() -> None:
        s = node.store()
        await s.add_hint(Hint("n2", "k"))
        s.drop_hint(Hint("n2", "k"))
        await s.update("z", "n1", 0, {}, 0.0, owned=True)

    run(go())
    node.crash()
    assert node.store().hints() == []


def test_a_torn_last_record_is_cut_off() -> None:
    node = Node()

    async def go() -> None:
        s = node.store()
        await put(s, "a", 1)
        await put(s, "a", 2)

    run(go())
    view = DiskView(node.disk, lambda: True)
    [name] = view.list(WAL_DIR)
    data = view.read(name)
    assert data is not None
    view.write(name, data[:-2])
    s = node.store()
    assert values(s, "a") == [1]  # the second put's record was torn: its state is not there
    assert view.read(name) is not None and len(view.read(name) or b"") < len(data) - 2


def test_compaction_keeps_the_state_and_bounds_the_log() -> None:
    node = Node()

    async def go() -> tuple[int, int]:
        s = node.store(compact_min_bytes=1)
        for i in range(200):
            await put(s, f"k{i % 5}", i)
        await s.add_hint(Hint("n2", "k1"))
        before = s.log_bytes
        assert s.wants_compaction()
        await s.compact()
        await put(s, "k0", "after")
        return before, s.log_bytes

    before, after = run(go())
    assert after < before / 10
    node.crash()
    s = node.store()
    assert len(DiskView(node.disk, lambda: True).list(WAL_DIR)) == 1
    assert values(s, "k0") == ["after"] and values(s, "k4") == [199]
    assert s.hints() == [Hint("n2", "k1")]


@pytest.mark.parametrize("crash_after_sync", [False, True])
def test_a_crash_mid_compaction_loses_nothing_acknowledged(crash_after_sync: bool) -> None:
    """Before the new segment is synced, or after it but before the deletes are durable."""
    node = Node()
    alive = [True]
    view = DiskView(node.disk, lambda: alive[0])

    async def go() -> None:
        s = Store(view, compact_min_bytes=1)
        for i in range(20):
            await put(s, f"k{i % 3}", i)
        task = asyncio.ensure_future(s.compact())
        await asyncio.sleep(0)  # it appended the new segment and waits for the sync
        assert len(s.segments) == 2
        if crash_after_sync:
            while len(s.segments) > 1:  # until it synced the new segment and deleted the old one
                await asyncio.sleep(view.sync_s / 4)
        alive[0] = False  # the power goes off
        node.crash()
        task.cancel()

    run(go())
    # Before the sync only the old segment is durable; after it, both are (the deletes were not synced).
    assert len(node.disk.durable) == (2 if crash_after_sync else 1)
    alive[0] = True
    s = node.store()
    assert [values(s, f"k{i}") for i in range(3)] == [[18], [19], [17]]


def test_concurrent_puts_share_fsyncs_on_the_real_disk(tmp_path: Path) -> None:
    """Group commit: 50 puts at once, far fewer fsyncs than puts."""
    disk = RealDisk(tmp_path)
    s = Store(disk)

    async def go() -> None:
        await s.update("warm", "n1", 0, {}, 0.0, owned=True)
        before = disk.fsyncs
        await asyncio.gather(*(s.update(f"k{i}", "n1", i, {}, 0.0, owned=True) for i in range(50)))
        assert disk.fsyncs - before <= 2, disk.fsyncs - before

    asyncio.run(go())
    again = Store(RealDisk(tmp_path))
    assert sorted(again.data) == sorted(["warm", *(f"k{i}" for i in range(50))])
    assert isinstance(again.get("k7"), Versioned) and again.get("k7").values == [7]


def test_a_dot_read_during_its_fsync_would_be_issued_again_after_a_crash_so_it_is_not_shippable() -> None:
    """The hazard the durable-read rule guards against: a state read while the write that issued its dot
    is being synced names a dot that a crash forgets, and the restarted node issues it again for another
    value."""
    node = Node()
    seen: dict[str, Any] = {}

    async def go() -> None:
        s = node.store()
        await put(s, "k", "v0")
        seen["writing"] = asyncio.ensure_future(put(s, "k", "v1"))
        await asyncio.sleep(0)  # v1 is installed; its fsync is under way (and never finishes: we stop here)
        seen["read"] = s.get("k")
        seen["shippable"] = s.shippable("k")

    run(go())
    node.crash()
    assert seen["read"].values == ["v1"] and seen["shippable"] is False
    again = node.store()
    run(put(again, "k", "v2"))
    (first,), (second,) = seen["read"].siblings, again.get("k").siblings
    assert first.dot == second.dot and first.value != second.value  # one dot, two values


def test_get_durable_waits_for_the_fsync_so_what_it_returns_survives_a_crash() -> None:
    node = Node()
    seen: dict[str, Any] = {}

    async def go() -> None:
        s = node.store()
        await put(s, "k", "v0")
        assert s.shippable("k")
        seen["writing"] = asyncio.ensure_future(put(s, "k", "v1"))
        await asyncio.sleep(0)
        seen["durable"] = await s.get_durable("k")
        seen["shippable"] = s.shippable("k")

    run(go())
    node.crash()
    after = node.store().get("k")
    assert seen["durable"].values == ["v1"] and seen["shippable"] is True
    assert after == seen["durable"]  # nothing it returned was lost
