"""etcd members: their command lines, their addresses and how to tell one is healthy. Pure functions.

Rules this module keeps:

- A member listens for clients on the address the backend gave its node
  (`host:port`; every address when that is a host name, since etcd binds
  only IP literals) and for its peers on `peer_address`: on a loopback host
  (the local backend, every member on one machine) the same port on its own
  loopback address 127.0.1.<i> (i = its place among the sorted node names),
  so no second port has to be found free; elsewhere (a namespace, a Pi) the
  next port on the same address.
- Every member of a run carries the run's `marker` on its command line
  (`--cors=http://picluster-<digest of the config dir>.invalid:1`, a browser
  origin etcd merely allows), so
  a recorded pid is signalled only while it is still this run's member. The
  cluster token is the run directory's name, the same on every host.
- The data lives in `<node data dir>/etcd`, which etcd creates itself (mode
  0700, as it wants); `wipe` removes it before a member's first start, a
  restart keeps it (etcd then ignores the initial-cluster flags).
- A member is healthy when its `/health` answers `{"health": "true"}`,
  which etcd 3.4 says only once the member has a leader and a read went
  through Raft.
"""

from __future__ import annotations

import hashlib
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


def endpoints(node: str, addrs: dict[str, Address]) -> list[Address]:
    """Every address other members and clients connect to on `node`: its client and its peer address."""
    return [addrs[node], peer_address(node, addrs)]


def client_url(addr: Address) -> str:
    return f"http://{addr[0]}:{addr[1]}"


def listen_url(addr: Address) -> str:
    """etcd binds only IP literals: a member known by a host name listens on every address, on its port."""
    host, port = addr
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = "0.0.0.0"
    return client_url((host, port))


def initial_cluster(addrs: dict[str, Address]) -> str:
    return ",".join(f"{n}={client_url(peer_address(n, addrs))}" for n in sorted(addrs))


def marker(config_dir: str) -> str:
    """One argument on every member's command line, unique to the run's directory on that host. It rides on
    `--cors` (an allowed browser origin, which etcd wants as scheme://host:port, so the directory goes in as
    a digest; no effect on the cluster), since the cluster token must be the same on every host and a host's
    run directory is not."""
    digest = hashlib.sha256(config_dir.encode()).hexdigest()[:20]
    return f"--cors=http://picluster-{digest}.invalid:1"


def cluster_token(config_dir: str) -> str:
    """The same on every host of a run: the run directory's own name (on ssh hosts, the run's id)."""
    return f"picluster-{config_dir.rstrip('/').rsplit('/', 1)[-1]}"


def data_dir(node_data_dir: str) -> str:
    return f"{node_data_dir.rstrip('/')}/{DATA_SUBDIR}"


def argv(binary: str, node: str, node_data_dir: str, config_dir: str, addrs: dict[str, Address],
         options: dict[str, Any]) -> list[str]:
    """The member's command line; `addrs` are the client addresses of every node, as the members see them."""
    peer = peer_address(node, addrs)
    return [
        binary,
        "--name", node,
        "--data-dir", data_dir(node_data_dir),
        "--listen-client-urls", listen_url(addrs[node]),
        "--advertise-client-urls", client_url(addrs[node]),
        "--listen-peer-urls", listen_url(peer),
        "--initial-advertise-peer-urls", client_url(peer),
        "--initial-cluster", initial_cluster(addrs),
        "--initial-cluster-state", "new",
        "--initial-cluster-token", cluster_token(config_dir),
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
