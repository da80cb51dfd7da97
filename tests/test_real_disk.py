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
    d = RealDisk(tmp_path)
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
