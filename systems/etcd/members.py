"""etcd members: their command lines, their addresses and how to tell one is healthy. Pure functions.

Rules this module keeps:

- A member listens for clients on the address the backend gave its node
  (`host:port`) and for its peers on `peer_address`: on a loopback host
  (the local backend, every member on one machine) the same port on its own
  loopback address 127.0.1.<i> (i = its place among the sorted node names),
  so no second port has to be found free; elsewhere (a namespace, a Pi) the
  next port on the same address.
- Every member of a run carries the run's `marker` on its command line: the
  cluster token `picluster:<config dir>`, so a recorded pid is signalled only
  while it is still this run's member.
- The data lives in `<node data dir>/etcd`, which etcd creates itself (mode
  0700, as it wants); `wipe` removes it before a member's first start, a
  restart keeps it (etcd then ignores the initial-cluster flags).
- A member is healthy when its `/health` answers `{"health": "true"}`,
  which etcd 3.4 says only once the member has a leader and a read went
  through Raft.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

Address = tuple[str, int]

HEALTH_PATH = "/health"
DATA_SUBDIR = "etcd"
CONFIG_FILE = "etcd-members.json"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def peer_address(node: str, addrs: dict[str, Address]) -> Address:
    """Where `node` listens for its peers (see the module rules)."""
    host, port = addrs[node]
    if is_loopback(host):
        index = sorted(addrs).index(node) + 1
        return f"127.0.1.{index}", port
    return host, port + 1


def client_url(addr: Address) -> str:
    return f"http://{addr[0]}:{addr[1]}"


def initial_cluster(addrs: dict[str, Address]) -> str:
    return ",".join(f"{n}={client_url(peer_address(n, addrs))}" for n in sorted(addrs))


def marker(config_dir: str) -> str:
    return f"--initial-cluster-token=picluster:{config_dir}"


def data_dir(node_data_dir: str) -> str:
    return f"{node_data_dir.rstrip('/')}/{DATA_SUBDIR}"


def argv(binary: str, node: str, node_data_dir: str, config_dir: str, addrs: dict[str, Address],
         options: dict[str, Any]) -> list[str]:
    """The member's command line; `addrs` are the client addresses of every node, as the members see them."""
    listen = client_url(addrs[node])
    peer = client_url(peer_address(node, addrs))
    return [
        binary,
        "--name", node,
        "--data-dir", data_dir(node_data_dir),
        "--listen-client-urls", listen,
        "--advertise-client-urls", listen,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", initial_cluster(addrs),
        "--initial-cluster-state", "new",
        marker(config_dir),
        "--heartbeat-interval", str(options["heartbeat_ms"]),
        "--election-timeout", str(options["election_ms"]),
        "--snapshot-count", str(options["snapshot_count"]),
        "--logger", "zap",
        "--log-outputs", "stderr",
    ]


def wipe(node_data_dir: str) -> list[str]:
    return [data_dir(node_data_dir)]


def config_files(addrs: dict[str, Address]) -> dict[str, str]:
    """A record of every member's client and peer URL (for people and tools; the members need only argv)."""
    doc = {n: {"client": client_url(addrs[n]), "peer": client_url(peer_address(n, addrs))} for n in sorted(addrs)}
    return {CONFIG_FILE: json.dumps(doc, indent=2) + "\n"}


def healthy(body: bytes) -> bool:
    """True if a /health answer says the member is healthy."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("health") in ("true", True)
