"""The DFS's pure rules, tested directly: checksums, replicas on disk, namespace and its log,
leases, version rules, placement and re-replication order, request validation, the push buffer.

Each test names the sentence of the GFS paper (SOSP 2003) or of the module docstring it checks.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from systems.dfs import messages as m
from systems.dfs.checksums import blocks_overlapping, crcs_of, extend_crcs, first_bad_block
from systems.dfs.chunkstore import (
    META_COMPACT_BYTES,
    ChunkCorrupt,
    ChunkStore,
    ReplicaFailed,
    data_name,
    meta_name,
)
from systems.dfs.leases import LeaseTable
from systems.dfs.namespace import Namespace, check_path
from systems.dfs.oplog import OpLog
from systems.dfs.placement import Need, clone_plan, may_delete_bad, order, place_new
from systems.dfs.pushbuffer import PushBuffer
from systems.dfs.replicas import Held, ReplicaMap, Standing, classify
from systems.runtime.api import CorruptData, frame_file, frame_record
from systems.runtime.sim_disk import DiskStore, DiskView

BS = 16


def disk() -> tuple[DiskStore, DiskView]:
    store = DiskStore()
    return store, DiskView(store, lambda: True, sync_s=0.0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---------------------------------------------------------------- checksums (§5.2)


@given(st.binary(max_size=200), st.lists(st.binary(max_size=40), max_size=6))
def test_incremental_checksums_equal_checksums_of_the_whole(first: bytes, appends: list[bytes]) -> None:
    crcs, data = crcs_of(first, BS), first
    for piece in appends:
        crcs = extend_crcs(crcs, len(data), piece, BS)
        data += piece
    assert crcs == crcs_of(data, BS)


def test_an_append_keeps_old_corruption_in_the_last_block_detectable() -> None:
    """§5.2: 'even if the last partial checksum block is already corrupted ... the corruption will be
    detected when the block is next read' -- the CRC continues from the stored value."""
    good = b"abcdefgh"
    crcs = crcs_of(good, BS)
    corrupted = b"abcXefgh"
    crcs = extend_crcs(crcs, len(good), b"12345678", BS)
    assert first_bad_block(corrupted + b"12345678", crcs, range(1), BS) == 0


def test_blocks_overlapping_a_range() -> None:
    assert list(blocks_overlapping(0, 16, 100, 16)) == [0]
    assert list(blocks_overlapping(15, 2, 100, 16)) == [0, 1]
    assert list(blocks_overlapping(90, 50, 100, 16)) == [5, 6]
    assert list(blocks_overlapping(100, 5, 100, 16)) == []


# ---------------------------------------------------------------- replicas on disk


def test_reads_verify_every_block_they_touch_and_only_those() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(7, 1))
    run(cs.apply(7, [("w", 0, bytes(range(64)))]))
    assert cs.read(7, 10, 20) == bytes(range(10, 30))
    store.current[data_name(7)][40] ^= 0xFF  # a byte of block 2 flips on the medium
    assert cs.read(7, 0, 32) == bytes(range(32))  # blocks 0 and 1 are fine
    with pytest.raises(ChunkCorrupt) as e:
        cs.read(7, 30, 5)
    assert e.value.block == 2
    assert cs.bad_block(7) == 2


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=120), st.integers(0, 130), st.integers(0, 130))
def test_a_ranged_read_returns_exactly_the_bytes_asked_for(data: bytes, offset: int, size: int) -> None:
    """Reads fetch only the blocks they touch from disk: what they return is the chunk's slice all the same."""
    _, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(3, 1))
    run(cs.apply(3, [("w", 0, data)]))
    assert cs.read(3, offset, size) == data[offset : offset + size]


def test_a_data_file_cut_short_reads_as_corrupt_in_the_blocks_it_lost() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(4, 1))
    run(cs.apply(4, [("w", 0, bytes(range(64)))]))
    del store.current[data_name(4)][40:]  # the medium lost the tail
    assert cs.read(4, 0, 32) == bytes(range(32))
    with pytest.raises(ChunkCorrupt) as e:
        cs.read(4, 33, 20)
    assert e.value.block == 2


def test_no_checksum_switch_serves_corrupt_bytes() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS, verify=False)
    run(cs.create(1, 1))
    run(cs.apply(1, [("w", 0, b"x" * 20)]))
    store.current[data_name(1)][3] ^= 0xFF
    assert cs.read(1, 0, 20)[3] != ord("x")
    assert cs.bad_block(1) == 0  # the status probe still tells the truth


