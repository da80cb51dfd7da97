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


async def writer_node(rt: Runtime, config: NodeConfig) -> None:
    async def writes() -> None:
        while True:
            try:
                rt.disk.append("log", b"x")
                await rt.disk.sync("log")
            except OSError:
                rt.disk.append("after", b"must never run")  # a zombie would go on here
            await rt.sleep(0.5)

    rt.spawn(writes(), name="writer")  # not essential: the disk error alone must stop the node


def test_a_failed_disk_operation_crashes_the_node_and_a_restart_runs_without_the_fault() -> None:
    world = SimWorld(1, ["n1"])
    config = NodeConfig(system="x", seed=1)

    async def main() -> tuple[bool, bool, int]:
        await world.start("n1", writer_node, config)
        rt = world.client()
        await rt.sleep(2.0)
        world.stores["n1"].faults.set({"fault": "eio", "ops": "sync"})
        await rt.sleep(2.0)
        down = not world.is_up("n1")
        await world.restart("n1")
        await rt.sleep(2.0)
        return down, world.is_up("n1"), world.stores["n1"].faults.injected

    down, up_again, injected_after = world.run(main())
    lines = [json.loads(x) for x in world.logs["n1"]]
    failed = [x for x in lines if x["event"] == "node-failed"]
    assert down and len(failed) == 1 and "injected disk fault" in failed[0]["reason"]
    assert "after" not in world.stores["n1"].current, "nothing ran after the failed sync"
    assert up_again and injected_after == 0, "the restarted node carries no fault the nemesis did not set again"
