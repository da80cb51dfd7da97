"""Pure command builders for the netns backend: its network plan and the exact commands that build,
break and remove it.

Pure functions: nothing here runs a command, so tests can read the plan.

Rules this module keeps:

- Names carry a per-run token: prefix `pc<5 hex>`; the bridge is `<prefix>br`,
  node i's veth ends are `<prefix>h<i>` (bridge side, root namespace) and
  `<prefix>n<i>` (inside the namespace), its namespace `<prefix>-<node>`.
  Interface names stay within Linux's 15 characters.
- The subnet is a /24 out of 198.18.0.0/15 (RFC 2544's benchmarking range),
  the first one, from a token-chosen start, that overlaps no route in any
  table and no address already on the machine (default routes excepted).
  The bridge holds .1 in the root namespace (the harness's client
  endpoint); node i holds .(10+i).
- The bridge is created with `nf_call_iptables 0`, so the root namespace's
  firewall (a Docker FORWARD DROP, say) never filters our bridged frames.
- Partitions live in a chain of our own, PICLUSTER, inside each node's
  namespace, jumped to from INPUT: a grudge becomes `-A PICLUSTER -s SRC -j
  DROP` lines; healing flushes that chain and nothing else.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

CHAIN = "PICLUSTER"
NODE_PORT = 7000
CANDIDATES = [ipaddress.ip_network(f"198.{18 + i // 256}.{i % 256}.0/24") for i in range(512)]
IFNAMSIZ = 15


class PlanError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class NodeNet:
    node: str
    netns: str
    veth_host: str
    veth_ns: str
    ip: str


@dataclass(frozen=True, slots=True)
class NetPlan:
    prefix: str
    subnet: str
    bridge: str
    bridge_ip: str
    nodes: tuple[NodeNet, ...]
    port: int = NODE_PORT

    def node(self, name: str) -> NodeNet:
        for n in self.nodes:
            if n.node == name:
                return n
        raise KeyError(name)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen


def make_prefix(token: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{5}", token):
        raise PlanError(f"run token must be 5 hex digits, got {token!r}")
    return f"pc{token}"


def used_networks(route_lines: Iterable[str], addr_lines: Iterable[str]) -> list[ipaddress.IPv4Network]:
    """IPv4 networks in `ip -o -4 route show table all` and `ip -o -4 addr show` output (defaults skipped)."""
    nets: list[ipaddress.IPv4Network] = []
    for line in route_lines:
        words = line.split()
        if not words:
            continue
        dest = words[1] if words[0] in ("local", "broadcast", "unicast", "blackhole", "unreachable",
                                        "prohibit", "throw", "multicast", "anycast") else words[0]
        if dest == "default":
            continue
        try:
            nets.append(ipaddress.IPv4Network(dest, strict=False))
        except ValueError:
            continue
    for line in addr_lines:
        m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)", line)
        if m:
            nets.append(ipaddress.IPv4Interface(m.group(1)).network)
    return nets


def pick_subnet(used: list[ipaddress.IPv4Network], start: int) -> ipaddress.IPv4Network:
    """The first candidate /24 from index `start` (wrapping) that overlaps nothing in `used`."""
    for k in range(len(CANDIDATES)):
        cand = CANDIDATES[(start + k) % len(CANDIDATES)]
        if not any(cand.overlaps(u) for u in used):
            return cand
    raise PlanError("no free /24 left in 198.18.0.0/15 for the netns bridge")


def make_plan(token: str, nodes: list[str], subnet: ipaddress.IPv4Network, port: int = NODE_PORT) -> NetPlan:
    prefix = make_prefix(token)
    if len(nodes) > 200:
        raise PlanError("the netns backend supports at most 200 nodes")
    hosts = list(subnet.hosts())
    bridge = f"{prefix}br"
    out = []
    for i, node in enumerate(nodes, start=1):
        vh, vn = f"{prefix}h{i}", f"{prefix}n{i}"
        for name in (vh, vn, bridge):
            if len(name) > IFNAMSIZ:
                raise PlanError(f"interface name {name} is longer than {IFNAMSIZ} characters")
        out.append(NodeNet(node, f"{prefix}-{node}", vh, vn, str(hosts[9 + i])))
    return NetPlan(prefix, str(subnet), bridge, str(hosts[0]), tuple(out), port)


# -- commands ----------------------------------------------------------------------------------
def bridge_up(plan: NetPlan) -> list[list[str]]:
    return [
        ["ip", "link", "add", plan.bridge, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0"],
        ["ip", "addr", "add", f"{plan.bridge_ip}/{plan.prefixlen}", "dev", plan.bridge],
        ["ip", "link", "set", plan.bridge, "up"],
    ]


def node_up(plan: NetPlan, n: NodeNet) -> list[list[str]]:
    """After `ip netns add n.netns` and `ip link add` of the pair: wire the node up and install the chain."""
    return [
        ["ip", "link", "set", n.veth_host, "master", plan.bridge],
        ["ip", "link", "set", n.veth_host, "up"],
        ["ip", "-n", n.netns, "link", "set", "lo", "up"],
        ["ip", "-n", n.netns, "addr", "add", f"{n.ip}/{plan.prefixlen}", "dev", n.veth_ns],
        ["ip", "-n", n.netns, "link", "set", n.veth_ns, "up"],
        ipt(n, "-N", CHAIN),
        ipt(n, "-I", "INPUT", "-j", CHAIN),
    ]


def veth_add(n: NodeNet) -> list[str]:
    return ["ip", "link", "add", n.veth_host, "type", "veth", "peer", "name", n.veth_ns, "netns", n.netns]


def ipt(n: NodeNet, *args: str) -> list[str]:
    return ["ip", "netns", "exec", n.netns, "iptables", "-w", *args]


def partition_rules(plan: NetPlan, node: str, sources: Iterable[str]) -> list[list[str]]:
    """Flush our chain on `node`, then drop inbound traffic from each source node's address."""
    n = plan.node(node)
    cmds = [ipt(n, "-F", CHAIN)]
    for src in sorted(set(sources)):
        cmds.append(ipt(n, "-A", CHAIN, "-s", f"{plan.node(src).ip}/32", "-j", "DROP"))
    return cmds


def link_set(plan: NetPlan, node: str, up: bool) -> list[str]:
    return ["ip", "link", "set", plan.node(node).veth_host, "up" if up else "down"]


def switch_set(plan: NetPlan, on: bool) -> list[str]:
    return ["ip", "link", "set", plan.bridge, "up" if on else "down"]
