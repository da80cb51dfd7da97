"""The switch fault: turn off the switch every node hangs off, then on again.

Vocabulary: `switch-off` starts it, `switch-on` cures it (no value: it is
cluster-wide). Every node is cut from every other. Needs a cluster with a
switch (`cluster.switch_off` / `switch_on`): netns (the bridge goes down) and
ssh with switch commands in the cluster file.
"""

from __future__ import annotations

from typing import Any

from base.cluster import Capability
from base.faults import ANY, Effect, FaultKind, FaultWindow, Link, held
from nemesis.package import NemesisContext, NemesisPackage, cluster_method

OFF_OP, ON_OP = "switch-off", "switch-on"


def _links(value: Any) -> frozenset[Link]:
    return frozenset({(ANY, ANY)})


def _describe(w: FaultWindow) -> str:
    return f"switch off, every node cut from every other {held(w)}"


SWITCH_OFF = FaultKind(
    name="switch-off",
    start=OFF_OP,
    stop=(ON_OP,),
    colour="#24292f",
    effect=Effect.NETWORK,
    describe=_describe,
    links=_links,
    summary="the switch off: every node cut from every other",
)


class Switch:
    """Turn the switch off at `start`, on at `stop`."""

    name = "switch"

    def __init__(self) -> None:
        self.off = False

    async def start(self, ctx: NemesisContext) -> None:
        off = cluster_method(ctx, self.name, "switch_off")
        cluster_method(ctx, self.name, "switch_on")
        await off()
        self.off = True
        ctx.record(OFF_OP, None)

    async def stop(self, ctx: NemesisContext) -> None:
        if not self.off:
            return
        on = cluster_method(ctx, self.name, "switch_on")
        await on()
        self.off = False
        ctx.record(ON_OP, None)


PACKAGES = (
    NemesisPackage(
        name="switch",
        summary="turn the whole switch off and on (the bridge / your switch_off command)",
        make=Switch,
        kinds=(SWITCH_OFF,),
        needs=frozenset({Capability.SWITCH}),
    ),
)