def test_writes_past_the_end_fill_the_gap_with_checksummed_zeros() -> None:
    _, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(1, 1))
    run(cs.apply(1, [("w", 40, b"tail"), ("p", 50, b"")]))
    assert cs.read(1, 0, 100) == bytes(40) + b"tail" + bytes(6)
    assert cs.bad_block(1) is None


def test_an_overwrite_verifies_its_partial_edge_blocks_first() -> None:
    """§5.2: 'we must read and verify the first and last blocks of the range being overwritten'."""
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(1, 1))
    run(cs.apply(1, [("w", 0, b"a" * 48)]))
    store.current[data_name(1)][1] ^= 0xFF  # block 0 is corrupt
    with pytest.raises(ChunkCorrupt):
        run(cs.apply(1, [("w", 4, b"b" * 8)]))
    run(cs.apply(1, [("w", 16, b"c" * 16)]))  # block 1 exactly: nothing partial to verify
    assert cs.read(1, 16, 16) == b"c" * 16


def test_a_crash_between_data_and_meta_sync_cuts_the_torn_tail() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(3, 2))
    run(cs.apply(3, [("w", 0, b"durable!")]))
    d.append(data_name(3), b"unsynced")  # the data of a mutation whose meta never made it
    run(d.sync(data_name(3)))
    store.crash()
    again = ChunkStore(DiskView(store, lambda: True, sync_s=0.0), block_size=BS)
    notes = again.load()
    assert any("torn tail" in n for n in notes)
    assert again.read(3, 0, 100) == b"durable!"
    assert again.get(3).version == 2


def test_unsynced_mutations_are_lost_in_a_crash_and_synced_ones_kept() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(3, 1))
    run(cs.apply(3, [("w", 0, b"kept")]))
    d.append(data_name(3), b"lost")
    d.write(meta_name(3), b"garbage")
    store.crash()
    again = ChunkStore(DiskView(store, lambda: True, sync_s=0.0), block_size=BS)
    again.load()
    assert again.read(3, 0, 100) == b"kept"


def test_a_damaged_meta_marks_the_replica_damaged() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(3, 1))
    d.write(meta_name(3), b"\xc1not msgpack")
    run(d.sync(meta_name(3)))
    again = ChunkStore(DiskView(store, lambda: True, sync_s=0.0), block_size=BS)
    again.load()
    assert again.get(3).damaged
    with pytest.raises(ChunkCorrupt):
        again.read(3, 0, 1)


@pytest.mark.parametrize("fault", [{"fault": "enospc"}, {"fault": "eio", "ops": "sync"},
                                   {"fault": "eio", "ops": "write"}])
@pytest.mark.parametrize("verify", [True, False])
def test_a_replica_whose_disk_write_failed_is_never_served_nor_written_again(fault: dict[str, str],
                                                                             verify: bool) -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS, verify=verify)
    run(cs.create(3, 1))
    run(cs.apply(3, [("w", 0, b"first record")]))
    store.faults.set(fault)
    with pytest.raises(OSError):  # the second write of the batch, or its sync, fails: the first may have landed
        run(cs.apply(3, [("w", 12, b"second"), ("w", 18, b"third")]))
    store.faults.clear()
    assert cs.get(3).failed
    for call in (lambda: cs.read(3, 0, 100), lambda: run(cs.apply(3, [("w", 24, b"more")])),
                 lambda: run(cs.set_version(3, 2))):
        with pytest.raises(ReplicaFailed):  # not even with the no-checksum switch
            call()
    assert cs.bad_block(3) == 0
    run(cs.install(3, 2, b"first record"))  # a clone replaces it whole
    assert not cs.get(3).failed and cs.read(3, 0, 100) == b"first record"
    store.crash()
    again = ChunkStore(DiskView(store, lambda: True, sync_s=0.0), block_size=BS)
    again.load()
    assert again.read(3, 0, 100) == b"first record"


def test_a_failed_create_or_clone_leaves_a_failed_replica() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    store.faults.set({"fault": "enospc"})
    with pytest.raises(OSError):
        run(cs.create(4, 1))
    with pytest.raises(OSError):
        run(cs.install(5, 3, b"cloned bytes"))
    assert cs.get(4).failed and cs.get(5).failed
    with pytest.raises(ReplicaFailed):
        cs.read(5, 0, 100)


