"""The real disk: file operations, name rules, fsync off the loop and group commit."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from systems.runtime import real_disk
from systems.runtime.real_disk import RealDisk, check_name


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_write_read_append_truncate_delete(tmp_path: Path) -> None:
    d = RealDisk(tmp_path / "data")
    assert d.read("meta") is None
    d.write("meta", b"v1")
    d.write("meta", b"version two")
    assert d.read("meta") == b"version two"
    d.append("log", b"a")
    d.append("log", b"bc")
    assert d.read("log") == b"abc"  # appends are visible at once (no user-space buffer)
    d.write("log", b"X")  # replaces the file: the cached append handle must not write to the old inode
    d.append("log", b"Y")
    assert d.read("log") == b"XY"
    d.truncate("log", 1)
    d.append("log", b"Z")
    assert d.read("log") == b"XZ"
    d.delete("log")
    d.delete("log")  # idempotent
    assert d.read("log") is None
    d.append("log", b"new")
    assert d.read("log") == b"new"
    d.truncate("fresh", 0)
    assert d.read("fresh") == b""
    d.close()


def test_read_range_reads_a_slice_short_at_the_end(tmp_path: Path) -> None:
    d = RealDisk(tmp_path / "data")
    assert d.read_range("chunk", 0, 4) is None
    d.append("chunk", b"0123456789")
    assert d.read_range("chunk", 2, 3) == b"234"
    assert d.read_range("chunk", 8, 10) == b"89"
    assert d.read_range("chunk", 20, 5) == b""
    with pytest.raises(ValueError, match="must be >= 0"):
        d.read_range("chunk", -1, 2)


def test_list_is_sorted_prefix_filtered_and_hides_temp_files(tmp_path: Path) -> None:
    d = RealDisk(tmp_path)
    for name in ("meta", "chunks/17", "chunks/2", "log", "chunks/sub/9"):
        d.write(name, b"x")
    (tmp_path / "chunks" / ".17.tmp").write_bytes(b"leftover")
    assert d.list() == ["chunks/17", "chunks/2", "chunks/sub/9", "log", "meta"]
    assert d.list("chunks/") == ["chunks/17", "chunks/2", "chunks/sub/9"]
    assert d.list("nope") == []


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "../escape", "a/../../b", "a//b", "./a", "a/.", ".hidden", "x/.tmp", "a\\b", "a\x00b"]
)
def test_bad_names_are_rejected_clearly(tmp_path: Path, name: str) -> None:
    d = RealDisk(tmp_path / "data")
    with pytest.raises(ValueError, match="disk name"):
        check_name(name)
    for op in (lambda: d.read(name), lambda: d.write(name, b"x"), lambda: d.append(name, b"x"),
               lambda: d.delete(name), lambda: d.truncate(name, 0)):
        with pytest.raises(ValueError, match="disk name"):
            op()
    with pytest.raises(ValueError):
        run(d.sync(name))
    assert not (tmp_path / "escape").exists() and not (tmp_path / "b").exists()


def test_sync_fsyncs_file_and_directory_and_skips_when_nothing_changed(tmp_path: Path) -> None:
    d = RealDisk(tmp_path)

    async def main() -> None:
        d.append("log", b"entry")
        await d.sync("log")
        assert d.fsyncs == 2  # the file and the directory that gained an entry
        await d.sync("log")
        assert d.fsyncs == 2  # nothing changed since: no fsync at all
        d.append("log", b"more")
        await d.sync("log")
        assert d.fsyncs == 3  # the file only; the directory did not change
        d.write("chunks/1", b"c")
        await d.sync("chunks/1")
        assert d.fsyncs >= 5  # file + its new directory + the root that gained "chunks"
        await d.sync("never-written")  # nothing to do, no error

    run(main())


def test_concurrent_syncs_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = RealDisk(tmp_path, inline_sync_max_s=0)  # always in a worker thread, as when fsyncs are slow
    real_fsync = os.fsync
    gate = threading.Event()
    entered = threading.Event()
    file_fsyncs: list[int] = []
    loop_threads: set[int] = set()

    def slow_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            file_fsyncs.append(threading.get_ident())
            entered.set()
            assert gate.wait(10), "the test never released the fsync"
        real_fsync(fd)

    monkeypatch.setattr(real_disk.os, "fsync", slow_fsync)

    async def main() -> None:
        loop_threads.add(threading.get_ident())
        d.append("log", b"1")
        await d.sync("log")  # settle the directory entry first
        gate.clear()
        entered.clear()
        file_fsyncs.clear()
        d.append("log", b"2")
        first = asyncio.create_task(d.sync("log"))
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        while not entered.is_set():  # the first fsync is now blocked in a worker thread
            assert loop.time() < end
            await asyncio.sleep(0.001)
        # the loop is not stalled by the blocked fsync: more appends and syncs queue up
        d.append("log", b"3")
        others = [asyncio.create_task(d.sync("log")) for _ in range(20)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *others)

    gate.set()
    run(main())
    assert len(file_fsyncs) == 2, file_fsyncs  # 21 syncs, two fsyncs: the running one and one for the rest
    assert not loop_threads & set(file_fsyncs)  # never on the event loop thread
    assert d.read("log") == b"123"


def test_quick_fsyncs_run_on_the_loop_thread_and_slow_ones_move_off_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = RealDisk(tmp_path)
    real_fsync = os.fsync
    threads: list[int] = []

    def spy_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            threads.append(threading.get_ident())
        real_fsync(fd)

    class SlowClock:
        """Each reading is a second after the last: every fsync seems to take 1 s."""

        now = 0.0

        def monotonic(self) -> float:
            self.now += 1.0
            return self.now

    monkeypatch.setattr(real_disk.os, "fsync", spy_fsync)

    async def main() -> int:
        d.append("log", b"1")
        await d.sync("log")  # quick (d.fsync_s starts at 0): on the loop thread
        monkeypatch.setattr(real_disk, "time", SlowClock())
        d.append("log", b"2")
        await d.sync("log")  # still inline, but now measured as slow
        assert d.fsync_s > d.inline_sync_max_s
        d.append("log", b"3")
        await d.sync("log")  # moved to a worker thread
        return threading.get_ident()

    loop_thread = run(main())
    assert threads[:2] == [loop_thread, loop_thread] and threads[2] != loop_thread, threads
    assert d.read("log") == b"123"


def test_an_inline_sync_lets_frames_queued_this_turn_leave_first(tmp_path: Path) -> None:
    """A leader queues AppendEntries, then syncs its log: the frames must not wait for the fsync."""
    d = RealDisk(tmp_path)
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        d.append("log", b"x")
        loop.call_soon(order.append, "flush")  # what a connection's write buffer does
        await d.sync("log")
        order.append("synced")

    run(main())
    assert order == ["flush", "synced"]
