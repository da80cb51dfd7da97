"""What this machine can do at most, measured in the same run as a benchmark that is judged against it.

- `loopback_stream_mb_s`: one TCP stream over loopback, 1 MiB sends, a reader
  thread draining it (the ceiling for one client reading from one server).
- `disk_write_fsync_mb_s`: sequential 1 MiB writes to a fresh file with one
  fsync per `sync_every_mb` (the ceiling for a durable sequential write).
- `disk_read_mb_s`: a sequential read of that file, first with a warm page
  cache (what a re-read sees) and then after `posix_fadvise(DONTNEED)` (cold,
  where the file system honours it).
Each figure is the median of `repeats` runs with the spread. The machine's
disk is a virtual one: fsync may be cheaper than on a Pi's SD card.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

MiB = 1 << 20


def loopback_stream_mb_s(total_mb: int = 256) -> float:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = 0

    def drain() -> None:
        nonlocal received
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(MiB):
                received += len(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    block = os.urandom(MiB)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as c:
        for _ in range(total_mb):
            c.sendall(block)
    reader.join()
    elapsed = time.perf_counter() - start
    server.close()
    assert received == total_mb * MiB
    return total_mb / elapsed


def disk_write_fsync_mb_s(directory: Path, total_mb: int = 256, sync_every_mb: int = 1) -> tuple[float, Path]:
    path = Path(tempfile.mkstemp(dir=directory, prefix="limits-")[1])
    block = os.urandom(MiB)
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        for i in range(1, total_mb + 1):
            os.write(fd, block)
            if i % sync_every_mb == 0:
                os.fsync(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    return total_mb / (time.perf_counter() - start), path


def disk_read_mb_s(path: Path, *, cold: bool) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        if cold:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        start = time.perf_counter()
        size = 0
        while chunk := os.read(fd, MiB):
            size += len(chunk)
    finally:
        os.close(fd)
    return size / MiB / (time.perf_counter() - start)


def measure(
    directory: Path, *, total_mb: int = 256, repeats: int = 3, sync_every_mb: int = 1
) -> dict[str, list[float]]:
    """Every limit `repeats` times, interleaved; the caller takes medians."""
    out: dict[str, list[float]] = {"loopback stream": [], "disk write+fsync": [], "disk read (warm)": [],
                                   "disk read (cold)": []}
    for _ in range(repeats):
        out["loopback stream"].append(loopback_stream_mb_s(total_mb))
        mb_s, path = disk_write_fsync_mb_s(directory, total_mb, sync_every_mb)
        out["disk write+fsync"].append(mb_s)
        out["disk read (warm)"].append(disk_read_mb_s(path, cold=False))
        out["disk read (cold)"].append(disk_read_mb_s(path, cold=True))
        path.unlink()
    return out


def summary(figures: dict[str, list[float]]) -> list[tuple[str, float, float, float]]:
    """(name, median, min, max) per limit."""
    return [(k, statistics.median(v), min(v), max(v)) for k, v in figures.items() if v]


if __name__ == "__main__":
    import sys

    where = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir())
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name, med, lo, hi in summary(measure(where)):
        print(f"{name:18} {med:8.1f} MB/s  [{lo:.1f}..{hi:.1f}]")
