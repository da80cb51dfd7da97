"""The nemesis schedule: faults one at a time, each held a while and then cured.

Each cycle: a healthy stretch, then one package inflicts its fault, holds it,
and cures it. Packages are dealt from a shuffled deck (every chosen package
once per round, in a seeded random order), so a run long enough for one round
exercises every fault it names rather than whichever the dice favour.
Durations scale with `nemesis_interval_s` (healthy 0.5-1.0x, fault 0.5-1.0x,
so a new fault starts every ~1-2 intervals); a fault that could not be held
its whole drawn time before `stop_at` is not started, so no fault is cut
short by the end of the test. The loop stops at `stop_at`
(test clock); the caller then runs the final heal (nemesis/heal.py), which
cures whatever is still in place.

While a package starts or stops, the ops it records carry its name. A
package that raises (a fault the cluster refused) is recorded as a
`nemesis-error` op naming it, the phase and the error, and the schedule goes
on: the run is then reported as one whose faults did not all take effect,
never as a crash halfway.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from base.faults import NEMESIS_ERROR
from nemesis.package import ACTING, Fault, NemesisContext


def deal(packages: list[Fault], rng: random.Random) -> Iterator[Fault]:
    """Endless rounds, each a fresh shuffle of all packages."""
    while True:
        deck = list(packages)
        rng.shuffle(deck)
        yield from deck


async def acting(ctx: NemesisContext, package: Fault, phase: str) -> bool:
    """Run `package.start` or `.stop` as that package; False (and a nemesis-error op) when it raised."""
    token = ACTING.set(package.name)
    try:
        await (package.start(ctx) if phase == "start" else package.stop(ctx))
        return True
    except Exception as e:  # a refused fault is a fact of the run, recorded; never a crash halfway
        ctx.record(NEMESIS_ERROR, {"package": package.name, "phase": phase, "error": f"{type(e).__name__}: {e}"})
        return False
    finally:
        ACTING.reset(token)


async def run_schedule(ctx: NemesisContext, packages: list[Fault], interval_s: float, stop_at: float) -> None:
    rt = ctx.cluster.client
    if not packages:
        return
    deck = deal(packages, ctx.rng)
    while True:
        healthy_s = interval_s * ctx.rng.uniform(0.5, 1.0)
        hold_s = interval_s * ctx.rng.uniform(0.5, 1.0)
        if rt.now() + healthy_s + hold_s > stop_at:
            return
        await rt.sleep(healthy_s)
        package = next(deck)
        if await acting(ctx, package, "start"):
            await rt.sleep(hold_s)
        await acting(ctx, package, "stop")
