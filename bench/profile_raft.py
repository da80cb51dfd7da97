"""Profile one node of a loaded cluster with py-spy and print where its CPU goes.

Starts a 3-member Raft cluster (or a 4-node KV cluster with `--system kv`) on
loopback, drives puts (or gets) from this process with `--clients` workers
(one connection each, bench/contenders.py), and samples the Raft leader (or
the KV node `n1`; `--node follower` a Raft follower) with `py-spy record` for `--seconds`. Prints the functions
with the most samples on top of the stack (self) and anywhere on it
(inclusive), as a share of all samples of the node's busy threads, and
writes the raw collapsed stacks (flamegraph.pl / speedscope input) to
`--out`.

    python bench/profile_raft.py [--clients 16] [--seconds 10] [--op put] [--system raft] [--out prof.txt]
    python bench/profile_raft.py --cprofile ...   # CPU time and call counts per op of the loop thread

On a loaded machine py-spy's samples count a thread that is runnable but not
running as busy, so its shares flatter system calls that wake other
processes; `--cprofile` (bench/cprofile_node.py) counts CPU time instead.

py-spy must be installed (`pip install -e '.[bench]'`) and allowed to
ptrace the node (root, or kernel.yama.ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pstats
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusters import local_cluster
from contenders import KvContender, RaftContender, wait_for
from loadgen import drive
from procstat import loadavg, total_cpu_seconds


def py_spy() -> str:
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return found


WAITING = ("EpollSelector.select", "_worker (concurrent/futures/thread.py:81)", "_fsync_paths", "Condition.wait")
"""Leaf frames where a thread waits (for I/O, work or the disk) rather than computes."""


def summarize(collapsed: str, top: int) -> None:
    """Where the samples of computing threads went; waiting samples are counted apart."""
    self_n: collections.Counter[str] = collections.Counter()
    incl_n: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any(frames[-1].startswith(w) for w in WAITING):
            waiting += n
            continue
        total += n
        self_n[frames[-1]] += n
        for f in set(frames):
            incl_n[f] += n
    if not total:
        print("no samples")
        return
    print(f"{total} computing samples (and {waiting} waiting in epoll, the executor queue or fsync, left out)")
    for title, counter in (("self (top of stack)", self_n), ("inclusive", incl_n)):
        print(f"\n{title}:")
        for frame, n in counter.most_common(top):
            print(f"  {100 * n / total:5.1f}%  {frame}")


def cprofile_python(out_dir: str) -> str:
    """A stand-in interpreter that runs each node under bench/cprofile_node.py."""
    wrapper = Path(out_dir) / "python"
    node_runner = Path(__file__).resolve().parent / "cprofile_node.py"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{node_runner}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def print_cprofile(path: str, ops: int, top: int) -> None:
    stats = pstats.Stats(path)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(v[2] for _, v in rows)
    print(f"\ncProfile of the event-loop thread, CPU time ({total / max(ops, 1) * 1e6:.0f} µs/op in all, with "
          f"the profiler's overhead): own time per op, calls per op")
    for (file, line, fn), (_, ncalls, tottime, _, _) in rows[:top]:
        where = f"{Path(file).name}:{line}" if file != "~" else "builtin"
        print(f"  {tottime / ops * 1e6:7.1f} µs  {ncalls / ops:6.2f}  {fn} ({where})")


async def main_async(args: argparse.Namespace) -> None:
    size = 4 if args.system == "kv" else 3
    prof_dir = tempfile.mkdtemp(prefix="picluster-profile-")
    os.environ["PICLUSTER_CPROFILE_DIR"] = prof_dir
    python = cprofile_python(prof_dir) if args.cprofile else sys.executable
    raw = os.path.join(prof_dir, "py-spy.txt")
    err = b""
    try:
        async with local_cluster(args.system, size, python=python) as cluster:
            c: Any = KvContender(cluster) if args.system == "kv" else RaftContender(cluster)
            if args.system == "raft":
                await wait_for(lambda: c.leader(), 30.0)
                leader = await c.leader()
                target = leader if args.node == "leader" else next(n for n in cluster.nodes if n != leader)
            else:
                target = "n1"
            pid = cluster.pid(target)
            assert pid is not None
            await c.open_clients(args.clients)
            op = c.put if args.op == "put" else c.get
            warm = await drive(c.put, args.clients, 1.0)  # warm up (and create the keys gets read)
            spy = None
            if not args.cprofile:
                cmd = [py_spy(), "record", "-p", str(pid), "-d", str(int(args.seconds)), "-r", str(args.rate),
                       "-f", "raw", "-o", raw, "--nonblocking"]
                spy = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                           stderr=asyncio.subprocess.PIPE)
            cpu0 = total_cpu_seconds(c.server_pids())
            load = await drive(op, args.clients, args.seconds + (0.0 if args.cprofile else 1.0))
            cpu = total_cpu_seconds(c.server_pids()) - cpu0
            if spy is not None:
                _, err = await spy.communicate()
            await c.close_clients()
        # the nodes are stopped (SIGTERM): under --cprofile each has written <node>.prof
        print(f"{args.system} {args.op} x{args.clients}: {load.per_s:.0f} ops/s, p50 {load.p50:.2f} ms, server "
              f"CPU {cpu / max(load.ok, 1) * 1e6:.0f} µs/op (the profiler's overhead included), load average "
              f"{loadavg()[0]:.2f}; profiled {target}")
        if args.cprofile:
            # the warm-up's ops are in the profile too
            print_cprofile(os.path.join(prof_dir, f"{target}.prof"), load.ok + warm.ok, args.top)
            return
        text = Path(raw).read_text() if os.path.exists(raw) else ""
        if err and not text:
            print(err.decode(errors="replace")[-2000:])
        if args.out:
            Path(args.out).write_text(text)
        summarize(text, args.top)
    finally:
        shutil.rmtree(prof_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=("raft", "kv"), default="raft")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--op", choices=("put", "get"), default="put")
    parser.add_argument("--node", choices=("leader", "follower"), default="leader", help="raft: which to profile")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--idle", action="store_true", help="count idle (waiting) threads' samples too")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default="")
    parser.add_argument("--cprofile", action="store_true",
                        help="instead of py-spy: every node under cProfile with a CPU clock (call counts per op)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
