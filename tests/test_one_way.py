"""The one-way partition (nemesis/one_way.py): its grudges, its words, and a real run that shows one way only.

The heartbeat checker was never told about this fault: it reads what the fault cuts from the
vocabulary, so a node that stops hearing a peer is excused, and only that node.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from base.faults import fault_windows
from base.history import read_history
from base.spec import TestSpec
from harness.session import check, execute, prepare
from nemesis.catalog import PACKAGES, VOCABULARY
from nemesis.one_way import OneWay, grudge_of
from nemesis.package import NemesisContext


def test_grudges_drop_one_direction_only() -> None:
    assert grudge_of("n3", "inbound", ["n2", "n1"]) == {"n3": ["n1", "n2"]}  # n3 drops what n1, n2 send it
    assert grudge_of("n3", "outbound", ["n1", "n2"]) == {"n1": ["n3"], "n2": ["n3"]}  # they drop what n3 sends


class FakeCluster:
    def __init__(self) -> None:
        self.nodes = ["n1", "n2", "n3", "n4"]
        self.grudges: list[dict[str, list[str]]] = []
        self.healed = 0

    async def partition(self, grudge: dict[str, list[str]]) -> None:
        self.grudges.append(grudge)

    async def heal(self) -> None:
        self.healed += 1


def test_start_applies_the_grudge_it_records_and_stop_heals() -> None:
    cluster = FakeCluster()
    recorded: list[tuple[str, Any, dict[str, Any]]] = []
    ctx = NemesisContext(cluster=cluster, rng=random.Random(4), sink=lambda f, v, e: recorded.append((f, v, e)))  # type: ignore[arg-type]
    fault = PACKAGES["one-way"].make()
    assert isinstance(fault, OneWay)

    async def go() -> None:
        await fault.start(ctx)
        await fault.stop(ctx)
        await fault.stop(ctx)  # nothing more to cure

    asyncio.run(go())
    (start, value, _), (stop, _, _) = recorded
    assert (start, stop, cluster.healed) == ("start-one-way", "stop-one-way", 1)
    assert cluster.grudges == [value["grudge"]]
    assert value["grudge"] == grudge_of(value["node"], value["direction"], value["others"])


def test_its_window_says_who_stops_hearing_whom() -> None:
    value = {"node": "n3", "direction": "inbound", "others": ["n1"], "grudge": {"n3": ["n1"]}}
    ops = [
        {"index": 0, "time": 1_000_000_000, "process": "nemesis", "type": "info", "f": "start-one-way",
         "value": value, "package": "one-way"},
        {"index": 1, "time": 3_500_000_000, "process": "nemesis", "type": "info", "f": "stop-one-way",
         "value": None, "package": "one-way"},
    ]
    (w,) = fault_windows(ops, VOCABULARY)
    assert w.description == "n3 hears nothing from n1 (they still hear it) for 2.5 s"
    assert w.cuts("n1", "n3") and not w.cuts("n3", "n1")
    assert w.nodes == ("n1", "n3")


def test_a_heartbeat_run_shows_suspicion_in_the_cut_direction_only(tmp_path: Path) -> None:
    spec = TestSpec(system="heartbeat", workload="view", nemesis=("one-way",), backend="sim", seed=1,
                    time_limit_s=20.0, nemesis_interval_s=4.0)
    spec = prepare(spec, tmp_path)
    execute(spec)
    results = check(spec.path)
    assert results["valid"] is True, {k: v["summary"] for k, v in results["checkers"].items()}
    assert results["faults"]["took_effect"]["one-way"] >= 2
    windows = [w for w in fault_windows(read_history(spec.path / "history.jsonl").ops, VOCABULARY)
               if w.kind == "one-way"]
    episodes = results["checkers"]["heartbeat"]["suspicions"]["list"]
    assert episodes, "a one-way cut should make someone suspect someone"
    for e in episodes:  # every suspicion is of a node whose traffic to the observer was cut, never the reverse
        assert any(w.cuts(e["subject"], e["observer"]) and w.start_s <= e["end"] and e["start"] <= w.end_s + 2.0
                   for w in windows), e
