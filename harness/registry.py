"""Where the harness finds systems, workloads and backends by name.

A system is the package `systems.<name>` (exports start_node, BUGS,
DEFAULT_OPTIONS); its workloads live in `workloads.<name>` (exports
WORKLOADS, DEFAULT_WORKLOAD and optionally find_leader, report_sections and
account, the nodes' own account of an op that harness/explain.py reads).
Unknown names raise `RegistryError` with the list of known ones, so the CLI
can print one clear line.

Node options (`--option KEY=VALUE`) are the keys of the system's
DEFAULT_OPTIONS, each with a value of its default's type (an int where a
float is expected is fine); on the sim backend also `sim`, a table of the
simulator's settings (SIM_OPTION_KEYS, as harness/backends/sim.py reads
them). A system may refuse more values with its own `check_options`.
Anything else is refused before a run starts.

An external system (etcd) is a package that names its program in
`EXTERNAL` instead of exporting start_node (harness/external.py): its nodes
run as that program on the local, netns and ssh backends, through the same
lifecycle; `node_program(spec)` builds it. `preflight` refuses, in one
line and before anything starts, the sim backend for an external system
and its program missing on this machine (local, netns). `capabilities(spec)`
is what its cluster can do: an external program has no packet filter of
its own, so no link faults anywhere and no partition on local, and no
runtime to move its clock or fail its disk.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
from types import ModuleType
from typing import Any

import systems
from base.cluster import RUNTIME_CAPABILITIES, Capability
from base.spec import TestSpec
from harness import external
from workloads.base import Workload

BACKENDS = ("local", "sim", "netns", "ssh")
NOT_SYSTEMS = {"runtime"}
SIM_OPTION_KEYS = ("base_s", "tail_s", "loss", "duplicate", "reorder", "sync_s", "time_limit_s")
"""`--option sim={...}` keys: the simulated network's NetConfig fields and the world's own settings."""


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


def check_options(system: str, backend: str, options: dict[str, Any]) -> None:
    """Refuse an option the system does not have, or a value of the wrong type (see the module docstring)."""
    defaults = default_options(system)
    for key, value in options.items():
        if key == "sim" and "sim" not in defaults:
            _check_sim_options(backend, value)
            continue
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            sim = "; and on --backend sim: sim" if backend == "sim" else ""
            raise RegistryError(f"system {system!r} has no option {key!r}; known: {known}{sim}")
        want = _type_name(defaults[key])
        if want is not None and _type_name(value) != want and not (want == "number" and _type_name(value) == "int"):
            raise RegistryError(
                f"--option {key}: expected {want} like the default {_json(defaults[key])}, got {_json(value)}"
            )
    own = getattr(system_module(system), "check_options", None)
    if own is not None:
        try:
            own(dict(options))
        except ValueError as e:
            raise RegistryError(str(e)) from None


def _check_sim_options(backend: str, value: Any) -> None:
    if backend != "sim":
        raise RegistryError(f"--option sim applies only to --backend sim, not {backend}")
    if not isinstance(value, dict):
        raise RegistryError(f"--option sim wants a JSON object of {', '.join(SIM_OPTION_KEYS)}, got {_json(value)}")
    unknown = sorted(k for k in value if k not in SIM_OPTION_KEYS)
    if unknown:
        raise RegistryError(f"--option sim: unknown key {unknown[0]!r}; known: {', '.join(SIM_OPTION_KEYS)}")


def _type_name(value: Any) -> str | None:
    """The JSON-ish kind of a value: bool, int, number, string, object, list; None for null."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return None


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


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
    """RegistryError (one line) when an external system cannot run on the spec's backend here."""
    program = module.EXTERNAL
    if spec.backend == "sim":
        raise RegistryError(f"the sim backend cannot run {spec.system}: its nodes are the external program "
                            f"`{program}`, not runtime-seam nodes; use --backend local or netns (or ssh)")
    if spec.backend in ("local", "netns") and shutil.which(program) is None:
        hint = getattr(module, "INSTALL_HINT", "install it")
        raise RegistryError(f"{spec.system} is not installed here: no `{program}` program on PATH ({hint}); "
                            f"`harness doctor --system {spec.system}` checks the installation")


def capabilities(spec: TestSpec) -> frozenset[str]:
    """What the cluster for `spec` can do, known before it starts: the backend's answer, less what an
    external program cannot carry (no packet filter of its own: no links anywhere, no partition on local
    without root)."""
    caps = frozenset(make_backend(spec.backend).capabilities(spec))
    return external_capabilities(spec.backend, caps) if is_external(spec.system) else caps


def external_capabilities(backend: str, caps: frozenset[str]) -> frozenset[str]:
    """What a backend with `caps` can still do to an external program's nodes: no link faults and no
    runtime faults (clock, disk); on local, partitions only where a cgroup per node and iptables can be
    had (root)."""
    from harness.backends.cgroup_partitions import missing

    caps -= {Capability.LINKS} | RUNTIME_CAPABILITIES
    return caps - {Capability.PARTITION} if backend == "local" and missing() else caps


def preflight(spec: TestSpec) -> None:
    """Let the backend refuse a spec it cannot run (no root, a broken cluster file) before anything starts."""
    if spec.backend not in BACKENDS:
        raise RegistryError(f"unknown backend {spec.backend!r}; known: {', '.join(BACKENDS)}")
    system = system_module(spec.system)
    if external.is_external(system):
        refuse_external(spec, system)
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
