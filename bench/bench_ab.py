"""One system at two revisions, raced fairly: nodes of a git revision vs nodes of the working tree.

For a before/after figure that survives a shared machine: both clusters are
up for the whole run and driven alike by bench/fair.py (cells interleaved,
order flipped every repetition, medians of `--reps` with the spread, server
CPU µs per op from /proc, the load average). The old revision's source is
exported with `git archive` into a temporary directory and its nodes run
from there (a stand-in interpreter that changes into it first); the client
side (load generator, contenders, client library) is the working tree's, so
the two revisions must speak the same wire protocol.

    python bench/bench_ab.py --base REV [--system raft|kv] [--seconds 4] [--reps 3] [--clients 16,64] [--ops put]
    python bench/bench_ab.py --base REV --after DIR ...   # 'after' nodes from a tree in DIR (an experiment)

Figures, never a pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusters import local_cluster
from contenders import KvContender, RaftContender, wait_for
from fair import Results, print_load, print_table, run_matrix
from procstat import loadavg

REPO = Path(__file__).resolve().parents[1]
SIZES = {"raft": 3, "kv": 4}


def runner(where: Path, tree: Path) -> str:
    """A stand-in interpreter (in `where`) that runs nodes from the source in `tree`."""
    python = where / "python"
    python.write_text(f'#!/bin/sh\ncd "{tree}" && PYTHONPATH="{tree}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return str(python)


@contextlib.contextmanager
def exported(rev: str) -> Iterator[str]:
    """A directory holding `rev`'s tree, and a stand-in interpreter that runs nodes from it."""
    where = Path(tempfile.mkdtemp(prefix="picluster-ab-"))
    try:
        tree = where / "tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        yield runner(where, tree)
    finally:
        shutil.rmtree(where, ignore_errors=True)


@contextlib.contextmanager
def tree_at(directory: str) -> Iterator[str]:
    where = Path(tempfile.mkdtemp(prefix="picluster-ab-"))
    try:
        yield runner(where, Path(directory).resolve())
    finally:
        shutil.rmtree(where, ignore_errors=True)


def contender(system: str, cluster: Any, name: str) -> Any:
    c: Any = RaftContender(cluster) if system == "raft" else KvContender(cluster)
    c.name = name
    return c


async def race(args: argparse.Namespace, old_python: str, new_python: str) -> Results:
    clients = tuple(int(c) for c in args.clients.split(","))
    ops = tuple(args.ops.split(","))
    res = Results()
    size = SIZES[args.system]
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in loadavg())}", flush=True)
    async with local_cluster(args.system, size, python=old_python) as old_cluster, \
            local_cluster(args.system, size, python=new_python) as new_cluster:
        old = contender(args.system, old_cluster, "before")
        new = contender(args.system, new_cluster, "after")
        if args.system == "raft":
            await wait_for(lambda: old.leader(), 30.0)
            await wait_for(lambda: new.leader(), 30.0)
        await run_matrix([old, new], reps=args.reps, seconds=args.seconds, ops=ops, clients=clients, results=res)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision whose nodes are 'before'")
    parser.add_argument("--system", choices=tuple(SIZES), default="raft")
    parser.add_argument("--seconds", type=float, default=4.0, help="per cell")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", default="16,64")
    parser.add_argument("--ops", default="put,get")
    parser.add_argument("--after", default="", help="a directory holding the tree whose nodes are 'after' "
                        "(default: the working tree)")
    args = parser.parse_args()
    with exported(args.base) as old_python, \
            (tree_at(args.after) if args.after else contextlib.nullcontext(sys.executable)) as new_python:
        res = asyncio.run(race(args, old_python, new_python))
    after = args.after or "the working tree"
    print(f"\n{args.system}: before = {args.base}, after = {after}; {args.seconds:g}s per cell, median of "
          f"{args.reps} interleaved repetitions [spread min..max]; srv µs/op = CPU of all server processes per op\n")
    print_table(res, ["before", "after"], ratio=("after", "before"))
    print("after/before: throughput ratio, and cpu = before's server µs/op / after's (>1: after is cheaper)")
    print_load(res)


if __name__ == "__main__":
    main()
