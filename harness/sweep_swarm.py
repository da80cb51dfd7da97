"""Swarm testing (Groce et al., ISSTA 2012): every seed draws its own test, not just its own dice.

A fixed mix of faults hides bugs that need one fault often and another never
(a leader isolated again and again, with no kill to reset it). A swarm run
draws, from its seed alone, which fault packages it uses (each applicable
package in or out with even odds), how often each is dealt, how long faults
are held, how far apart (one round of them fills 40-80% of the time limit,
so every package drawn is dealt at least once), the workload and its rate
and concurrency, the time limit, the node count, and the system's own options that widen the search (the values
its package lists in `SWARM_OPTIONS`, next to its BUGS).

Rules this module keeps:
- `draw(spec, pinned)` is a pure function of the spec's system, seed and
  the pinned settings: the same seed draws the same test, so
  `harness run SYSTEM --backend sim --swarm --seed N` replays it. Every
  dimension is drawn, in a fixed order, from the seed's own RNG stream
  (`derive_rng(seed, "swarm")`), and only then are the pinned ones (the
  flags the user gave) put back, so pinning one never changes the others.
- What was drawn is recorded whole in the spec's `swarm` field (test.json);
  the spec's ordinary fields hold the outcome, so the runner, the checkers
  and `harness check` need to know nothing about swarms.
- Only packages that apply to the system, the backend (a sweep's is sim)
  and the drawn node count are drawn; there is always at least one.
- A system may list the sim network's settings as a swarm option (`sim`,
  e.g. frames delivered twice); the value is drawn on every backend, so the
  other draws stay the same, and kept only on sim.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from base.spec import TestSpec
from harness import registry
from harness.applicability import target_of
from nemesis.catalog import PACKAGES
from nemesis.package import refusal
from systems.runtime.api import derive_rng

NODE_COUNTS = (3, 5)
TIME_LIMITS_S = (30.0, 45.0, 60.0)
ROUND_SHARE = (0.4, 0.8)
"""One round of the chosen packages (each dealt its weight's times) fills this share of the time limit
(uniform): the spacing follows, so every package drawn is dealt at least once."""
INTERVAL_S = (0.5, 20.0)
"""The spacing is kept within these bounds."""
RATE = (5.0, 80.0)
"""Log-uniform range of the total op rate."""
WEIGHTS = (1, 1, 2)
"""How many times per round a chosen package is dealt (each equally likely)."""

PINNABLE = frozenset(
    {"node_count", "workload", "nemesis", "time_limit_s", "rate", "concurrency", "nemesis_interval_s", "options"}
)
"""Settings a user may pin with a flag; the swarm draws the rest."""


def swarm_options(system: str) -> dict[str, list[Any]]:
    """The node options a system lets a swarm draw (`SWARM_OPTIONS` next to its BUGS; none when absent)."""
    return {k: list(v) for k, v in dict(getattr(registry.system_module(system), "SWARM_OPTIONS", {})).items()}


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _range(rng: random.Random, low: float, high: float) -> list[float]:
    a = round(rng.uniform(low, high), 2)
    return [a, round(a + rng.uniform(0.1, 1.0), 2)]


def draw(spec: TestSpec, pinned: frozenset[str] = frozenset()) -> TestSpec:
    """The swarm's test for `spec.seed`: every setting not in `pinned` is drawn (see the module rules)."""
    unknown = sorted(pinned - PINNABLE)
    if unknown:
        raise ValueError(f"a swarm cannot pin {unknown}; it pins {', '.join(sorted(PINNABLE))}")
    rng = derive_rng(spec.seed, "swarm")
    workloads = sorted(registry.workload_module(spec.system).WORKLOADS)
    drawn: dict[str, Any] = {
        "node_count": rng.choice(NODE_COUNTS),
        "workload": rng.choice(workloads),
        "time_limit_s": rng.choice(TIME_LIMITS_S),
        "rate": round(_log_uniform(rng, *RATE), 1),
        "clients_per_node": rng.choice((1, 2)),
        "round_share": round(rng.uniform(*ROUND_SHARE), 2),
        "healthy": _range(rng, 0.1, 0.6),
        "hold": _range(rng, 0.3, 1.2),
    }
    coins = {name: rng.random() < 0.5 for name in sorted(PACKAGES)}
    weights = {name: rng.choice(WEIGHTS) for name in sorted(PACKAGES)}
    fallback = rng.random()
    options = {key: rng.choice(values) for key, values in sorted(swarm_options(spec.system).items())}
    if spec.backend != "sim":
        options.pop("sim", None)  # the sim network's own settings (e.g. duplicated frames) mean nothing elsewhere

    nodes = spec.node_count if "node_count" in pinned else drawn["node_count"]
    options = {**options, **spec.options}  # an option the user gave wins over the draw
    out = replace(
        spec,
        node_count=nodes,
        workload=spec.workload if "workload" in pinned else drawn["workload"],
        time_limit_s=spec.time_limit_s if "time_limit_s" in pinned else drawn["time_limit_s"],
        rate=spec.rate if "rate" in pinned else drawn["rate"],
        concurrency=spec.concurrency if "concurrency" in pinned else nodes * drawn["clients_per_node"],
        options=options,
    )
    pool = [n for n in spec.nemesis if n not in ("none", "")] if "nemesis" in pinned else sorted(PACKAGES)
    applicable = _applicable(out, pool)
    if not applicable:
        raise ValueError(f"no fault package applies to {spec.system} on {spec.backend} with {nodes} nodes")
    chosen = [n for n in applicable if coins.get(n, True)] or [applicable[int(fallback * len(applicable))]]
    pace = {"healthy": drawn["healthy"], "hold": drawn["hold"], "weights": {n: weights.get(n, 1) for n in chosen}}
    if "nemesis_interval_s" not in pinned:
        cycle = (sum(drawn["healthy"]) + sum(drawn["hold"])) / 2  # one fault's share of an interval, on average
        deck = sum(pace["weights"].values())
        interval = out.time_limit_s * drawn["round_share"] / (deck * cycle)
        out = replace(out, nemesis_interval_s=round(min(max(interval, INTERVAL_S[0]), INTERVAL_S[1]), 1))
    record = {
        "seed": spec.seed,
        "pinned": sorted(pinned),
        "nemesis": chosen,
        "pace": pace,
        "options": {k: options[k] for k in sorted(swarm_options(spec.system)) if k in options},
        **{
            k: getattr(out, k)
            for k in ("node_count", "workload", "time_limit_s", "rate", "concurrency", "nemesis_interval_s")
        },
    }
    return replace(out, nemesis=tuple(chosen), pace=pace, swarm=record)


def _applicable(spec: TestSpec, names: list[str]) -> list[str]:
    target = target_of(spec)
    out = []
    for name in names:
        package = PACKAGES.get(name)
        if package is None:
            raise ValueError(f"unknown nemesis {name!r}; known: {', '.join(sorted(PACKAGES))}")
        if refusal(package, target) is None:
            out.append(name)
    return out
