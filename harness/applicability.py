"""Which nemesis packages apply to a run, decided before anything starts.

Rules:
- `check_nemesis(spec)` gathers what the run offers (the system, whether its
  workload module reports a leader, the backend's capabilities before start,
  the node count, the system's options) and lets the catalog refuse any
  package that cannot apply: one line, raised as `NotApplicable` (a usage
  error, exit 64). Unknown names are refused the same way.
- `package_help()` says, for every package in the catalog, the systems and
  backends it applies to, for `harness run --help`.
"""

from __future__ import annotations

from base.spec import TestSpec
from harness import registry
from harness.backends import capabilities
from nemesis.catalog import PACKAGES, NotApplicable, check_applicable
from nemesis.package import NemesisPackage, Target, backend_refusal, system_refusal


def reports_leader(system: str) -> bool:
    return callable(getattr(registry.workload_module(system), "find_leader", None))


def target_of(spec: TestSpec) -> Target:
    return Target(
        system=spec.system,
        backend=spec.backend,
        node_count=spec.node_count,
        capabilities=registry.capabilities(spec),
        reports_leader=reports_leader(spec.system),
        options={**registry.default_options(spec.system), **spec.options},
        external=registry.is_external(spec.system),
    )


def check_nemesis(spec: TestSpec) -> None:
    """Raise NotApplicable (or ValueError for an unknown name) when a requested package cannot apply."""
    if not [n for n in spec.nemesis if n not in ("none", "")]:
        return
    target = target_of(spec)
    try:
        check_applicable(spec.nemesis, target)
    except NotApplicable as e:
        if backend_refusal(e.package, target.backend, target.capabilities) is None:
            raise
        if target.external:
            raise NotApplicable(f"{e}: {spec.system}'s nodes are an external program, without the runtime's packet "
                                f"filter{_local_partitions_hint(spec)} (it runs on: "
                                f"{_backends(e.package, external=True)})", e.package) from None
        raise NotApplicable(f"{e} (it runs on: {_backends(e.package)})", e.package) from None


def _local_partitions_hint(spec: TestSpec) -> str:
    """On local, what this machine lacks to partition an external program's nodes by their cgroups."""
    from harness.backends.cgroup_partitions import missing

    lacking = missing() if spec.backend == "local" else []
    return f", and partitions on local need {', '.join(lacking)}" if lacking else ""


def _backends(package: NemesisPackage, *, external: bool = False) -> str:
    """The backends whose clusters can carry `package` (for an external system's nodes, when `external`)."""
    static, configured = capabilities.STATIC, capabilities.CONFIGURED
    if external:
        static = {b: registry.external_capabilities(b, caps) for b, caps in static.items() if b != "sim"}
        configured = {b: registry.external_capabilities(b, caps) for b, caps in configured.items()}
    names = [b for b, caps in static.items() if backend_refusal(package, b, caps) is None]
    if len(names) == len(static) and not package.needs & capabilities.HARDWARE:
        return "any"
    for b, caps in configured.items():
        if backend_refusal(package, b, caps) is None:
            commands = [capabilities.SSH_COMMANDS[c] for c in sorted(package.needs & capabilities.HARDWARE)]
            names.append(f"{b} with {', '.join(commands)} in its cluster file" if commands else b)
    return ", ".join(names) or "no backend"


def applies_to(package: NemesisPackage) -> str:
    """'systems: ...; backends: ...' for one package."""
    systems = [s for s in registry.known_systems()
               if system_refusal(package, s, reports_leader(s), registry.is_external(s)) is None]
    every_system = len(systems) == len(registry.known_systems())
    text = f"systems: {'any' if every_system else ', '.join(systems) or 'none'}; backends: {_backends(package)}"
    req = package.requires
    if req.min_nodes > 1:
        text += f"; {req.min_nodes}+ nodes"
    if req.more_nodes_than_option:
        text += f"; more nodes than option {req.more_nodes_than_option}"
    return text


def package_help() -> list[tuple[str, str]]:
    """(name, summary [applies to]) for every package, in name order."""
    return [(name, f"{p.summary} [{applies_to(p)}]") for name, p in sorted(PACKAGES.items())]


__all__ = ["NotApplicable", "applies_to", "check_nemesis", "package_help", "target_of"]
