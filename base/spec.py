"""A test is plain data: which system, workload, nemesis and backend, and how hard to push.

`TestSpec` is frozen and written whole into the run directory as test.json;
`harness check` reads it back, so everything a checker may depend on is here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TestSpec:
    __test__ = False  # not a pytest test class, despite the name

    system: str
    workload: str
    nemesis: tuple[str, ...]
    backend: str = "local"
    node_count: int = 5
    concurrency: int = 5
    rate: float = 20.0
    """Target ops/s over all client processes."""
    time_limit_s: float = 30.0
    """How long the workload and nemesis run before the final heal."""
    seed: int = 0
    bugs: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    """System-specific node options (passed to every node's NodeConfig)."""
    nemesis_interval_s: float = 5.0
    """Mean time between the start of one fault and the next."""
    quiet_s: float = 5.0
    """Quiet period after the final heal, before the final reads."""
    op_timeout_s: float = 2.0
    cluster_file: str | None = None
    """For the ssh backend: the cluster description."""
    run_dir: str = ""
    command_line: str = ""
    expect: dict[str, Any] = field(default_factory=dict)
    """Documented weaknesses: checker name -> the verdict that counts as behaving as designed."""
    allow_no_faults: bool = False
    """When false, a run in which a requested fault never took effect is at best `unknown`."""
    schedule: list[dict[str, Any]] = field(default_factory=list)
    """An explicit fault schedule (nemesis/schedule.py's `Script`) played instead of the random one; empty: random."""
    pace: dict[str, Any] = field(default_factory=dict)
    """How the random schedule paces faults (nemesis/schedule.py's `Pace`); empty: the defaults."""
    swarm: dict[str, Any] = field(default_factory=dict)
    """What a swarm draw chose for this run (harness/sweep_swarm.py); empty: not a swarm run."""

    @property
    def nodes(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.node_count + 1)]

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["nodes"] = self.nodes
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TestSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("nemesis", "bugs"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    @property
    def path(self) -> Path:
        return Path(self.run_dir)
