"""Where the harness finds systems, workloads and backends by name.

A system is the package `systems.<name>` (exports start_node, BUGS,
DEFAULT_OPTIONS); its workloads live in `workloads.<name>` (exports
WORKLOADS, DEFAULT_WORKLOAD and optionally find_leader and report_sections).
Unknown names raise `RegistryError` with the list of known ones, so the CLI
can print one clear line.

An external system (etcd) is a package that names its program in
`EXTERNAL` instead of exporting start_node (harness/external.py): its nodes
run as that program on the local, netns and ssh backends, through the same
lifecycle; `node_program(spec)` builds it. `preflight` refuses, in one
line and before anything starts: the sim backend for an external system,
its program missing on this machine (local, netns), an option the system
does not know, and a fault its cluster cannot carry (an external program
has no packet filter of its own, so no partition on local and no link
faults anywhere; faults that speak the runtime's RPCs do not apply).
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
from types import ModuleType
from typing import Any

import systems
from base.cluster import Capability
from base.spec import TestSpec
from harness import external
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


def is_external(system: str) -> bool:
    return external.is_external(system_module(system))


def node_program(spec: TestSpec) -> external.ExternalProgram | None:
    """The program an external system's nodes run (None: the backend's own runtime-seam program)."""
    module = system_module(spec.system)
    if not external.is_external(module):
        return None
    refuse_external(spec, module)
    options = {**module.DEFAULT_OPTIONS, **spec.options}
    return external.ExternalProgram(spec.system, module, options)


def refuse_external(spec: TestSpec, module: ModuleType) -> None:
    """RegistryError (one line) when an external system cannot run as `spec` asks."""
    program = module.EXTERNAL
    if spec.backend == "sim":
        raise RegistryError(f"the sim backend cannot run {spec.system}: its nodes are the external program "
                            f"`{program}`, not runtime-seam nodes; use --backend local or netns (or ssh)")
    check = getattr(module, "check_options", None)
    if check is not None:
        try:
            check(dict(spec.options))
        except ValueError as e:
            raise RegistryError(str(e)) from None
    if spec.backend in ("local", "netns") and shutil.which(program) is None:
        hint = getattr(module, "INSTALL_HINT", "install it")
        raise RegistryError(f"{spec.system} is not installed here: no `{program}` program on PATH ({hint}); "
                            f"`harness doctor --system {spec.system}` checks the installation")


def capabilities(spec: TestSpec) -> frozenset[str]:
    """What the cluster for `spec` can do, known before it starts (the backend's answer, less what an
    external program cannot carry: it has no packet filter, so no links anywhere and no partition on local)."""
    backend = make_backend(spec.backend)
    caps = frozenset(backend.capabilities(spec))
    if is_external(spec.system):
        caps -= {Capability.LINKS}
        if spec.backend == "local":
            caps -= {Capability.PARTITION}
    return caps


NEMESIS_NEEDS: dict[str, frozenset[str]] = {
    "partition": frozenset({Capability.PARTITION}),
    "flaky": frozenset({Capability.LINKS}),
    "link": frozenset({Capability.CABLE}),
    "switch": frozenset({Capability.SWITCH}),
    "plug": frozenset({Capability.PLUG}),
}
"""What each fault package needs of the cluster. Interim: until the nemesis packages declare this themselves
(the nemesis rework), only external systems are checked against it."""

RUNTIME_RPC_NEMESES = frozenset({"figure8", "voter-crash", "leader-churn", "leader-isolate", "cut-replicas",
                                 "split-replicas", "membership"})
"""Fault packages that steer by the runtime's own RPCs (status, ring, join/leave): runtime-seam systems only."""

CAPABILITY_WORDS = {
    Capability.PARTITION: "partition the network (it needs iptables: use --backend netns or ssh)",
    Capability.LINKS: "degrade links (only the runtime's packet filter can)",
    Capability.CABLE: "pull a node's cable (netns, or ssh with link_down/link_up)",
    Capability.SWITCH: "turn the switch off (netns, or ssh with switch_off/switch_on)",
    Capability.PLUG: "cut a node's power (netns, or ssh with power_off/power_on)",
}


def refuse_nemesis(spec: TestSpec) -> None:
    """RegistryError (one line) when an external system's cluster cannot carry a requested fault."""
    if not is_external(spec.system):
        return
    caps = capabilities(spec)
    for name in spec.nemesis:
        if name in RUNTIME_RPC_NEMESES:
            raise RegistryError(f"the {name} nemesis steers by the runtime's own RPCs; {spec.system}'s members "
                                f"do not speak them")
        missing = sorted(NEMESIS_NEEDS.get(name, frozenset()) - caps)
        if missing:
            raise RegistryError(f"the {name} nemesis needs a cluster that can {CAPABILITY_WORDS[missing[0]]}; "
                                f"{spec.system} on the {spec.backend} backend cannot")


def preflight(spec: TestSpec) -> None:
    """Let the backend refuse a spec it cannot run (no root, a broken cluster file) before anything starts."""
    if spec.backend not in BACKENDS:
        raise RegistryError(f"unknown backend {spec.backend!r}; known: {', '.join(BACKENDS)}")
    system = system_module(spec.system)
    if external.is_external(system):
        refuse_external(spec, system)
    module = importlib.import_module(f"harness.backends.{spec.backend}")
    check = getattr(module, "preflight", None)
    if check is not None:
        try:
            check(spec)
        except (RuntimeError, ValueError, OSError) as e:
            raise RegistryError(str(e)) from None
    refuse_nemesis(spec)


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
