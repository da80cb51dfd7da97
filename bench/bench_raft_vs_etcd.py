"""Raft KV vs etcd 3.4 over native gRPC, a fair race on this machine: CPU per op, throughput, failover.

Both clusters have 3 members on loopback and acknowledge a write only once it
is fsync'd on a majority (Raft: group commit of its log; etcd: its WAL). Both
are up for the whole run and driven by the same asyncio load generator from
one client process: 100-byte values, puts and linearizable gets at 1, 16 and
64 clients, each client with its own connection (etcd: its own gRPC channel
through `etcd3aio`), every request sent to the leader. Cells alternate
raft/etcd and the order flips every repetition; each figure is the median
of `--reps` with the spread. Server CPU per op sums /proc CPU time of every
server process of the contender during the cell: compare it first, the
machine is shared. Then leader failover for both with the same poll (see
bench/fair.py), median of `--kills`; then with the leader hung (SIGSTOP)
rather than killed, median of `--hangs`: a killed process's port refuses
at once, which Raft's leader probe takes as a hint, a hung one's does not.
etcd is Debian's `etcd-server`, started
and stopped here (bench/etcd_cluster.py); without it Raft runs alone.

    python bench/bench_raft_vs_etcd.py [--seconds 5] [--reps 3] [--kills 5] [--hangs 5] [--clients 1,16,64]
    python bench/bench_raft_vs_etcd.py --clients '' --kills 7 --hangs 7     # failover only

Figures, never a pass/fail. The disk is a virtual disk whose fsync is fast
(host caching): durability figures flatter both systems alike.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusters import local_cluster
from contenders import EtcdContender, RaftContender, wait_for
from etcd_cluster import EtcdCluster, etcd_installed
from fair import Results, print_failover, print_load, print_table, run_failovers, run_matrix
from procstat import loadavg

POLL_S, TRY_S = 0.05, 0.25


async def race(args: argparse.Namespace) -> Results:
    clients = tuple(int(c) for c in args.clients.split(",") if c)
    res = Results()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in loadavg())}", flush=True)
    async with local_cluster("raft", 3) as raft_cluster:
        raft = RaftContender(raft_cluster)
        await wait_for(lambda: raft.leader(), 30.0)
        contenders: list[Any] = [raft]
        etcd_ctx = EtcdCluster() if etcd_installed() and not args.raft_only else None
        if etcd_ctx is None:
            print("etcd is not run (Debian: apt-get install etcd-server); Raft alone")
        async with etcd_ctx if etcd_ctx is not None else _nothing():
            if etcd_ctx is not None:
                contenders.append(EtcdContender(etcd_ctx))
            if clients:
                await run_matrix(contenders, reps=args.reps, seconds=args.seconds, clients=clients, results=res)
            if args.kills:
                await run_failovers(contenders, kills=args.kills, poll_s=POLL_S, try_s=TRY_S, results=res)
            if args.hangs:
                await run_failovers(contenders, kills=args.hangs, poll_s=POLL_S, try_s=TRY_S, results=res, hang=True)
    return res


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per cell")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5, help="leader kills per system (0: no failover)")
    parser.add_argument("--hangs", type=int, default=5,
                        help="leader hangs (SIGSTOP: no refused port to hint) per system (0: none)")
    parser.add_argument("--clients", default="1,16,64", help="client counts ('': failover only)")
    parser.add_argument("--raft-only", action="store_true")
    args = parser.parse_args()
    res = asyncio.run(race(args))
    names = [n for n in ("raft", "etcd") if any(k[0] == n for k in res.samples)]
    print(f"\n3 members on loopback; a write is acked only once fsync'd on a majority (raft: log group commit; "
          f"etcd: WAL); 100-byte values; linearizable gets; every request to the leader; one connection per "
          f"client; {args.seconds:g}s per cell, median of {args.reps} interleaved repetitions [spread min..max]; "
          f"srv µs/op = CPU of all server processes per op (/proc), cli = the client process\n")
    print_table(res, names, ratio=("raft", "etcd") if len(names) == 2 else None)
    if len(names) == 2:
        print("raft/etcd: throughput ratio, and cpu = etcd server µs/op / raft server µs/op (>1: raft cheaper)")
    print()
    print_failover(res, POLL_S, TRY_S)
    print_load(res)


if __name__ == "__main__":
    main()
