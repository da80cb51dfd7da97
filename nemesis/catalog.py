"""Every fault package by name, and the nemesis op that records each fault's cure.

The core packages (kill, pause, partition, power, flaky) work on every
backend; the hardware ones (link, switch, plug) need a backend with cables,
a switch or power controllers (netns, ssh) and refuse clearly elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from nemesis.hardware import PACKAGES as HARDWARE_PACKAGES
from nemesis.packages import CORE_PACKAGES, Fault

PACKAGES: dict[str, Callable[[], Fault]] = {**CORE_PACKAGES, **HARDWARE_PACKAGES}

FAULT_CURES = {
    "kill": "restart",
    "pause": "resume",
    "start-partition": "stop-partition",
    "power-off": "power-on",
    "start-links": "stop-links",
    "link-down": "link-up",
    "switch-off": "switch-on",
}
"""Each fault's nemesis op and the op that records its cure."""

PER_NODE_OPS = {"kill", "restart", "pause", "resume", "power-off", "power-on", "link-down", "link-up"}
"""Nemesis ops whose value is the list of nodes they touched."""


def make_packages(names: list[str] | tuple[str, ...]) -> list[Fault]:
    """Instantiate the named packages; 'none' or an empty list means no faults."""
    out: list[Fault] = []
    for name in names:
        if name in ("none", ""):
            continue
        if name not in PACKAGES:
            raise ValueError(f"unknown nemesis {name!r}; known: {', '.join(sorted(PACKAGES))}, none")
        out.append(PACKAGES[name]())
    return out
