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

__all__ = ["BUGS", "DEFAULT_OPTIONS", "start_node"]