def test_the_meta_log_replays_to_the_same_replica_and_stays_small() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(4, 1))
    for i in range(3000):
        run(cs.apply(4, [("w", cs.get(4).length, b"%d," % i)]))
    run(cs.set_version(4, 7))
    assert len(d.read(meta_name(4))) <= META_COMPACT_BYTES + 1024  # compacted along the way
    store.crash()
    again = ChunkStore(DiskView(store, lambda: True, sync_s=0.0), block_size=BS)
    assert again.load() == []
    rep, before = again.get(4), cs.get(4)
    assert (rep.version, rep.length, rep.crcs) == (7, before.length, before.crcs)
    assert again.bad_block(4) is None


def test_a_damaged_meta_record_damages_the_replica_and_cuts_nothing() -> None:
    """Issue 18: a fully written meta record that fails its checksum (or a flipped bit in a length) is
    never applied and never cut away as a torn tail: that would roll the replica back past acknowledged
    appends. The replica is damaged: never served, reported, replaced."""
    _, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(6, 1))
    for i in range(3):
        run(cs.apply(6, [("w", cs.get(6).length, b"append%d;" % i)]))
    meta, data = d.read(meta_name(6)), d.read(data_name(6))
    for flip in (len(meta) // 2, len(meta) - 1):
        bad = bytearray(meta)
        bad[flip] ^= 0x04
        d.write(meta_name(6), bytes(bad))
        again = ChunkStore(d, block_size=BS)
        notes = again.load()
        assert again.get(6).damaged and any("damaged meta" in n and "meta" in n for n in notes), notes
        with pytest.raises(ChunkCorrupt):
            again.read(6, 0, 1)
        assert d.read(meta_name(6)) == bytes(bad) and d.read(data_name(6)) == data  # nothing cut


def test_a_torn_meta_record_is_cut_and_the_data_follows_it() -> None:
    store, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(5, 1))
    run(cs.apply(5, [("w", 0, b"kept!")]))
    d.append(data_name(5), b"more")
    d.append(meta_name(5), frame_record(bytes(64))[:30])  # the meta append of a batch, cut short
    run(d.sync(data_name(5)))
    run(d.sync(meta_name(5)))
    store.crash()
    again = ChunkStore(DiskView(store, lambda: True, sync_s=0.0), block_size=BS)
    notes = again.load()
    assert any("torn meta" in n for n in notes) and any("torn tail" in n for n in notes)
    assert again.read(5, 0, 100) == b"kept!"
    run(again.apply(5, [("w", 5, b" then")]))  # the log goes on after the cut
    third = ChunkStore(DiskView(store, lambda: True, sync_s=0.0), block_size=BS)
    third.load()
    assert third.read(5, 0, 100) == b"kept! then"


# ---------------------------------------------------------------- namespace and op log (§2.6.3, §4.4)


def test_paths_are_absolute_and_clean() -> None:
    assert check_path("/a/b") is None
    for bad in ("a", "/", "/a//b", "/a/../b", "/a/./b", "/a/\x00", 7):
        assert check_path(bad) is not None


def test_namespace_rules() -> None:
    ns = Namespace()
    ns.apply(["create", "/d/f", "c1"])
    assert ns.check(["create", "/d/f", "c2"]).code == "exists"
    assert ns.check(["create", "/d", "c2"]).code == "not-a-file"
    assert ns.check(["create", "/d/f/g", "c2"]).code == "not-a-file"
    ns.apply(["chunk", "/d/f", 0, 1])
    assert ns.check(["chunk", "/d/f", 2, 2]).code == "bad-index"
    assert ns.check(["chunk", "/d/f", 1, 1]).code == "bad-handle"  # handles are never reused
    ns.apply(["version", 1, 5])
    assert ns.check(["version", 1, 4]).code == "stale"  # versions never go down
    ns.apply(["rename", "/d/f", "/e"])
    assert ns.ls("/") == ["/e"] and ns.owner[1] == "/e"
    ns.apply(["delete", "/e", "t9"])
    assert ns.ls("/") == [] and ns.hidden_chunks() == [1]
    ns.apply(["purge", "t9"])
    assert ns.versions == {} and ns.next_handle == 2


