"""The deterministic simulator, in one import: `from systems.runtime.sim import SimWorld, run`.

Rules (details in each part):

- sim_loop: an asyncio loop whose clock is virtual and jumps to the next
  timer; deadlock and runaway time end with a clear `SimError`.
- sim_gate: tasks belong to the node they were created for; a paused node's
  code does not run, a dead node's code never runs again.
- sim_net: latency, loss, duplication, reordering, partitions, link faults,
  and the message journal with its digest.
- sim_disk: durable vs current file content; a crash keeps only what was synced.
- sim_node: one node incarnation's Runtime (RPC calls, msgpack round trip, log).
- sim_world: nodes, client endpoints, the wire, crash/restart/pause/resume.

Same seed, same journal, same digest: byte for byte, under any PYTHONHASHSEED.
"""

from systems.runtime.sim_disk import DiskStore, DiskView
from systems.runtime.sim_loop import SimDeadlock, SimError, SimTimeLimit, VirtualTimeLoop, run
from systems.runtime.sim_net import JOURNAL_FIELDS, Journal, NetConfig, Network
from systems.runtime.sim_node import MessageNotEncodable, SimLog, SimRuntime
from systems.runtime.sim_world import SimWorld

__all__ = [
    "JOURNAL_FIELDS",
    "DiskStore",
    "DiskView",
    "Journal",
    "MessageNotEncodable",
    "NetConfig",
    "Network",
    "SimDeadlock",
    "SimError",
    "SimLog",
    "SimRuntime",
    "SimTimeLimit",
    "SimWorld",
    "VirtualTimeLoop",
    "run",
]
