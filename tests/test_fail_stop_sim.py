"""Fail-stop in the simulator (api.py's rule): an essential task that dies crashes its node, logging
`node-failed` with the reason; a task that is not essential and dies is logged, and the node lives on."""

from __future__ import annotations

import json
from typing import Any

from systems.runtime.api import NodeConfig, Runtime
from systems.runtime.sim import SimWorld


async def broken_node(rt: Runtime, config: NodeConfig) -> None:
    async def dies() -> None:
        await rt.sleep(1.0)
        raise OSError(28, "No space left on device")

    rt.spawn(dies(), name="helper")
    if config.options.get("essential"):
        rt.spawn(dies(), name="loop", essential=True)


def run(essential: bool) -> tuple[bool, list[dict[str, Any]]]:
    world = SimWorld(1, ["n1"])

    async def main() -> bool:
        await world.start("n1", broken_node, NodeConfig(system="x", options={"essential": essential}, seed=1))
        rt = world.client()
        await rt.sleep(5.0)
        return world.is_up("n1")

    up = world.run(main())
    return up, [json.loads(x) for x in world.logs["n1"]]


def test_an_essential_task_that_dies_crashes_its_node_saying_why() -> None:
    up, lines = run(essential=True)
    assert not up
    failed = [x for x in lines if x["event"] == "node-failed"]
    assert len(failed) == 1 and "loop" in failed[0]["reason"] and "No space left" in failed[0]["reason"]


def test_a_task_that_is_not_essential_dies_alone() -> None:
    up, lines = run(essential=False)
    assert up
    assert not any(x["event"] == "node-failed" for x in lines)
    assert any("No space left" in json.dumps(x) for x in lines)  # logged, never silently lost