def test_the_log_replays_to_the_same_namespace_and_loses_only_unsynced_records() -> None:
    store, d = disk()
    log = OpLog(d)
    log.load()
    recs = [["create", "/a", "x"], ["chunk", "/a", 0, 1], ["version", 1, 2], ["create", "/b", "y"]]
    ns = Namespace()
    for r in recs:
        ns.apply(r)
        log.append(r)
    run(log.sync())
    log.append(["create", "/c", "z"])  # never synced
    store.crash()
    loaded = OpLog(DiskView(store, lambda: True, sync_s=0.0)).load()
    assert loaded.ns.to_wire() == ns.to_wire()
    assert loaded.replayed == 4


def test_a_checkpoint_then_a_crash_before_the_log_is_rewritten_replays_each_record_once() -> None:
    store, d = disk()
    log = OpLog(d)
    log.load()
    ns = Namespace()
    for i in range(5):
        rec = ["create", f"/f{i}", ""]
        ns.apply(rec)
        log.append(rec)
    run(log.sync())
    # the checkpoint is durable but the log rewrite is not: the old records must be skipped, not re-applied
    import msgpack

    d.write("master/checkpoint", frame_file(msgpack.packb({"seq": log.seq, "ns": ns.to_wire()}, use_bin_type=True)))
    run(d.sync("master/checkpoint"))
    store.crash()
    loaded = OpLog(DiskView(store, lambda: True, sync_s=0.0)).load()
    assert sorted(loaded.ns.files) == [f"/f{i}" for i in range(5)]
    assert loaded.replayed == 0


def test_a_checkpoint_keeps_records_appended_while_it_was_written() -> None:
    store, d = disk()
    log = OpLog(d)
    log.load()
    ns = Namespace()
    for i in range(3):
        ns.apply(["create", f"/f{i}", ""])
        log.append(["create", f"/f{i}", ""])

    async def both() -> None:
        cp = asyncio.ensure_future(log.checkpoint(ns))
        await asyncio.sleep(0)
        ns.apply(["create", "/late", ""])
        log.append(["create", "/late", ""])
        await cp
        await log.sync()

    run(both())
    store.crash()
    loaded = OpLog(DiskView(store, lambda: True, sync_s=0.0)).load()
    assert "/late" in loaded.ns.files and len(loaded.ns.files) == 4


def test_a_torn_log_tail_is_cut() -> None:
    _, d = disk()
    log = OpLog(d)
    log.load()
    log.append(["create", "/a", ""])
    run(log.sync())
    whole = len(d.read("master/log"))
    d.append("master/log", b"\x00\x00\x01\x00partial")
    run(d.sync("master/log"))
    loaded = OpLog(d).load()
    assert loaded.torn_tail and list(loaded.ns.files) == ["/a"]
    assert loaded.cut is not None and loaded.cut["offset"] == whole
    assert len(d.read("master/log")) == whole


def test_a_damaged_log_record_or_checkpoint_stops_the_master_naming_file_and_offset() -> None:
    """Issue 18: a damaged record is never applied and never cut away as if it were a torn tail."""
    _, d = disk()
    log = OpLog(d)
    log.load()
    for name in ("/a", "/b", "/c"):
        log.append(["create", name, ""])
    run(log.sync())
    good = d.read("master/log")
    second = len(good) // 3
    for flip in (second + 2, len(good) - 1):  # inside the second record; the last byte of the last one
        bad = bytearray(good)
        bad[flip] ^= 0x01
        d.write("master/log", bytes(bad))
        with pytest.raises(CorruptData) as e:
            OpLog(d).load()
        assert e.value.name == "master/log" and 0 <= e.value.offset <= flip
        assert d.read("master/log") == bytes(bad)  # nothing cut away
    d.write("master/log", good)
    ns = Namespace()
    ns.apply(["create", "/a", ""])
    run(log.checkpoint(ns))
    cp = bytearray(d.read("master/checkpoint"))
    cp[-1] ^= 0x01
    d.write("master/checkpoint", bytes(cp))
    with pytest.raises(CorruptData, match="master/checkpoint"):
        OpLog(d).load()


# ---------------------------------------------------------------- leases (§3.1)


def test_one_unexpired_lease_per_chunk() -> None:
    t = LeaseTable(lease_s=10.0)
    assert t.may_grant(1, 0.0)
    t.granted(1, "n2", ("n1", "n2", "n3"), 2, now=0.0)
    assert not t.may_grant(1, 5.0)
    assert not t.may_grant(1, 5.0, suspect="n2")  # a client's complaint does not end a lease
    assert t.may_grant(1, 10.0)


