"""How fast the simulator runs: virtual seconds per CPU second, through the whole harness and bare.

Harness figure (the one a seed sweep cares about): `harness run SYSTEM
--backend sim --nemesis partition,kill` with the harness's defaults (5
nodes, the system's default workload, TestSpec's rate, concurrency, time
limit, interval and quiet period), for raft, kv and heartbeat. Each
measurement is one child process: a short warm-up run (so imports are not
counted), then the timed `harness.session.execute` (the sim run, the
clients, the per-op history writes and the run directory's outputs; not the
checkers or the report), CPU seconds from `time.process_time()`, so the
figure holds on a busy machine. Virtual seconds are the simulated clock at
the end of the run (sim.json). Reported: the median of `--repeat` rounds
with min..max, and whether every round produced the same history.

`--against DIR` runs the same measurement on another checkout (e.g. the
commit before an optimisation: `git worktree add /tmp/before HEAD~3`),
interleaved round by round with this tree, and says whether both trees
produced byte-identical histories and message journals for every seed.

`--identity SYSTEM:NEMESIS` (repeatable, with `--against DIR`) only compares,
untimed: for each seed, history.jsonl, journal.jsonl and every payload sent
(hashed in order the same way in both trees, by wrapping Journal.add, so
trees whose own digest formulas differ still compare), and says which differ.

`--instructions` also counts the instructions the timed runs execute
(valgrind, warm-up subtracted, PYTHONHASHSEED=0): on a machine shared by
others CPU seconds swell with the load, instruction counts do not.

Micro figure (`--micro`): N echo nodes each run P pingers that call a random
peer's `echo` and sleep `interval` virtual seconds; events (deliveries plus
timer firings) per CPU second, journal off and on.

    .venv/bin/python bench/bench_sim.py [--systems raft,kv,heartbeat] [--seeds 1,2] [--repeat 3]
                                        [--nemesis partition,kill] [--against DIR] [--instructions] [--micro]

Figures, never a pass/fail.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


# -- one measurement, in a child process ---------------------------------------------------------

def child(tree: str, system: str, seeds: list[int], nemesis: str, identity: bool = False) -> dict[str, Any]:
    """Run in a fresh process whose sys.path starts at `tree`: warm up, then time the runs.

    With `identity`: no warm-up, and every payload the journal sees is hashed too (slower, so untimed).
    """
    sys.path.insert(0, tree)
    payloads = [hashlib.sha256()]  # the current run's; timed_runs takes and renews it after each run
    if identity:
        from systems.runtime import sim_net

        add = sim_net.Journal.add

        def add_and_hash(self: Any, record: Any, payload: bytes | None = None) -> None:
            payloads[0].update(b"-" if payload is None else b"%d:" % len(payload) + payload)
            add(self, record, payload)

        sim_net.Journal.add = add_and_hash  # type: ignore[method-assign]
    from base.spec import TestSpec
    from harness import registry
    from harness.session import execute, prepare

    root = Path(tempfile.mkdtemp(prefix="picluster-bench-sim-"))

    def spec_for(seed: int, time_limit_s: float | None = None) -> Any:
        kw: dict[str, Any] = {"time_limit_s": time_limit_s} if time_limit_s is not None else {}
        spec = TestSpec(system=system, workload=registry.default_workload(system),
                        nemesis=tuple(n for n in nemesis.split(",") if n), backend="sim", seed=seed, **kw)
        return prepare(spec, root)

    try:
        return timed_runs(spec_for, execute, seeds, warm_up=not identity, payloads=payloads if identity else None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def timed_runs(spec_for: Any, execute: Any, seeds: list[int], *, warm_up: bool = True,
               payloads: list[Any] | None = None) -> dict[str, Any]:
    """A warm-up run, then each seed timed in CPU seconds; with the digests of what each wrote."""
    if warm_up:
        execute(spec_for(0, 2.0))  # warm-up: imports and first-call costs are not the simulator's speed
    cpu = virtual = 0.0
    runs = []
    for seed in seeds:
        spec = spec_for(seed)
        gc.collect()
        started = time.process_time()
        execute(spec)
        cpu += time.process_time() - started
        run_dir = Path(spec.run_dir)
        sim = json.loads((run_dir / "sim.json").read_text())
        virtual += sim["virtual_time_s"]
        runs.append({
            "seed": seed,
            "history": hashlib.sha256((run_dir / "history.jsonl").read_bytes()).hexdigest(),
            "journal": hashlib.sha256((run_dir / "journal.jsonl").read_bytes()).hexdigest(),
            "digest": sim["digest"],
            "payloads": payloads[0].hexdigest() if payloads is not None else None,
        })
        if payloads is not None:
            payloads[0] = hashlib.sha256()

    return {"cpu_s": cpu, "virtual_s": virtual, "runs": runs}


def measure(tree: Path, system: str, seeds: list[int], nemesis: str, *, wrap: list[str] | None = None,
            identity: bool = False) -> dict[str, Any]:
    cmd = [*(wrap or []), sys.executable, str(Path(__file__).resolve()), "--child", str(tree), system,
           ",".join(map(str, seeds)), nemesis, *(["identity"] if identity else [])]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if wrap:
        env["PYTHONHASHSEED"] = "0"  # instruction counts barely move then
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree, check=False)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed in {tree} ({system}):\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if wrap:
        refs = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if refs is None:
            raise SystemExit(f"no instruction count from valgrind:\n{out.stderr[-2000:]}")
        result["instructions"] = int(refs.group(1).replace(",", ""))
    return result


def instruction_figures(args: argparse.Namespace, trees: dict[str, Path], seeds: list[int]) -> None:
    """Instructions executed by the timed runs (valgrind, warm-up subtracted): load does not move them."""
    if shutil.which("valgrind") is None:
        print("  (--instructions needs valgrind)")
        return
    wrap = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    print("  instructions executed by the timed runs (valgrind; same for any load):")
    for system in args.systems.split(","):
        counts = {}
        for name, tree in trees.items():
            both = measure(tree, system, seeds, args.nemesis, wrap=wrap)
            warm = measure(tree, system, [], args.nemesis, wrap=wrap)
            counts[name] = both["instructions"] - warm["instructions"]
            print(f"  {system:<10} {name:<10} {counts[name] / 1e6:8.0f} M instructions for "
                  f"{both['virtual_s']:.1f} virtual s ({counts[name] / 1e6 / both['virtual_s']:.1f} M per virtual s)")
        if len(counts) == 2:
            a, b = counts.values()
            print(f"  {system:<10} this tree executes {a / b:.2f}x the instructions of the other")


def harness_figures(args: argparse.Namespace) -> None:
    trees = {"this tree": HERE}
    if args.against:
        trees["against"] = Path(args.against).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"sim through the harness: --nemesis {args.nemesis}, harness defaults, seeds {seeds}, "
          f"median of {args.repeat} (min..max); virtual s per CPU s")
    for name, tree in trees.items():
        print(f"  {name}: {tree}")
    if args.instructions:
        instruction_figures(args, trees, seeds)
    for system in args.systems.split(","):
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.repeat):
            for name, tree in trees.items():  # interleaved, so both see the same machine
                results[name].append(measure(tree, system, seeds, args.nemesis))
        for name, rounds in results.items():
            rates = [r["virtual_s"] / r["cpu_s"] for r in rounds]
            cpus = [r["cpu_s"] for r in rounds]
            same = len({json.dumps(r["runs"]) for r in rounds}) == 1
            print(f"  {system:<10} {name:<10} {statistics.median(rates):6.1f} virtual s/CPU s "
                  f"({min(rates):.1f}..{max(rates):.1f})  CPU {statistics.median(cpus):.2f} s for "
                  f"{rounds[0]['virtual_s']:.1f} virtual s  rounds identical: {'yes' if same else 'NO'}")
        if len(trees) == 2:
            a, b = (results[name][0]["runs"] for name in trees)
            for ra, rb in zip(a, b, strict=True):
                hist = "same" if ra["history"] == rb["history"] else "DIFFERENT"
                jour = "same" if ra["journal"] == rb["journal"] else "DIFFERENT"
                print(f"  {system:<10} seed {ra['seed']}: history {hist} ({ra['history'][:12]}), "
                      f"journal {jour} ({ra['journal'][:12]})")


def identity_figures(args: argparse.Namespace) -> bool:
    """Both trees, each SYSTEM:NEMESIS and seed: are history, journal and payloads byte-identical?"""
    if not args.against:
        raise SystemExit("--identity needs --against DIR")
    trees = [HERE, Path(args.against).resolve()]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"schedule identity, this tree vs {trees[1]}: history.jsonl, journal.jsonl, payloads; seeds {seeds}")
    all_same = True
    for config in args.identity:
        system, _, nemesis = config.partition(":")
        a, b = (measure(tree, system, seeds, nemesis, identity=True)["runs"] for tree in trees)
        for ra, rb in zip(a, b, strict=True):
            verdicts = {k: "same" if ra[k] == rb[k] else "DIFFERENT" for k in ("history", "journal", "payloads")}
            all_same &= set(verdicts.values()) == {"same"}
            print(f"  {system:<10} {nemesis:<32} seed {ra['seed']:>4}: "
                  + "  ".join(f"{k} {v} ({ra[k][:12]})" for k, v in verdicts.items()))
    print(f"  {'all byte-identical' if all_same else 'SOME RUNS DIFFER'}")
    return all_same


# -- the bare simulator: echo pingers ------------------------------------------------------------

def micro(nodes: int, pingers: int, interval_s: float, virtual_s: float, journal: bool, seed: int) -> dict:
    sys.path.insert(0, str(HERE))
    import systems.echo as echo
    from systems.runtime.api import NodeConfig, RpcError, Runtime
    from systems.runtime.sim import NetConfig, SimWorld

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

    gc.collect()
    started = time.process_time()
    world.run(main())
    cpu_s = time.process_time() - started
    events = world.stats["delivered"] + world.stats["timers"]
    return {"cpu_s": cpu_s, "events": events, "deliveries": world.stats["delivered"],
            "timers": world.stats["timers"], "digest": world.digest()[:16]}


def micro_figures(args: argparse.Namespace) -> None:
    print(f"bare simulator: {args.nodes} echo nodes x {args.pingers} pingers, ping every {args.interval}s, "
          f"{args.virtual:g} virtual s, seed {args.seed}, median of {args.repeat} (min..max)")
    for journal in (False, True):
        runs = [micro(args.nodes, args.pingers, args.interval, args.virtual, journal, args.seed)
                for _ in range(args.repeat)]
        same = len({r["digest"] for r in runs}) == 1
        rates = [r["events"] / r["cpu_s"] for r in runs]
        vrates = [args.virtual / r["cpu_s"] for r in runs]
        r = runs[0]
        print(f"  journal={'on ' if journal else 'off'}  {r['events']:>8} events ({r['deliveries']} deliveries, "
              f"{r['timers']} timers): {statistics.median(rates):,.0f} events/CPU s "
              f"({min(rates):,.0f}..{max(rates):,.0f}), {statistics.median(vrates):.1f} virtual s/CPU s  "
              f"digest {r['digest']}{'' if same else '  RUNS DIFFER'}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        tree, system, seeds, nemesis = sys.argv[2:6]
        identity = sys.argv[6:7] == ["identity"]
        print(json.dumps(child(tree, system, [int(s) for s in seeds.split(",") if s], nemesis, identity)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", default="raft,kv,heartbeat")
    ap.add_argument("--seeds", default="1,2", help="comma-separated; each round runs them all")
    ap.add_argument("--nemesis", default="partition,kill")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", help="another checkout to measure interleaved with this one")
    ap.add_argument("--identity", action="append", metavar="SYSTEM:NEMESIS",
                    help="only compare schedules with --against, untimed (repeatable)")
    ap.add_argument("--instructions", action="store_true",
                    help="also count instructions with valgrind (slow: minutes per system; load-independent)")
    ap.add_argument("--micro", action="store_true", help="also the bare echo figure")
    ap.add_argument("--micro-only", action="store_true")
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--pingers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=0.01, help="virtual seconds between pings")
    ap.add_argument("--virtual", type=float, default=60.0, help="virtual seconds to simulate")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.identity:
        identity_figures(args)
        return
    print("load average {:.2f} {:.2f} {:.2f} (start)".format(*os.getloadavg()))
    if not args.micro_only:
        harness_figures(args)
    if args.micro or args.micro_only:
        micro_figures(args)
    print("load average {:.2f} {:.2f} {:.2f} (end)".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
