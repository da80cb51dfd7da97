"""How each planted bug is exposed: the settings a system declares next to its BUGS.

A system's package may declare `EXPOSED_BY = {bug: settings}`, where the
settings are TestSpec field names and values (`nemesis` a list of package
names, `options` a dict of node options merged over the defaults, and
`node_count`, `time_limit_s`, `nemesis_interval_s`, `rate`, `concurrency`,
`workload`, `quiet_s`, and `backend`, sim unless named). They are what a
person (or `harness systems`) needs to catch the bug on most fresh seeds;
bench/bench_sweep.py measures how often they do on sim. A new system with
bugs only adds its own declaration. An external system (etcd) cannot run on
sim, so its declaration names a real backend, and sweeps leave it out.

Rules: a declaration naming an unknown field is an error (one line), and so
is one for a bug the system does not have.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any

from base.spec import TestSpec
from harness import registry

FIELDS = frozenset(
    {
        "nemesis",
        "options",
        "node_count",
        "time_limit_s",
        "nemesis_interval_s",
        "rate",
        "concurrency",
        "workload",
        "quiet_s",
        "backend",
    }
)


def exposures(system: str) -> dict[str, dict[str, Any]]:
    """bug -> its declared settings (empty for a bug the system does not say how to expose)."""
    declared = dict(getattr(registry.system_module(system), "EXPOSED_BY", {}))
    bugs = registry.bugs(system)
    for bug, settings in declared.items():
        if bug not in bugs:
            raise ValueError(f"systems.{system}.EXPOSED_BY names {bug!r}, which is not one of its bugs")
        unknown = sorted(set(settings) - FIELDS)
        if unknown:
            raise ValueError(f"systems.{system}.EXPOSED_BY[{bug!r}]: unknown setting(s) {unknown}")
    return {bug: dict(declared.get(bug, {})) for bug in bugs}


def exposed_spec(base: TestSpec, settings: dict[str, Any]) -> TestSpec:
    """`base` with a bug's declared settings applied (options merged over the base's)."""
    fields: dict[str, Any] = {k: v for k, v in settings.items() if k not in ("nemesis", "options")}
    if "nemesis" in settings:
        fields["nemesis"] = tuple(settings["nemesis"])
    if "options" in settings:
        fields["options"] = {**base.options, **settings["options"]}
    spec = replace(base, **fields)
    if "node_count" in settings and "concurrency" not in settings:
        spec = replace(spec, concurrency=spec.node_count)
    return spec


def exposure_command(system: str, bug: str, settings: dict[str, Any]) -> str:
    """The `harness run` command that exposes `bug` (on its backend, sim unless named; a seed of your choice)."""
    from harness.sweep import run_flags

    backend = str(settings.get("backend", "sim"))
    base = TestSpec(system=system, workload=registry.default_workload(system), nemesis=(), backend=backend,
                    bugs=(bug,))
    spec = exposed_spec(base, settings)
    flags = run_flags(spec, [k for k in settings if k not in ("options", "backend")], dict(settings.get("options", {})))
    return shlex.join(["harness", "run", system, "--backend", backend, *flags])
