"""One DFS node: a chunkserver everywhere, and the master on the node the options name.

Rules this module keeps:

- The master is option `master` (default: the first node id in sorted order).
  Every node, the master's included, runs a chunkserver; a 4-Pi cluster is
  1 master + 4 chunkservers.
- `status {verify}` answers what this node holds, for the state checker and
  the report: {"node", "role", "master", "now", "chunkserver": ..., and on the
  master "master": ...}. With `verify` the chunkserver checks every replica's
  checksums (the `ok` field), whatever planted bug is on, and acts on a bad
  one it had not found yet as its scrubber would (reports it to the master
  for repair; not under `no-checksum`, which never verifies). The chunkserver's
  `dropped` counts the requests refused at the edge (edge.py), by kind.
"""

from __future__ import annotations

from typing import Any

from systems.dfs import messages as m
from systems.dfs.chunkserver import ChunkServer, Options
from systems.dfs.edge import Edge
from systems.dfs.master import Master, MasterOptions
from systems.runtime.api import Message, NodeConfig, Runtime

DEFAULT_OPTIONS: dict[str, Any] = {
    "master": "",
    "goal": 3,
    "min_replicas": 2,
    "chunk_size": 4 * 1024 * 1024,
    "block_size": 64 * 1024,
    "lease_s": 3.0,
    "heartbeat_s": 0.25,
    "dead_after_s": 1.5,
    "rpc_timeout_s": 1.0,
    "rereplicate_s": 0.1,
    "max_clones": 4,
    "gc_delay_s": 3.0,
    "checkpoint_every": 400,
    "scrub_interval_s": 0.25,
    "scrub_bytes_per_s": 4 * 1024 * 1024,
    "push_buffer_bytes": 64 * 1024 * 1024,
    "push_ttl_s": 30.0,
    "max_batch_bytes": 4 * 1024 * 1024,
}


def master_of(nodes: list[str], options: dict[str, Any]) -> str:
    chosen = options.get("master") or ""
    return chosen if chosen in nodes else sorted(nodes)[0]


def check_options(o: dict[str, Any]) -> None:
    """Refuse option values the rules cannot work with (raises ValueError naming the option)."""
    if int(o["chunk_size"]) <= 0 or int(o["block_size"]) <= 0:
        raise ValueError("chunk_size and block_size must be positive")
    if int(o["chunk_size"]) % int(o["block_size"]):
        raise ValueError("chunk_size must be a multiple of block_size")
    if int(o["chunk_size"]) > 8 * 1024 * 1024:
        raise ValueError("chunk_size is at most 8 MiB (one RPC frame carries at most 16 MiB)")
    if int(o["goal"]) < 1:
        raise ValueError("goal must be at least 1")


class DfsNode:
    def __init__(self, rt: Runtime, config: NodeConfig) -> None:
        self.rt = rt
        opts = {**DEFAULT_OPTIONS, **config.options}
        check_options(opts)
        bugs = frozenset(config.bugs)
        nodes = sorted([rt.node_id, *rt.peers])
        self.master_id = master_of(nodes, opts)
        self.edge = Edge(rt, nodes, self.master_id)
        self.chunkserver = ChunkServer(rt, Options.of(opts, bugs), self.master_id, self.edge)
        self.master = (Master(rt, MasterOptions.of(opts), bugs, nodes, self.edge)
                       if rt.node_id == self.master_id else None)

    def start(self) -> None:
        if self.master is not None:
            self.master.start()
        self.chunkserver.start()
        self.rt.serve("status", self._on_status)

    async def _on_status(self, src: str, msg: Message) -> Message:
        req = self.edge.parse(m.StatusReq, src, msg if msg is not None else {})
        out: dict[str, Any] = {
            "node": self.rt.node_id,
            "role": "master" if self.master is not None else "chunkserver",
            "master": self.master_id,
            "now": self.rt.now(),
            "chunkserver": self.chunkserver.status(req.verify),
        }
        if self.master is not None:
            out["master_state"] = self.master.status()
        return out


async def start_node(rt: Runtime, config: NodeConfig) -> None:
    """NodeMain: load the replicas (and on the master the log), register handlers, start the loops."""
    DfsNode(rt, config).start()
