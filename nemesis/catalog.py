"""Every fault package by name, and the nemesis op that records each fault's cure.

The core packages (kill, pause, partition, power, flaky) work on every
backend; the hardware ones (link, switch, plug) need a backend with cables,
a switch or power controllers (netns, ssh) and refuse clearly elsewhere.

A new fault is one new module: any module in nemesis/ that defines a
`PACKAGES: dict[str, Callable[[], Fault]]` is found here (in module-name
order) and its packages join the catalog. A name defined twice is an error.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import nemesis
from nemesis.packages import CORE_PACKAGES, Fault

NOT_PACKAGE_MODULES = {"catalog", "packages", "schedule", "grudges"}


def _discover() -> dict[str, Callable[[], Fault]]:
    found: dict[str, Callable[[], Fault]] = dict(CORE_PACKAGES)
    for info in sorted(pkgutil.iter_modules(nemesis.__path__), key=lambda m: m.name):
        if info.name in NOT_PACKAGE_MODULES:
            continue
        module = importlib.import_module(f"nemesis.{info.name}")
        for name, package in getattr(module, "PACKAGES", {}).items():
            if name in found:
                raise ValueError(f"nemesis package {name!r} is defined twice (again in nemesis.{info.name})")
            found[name] = package
    return found


PACKAGES: dict[str, Callable[[], Fault]] = _discover()

FAULT_CURES = {
    "kill": "restart",
    "pause": "resume",
    "start-partition": "stop-partition",
    "power-off": "power-on",
    "start-links": "stop-links",
    "link-down": "link-up",
    "switch-off": "switch-on",
    "leave": "join",
}
"""Each fault's nemesis op and the op that records its cure."""

PER_NODE_OPS = {
    "kill", "restart", "pause", "resume", "power-off", "power-on", "link-down", "link-up", "leave", "join",
}
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
