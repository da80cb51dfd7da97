"""The fault vocabulary: windows read from a history, each package's declaration, words for people.

Pure tests: hand-written histories go through base.faults with the catalog's vocabulary (and with
kinds declared here, to show the vocabulary can say what a future system's faults do).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from base.faults import (
    ANY,
    NEMESIS_ERROR,
    Effect,
    FaultKind,
    FaultWindow,
    Vocabulary,
    fault_windows,
    held,
    names,
    nemesis_errors,
    node_list,
    took_effect,
)
from base.history import HistoryWriter
from base.spec import TestSpec
from nemesis.catalog import KINDS_OF, PACKAGES, VOCABULARY
from nemesis.partition import sides

S = 1_000_000_000


def nem(t: float, f: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    return {"time": round(t * S), "process": "nemesis", "type": "info", "f": f, "value": value, **extra}


def history(*ops: dict[str, Any], end_s: float = 20.0) -> list[dict[str, Any]]:
    out = [{**op, "index": i} for i, op in enumerate(ops)]
    out.append({"index": len(out), "time": round(end_s * S), "process": 0, "type": "invoke", "f": "read"})
    return out


HALVES = {"n1": ["n3", "n4", "n5"], "n2": ["n3", "n4", "n5"], "n3": ["n1", "n2"], "n4": ["n1", "n2"],
          "n5": ["n1", "n2"]}


# -- windows from a history ---------------------------------------------------------------------------


def test_windows_of_every_core_kind_with_what_each_did() -> None:
    h = history(
        nem(1.0, "start-partition", HALVES, package="partition", shape="halves"),
        nem(4.1, "stop-partition", None, package="partition"),
        nem(5.0, "kill", ["n3"], package="kill"),
        nem(9.2, "restart", ["n3"], package="kill"),
        nem(10.0, "power-off", ["n1", "n2", "n3"], package="power"),
        nem(11.0, "power-on", ["n1", "n2", "n3"], package="power"),
        nem(12.0, "link-down", ["n2"], package="link"),
        nem(13.0, "link-up", ["n2"], package="link"),
        nem(14.0, "switch-off", None, package="switch"),
        nem(15.0, "switch-on", None, package="switch"),
        nem(16.0, "leave", ["n4"], package="membership"),
        nem(17.0, "join", ["n4"], package="membership"),
        nem(18.0, "pause", ["n5"], package="pause"),
    )
    ws = fault_windows(h, VOCABULARY)
    assert [(w.kind, w.start_s, w.end_s, w.cured) for w in ws] == [
        ("partition", 1.0, 4.1, True),
        ("kill", 5.0, 9.2, True),
        ("power-off", 10.0, 11.0, True),
        ("link-down", 12.0, 13.0, True),
        ("switch-off", 14.0, 15.0, True),
        ("leave", 16.0, 17.0, True),
        ("pause", 18.0, 20.0, False),  # never resumed: ends with the history, marked so
    ]
    words = {w.kind: w.description for w in ws}
    assert words["partition"] == "n1 n2 | n3 n4 n5 (halves) for 3.1 s"
    assert words["kill"] == "killed n3 for 4.2 s"
    assert words["power-off"] == "powered off n1 n2 n3 for 1.0 s"  # one fault, not one per node
    assert "n2" in words["link-down"] and "cable" in words["link-down"]
    assert words["leave"] == "n4 left the ring for 1.0 s"
    assert words["pause"] == "paused n5 from 18.0 s, never cured"
    assert [w.package for w in ws] == ["partition", "kill", "power", "link", "switch", "membership", "pause"]
    part = ws[0]
    assert part.effect == Effect.NETWORK and part.cuts("n3", "n1") and not part.cuts("n1", "n2")
    assert part.nodes == ("n1", "n2", "n3", "n4", "n5") and part.detail == {"shape": "halves"}
    assert ws[3].cuts("n2", "n5") and ws[3].cuts("n1", "n2") and not ws[3].cuts("n1", "n3")
    assert ws[4].cuts("n1", "n3")  # the switch off cuts everyone


def test_a_node_fault_ends_when_its_last_node_is_cured_and_a_restart_ends_a_power_cut() -> None:
    h = history(
        nem(1.0, "power-off", ["n1", "n2"]),
        nem(2.0, "power-on", ["n1"]),
        nem(3.0, "restart", ["n2"]),  # the final heal restarts what is still down
        nem(4.0, "kill", ["n1"]),
        nem(5.0, "kill", ["n2"]),
        nem(6.0, "restart", ["n2", "n1"]),
    )
    power, k1, k2 = fault_windows(h, VOCABULARY)
    assert (power.start_s, power.end_s, dict(power.cured_at)) == (1.0, 3.0, {"n1": 2.0, "n2": 3.0})
    assert (k1.nodes, k1.end_s, k2.nodes, k2.end_s) == (("n1",), 6.0, ("n2",), 6.0)


def test_a_new_partition_replaces_the_one_in_place_and_unknown_ops_are_ignored() -> None:
    h = history(
        nem(1.0, "start-partition", {"n1": ["n2"], "n2": ["n1"]}),
        nem(2.0, "start-partition", {"n1": ["n3"], "n3": ["n1"]}),
        nem(2.5, "meteor-strike", ["n1"]),
        nem(3.0, "stop-partition"),
        nem(3.5, "stop-partition"),  # a cure with nothing in place changes nothing
    )
    assert [(w.start_s, w.end_s) for w in fault_windows(h, VOCABULARY)] == [(1.0, 2.0), (2.0, 3.0)]


def test_errors_and_what_took_effect_are_read_from_the_history_alone() -> None:
    h = history(
        nem(1.0, "kill", ["n1"], package="kill"),
        nem(2.0, "restart", ["n1"], package="kill"),
        nem(3.0, NEMESIS_ERROR, {"package": "switch", "phase": "start", "error": "UnsupportedFault: no switch"}),
        nem(4.0, "kill", ["n2"], package="leader-churn"),
        nem(5.0, "restart", ["n2"], package="leader-churn"),
    )
    ws = fault_windows(h, VOCABULARY)
    assert took_effect(["kill", "switch", "leader-churn"], ws, KINDS_OF) == {"kill": 1, "switch": 0, "leader-churn": 1}
    (err,) = nemesis_errors(h)
    assert (err.package, err.phase, err.time_s) == ("switch", "start", 3.0) and "no switch" in err.error
    # An older history names no package: a window counts for every requested package recording its kind.
    bare = [{k: v for k, v in op.items() if k != "package"} for op in h]
    assert took_effect(["kill", "pause"], fault_windows(bare, VOCABULARY), KINDS_OF) == {"kill": 2, "pause": 0}


def test_partition_shapes_in_words() -> None:
    assert sides(HALVES) == "n1 n2 | n3 n4 n5"
    assert sides({"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"], "n4": []}) == "n1 | n2 n3, bridged by n4"
    ring = {"n1": ["n3"], "n2": ["n4"], "n3": ["n1"], "n4": ["n2"]}
    assert sides(ring) == "n1 n3 | n2 n4" or "cut from" in sides(ring)
    assert sides({"n3": ["n1", "n2"]}) == "n3 drops n1 n2"
    assert sides({"n1": [], "n2": []}) == "nothing cut"


# -- the vocabulary's own rules -------------------------------------------------------------------------


def _kind(name: str, start: str, stop: tuple[str, ...] = ("x",), **kw: Any) -> FaultKind:
    return FaultKind(name=name, start=start, stop=stop, colour="#000000", effect=Effect.OTHER,
                     describe=lambda w: name, **kw)


def test_a_vocabulary_refuses_ambiguous_op_names() -> None:
    with pytest.raises(ValueError, match="starts both"):
        Vocabulary([_kind("a", "go"), _kind("b", "go")])
    with pytest.raises(ValueError, match="declared twice"):
        Vocabulary([_kind("a", "go"), _kind("a", "went")])
    with pytest.raises(ValueError, match="both starts and stops"):
        Vocabulary([_kind("a", "go", ("went",)), _kind("b", "went")])


def test_the_vocabulary_can_say_what_a_file_system_s_faults_do() -> None:
    """A fault on a system role, and a one-off fault on a file on a node's disk (shapes the DFS's faults
    use; named apart from the real ones so the catalog may hold those too)."""
    master_kill = FaultKind(
        name="example-role-kill", start="example-kill-role", stop=("example-restart-role",),
        colour="#a40e26", effect=Effect.DOWN,
        describe=lambda w: f"killed the {w.detail.get('role')} {names(w.nodes)} {held(w)}",
        targets=lambda v: (v["node"],) if isinstance(v, dict) else node_list(v),
    )
    corrupt = FaultKind(
        name="example-corrupt", start="example-corrupt-file", stop=(), colour="#8250df", effect=Effect.DISK,
        describe=lambda w: f"corrupted {w.value['path']} on {names(w.nodes)} {held(w)}",
        targets=lambda v: (v["node"],) if isinstance(v, dict) else (),
    )
    vocab = Vocabulary([*VOCABULARY, master_kill, corrupt])
    h = history(
        nem(1.0, "example-kill-role", {"node": "n1"}, role="master"),
        nem(2.5, "example-restart-role", {"node": "n1"}),
        nem(3.0, "example-corrupt-file", {"node": "n2", "path": "chunks/17"}),
    )
    mk, c = fault_windows(h, vocab)
    assert mk.description == "killed the master n1 for 1.5 s" and mk.effect == Effect.DOWN
    assert (c.start_s, c.end_s, c.cured) == (3.0, 3.0, True)
    assert c.description == "corrupted chunks/17 on n2 at 3.0 s" and c.effect == Effect.DISK


# -- the catalog's declarations -------------------------------------------------------------------------


def test_every_package_declares_kinds_its_instances_carry_its_name_and_every_kind_has_words() -> None:
    assert {"kill", "pause", "partition", "power", "flaky", "link", "switch", "plug"} <= set(PACKAGES)
    for name, package in PACKAGES.items():
        assert package.make().name == name
        assert package.kinds and package.summary
        for kind in package.kinds:
            assert VOCABULARY.kinds[kind.name] is kind
    for kind in VOCABULARY:
        assert kind.colour.startswith("#") and kind.summary
        w = FaultWindow(kind=kind.name, start_s=1.0, end_s=2.0, nodes=("n1",), colour=kind.colour,
                        effect=kind.effect, value=["n1"] if kind.targets else None)
        assert kind.describe(w)
        if kind.effect == Effect.NETWORK:
            assert kind.links is not None
    colours = [k.colour for k in VOCABULARY]
    assert len(set(colours)) == len(colours), "two kinds share a colour"


def test_the_switch_and_a_pulled_cable_cut_every_link_they_touch() -> None:
    (w,) = fault_windows(history(nem(1.0, "switch-off"), nem(2.0, "switch-on")), VOCABULARY)
    assert w.links == frozenset({(ANY, ANY)})


# -- the progress line ----------------------------------------------------------------------------------


class _Clock:
    node_id = "client"

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


class _Cluster:
    def __init__(self) -> None:
        self.nodes = ["n1", "n2", "n3"]
        self.client = _Clock()


def test_the_progress_line_names_every_fault_in_place(tmp_path: Path) -> None:
    from harness.progress import Progress
    from harness.runner import Runner

    cluster = _Cluster()
    spec = TestSpec(system="echo", workload="echo", nemesis=("link", "switch", "membership"))
    writer = HistoryWriter(tmp_path / "h.jsonl")
    try:
        runner = Runner(spec, cluster, workload=None, history=writer)  # type: ignore[arg-type]
        progress = Progress(Console(file=io.StringIO(), force_terminal=False))
        progress.attach(runner)
        cluster.client.t = 1.0
        runner.record_nemesis("link-down", ["n2"], {"package": "link"})
        assert "link-down" in progress._line() and "n2" in progress._line()
        cluster.client.t = 2.0
        runner.record_nemesis("link-up", ["n2"], {"package": "link"})
        runner.record_nemesis("switch-off", None, {"package": "switch"})
        line = progress._line()
        assert "switch-off" in line and "link-down" not in line
        runner.record_nemesis("switch-on", None, {"package": "switch"})
        runner.record_nemesis("leave", ["n3"], {"package": "membership"})
        assert "leave: n3 left the ring since 2.0 s" in progress._line()
        runner.record_nemesis("join", ["n3"], {"package": "membership"})
        assert progress._line().endswith("faults none")
    finally:
        writer.close()


def test_the_readme_tables_say_what_the_catalog_says() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for kind in VOCABULARY:
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{kind.name}` | `{kind.start}`")), "")
        assert row and f"`{kind.colour}`" in row and all(f"`{op}`" in row for op in kind.stop), kind.name
    for name in PACKAGES:
        assert f"| `{name}` |" in readme, name
