"""What each backend can do to its nodes, as a table for `harness run --help` and refusals.

Rules: each backend answers for a given spec itself (`Backend.capabilities(spec)`,
known before the cluster starts); this table is what the help text says about
every backend at once, and tests/test_nemesis_applicability.py checks that it
agrees with the backends and their clusters: local and sim can kill, pause,
partition, degrade links and flip bytes on a node's disk; netns also has
cables, a switch and plugs; an ssh cluster has those hardware faults whose
commands its cluster file gives (and cannot reach the nodes' files yet).
"""

from __future__ import annotations

from base.cluster import CORE_CAPABILITIES, Capability

HARDWARE = frozenset({Capability.CABLE, Capability.SWITCH, Capability.PLUG})

DISK = frozenset({Capability.CORRUPT})
"""Damaging a node's files: where the harness can reach them (not yet over ssh)."""

STATIC: dict[str, frozenset[str]] = {
    "local": CORE_CAPABILITIES | DISK,
    "sim": CORE_CAPABILITIES | DISK,
    "netns": CORE_CAPABILITIES | HARDWARE | DISK,
}
"""Backends whose capabilities do not depend on the spec."""

CONFIGURED = {"ssh": CORE_CAPABILITIES | HARDWARE}
"""Backends whose hardware faults depend on their configuration: at most these."""

SSH_COMMANDS = {Capability.CABLE: "link_down/link_up", Capability.PLUG: "power_off/power_on",
                Capability.SWITCH: "switch_off/switch_on"}
"""The cluster-file commands an ssh cluster needs for each hardware capability."""
