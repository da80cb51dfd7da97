"""The final heal: whatever the nemesis broke is cured before the final reads.

Rules: every package is asked to `stop` (each cures exactly what it did, and
does nothing when nothing is in place); then the network is healed, every
paused node continued and every killed node restarted, whoever did it. A
package whose `stop` fails is recorded as a `nemesis-error` and the heal goes
on: one failure never leaves the rest broken.
"""

from __future__ import annotations

from collections.abc import Sequence

from nemesis.kill import restart
from nemesis.package import Fault, NemesisContext, heal_network
from nemesis.pause import resume
from nemesis.schedule import acting


async def heal_all(ctx: NemesisContext, packages: Sequence[Fault] = ()) -> None:
    for package in packages:
        await acting(ctx, package, "stop")
    await heal_network(ctx)
    await resume(ctx, sorted(ctx.paused))
    await restart(ctx, sorted(ctx.killed))
