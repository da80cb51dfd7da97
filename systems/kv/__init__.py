"""A Dynamo-style key-value store on a consistent-hashing ring.

Keys are replicated on the N distinct successors of their ring position
(ring.py); versions are dotted vector clocks, concurrent writes are kept as
siblings (vclock.py); any node coordinates with R/W quorums, sloppy when a
replica is down (coordinator.py), hinted handoff and ownership transfer
(handoff.py), anti-entropy digests (antientropy.py), gossiped membership with
join/leave (membership.py), durable records synced before every ack (store.py),
validated RPC messages (messages.py), the node glue (node.py) and a small
command line (cli.py: `python -m systems.kv.cli --cluster FILE get KEY`).

Options (DEFAULT_OPTIONS): n/r/w quorums, vnodes per node, RPC and
coordination timeouts, the intervals of the background loops, suspect_s,
clock_skew_s ({node: seconds} added to that node's LWW timestamps) and
members (the initial ring; empty means every node of the cluster).
"""

from __future__ import annotations

from systems.kv.node import start_node

BUGS: dict[str, str] = {
    "no-handoff": "a stand-in replica drops the hint instead of delivering the write to its real owner",
    "sloppy-ack": "the coordinator acknowledges a put after W-1 replica acks (and still calls it strict)",
    "lww-clock": "siblings are resolved by wall-clock last-writer-wins (rt.now() + node skew): concurrent adds lost",
}

DEFAULT_OPTIONS: dict[str, object] = {
    "n": 3,
    "r": 2,
    "w": 2,
    "vnodes": 128,
    "rpc_timeout_s": 0.5,
    "coord_timeout_s": 1.2,
    "handoff_interval_s": 0.5,
    "antientropy_interval_s": 0.5,
    "gossip_interval_s": 0.5,
    "suspect_s": 1.0,
    "clock_skew_s": {},
    "members": [],
}

EXPOSED_BY: dict[str, dict[str, object]] = {
    "no-handoff": {"nemesis": ["cut-replicas"], "rate": 50.0},
    "sloppy-ack": {"nemesis": ["cut-replicas"], "rate": 50.0},
    "lww-clock": {"nemesis": ["cut-replicas"], "rate": 50.0},
}
"""How the harness exposes each bug: the test settings (TestSpec field names; `harness systems` shows them as
flags) under which a sim run catches it on most fresh seeds. Measured in bench/bench_sweep.py."""

SWARM_OPTIONS: dict[str, list[object]] = {
    "vnodes": [8, 128],
    "handoff_interval_s": [0.25, 0.5, 2.0],
    "suspect_s": [0.5, 1.0, 3.0],
}
"""Node options a swarm run may draw (one of the values, or the default): fewer vnodes (lumpier ownership),
slower hint delivery, quicker or slower suspicion; quorums stay overlapping."""

__all__ = ["BUGS", "DEFAULT_OPTIONS", "EXPOSED_BY", "SWARM_OPTIONS", "start_node"]
