"""Hardware faults: pull one node's cable, switch the whole switch off, pull one node's plug.

Same shape and rules as the packages in nemesis/packages.py (start inflicts
and then records, stop cures exactly that and records it). They need
optional Cluster methods only some backends have (`netns`, `ssh`):

- `link`: `cluster.link_down(node)` / `cluster.link_up(node)`, recorded as
  ("link-down", [node]) / ("link-up", [node]).
- `switch`: `cluster.switch_off()` / `cluster.switch_on()`, recorded as
  ("switch-off", None) / ("switch-on", None).
- `plug`: `cluster.power_off(node)` / `cluster.power_on(node)` (one node's
  power through its power controller; the node is restarted once it is back),
  recorded as ("power-off", [node]) / ("power-on", [node]).

A backend without the method makes `start` raise `UnsupportedFault` naming
the fault and the backend, before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nemesis.packages import Fault, NemesisContext


class UnsupportedFault(RuntimeError):
    pass


def _method(ctx: NemesisContext, fault: str, name: str) -> Callable[..., Any]:
    m = getattr(ctx.cluster, name, None)
    if m is None:
        backend = type(ctx.cluster).__name__
        raise UnsupportedFault(
            f"the {fault!r} nemesis needs {name}() which this backend's cluster ({backend}) does not have; "
            f"use --backend netns or ssh"
        )
    return m


class Link:
    """Pull one node's network cable (its port on the switch goes dark), plug it back later."""

    name = "link"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        down = _method(ctx, self.name, "link_down")
        _method(ctx, self.name, "link_up")
        target = await ctx.pick_target([n for n in ctx.nodes if n not in self.victims])
        if target is None:
            return
        await down(target)
        self.victims.append(target)
        ctx.record("link-down", [target])

    async def stop(self, ctx: NemesisContext) -> None:
        up = _method(ctx, self.name, "link_up")
        for node in list(self.victims):
            await up(node)
            self.victims.remove(node)
            ctx.record("link-up", [node])


class Switch:
    """Turn the switch every node hangs off off, then on again."""

    name = "switch"

    def __init__(self) -> None:
        self.off = False

    async def start(self, ctx: NemesisContext) -> None:
        off = _method(ctx, self.name, "switch_off")
        _method(ctx, self.name, "switch_on")
        await off()
        self.off = True
        ctx.record("switch-off", None)

    async def stop(self, ctx: NemesisContext) -> None:
        on = _method(ctx, self.name, "switch_on")
        if self.off:
            await on()
            self.off = False
            ctx.record("switch-on", None)


class Plug:
    """Pull one node's power plug through its power controller; plug it back in and restart the node."""

    name = "plug"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        off = _method(ctx, self.name, "power_off")
        _method(ctx, self.name, "power_on")
        target = await ctx.pick_target([n for n in ctx.nodes if n not in ctx.killed and n not in ctx.paused])
        if target is None:
            return
        await off(target)
        self.victims.append(target)
        ctx.record("power-off", [target])

    async def stop(self, ctx: NemesisContext) -> None:
        on = _method(ctx, self.name, "power_on")
        for node in list(self.victims):
            await on(node)
            self.victims.remove(node)
            ctx.record("power-on", [node])


PACKAGES: dict[str, Callable[[], Fault]] = {"link": Link, "switch": Switch, "plug": Plug}
