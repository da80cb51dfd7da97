"""Dynamo-style KV vs the Raft KV, side by side on this machine, and the KV's convergence after a heal.

Both stores run as real node processes on loopback (harness.backends.local)
with fsync on, driven by the same asyncio load generator (bench/loadgen.py,
through bench_raft_vs_etcd.load_rows): 100-byte values, puts and gets at 1,
16 and 64 concurrent clients, `--seconds` per cell. The KV runs 4 nodes with
N/R/W = 3/2/2, clients spread over all nodes, puts overwrite (register-like,
so siblings do not pile up); the Raft store is bench_raft_vs_etcd.bench_raft
(3 members, linearizable gets through the leader): the price of consensus vs
quorum replication.

Convergence: a fresh 4-node KV cluster is split 2|2 for `--partition` seconds
while 16 clients overwrite 200 keys on both sides (sloppy quorums, hints);
then the network heals and every node is dumped every 0.1 s until all
replicas of every key hold the same siblings and no stand-in holds a write
its replicas lack (checkers.kv_convergence); the time from heal to that is
reported (median of `--rounds`).

    python bench/bench_kv.py [--seconds 5] [--partition 10] [--rounds 3] [--skip-raft]

Figures, never a pass/fail: the machine is shared and noisy (read them +-30%).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_raft_vs_etcd as raft_bench
from loadgen import drive, median

from base.spec import TestSpec
from checkers import kv_convergence
from harness.backends.local import LocalBackend
from nemesis import grudges
from systems.kv.client import KvClient

VALUE = raft_bench.VALUE
KV_NODES = 4
Row = dict[str, Any]


def kv_spec(run_dir: Path) -> TestSpec:
    return TestSpec(system="kv", workload="set", nemesis=(), backend="local", node_count=KV_NODES,
                    concurrency=64, run_dir=str(run_dir))


def in_cluster(body: Any) -> Any:
    run_dir = Path(tempfile.mkdtemp(prefix="picluster-bench-kv-"))
    try:
        return LocalBackend().run(kv_spec(run_dir), body)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


async def wait_for_put(client: KvClient, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            await client.put("warm-up", VALUE, overwrite=True)
            return
        except Exception:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"no put succeeded within {timeout_s}s")


def bench_kv(seconds: float) -> list[Row]:
    async def body(cluster: Any) -> list[Row]:
        rt = cluster.client
        clients = [KvClient(rt, cluster.nodes[w % len(cluster.nodes)], 5.0) for w in range(64)]
        await wait_for_put(clients[0], 30.0)

        async def put(w: int, i: int) -> None:
            await clients[w].put(f"k{w}-{i % 100}", VALUE, overwrite=True)

        async def get(w: int, i: int) -> None:
            await clients[w].get(f"k{w}-{i % 100}")

        return await raft_bench.load_rows(put, get, seconds)

    return in_cluster(body)


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


def bench_convergence(partition_s: float, rounds: int) -> list[tuple[float, int]]:
    """[(seconds from heal to convergence, writes acknowledged during the partition)] per round."""

    async def body(cluster: Any) -> list[tuple[float, int]]:
        rt, nodes = cluster.client, list(cluster.nodes)
        clients = [KvClient(rt, nodes[w % len(nodes)], 2.0) for w in range(16)]
        await wait_for_put(clients[0], 30.0)
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

    return in_cluster(body)


# -- report ----------------------------------------------------------------------------------------


def print_table(kv: list[Row], raft: list[Row] | None) -> None:
    print(f"{'op':4} {'clients':>7} | {'kv ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'err':>5} | "
          f"{'raft ops/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'err':>5} | {'kv/raft':>7}")
    for i, k in enumerate(kv):
        r = raft[i] if raft else None
        ratio = f"{k['per_s'] / r['per_s']:.2f}" if r and r["per_s"] else "-"
        cells = []
        for x, w in ((k, 9), (r, 10)):
            cells.append(
                f"{x['per_s']:{w}.0f} {x['p50']:7.2f} {x['p99']:7.2f} {x['errors']:5d}"
                if x
                else f"{'-':>{w}} {'-':>7} {'-':>7} {'-':>5}"
            )
        print(f"{k['op']:4} {k['clients']:>7} | {cells[0]} | {cells[1]} | {ratio:>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--partition", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-raft", action="store_true")
    args = parser.parse_args()
    kv_rows = bench_kv(args.seconds)
    raft_rows = None if args.skip_raft else raft_bench.bench_raft(args.seconds, 0)[0]
    conv = bench_convergence(args.partition, args.rounds)
    print(f"\nloopback, fsync on, 100-byte values, {args.seconds:g}s per cell; "
          f"kv: {KV_NODES} nodes N/R/W 3/2/2; raft: 3 members, linearizable gets\n")
    print_table(kv_rows, raft_rows)
    times = [t for t, _ in conv]
    print(f"\nkv convergence after a {args.partition:g}s 2|2 partition heals (16 clients writing 200 keys): "
          f"median {median(times):.2f}s  all {', '.join(f'{t:.2f}s ({n} writes)' for t, n in conv)}")


if __name__ == "__main__":
    main()
