"""Raft with a replicated, linearizable key-value store.

Modules: log (the pure log), messages (peer messages), core (the pure Raft
rules), kvstate (the state machine with at-most-once sessions), storage
(durable state over rt.disk), node (the asyncio glue), client (leader-finding
client library), cli (a small command line).

RPCs a node serves: "raft" (one-way peer messages), "client" (get, put, cas,
append, txn) and "status".
"""

from __future__ import annotations

from systems.raft.node import DEFAULT_OPTIONS, start_node

BUGS: dict[str, str] = {
    "stale-read": "the leader answers reads from local state without confirming it is still leader "
    "(and never checks for a quorum, so a cut-off leader keeps answering)",
    "no-fsync": "term, vote and log entries are written but never synced: a crash loses them",
    "commit-old-term": "the leader commits earlier-term entries by counting replicas (Figure 8)",
    "double-vote": "votedFor is not persisted, so a restarted node can vote twice in one term",
    "lease-read": "the leader answers reads locally while its lease holds by its own clock: a leader whose "
    "clock runs slow keeps answering after the others elected another (exposed by clock-isolate)",
}

EXPOSED_BY: dict[str, dict[str, object]] = {
    "stale-read": {"nemesis": ["leader-isolate"], "time_limit_s": 30.0, "nemesis_interval_s": 10.0},
    "no-fsync": {"nemesis": ["power", "kill"], "time_limit_s": 20.0, "nemesis_interval_s": 5.0},
    "commit-old-term": {"nemesis": ["figure8"], "time_limit_s": 40.0, "nemesis_interval_s": 20.0,
                        "options": {"max_batch": 1}},
    "double-vote": {"nemesis": ["voter-crash"], "time_limit_s": 40.0, "nemesis_interval_s": 12.0},
    "lease-read": {"nemesis": ["clock-isolate"], "time_limit_s": 20.0, "nemesis_interval_s": 6.0},
}
"""How the harness exposes each bug: the test settings (TestSpec field names; `harness systems` shows them as
flags) under which a sim run catches it on most fresh seeds. Measured in bench/bench_sweep.py."""

SWARM_OPTIONS: dict[str, list[object]] = {
    "max_batch": [1, 4, 64],
    "max_inflight": [1, 8],
    "election_ticks": [5, 10, 20],
    "pre_vote": [True, False],
    "snapshot_every": [10, 200],
    "read_mode": ["read-index", "log"],
}
"""Node options a swarm run may draw (one of the values, or the default): each changes which interleavings
happen (one entry per message, one message in flight, quick elections, no pre-vote, frequent snapshots, reads
through the log), none weakens what Raft promises."""

__all__ = ["BUGS", "DEFAULT_OPTIONS", "EXPOSED_BY", "SWARM_OPTIONS", "start_node"]
