"""What the unsynced journal (systems/runtime/real_unsynced.py) costs the real disk: CPU per append+sync.

    .venv/bin/python bench/bench_unsynced_journal.py [--ops 2000] [--reps 5] [--record 200]

Two contenders over the same directory kind, interleaved (A B, then B A, ...):
`journal` is RealDisk as it is; `no journal` is RealDisk with the journal's
calls made no-ops (what the disk cost before lost-unsynced-writes emulation).
Each op is one Raft-like step: append a record to a log, sync it; every 50th
op also rewrites a small meta file and syncs it. Prints the median CPU
microseconds per op (process CPU: the figure that holds on a busy machine)
and wall microseconds per op, with min..max, and the load average. Never a
pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from systems.runtime.real_disk import RealDisk


def _silence(disk: RealDisk) -> None:
    j = disk.journal
    j.before_append = lambda name, path: None  # type: ignore[method-assign]
    j.before_replace = lambda name, path: None  # type: ignore[method-assign]
    j.synced = lambda name, **kw: None  # type: ignore[method-assign]
    j.note_delete = lambda name: None  # type: ignore[method-assign]


async def one(root: Path, journal: bool, ops: int, record: bytes) -> tuple[float, float]:
    disk = RealDisk(root)
    if not journal:
        _silence(disk)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(ops):
        disk.append("log", record)
        await disk.sync("log")
        if i % 50 == 0:
            disk.write("meta", i.to_bytes(8, "big"))
            await disk.sync("meta")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    disk.close()
    return cpu / ops * 1e6, wall / ops * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--record", type=int, default=200, help="bytes per appended record")
    args = ap.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"journal": [], "no journal": []}
    order = ["journal", "no journal"]
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        for rep in range(args.reps):
            for name in order if rep % 2 == 0 else reversed(order):
                root = Path(tmp) / f"{name.replace(' ', '-')}-{rep}"
                results[name].append(asyncio.run(one(root, name == "journal", args.ops, bytes(args.record))))
    print(f"append {args.record} B + fsync, {args.ops} ops x {args.reps} reps, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'contender':<12} {'CPU us/op (median, min..max)':<32} {'wall us/op (median, min..max)'}")
    for name, rows in results.items():
        cpu, wall = [r[0] for r in rows], [r[1] for r in rows]
        print(f"{name:<12} {statistics.median(cpu):8.1f} ({min(cpu):.1f}..{max(cpu):.1f}){'':<10} "
              f"{statistics.median(wall):8.1f} ({min(wall):.1f}..{max(wall):.1f})")


if __name__ == "__main__":
    main()
