"""Dynamo-style KV vs the Raft KV, side by side on this machine, and the KV's convergence after a heal.

Both stores run as real node processes on loopback (bench/clusters.py) with
fsync before every acknowledgement (group commit on both), both up for the
whole run, driven alike by bench/fair.py: 100-byte values, puts and gets at
1, 16 and 64 clients, each client with its own connection, cells alternating
kv/raft with the order flipped every repetition; medians of `--reps` with
the spread, and server CPU per op from /proc. The KV runs 4 nodes with
N/R/W = 3/2/2, clients spread over all nodes, puts overwrite (register-like,
so siblings do not pile up); the Raft store has 3 members, every request to
the leader, linearizable gets: the price of consensus vs quorum replication.

Convergence: a fresh 4-node KV cluster is split 2|2 for `--partition` seconds
while 16 clients overwrite 200 keys on both sides (sloppy quorums, hints);
then the network heals and every node is dumped every 0.1 s until all
replicas of every key hold the same siblings and no stand-in holds a write
its replicas lack (checkers.kv_convergence); the time from heal to that is
reported (median of `--rounds`).

    python bench/bench_kv.py [--seconds 5] [--reps 3] [--partition 10] [--rounds 3] [--skip-raft] [--ops put,get]

Figures, never a pass/fail. The disk's fsync is fast (host caching).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusters import local_cluster
from contenders import VALUE, KvContender, RaftContender, wait_for
from fair import Results, print_load, print_table, run_matrix
from loadgen import drive, median

from checkers import kv_convergence
from nemesis import grudges
from systems.kv.client import KvClient

KV_NODES = 4


async def bench_stores(args: argparse.Namespace) -> Results:
    clients = tuple(int(c) for c in args.clients.split(","))
    ops = tuple(args.ops.split(","))
    res = Results()
    async with local_cluster("kv", KV_NODES) as kv_cluster:
        contenders: list[Any] = [KvContender(kv_cluster)]
        if args.skip_raft:
            await run_matrix(contenders, reps=args.reps, seconds=args.seconds, ops=ops, clients=clients, results=res)
            return res
        async with local_cluster("raft", 3) as raft_cluster:
            raft = RaftContender(raft_cluster)
            await wait_for(lambda: raft.leader(), 30.0)
            contenders.append(raft)
            await run_matrix(contenders, reps=args.reps, seconds=args.seconds, ops=ops, clients=clients, results=res)
    return res


# -- convergence after a heal ----------------------------------------------------------------------


def converged(dumps: dict[str, dict[str, Any]]) -> bool:
    """All replicas agree and nothing a stand-in holds is missing, per the convergence checker."""
    history: list[dict[str, Any]] = []
    for i, (node, dump) in enumerate(sorted(dumps.items())):
        base = {"process": i, "f": "dump", "final": True, "node": node, "time": 0}
        history.append({**base, "index": 2 * i, "type": "invoke", "value": None})
        history.append({**base, "index": 2 * i + 1, "type": "ok", "value": dump})
    return kv_convergence.check(history, {})["valid"] is True


async def dump_all(rt: Any, nodes: list[str]) -> dict[str, dict[str, Any]] | None:
    try:
        replies = await asyncio.gather(*(KvClient(rt, n, 2.0).dump() for n in nodes))
    except Exception:
        return None
    return dict(zip(nodes, replies, strict=True))


async def bench_convergence(partition_s: float, rounds: int) -> list[tuple[float, int]]:
    """[(seconds from heal to convergence, writes acknowledged during the partition)] per round."""
    async with local_cluster("kv", KV_NODES) as cluster:
        rt, nodes = cluster.client, list(cluster.nodes)
        clients = [KvClient(rt, nodes[w % len(nodes)], 2.0) for w in range(16)]
        await wait_for(lambda: clients[0].put("warm-up", VALUE, overwrite=True), 30.0)
        out = []
        for r in range(rounds):
            half = len(nodes) // 2
            await cluster.partition(grudges.from_components(nodes, [set(nodes[:half]), set(nodes[half:])]))

            async def put(w: int, i: int, r: int = r) -> None:
                await clients[w].put(f"c{(w * 31 + i) % 200}", f"{r}-{w}-{i}", overwrite=True)

            load = await drive(put, len(clients), partition_s)
            await cluster.heal()
            healed = time.monotonic()
            while time.monotonic() - healed < 120.0:
                dumps = await dump_all(rt, nodes)
                if dumps is not None and converged(dumps):
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("replicas did not converge within 120s of the heal")
            out.append((time.monotonic() - healed, load.ok))
            await asyncio.sleep(1.0)
        return out


# -- report ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per cell")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--ops", default="put,get")
    parser.add_argument("--partition", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="convergence rounds (0: none)")
    parser.add_argument("--skip-raft", action="store_true")
    args = parser.parse_args()
    res = asyncio.run(bench_stores(args))
    conv = asyncio.run(bench_convergence(args.partition, args.rounds)) if args.rounds else []
    names = ["kv"] if args.skip_raft else ["kv", "raft"]
    print(f"\nloopback, fsync before every ack (group commit on both), 100-byte values, {args.seconds:g}s per cell, "
          f"median of {args.reps} interleaved repetitions [spread]; kv: {KV_NODES} nodes N/R/W 3/2/2, clients "
          f"spread over the nodes; raft: 3 members, requests to the leader, linearizable gets; srv µs/op = CPU "
          f"of all server processes per op (/proc)\n")
    print_table(res, names, ratio=None if args.skip_raft else ("kv", "raft"))
    if not args.skip_raft:
        print("kv/raft: throughput ratio, and cpu = raft server µs/op / kv server µs/op (>1: kv cheaper)")
    if conv:
        times = [t for t, _ in conv]
        print(f"\nkv convergence after a {args.partition:g}s 2|2 partition heals (16 clients writing 200 keys): "
              f"median {median(times):.2f}s  all {', '.join(f'{t:.2f}s ({n} writes)' for t, n in conv)}")
    print_load(res)


if __name__ == "__main__":
    main()
