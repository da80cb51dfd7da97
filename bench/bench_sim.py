"""How fast the simulator runs: events per real second, virtual seconds per real second.

N echo nodes each run P pingers that call a random peer's `echo` and then
sleep `interval` virtual seconds, for `virtual` seconds of simulated time.
Events are message deliveries plus timer firings (rt.sleep). A figure, never
a pass/fail timing.

    .venv/bin/python bench/bench_sim.py [--nodes 5] [--pingers 2] [--interval 0.01] [--virtual 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import systems.echo as echo
from systems.runtime.api import NodeConfig, RpcError, Runtime
from systems.runtime.sim import NetConfig, SimWorld


def measure(nodes: int, pingers: int, interval_s: float, virtual_s: float, journal: bool, seed: int) -> dict:
    names = [f"n{i}" for i in range(1, nodes + 1)]
    world = SimWorld(seed, names, net=NetConfig(), keep_journal=journal)

    async def pinging(rt: Runtime, config: NodeConfig) -> None:
        await echo.start_node(rt, config)

        async def pinger(k: int) -> None:
            while True:
                dst = rt.peers[rt.rng.randrange(len(rt.peers))]
                with contextlib.suppress(RpcError):
                    await rt.call(dst, "echo", {"from": rt.node_id, "k": k, "t": rt.now()}, timeout=1.0)
                await rt.sleep(interval_s)

        for k in range(pingers):
            rt.spawn(pinger(k), name=f"pinger-{k}")

    async def main() -> None:
        for n in names:
            await world.start(n, pinging, NodeConfig("echo", seed=seed))
        await world.client().sleep(virtual_s)

    started = time.perf_counter()
    world.run(main())
    real_s = time.perf_counter() - started
    events = world.stats["delivered"] + world.stats["timers"]
    return {
        "real_s": real_s,
        "events": events,
        "deliveries": world.stats["delivered"],
        "timers": world.stats["timers"],
        "events_per_s": events / real_s,
        "virtual_per_real": virtual_s / real_s,
        "digest": world.digest()[:16],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--pingers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=0.01, help="virtual seconds between pings")
    ap.add_argument("--virtual", type=float, default=60.0, help="virtual seconds to simulate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"sim bench: {args.nodes} echo nodes x {args.pingers} pingers, ping every {args.interval}s, "
          f"{args.virtual:g} virtual s, seed {args.seed}")
    print("  (best of --repeat runs: the machine may be shared, so the best run is the least disturbed)")
    for journal in (False, True):
        runs = [measure(args.nodes, args.pingers, args.interval, args.virtual, journal, args.seed)
                for _ in range(args.repeat)]
        assert len({r["digest"] for r in runs}) == 1, "same seed, different runs: the simulator is not deterministic"
        r = min(runs, key=lambda r: r["real_s"])
        print(
            f"  journal={'on ' if journal else 'off'}  {r['events']:>8} events "
            f"({r['deliveries']} deliveries, {r['timers']} timers) in {r['real_s']:.2f} real s: "
            f"{r['events_per_s']:,.0f} events/s, {r['virtual_per_real']:.1f} virtual s per real s  "
            f"digest {r['digest']}"
        )


if __name__ == "__main__":
    main()
