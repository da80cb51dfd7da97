"""Every nemesis package by name, the fault vocabulary they declare, and who may use which.

A new fault is one new module: any module in nemesis/ that defines
`PACKAGES` (a tuple of `NemesisPackage`, see nemesis/package.py) is found here
(in module-name order) and its packages join the catalog, their fault kinds
the vocabulary. A name defined twice is an error, and so is a module whose
`PACKAGES` is not a tuple of declarations.

Rules:
- `VOCABULARY` (base.faults.Vocabulary) is the one place the report, the
  runner's progress line and the checkers (through their workloads) learn
  what a nemesis op means.
- `check_applicable(names, target)` refuses, with one line naming the
  package and the reason, any package that cannot apply to the run's system,
  backend (its capabilities, known before the cluster starts) or node count.
  It runs before anything starts.
"""

from __future__ import annotations

import importlib
import pkgutil

import nemesis
from base.faults import Vocabulary
from nemesis.package import Fault, NemesisPackage, Target, refusal

NOT_PACKAGE_MODULES = {"catalog", "package", "schedule", "grudges", "heal"}


class NotApplicable(ValueError):
    """A requested package cannot apply to this run; the message is one line."""

    def __init__(self, message: str, package: NemesisPackage) -> None:
        super().__init__(message)
        self.package = package


def _discover() -> dict[str, NemesisPackage]:
    found: dict[str, NemesisPackage] = {}
    for info in sorted(pkgutil.iter_modules(nemesis.__path__), key=lambda m: m.name):
        if info.name in NOT_PACKAGE_MODULES:
            continue
        module = importlib.import_module(f"nemesis.{info.name}")
        declared = getattr(module, "PACKAGES", ())
        if not isinstance(declared, tuple) or not all(isinstance(p, NemesisPackage) for p in declared):
            raise TypeError(f"nemesis.{info.name}.PACKAGES must be a tuple of NemesisPackage declarations")
        for package in declared:
            if package.name in found:
                raise ValueError(f"nemesis package {package.name!r} is defined twice (again in nemesis.{info.name})")
            found[package.name] = package
    return found


PACKAGES: dict[str, NemesisPackage] = _discover()

VOCABULARY = Vocabulary(kind for package in PACKAGES.values() for kind in package.kinds)
"""Every fault kind any package records."""

KINDS_OF: dict[str, tuple[str, ...]] = {name: tuple(k.name for k in p.kinds) for name, p in PACKAGES.items()}
"""Package name -> the names of the fault kinds it records."""


def requested(names: list[str] | tuple[str, ...]) -> list[NemesisPackage]:
    """The named packages' declarations; 'none' or an empty list means no faults."""
    out: list[NemesisPackage] = []
    for name in names:
        if name in ("none", ""):
            continue
        if name not in PACKAGES:
            raise ValueError(f"unknown nemesis {name!r}; known: {', '.join(sorted(PACKAGES))}, none")
        out.append(PACKAGES[name])
    return out


def make_packages(names: list[str] | tuple[str, ...]) -> list[Fault]:
    """Instantiate the named packages; 'none' or an empty list means no faults."""
    return [p.make() for p in requested(names)]


def check_applicable(names: list[str] | tuple[str, ...], target: Target) -> None:
    """Raise NotApplicable (one line) for the first named package that cannot apply to `target`."""
    for package in requested(names):
        why = refusal(package, target)
        if why is not None:
            raise NotApplicable(why, package)
