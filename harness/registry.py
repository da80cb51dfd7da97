"""Where the harness finds systems, workloads and backends by name.

A system is the package `systems.<name>` (exports start_node, BUGS,
DEFAULT_OPTIONS); its workloads live in `workloads.<name>` (exports
WORKLOADS, DEFAULT_WORKLOAD and optionally find_leader and report_sections).
Unknown names raise `RegistryError` with the list of known ones, so the CLI
can print one clear line.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

import systems
from base.spec import TestSpec
from workloads.base import Workload

BACKENDS = ("local", "sim", "netns", "ssh")
NOT_SYSTEMS = {"runtime"}


class RegistryError(ValueError):
    pass


def known_systems() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(systems.__path__) if m.ispkg and m.name not in NOT_SYSTEMS]
    return sorted(n for n in names if importlib.util.find_spec(f"workloads.{n}") is not None)


def system_module(name: str) -> ModuleType:
    if name not in known_systems():
        raise RegistryError(f"unknown system {name!r}; known: {', '.join(known_systems())}")
    return importlib.import_module(f"systems.{name}")


def workload_module(system: str) -> ModuleType:
    system_module(system)
    return importlib.import_module(f"workloads.{system}")


def default_workload(system: str) -> str:
    return str(workload_module(system).DEFAULT_WORKLOAD)


def make_workload(spec: TestSpec) -> Workload:
    module = workload_module(spec.system)
    makers = module.WORKLOADS
    if spec.workload not in makers:
        raise RegistryError(
            f"system {spec.system!r} has no workload {spec.workload!r}; known: {', '.join(sorted(makers))}"
        )
    return makers[spec.workload](spec)


def bugs(system: str) -> dict[str, str]:
    return dict(system_module(system).BUGS)


def default_options(system: str) -> dict[str, Any]:
    return dict(system_module(system).DEFAULT_OPTIONS)


def check_bugs(system: str, names: tuple[str, ...]) -> None:
    known = bugs(system)
    for name in names:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise RegistryError(f"system {system!r} has no bug switch {name!r}; known: {listed}")


def preflight(spec: TestSpec) -> None:
    """Let the backend refuse a spec it cannot run (no root, a broken cluster file) before anything starts."""
    if spec.backend not in BACKENDS:
        raise RegistryError(f"unknown backend {spec.backend!r}; known: {', '.join(BACKENDS)}")
    module = importlib.import_module(f"harness.backends.{spec.backend}")
    check = getattr(module, "preflight", None)
    if check is None:
        return
    try:
        check(spec)
    except (RuntimeError, ValueError, OSError) as e:
        raise RegistryError(str(e)) from None


def make_backend(name: str) -> Any:
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend()
    if name == "sim":
        from harness.backends.sim import SimBackend

        return SimBackend()
    if name in ("netns", "ssh"):
        try:
            module = importlib.import_module(f"harness.backends.{name}")
        except ModuleNotFoundError:
            raise RegistryError(f"the {name} backend is not built yet") from None
        return module.make_backend()
    raise RegistryError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
