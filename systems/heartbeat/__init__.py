"""The heartbeat system: a phi-accrual failure detector with a SWIM-style membership view.

Every node beats to every peer, judges each peer with phi accrual, and keeps
a view (alive / suspect / dead, incarnation, phi, last heard) that clients
read with the `view` RPC. Incarnations tell a restarted node from its old
self. See node.py for the behaviour and defaults, membership.py for the rules.
"""

from systems.heartbeat.node import Options, start_node

BUGS: dict[str, str] = {
    "fixed-timeout": "a fixed timeout of one heartbeat interval instead of phi accrual: "
    "live peers are declared dead whenever a jittered heartbeat is a little late",
    "no-incarnation": "the incarnation is never persisted or raised: a restarted (or refuting) node "
    "looks like the instance declared dead, so it stays dead and restarts go unrecognised",
}

EXPOSED_BY: dict[str, dict[str, object]] = {
    "fixed-timeout": {"nemesis": ["kill", "pause", "partition"]},
    "no-incarnation": {"nemesis": ["kill", "pause", "partition"]},
}
"""How the harness exposes each bug: the test settings (TestSpec field names; `harness systems` shows them as
flags) under which a sim run catches it on most fresh seeds. Measured in bench/bench_sweep.py."""

SWARM_OPTIONS: dict[str, list[object]] = {}
"""Node options a swarm run may draw (one of the values, or the default): none, the checker's bounds follow
the defaults."""

DEFAULT_OPTIONS: dict[str, object] = Options().to_dict()

__all__ = ["BUGS", "DEFAULT_OPTIONS", "EXPOSED_BY", "SWARM_OPTIONS", "start_node"]
