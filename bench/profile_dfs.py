"""Profile the DFS under a sequential 1 MiB write or read stream and print where each node's CPU goes.

Starts a 4-node DFS on loopback (n1 is the master; every node runs a
chunkserver; goal 3), writes (or writes, then reads) `--mb` MiB in 1 MiB
operations from this process with one client, and samples every node with
`py-spy record` meanwhile. Prints the user and system CPU time per MB of
every node from /proc, the client's RPCs per MB by method with their
latencies (the phases of an operation: push, write, read, stat, chunk,
lease), and per node the functions with the most samples on top of the
stack (self) and anywhere on it (inclusive).

    python bench/profile_dfs.py [--op write|read] [--mb 128] [--top 15]
    python bench/profile_dfs.py --cprofile ...   # CPU time and call counts per MB, event-loop thread

On a loaded machine py-spy's samples count a thread that is runnable but not
running as busy; `--cprofile` (bench/cprofile_node.py) counts CPU time.
py-spy must be installed (`pip install -e '.[bench]'`) and allowed to ptrace
(root, or kernel.yama.ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusters import local_cluster
from dfs_contenders import OurDfs
from procstat import CLOCK_TICKS, loadavg
from profile_raft import cprofile_python, print_cprofile, py_spy, summarize

from systems.dfs import client as dfs_client

MiB = 1 << 20
PHASES: dict[str, list[float]] = {}


def _timed_calls() -> None:
    """Time every RPC the client library makes, by method (the phases of an operation)."""
    original = dfs_client.DfsClient._call

    async def timed(self: dfs_client.DfsClient, node: str, method: str, msg: dict, timeout: float | None = None):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return await original(self, node, method, msg, timeout)
        finally:
            PHASES.setdefault(method, []).append((time.perf_counter() - started) * 1e3)

    dfs_client.DfsClient._call = timed  # type: ignore[method-assign]


def user_sys(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far; zeros when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return 0.0, 0.0
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


async def main_async(args: argparse.Namespace) -> None:
    prof_dir = tempfile.mkdtemp(prefix="picluster-profile-dfs-")
    os.environ["PICLUSTER_CPROFILE_DIR"] = prof_dir
    python = cprofile_python(prof_dir) if args.cprofile else sys.executable
    try:
        async with local_cluster("dfs", 4, python=python) as cluster:
            dfs = OurDfs("dfs", cluster)
            await dfs.ready()
            if args.op == "read":
                await dfs.write_files("/profile", 1, args.mb)
            pids = {n: cluster.pid(n) for n in cluster.nodes}
            spies = []
            if not args.cprofile:
                for node, pid in pids.items():
                    cmd = [py_spy(), "record", "-p", str(pid), "-d", str(int(args.seconds)), "-r", str(args.rate),
                           "-f", "raw", "-o", os.path.join(prof_dir, f"{node}.txt"), "--nonblocking"]
                    spies.append(await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                                      stderr=asyncio.subprocess.DEVNULL))
            cpu0 = {n: user_sys(p) for n, p in pids.items() if p}
            PHASES.clear()
            started = time.perf_counter()
            if args.op == "write":
                cell = await dfs.write_files("/profile-w", 1, args.mb)
            else:
                cell = await dfs.read_files("/profile", 1, args.mb)
            took = time.perf_counter() - started
            cpu = {n: tuple(b - a for a, b in zip(cpu0[n], user_sys(p), strict=True)) if p else (0.0, 0.0)
                   for n, p in pids.items()}
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled when interrupted
                await spy.wait()
        print(f"dfs {args.op} x1: {args.mb / took:.1f} MB/s, p50 {cell.p50:.1f} ms, load average {loadavg()[0]:.2f}")
        print("server CPU per MB, user+sys: " + ", ".join(
            f"{n} {cpu[n][0] / args.mb * 1e3:.1f}+{cpu[n][1] / args.mb * 1e3:.1f} ms" for n in sorted(cpu)))
        print("client RPCs per MB (count, p50 and mean ms):")
        for method, took in sorted(PHASES.items()):
            took.sort()
            print(f"  {method:14} {len(took) / args.mb:5.2f}  p50 {took[len(took) // 2]:7.1f}  "
                  f"mean {sum(took) / len(took):7.1f}")
        for node in sorted(pids):
            if args.cprofile:
                print(f"\n=== {node}")
                print_cprofile(os.path.join(prof_dir, f"{node}.prof"), args.mb, args.top)
                continue
            path = Path(prof_dir) / f"{node}.txt"
            print(f"\n=== {node} (py-spy)")
            summarize(path.read_text() if path.exists() else "", args.top)
    finally:
        shutil.rmtree(prof_dir, ignore_errors=True)


def main() -> None:
    _timed_calls()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--op", choices=("write", "read"), default="write")
    parser.add_argument("--mb", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=60.0, help="py-spy's longest record (stopped at the end)")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--cprofile", action="store_true",
                        help="instead of py-spy: every node under cProfile with a CPU clock (per MB)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
