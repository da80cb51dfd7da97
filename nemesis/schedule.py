"""The nemesis schedule: faults one at a time, each held a while and then cured.

Each cycle: a healthy stretch, then one package chosen by the seeded RNG
inflicts its fault, holds it, and cures it. Durations scale with the test's
`nemesis_interval_s` (healthy 0.5-1.0x, fault 0.5-1.0x, so a new fault starts
every ~1-2 intervals). The loop stops at `stop_at` (test clock) and the caller
then runs the final heal, which cures whatever is still in place.
"""

from __future__ import annotations

from nemesis.packages import Fault, NemesisContext


async def run_schedule(ctx: NemesisContext, packages: list[Fault], interval_s: float, stop_at: float) -> None:
    rt = ctx.cluster.client
    if not packages:
        return
    while True:
        healthy_s = interval_s * ctx.rng.uniform(0.5, 1.0)
        if rt.now() + healthy_s >= stop_at:
            return
        await rt.sleep(healthy_s)
        package = ctx.rng.choice(packages)
        await package.start(ctx)
        hold_s = min(interval_s * ctx.rng.uniform(0.5, 1.0), max(0.0, stop_at - rt.now()))
        await rt.sleep(hold_s)
        await package.stop(ctx)
