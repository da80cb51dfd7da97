"""Checksummed durable state: records and files (runtime/records.py), and how Raft's and KV's stores load them.

A torn tail (the file ends inside a record, or a zero-filled sector) is cut with a note naming the
file and offset; any other damage, the last record included, is CorruptData naming the file and the
byte offset, and is never applied."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from systems.kv.store import Store
from systems.raft.core import HardState
from systems.raft.log import Entry, Snapshot
from systems.raft.storage import LOG_DIR, META, SNAP, RaftStorage
from systems.runtime.api import (
    RECORD_HEADER_BYTES,
    CorruptData,
    frame_file,
    frame_record,
    scan_records,
    unframe_file,
)
from systems.runtime.sim_disk import DiskStore, DiskView

BODIES = [b"first", b"x" * 300, msgpack.packb({"k": [1, 2, 3]}), b"", b"last one"]


def log_of(bodies: list[bytes]) -> bytes:
    return b"".join(frame_record(b) for b in bodies)


def offsets(bodies: list[bytes]) -> list[int]:
    out, off = [], 0
    for b in bodies:
        out.append(off)
        off += RECORD_HEADER_BYTES + len(b)
    return out


def test_a_whole_log_reads_back() -> None:
    data = log_of(BODIES)
    scan = scan_records(data, "log/1")
    assert [b for _, b in scan.records] == BODIES
    assert [o for o, _ in scan.records] == offsets(BODIES)
    assert scan.end == len(data) and scan.torn is None


@pytest.mark.parametrize("cut", [1, 5, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + 3])
def test_a_file_that_ends_inside_its_last_record_is_a_torn_tail(cut: int) -> None:
    data = log_of(BODIES)
    last = offsets(BODIES)[-1]
    scan = scan_records(data[: last + cut], "log/1")
    assert [b for _, b in scan.records] == BODIES[:-1]
    assert scan.end == last and scan.torn


def test_a_zero_filled_sector_in_a_record_is_a_torn_tail() -> None:
    bodies = [b"a" * 100, b"b" * 1500, b"c" * 100]
    data = bytearray(log_of(bodies))
    second = offsets(bodies)[1]
    data[1024:1536] = bytes(512)  # a page of the second record the disk never got; the third landed
    scan = scan_records(bytes(data), "log/1")
    assert [b for _, b in scan.records] == bodies[:1] and scan.end == second and "zero" in (scan.torn or "")


@pytest.mark.parametrize("victim", range(len(BODIES)))
def test_a_flipped_byte_anywhere_is_corruption_naming_file_and_offset(victim: int) -> None:
    data = bytearray(log_of(BODIES))
    off = offsets(BODIES)[victim]
    body = BODIES[victim]
    data[off + RECORD_HEADER_BYTES + len(body) // 2 if body else off + 8] ^= 0x40  # the body, or its checksum
    with pytest.raises(CorruptData) as ei:
        scan_records(bytes(data), "log/00000000000000000001")
    assert ei.value.name == "log/00000000000000000001" and ei.value.offset == off
    assert f"byte {off}" in str(ei.value)


def test_a_damaged_length_is_never_trusted() -> None:
    data = bytearray(log_of(BODIES))
    data[offsets(BODIES)[1]] ^= 0x7F  # the second record now claims a body far past the end of the file
    with pytest.raises(CorruptData, match="header checksum"):
        scan_records(bytes(data), "log/1")


@given(st.lists(st.binary(max_size=700), min_size=1, max_size=8), st.data())
@settings(max_examples=200, deadline=None)
def test_damage_is_never_applied(bodies: list[bytes], data: st.DataObject) -> None:
    """Whatever one flipped byte or one cut does, what a scan returns is a prefix of what was written."""
    raw = bytearray(log_of(bodies))
    if data.draw(st.booleans(), label="cut"):
        raw = raw[: data.draw(st.integers(0, len(raw)), label="at")]
    elif raw:
        raw[data.draw(st.integers(0, len(raw) - 1), label="flip")] ^= data.draw(st.integers(1, 255), label="by")
    try:
        scan = scan_records(bytes(raw), "log/1")
    except CorruptData:
        return
    got = [b for _, b in scan.records]
    assert got == bodies[: len(got)]


def test_whole_files_check_their_checksum() -> None:
    body = msgpack.packb({"term": 7, "vote": "n2"})
    framed = frame_file(body)
    assert unframe_file(framed, "meta") == body
    for bad in (framed[:-1] + bytes([framed[-1] ^ 1]), framed[:5], b"", b"XXXX" + framed[4:]):
        with pytest.raises(CorruptData) as ei:
            unframe_file(bad, "meta")
        assert ei.value.name == "meta"


# -- Raft's storage ------------------------------------------------------------------------------------

def raft_disk() -> tuple[DiskStore, DiskView]:
    store = DiskStore()
    return store, DiskView(store, lambda: True)


def entries(term: int, first: int, n: int) -> list[Entry]:
    return [Entry(term, i, f"cmd{i}".encode()) for i in range(first, first + n)]


def raft_with_log(n: int = 10, **kw: Any) -> DiskView:
    _, disk = raft_disk()

    async def go() -> None:
        await RaftStorage(disk, **kw).save(HardState(3, "n1"), None, entries(3, 1, n))

    asyncio.run(go())
    return disk


def segment(disk: DiskView) -> str:
    return disk.list(LOG_DIR)[-1]


def test_raft_damage_before_the_tail_stops_the_load_naming_file_and_offset() -> None:
    disk = raft_with_log()
    name = segment(disk)
    data = bytearray(disk.read(name) or b"")
    data[len(data) // 2] ^= 0x01
    disk.write(name, bytes(data))
    with pytest.raises(CorruptData) as ei:
        RaftStorage(disk).load()
    assert ei.value.name == name and 0 < ei.value.offset < len(data) // 2 + 1


def test_raft_a_torn_tail_is_cut_and_said() -> None:
    disk = raft_with_log()
    name = segment(disk)
    data = disk.read(name) or b""
    disk.write(name, data[:-3])
    loaded = RaftStorage(disk).load()
    assert [e.index for e in loaded.entries] == list(range(1, 10))
    (cut,) = loaded.cuts
    assert cut["file"] == name and cut["offset"] > 0 and "torn" in cut["why"]
    assert len(disk.read(name) or b"") == cut["offset"]  # cut on disk, so the next append follows a whole record
    assert RaftStorage(disk).load().cuts == []


def test_raft_a_damaged_last_record_is_not_cut_away() -> None:
    """An acknowledged entry may be the last one: losing it silently could elect a leader without it."""
    disk = raft_with_log()
    name = segment(disk)
    data = bytearray(disk.read(name) or b"")
    data[-1] ^= 0x10
    disk.write(name, bytes(data))
    with pytest.raises(CorruptData):
        RaftStorage(disk).load()


@pytest.mark.parametrize("name", [META, SNAP])
def test_raft_damaged_meta_or_snapshot_stops_the_load(name: str) -> None:
    _, disk = raft_disk()

    async def go() -> None:
        s = RaftStorage(disk)
        await s.save(HardState(4, "n2"), None, entries(4, 1, 3))
        await s.compact(Snapshot(2, 4, b"state"))

    asyncio.run(go())
    assert RaftStorage(disk).load().snapshot == Snapshot(2, 4, b"state")
    data = bytearray(disk.read(name) or b"")
    data[-1] ^= 0x01
    disk.write(name, bytes(data))
    with pytest.raises(CorruptData) as ei:
        RaftStorage(disk).load()
    assert ei.value.name == name


def test_raft_a_term_out_of_range_on_disk_is_damage() -> None:
    _, disk = raft_disk()
    disk.write(META, frame_file(msgpack.packb({"term": 2**64 - 1, "vote": None})))
    with pytest.raises(CorruptData, match="out of range"):
        RaftStorage(disk).load()


def test_raft_a_full_segment_is_synced_before_the_next_one_begins() -> None:
    """So a crash can tear only the segment being appended to."""
    _, disk = raft_disk()
    synced: list[tuple[str, int]] = []
    real_sync = disk.sync

    async def spy(name: str) -> None:
        if name.startswith(LOG_DIR):
            synced.append((name, len(disk.list(LOG_DIR))))
        await real_sync(name)

    disk.sync = spy  # type: ignore[method-assign]

    async def go() -> None:
        await RaftStorage(disk, segment_entries=4).save(HardState(1, None), None, entries(1, 1, 10))

    asyncio.run(go())
    names = disk.list(LOG_DIR)
    assert len(names) == 3
    # the first segment was synced while it was the only file, the second while there were two
    assert synced[:2] == [(names[0], 1), (names[1], 2)]


# -- KV's store ------------------------------------------------------------------------------------------

def kv_store_with(n: int) -> DiskView:
    _, disk = raft_disk()
    store = Store(disk)

    async def go() -> None:
        for i in range(n):
            await store.update(f"k{i}", "n1", i, {}, 0.0, owned=True)

    asyncio.run(go())
    return disk


def test_kv_store_damage_stops_the_load_and_a_torn_tail_is_cut() -> None:
    disk = kv_store_with(5)
    (name,) = disk.list("wal/")
    data = disk.read(name) or b""
    disk.write(name, data[:-2])
    store = Store(disk)
    assert len(store.cuts) == 1 and store.cuts[0]["file"] == name
    assert sorted(store.data) == ["k0", "k1", "k2", "k3"]
    bad = bytearray(disk.read(name) or b"")
    bad[len(bad) // 3] ^= 0x08
    disk.write(name, bytes(bad))
    with pytest.raises(CorruptData) as ei:
        Store(disk)
    assert ei.value.name == name
