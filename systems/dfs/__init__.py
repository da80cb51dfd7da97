"""A GFS-like distributed file system (Ghemawat, Gobioff, Leung, SOSP 2003), sized for Raspberry Pis.

One master (the node option `master` names; default the first node) keeps
the namespace, the file -> chunk map and chunk versions in an operation log
synced before every reply, with checkpoints (namespace.py, oplog.py); it
learns replica locations from heartbeats (replicas.py), grants leases
(leases.py), places and re-replicates chunks by priority (placement.py) and
collects garbage lazily (master.py). A chunkserver runs on every node: chunks
as files with a CRC32 per 64 KiB block verified on every read (checksums.py,
chunkstore.py), data pushed along a chain of replicas (pushbuffer.py) and
mutations applied in the primary's serial order (chunkserver.py). Requests
are validated dataclasses (messages.py). The client library (client.py) is
what workloads, the CLI (cli.py) and MapReduce use.

RPCs: master.* on the master, cs.* on every chunkserver, status on every node.
"""

from __future__ import annotations

from systems.dfs.node import DEFAULT_OPTIONS, start_node

BUGS: dict[str, str] = {
    "no-version": "chunk versions are never compared: a restarted chunkserver's stale replica is counted "
    "current and served",
    "no-checksum": "chunkservers never verify block checksums (reads, clones, the scrubber): corrupt data "
    "reaches the client",
    "early-ack": "the primary acknowledges a mutation once applied locally and sends it to the secondaries "
    "in the background: an acknowledged append is lost when the primary dies",
    "lease-overlap": "the master believes a client that says the primary failed and grants a new lease at once, "
    "before the old one expired: two primaries order mutations",
}

__all__ = ["BUGS", "DEFAULT_OPTIONS", "start_node"]