def test_extensions_go_only_to_the_primary_and_never_after_a_revoke() -> None:
    t = LeaseTable(lease_s=10.0)
    t.granted(1, "n2", ("n1", "n2"), 2, now=0.0)
    assert t.extend(1, "n1", 5.0) is None
    assert t.extend(1, "n2", 5.0).expires_at == 15.0
    assert t.revoke_member("n1", 6.0) == [1]
    assert t.extend(1, "n2", 7.0) is None
    assert not t.may_grant(1, 14.0) and t.may_grant(1, 15.0)


def test_a_restarted_master_waits_out_its_grace_period() -> None:
    t = LeaseTable(lease_s=10.0, grace_until=12.0)
    assert not t.may_grant(1, 11.9) and t.may_grant(1, 12.0)


def test_lease_overlap_bug_believes_the_client() -> None:
    t = LeaseTable(lease_s=10.0, overlap_bug=True)
    t.granted(1, "n2", ("n1", "n2"), 2, now=0.0)
    assert t.may_grant(1, 1.0, suspect="n2")
    t.granted(1, "n1", ("n1", "n2"), 3, now=1.0)
    grants = t.report(1.0)
    assert [g["primary"] for g in grants] == ["n2", "n1"]
    assert grants[0]["expires_in_s"] > 0  # the first one still runs: two primaries


# ---------------------------------------------------------------- versions and replicas (§4.5)


def test_version_rules() -> None:
    assert classify(3, 3) is Standing.CURRENT
    assert classify(3, 2) is Standing.STALE
    assert classify(3, 4) is Standing.AHEAD
    assert classify(3, 2, ignore_versions=True) is Standing.CURRENT


def test_only_live_uncorrupted_current_replicas_are_handed_out() -> None:
    r = ReplicaMap()
    r.report("n1", {1: Held(3, 10)})
    r.report("n2", {1: Held(2, 10)})
    r.report("n3", {1: Held(3, 10)})
    r.report("n4", {1: Held(3, 10)})
    r.mark_bad(1, "n4")
    assert r.current(1, 3, {"n1", "n2", "n4"}) == ["n1"]
    assert r.stale(1, 3) == ["n2"]
    for alive in [set(), {"n1"}, {"n1", "n2", "n3", "n4"}, {"n2", "n4"}]:
        for version in (1, 2, 3, 4):
            assert r.count_current(1, version, alive) == len(r.current(1, version, alive)), (alive, version)
    assert r.count_current(9, 3, {"n1"}) == 0
    assert r.load({"n1", "n3", "n9"}) == {"n1": 1, "n3": 1, "n9": 0}
    r.report("n1", {})
    assert r.nodes(1) == ["n2", "n3", "n4"]


def test_no_version_bug_hands_out_stale_replicas() -> None:
    r = ReplicaMap(ignore_versions=True)
    r.report("n2", {1: Held(2, 10)})
    assert r.current(1, 3, {"n2"}) == ["n2"] and r.stale(1, 3) == []
    assert r.count_current(1, 3, {"n2"}) == 1


# ---------------------------------------------------------------- placement and re-replication (§4.2, §4.3)


def test_new_chunks_go_to_the_least_loaded() -> None:
    load = {"n1": 5, "n2": 0, "n3": 1, "n4": 9}
    assert sorted(place_new(load, 2, random.Random(1))) == ["n2", "n3"]
    assert len(place_new(load, 9, random.Random(1))) == 4


def test_rereplication_order_most_endangered_first() -> None:
    needs = [Need(1, 1, True, False), Need(2, 2, True, False), Need(3, 1, False, False),
             Need(4, 1, True, True), Need(5, 0, True, True)]
    assert [n.handle for n in order(needs)] == [2, 4, 1, 3]


def test_clone_plan_picks_a_free_current_source_and_a_target_without_the_chunk() -> None:
    load = {"n1": 3, "n2": 1, "n3": 0, "n4": 2}
    plan = clone_plan(["n1"], {"n1", "n3"}, load, set(), random.Random(0))
    assert plan == ("n1", "n2")
    assert clone_plan(["n1"], {"n1"}, load, {"n1"}, random.Random(0)) is None


