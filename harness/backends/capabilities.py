"""What each backend's cluster can do to its nodes, known before the cluster starts.

Rules: `before_start(spec)` equals the `capabilities` of the cluster the
backend would start for `spec` (tests/test_nemesis_applicability.py checks
each backend's cluster against it): local and sim can kill, pause, partition
and degrade links; netns also has cables, a switch and plugs; an ssh cluster
has those hardware faults whose commands its cluster file gives. A broken
cluster file raises its own one-line error (ssh_config.ClusterConfigError).
"""

from __future__ import annotations

from base.cluster import CORE_CAPABILITIES, Capability
from base.spec import TestSpec

HARDWARE = frozenset({Capability.CABLE, Capability.SWITCH, Capability.PLUG})

STATIC: dict[str, frozenset[str]] = {
    "local": CORE_CAPABILITIES,
    "sim": CORE_CAPABILITIES,
    "netns": CORE_CAPABILITIES | HARDWARE,
}
"""Backends whose capabilities do not depend on the spec."""

CONFIGURED = {"ssh": CORE_CAPABILITIES | HARDWARE}
"""Backends whose hardware faults depend on their configuration: at most these."""

SSH_COMMANDS = {Capability.CABLE: "link_down/link_up", Capability.PLUG: "power_off/power_on",
                Capability.SWITCH: "switch_off/switch_on"}
"""The cluster-file commands an ssh cluster needs for each hardware capability."""


def before_start(spec: TestSpec) -> frozenset[str]:
    if spec.backend in STATIC:
        return STATIC[spec.backend]
    if spec.backend == "ssh":
        from harness.backends import ssh_config
        from harness.backends.ssh import ssh_capabilities

        if not spec.cluster_file:
            raise ssh_config.ClusterConfigError("the ssh backend needs a cluster file (--cluster cluster.toml)")
        config = ssh_config.load(spec.cluster_file)
        return ssh_capabilities(config, config.select(spec.nodes))
    raise ValueError(f"unknown backend {spec.backend!r}")