def test_a_bad_replica_goes_once_replaced_elsewhere_or_when_its_node_is_the_only_place_for_a_copy() -> None:
    four, three = {"n1", "n2", "n3", "n4"}, {"n1", "n2", "n3"}
    held = {"n1", "n2", "n3"}  # n3's replica is bad
    assert may_delete_bad(["n1", "n2", "n4"], 3, held | {"n4"}, four, settled=True)  # the goal is met without it
    assert may_delete_bad(["n1", "n2", "n4"], 3, held | {"n4"}, four, settled=False)
    assert not may_delete_bad(["n1", "n2"], 3, held, four, settled=True)  # n4 is free: clone there, keep it meanwhile
    assert may_delete_bad(["n1", "n2"], 3, held, three, settled=True)  # every node holds it: delete, clone onto n3
    assert may_delete_bad(["n1"], 3, held, three, settled=True)  # n2 stale or bad too: still a source to copy from
    assert not may_delete_bad([], 3, held, three, settled=True)  # nothing left to copy from: keep what is left
    assert not may_delete_bad(["n1", "n2"], 3, held, three, settled=False)  # a restarted master has not heard all


# ---------------------------------------------------------------- requests and the push buffer


def test_malformed_requests_are_one_error_family() -> None:
    assert m.parse(m.ReadReq, {"handle": 1, "version": 2, "offset": 0, "length": 5}).length == 5
    for bad in (None, [], {"handle": 1}, {"handle": True, "version": 1, "offset": 0, "length": 1},
                {"handle": -1, "version": 1, "offset": 0, "length": 1},
                {"handle": 1, "version": 1, "offset": 0, "length": "x"}):
        with pytest.raises(m.BadMessage):
            m.parse(m.ReadReq, bad)
    with pytest.raises(m.BadMessage):
        m.parse(m.ApplyReq, {"handle": 1, "version": 1, "serial": 1, "ops": [["w", 0]]})
    assert m.parse(m.LeaseReq, {"handle": 1}).suspect is None
    with pytest.raises(m.BadMessage):
        m.parse(m.Heartbeat, {"node": "n1", "incarnation": "x", "chunks": [[1, 2]], "damaged": [], "extend": []})


def test_push_buffer_caps_and_expires() -> None:
    b = PushBuffer(cap_bytes=10, ttl_s=5.0)
    assert b.put("a", b"12345", 0.0) and b.put("b", b"12345", 1.0)
    assert b.put("c", b"123", 2.0) and b.get("a") is None  # the oldest made room
    b.expire(6.5)
    assert b.get("b") is None and b.get("c") == b"123"
    assert not b.put("huge", b"x" * 11, 7.0)
    assert b.take("c") == b"123" and b.size == 0


def test_pushed_parts_become_data_only_once_all_are_in_and_count_against_the_cap() -> None:
    """§3.2 pipelining: a client pushes parts at once; a mutation never sees part of its data."""
    b = PushBuffer(cap_bytes=10, ttl_s=5.0)
    assert b.put_part("d", 1, 3, b"cd", 0.0) and b.get("d") is None
    assert b.put_part("d", 0, 3, b"ab", 0.1) and b.get("d") is None and b.size == 4
    assert b.put_part("d", 1, 3, b"CD", 0.2) and b.size == 4  # a re-pushed part replaces its first copy
    assert b.put_part("d", 2, 3, b"e", 0.3) and b.get("d") == b"abCDe" and b.size == 5
    assert b.put_part("x", 0, 2, b"123", 1.0)
    b.expire(6.5)  # parts expire like whole data
    assert not b.partial and b.get("d") is None and b.size == 0
    assert b.put_part("y", 0, 2, b"12345678", 7.0)
    assert b.put_part("z", 0, 2, b"1234", 7.1) and "y" not in b.partial  # the oldest made room
    assert b.size == 4
    with pytest.raises(m.BadMessage, match="part 2 of 2"):
        m.parse(m.PushReq, {"data_id": "d", "data": b"x", "chain": [], "part": 2, "parts": 2})
    assert m.parse(m.PushReq, {"data_id": "d", "data": b"x", "chain": []}).parts == 1


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 100), st.binary(min_size=1, max_size=30)), max_size=12))
def test_chunkstore_matches_a_plain_bytearray(writes: list[tuple[int, bytes]]) -> None:
    _, d = disk()
    cs = ChunkStore(d, block_size=BS)
    run(cs.create(1, 1))
    model = bytearray()
    for off, data in writes:
        run(cs.apply(1, [("w", off, data)]))
        if off > len(model):
            model += bytes(off - len(model))
        model[off : off + len(data)] = data
    assert cs.read(1, 0, 10_000) == bytes(model)
    assert cs.get(1).crcs == [zlib.crc32(bytes(model[i : i + BS])) for i in range(0, len(model), BS)]
