"""Parity with Elle: its own test histories, transcribed as data, checked by ours.

Each case is one assertion of Elle's test suite (test/elle/list_append_test.clj,
rw_register_test.clj, consistency_model_test.clj, at jepsen-io/elle master):
the history, the options, and what Elle's test expects (validity, the anomaly
types it reports, and the weakest models it rules out, ":not"). We assert the
same, or, where we differ on purpose, what we say instead and why
(`Diff.why`). `python tests/test_elle_parity.py` prints the table.

Transcription rules:
- Elle's op language: "ax1ry12" is [append x 1, read y -> [1 2]]; "wx1rx_"
  is [write x 1, read x -> nil].
- Elle builds many histories from completions alone; those carry no
  real-time order, so we invoke every txn before any completes, one process
  each (none of those cases asks for a process-order model).
- Elle calls PL-SS strong-serializable; we call it strict-serializable.
- A register read of a value nobody wrote is a garbage-read for us unless the
  test says the register starts with it; where Elle's test means an initial
  state, we say so with `initial`.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from checkers.elle import anomalies as A
from checkers.elle import check
from checkers.elle.__main__ import main as cli_main
from checkers.elle.edn import read_history

DATA = Path(__file__).parent / "data" / "elle"


def la(spec: str) -> list[list[Any]]:
    """A list-append txn: reads are lists of digits."""
    return [["append", k, int(d)] if f == "a" else ["r", k, [int(c) for c in d] if d else None]
            for f, k, d in re.findall(r"([ar])([xyztu])([0-9]*)", spec)]


def rw(spec: str) -> list[list[Any]]:
    """A rw-register txn: _ is nil."""
    return [[f, k, None if d in ("", "_") else int(d)] for f, k, d in re.findall(r"([rw])([xyz])([0-9_]?)", spec)]


def _invoked(m: list[list[Any]]) -> list[list[Any]]:
    """An invocation's micro-ops: reads not yet known (Elle sometimes writes them [:r :x], kept so)."""
    return [mop if len(mop) == 2 else [mop[0], mop[1], None if mop[0] == "r" else mop[2]] for mop in m]


def ok_only(*txns: tuple[str, list[list[Any]]]) -> list[dict[str, Any]]:
    """Elle's completion-only histories: every txn invoked before any completes, one process each."""
    ops: list[dict[str, Any]] = []
    for p, (_, m) in enumerate(txns):
        ops.append({"process": p, "type": "invoke", "f": "txn", "value": _invoked(m)})
    for p, (typ, m) in enumerate(txns):
        ops.append({"process": p, "type": typ, "f": "txn", "value": m if typ == "ok" else _invoked(m)})
    return _indexed(ops)


def events(*evs: tuple[str, Any, list[list[Any]]]) -> list[dict[str, Any]]:
    """An explicit history: (type, process, micro-ops) in order; invocations get their reads blanked."""
    return _indexed([{"process": p, "type": t, "f": "txn", "value": _invoked(m) if t == "invoke" else m}
                     for t, p, m in evs])


def pairs(*txns: tuple[Any, list[list[Any]]]) -> list[dict[str, Any]]:
    """Elle's (pair op) sequences: each txn invoked and completed ok before the next."""
    evs: list[tuple[str, Any, list[list[Any]]]] = []
    for p, m in txns:
        evs += [("invoke", p, m), ("ok", p, m)]
    return events(*evs)


def _indexed(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": i, "time": i, **op} for i, op in enumerate(ops)]


def edn(name: str) -> list[dict[str, Any]]:
    path = DATA / name
    text = gzip.decompress(path.read_bytes()).decode() if name.endswith(".gz") else path.read_text()
    return read_history(text)[0]


@dataclass(frozen=True)
class Verdict:
    valid: Any
    types: tuple[str, ...]
    not_: frozenset[str] | None = None
    """Elle's :not, when its test states it."""


@dataclass(frozen=True)
class Diff:
    ours: Verdict
    why: str


@dataclass(frozen=True)
class Case:
    source: str
    name: str
    workload: str
    history: Any
    options: dict[str, Any]
    elle: Verdict
    diff: Diff | None = None
    slow: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def V(valid: Any, types: list[str] | tuple[str, ...] = (), not_: set[str] | None = None) -> Verdict:
    return Verdict(valid, tuple(types), None if not_ is None else frozenset(not_))


LA, RW = "list-append", "rw-register"
NONE: dict[str, Any] = {"consistency": None}


def only(*anomalies: str) -> dict[str, Any]:
    return {"consistency": None, "anomalies": list(anomalies)}


def models(*ms: str, **more: Any) -> dict[str, Any]:
    return {"consistency": list(ms), **more}


G0_H = ok_only(("ok", la("ax1ay1")), ("ok", la("ax2ay2")), ("ok", la("rx12ry21")))
G1A_H = events(("invoke", 0, la("ax1")), ("invoke", 1, la("rx1")), ("fail", 0, la("ax1")), ("ok", 1, la("rx1")))
G1B_H = pairs((0, la("ax1ax2")), (0, la("rx1")))
G1C_H = ok_only(("ok", la("ax1ry1")), ("ok", la("ax2ay1")), ("ok", la("rx12ry1")))
GSINGLE_H = ok_only(("ok", la("ax1ay1")), ("ok", la("ax2ry")), ("ok", la("rx12")))
G2_H = ok_only(("ok", la("ax1ry")), ("ok", la("ay1rx")))
STRONG_SI_H = events(("invoke", 0, la("ax1")), ("ok", 0, la("ax1")), ("invoke", 1, la("ax2")), ("ok", 1, la("ax2")),
                     ("invoke", 2, la("rx1")), ("ok", 2, la("rx1")), ("invoke", 3, la("rx12")), ("ok", 3, la("rx12")))
SESSION_SI_H = events(("invoke", 0, la("ax1")), ("ok", 0, la("ax1")), ("invoke", 1, la("ax2")), ("ok", 1, la("ax2")),
                      ("invoke", 1, la("rx1")), ("ok", 1, la("rx1")), ("invoke", 2, la("rx12")),
                      ("ok", 2, la("rx12")))
NONADJ_PROCESS_H = events(
    ("invoke", 0, la("rxrz")), ("ok", 0, la("rxrz1")), ("invoke", 1, la("ax1")), ("ok", 1, la("ax1")),
    ("invoke", 1, la("rz")), ("ok", 1, la("rz")), ("invoke", 2, la("az1")), ("ok", 2, la("az1")))
UNOBSERVED_H = events(*[("invoke", p, la(s)) for p, s in enumerate(["ax1ay1", "ax2ay2", "ax3ay3", "rx12", "ry2"])],
                      *[("ok", p, la(s)) for p, s in enumerate(["ax1ay1", "ax2ay2", "ax3ay3", "rx12", "ry2"])])
WR_PROCESS_H = events(("invoke", 1, [["r", "x"], ["append", "y", 1]]), ("ok", 1, [["r", "x", [1]], ["append", "y", 1]]),
                      ("invoke", 2, la("ry")), ("ok", 2, la("ry1")), ("invoke", 2, la("ax1")), ("ok", 2, la("ax1")))
FUTURE_H = events(("invoke", 0, [["r", "x", None], ["append", "x", 1]]),
                  ("ok", 0, [["r", "x", [1]], ["append", "x", 1]]))



def unfindable_g_single(n: int = 1000, noise_n: int = 30) -> list[dict[str, Any]]:
    """Elle's unfindable-g-single-test history: one G-single ring of n txns drowned in G2-item noise."""
    txns: list[tuple[int, list[list[Any]]]] = []
    for i in range(n):
        other = ["append", "anti", "first"] if i == 0 else (["r", "anti", None] if i == n - 1 else ["append", i, 0])
        txns.append((0, [["append", "ring", i], other]))
    txns.append((1, [["r", "ring", list(range(n))]]))
    for i in range(1, n - 1):
        for j in range(1, noise_n):
            if j == noise_n - 2:
                txns.append((2, [["r", i, list(range(noise_n - 2))], ["r", ["anti", i], None]]))
            elif j == noise_n - 1:
                txns.append((2, [["append", ["anti", i], 0], ["r", "ring", None]]))
            else:
                txns.append((2, [["append", i, j]]))
    return pairs(*txns)


RW_READ_BACK = pairs((0, rw("wx1")), (0, rw("rx2")), (0, rw("rx1")))

LIST_APPEND: list[Case] = [
    Case("checker-test", "G0, looking for G0", LA, G0_H, only("G0"), V(False, ["G0"], {"read-uncommitted"})),
    Case("checker-test", "G0, looking for G1", LA, G0_H, only("G1"), V(False, ["G0"], {"read-uncommitted"})),
    Case("checker-test", "G0, looking for G2", LA, G0_H, only("G2"), V(True)),
    Case("checker-test", "G1a, read-uncommitted", LA, G1A_H, models("read-uncommitted"),
         V("unknown", ["empty-transaction-graph"], {"read-committed"})),
    Case("checker-test", "G1a, read-committed", LA, G1A_H, models("read-committed"),
         V(False, ["G1a", "empty-transaction-graph"], {"read-committed"})),
    Case("checker-test", "G1a, looking for G2", LA, G1A_H, only("G2"),
         V("unknown", ["empty-transaction-graph"], {"read-committed"})),
    Case("checker-test", "G1a, repeatable-read", LA, G1A_H, models("repeatable-read"),
         V(False, ["G1a", "empty-transaction-graph"], {"read-committed"})),
    Case("checker-test", "G1b, looking for G0", LA, G1B_H, only("G0"), V(True)),
    Case("checker-test", "G1b, looking for G1", LA, G1B_H, only("G1"), V(False, ["G1b"], {"read-committed"})),
    Case("checker-test", "G1b, looking for G2", LA, G1B_H, only("G2"), V(False, ["G-single-item"], {"read-committed"})),
    Case("checker-test", "G1b, strict-serializable", LA, G1B_H, models("strict-serializable"),
         V(False, ["G-single-item", "G1b"], {"read-committed"})),
    Case("checker-test", "G1c, looking for G0", LA, G1C_H, only("G0"), V(True)),
    Case("checker-test", "G1c, looking for G1", LA, G1C_H, only("G1"), V(False, ["G1c"], {"read-committed"})),
    Case("checker-test", "G1c, looking for G2", LA, G1C_H, only("G2"), V(True)),
    Case("checker-test", "G-single, looking for G0", LA, GSINGLE_H, only("G0"), V(True)),
    Case("checker-test", "G-single, looking for G1", LA, GSINGLE_H, only("G1"), V(True)),
    Case("checker-test", "G-single, looking for G-single", LA, GSINGLE_H, only("G-single"),
         V(False, ["G-single-item"], {"consistent-view", "repeatable-read"})),
    Case("checker-test", "G-single, looking for G2", LA, GSINGLE_H, only("G2"),
         V(False, ["G-single-item"], {"consistent-view", "repeatable-read"})),
    Case("checker-test", "G2, looking for G0", LA, G2_H, only("G0"), V(True)),
    Case("checker-test", "G2, looking for G1", LA, G2_H, only("G1"), V(True)),
    Case("checker-test", "G2, read-committed", LA, G2_H, models("read-committed"), V(True)),
    Case("checker-test", "G2, looking for G2", LA, G2_H, only("G2"), V(False, ["G2-item"], {"repeatable-read"})),
    Case("checker-test", "G2, serializable", LA, G2_H, models("serializable"),
         V(False, ["G2-item"], {"repeatable-read"})),
    Case("checker-test", "G2, repeatable-read", LA, G2_H, models("repeatable-read"),
         V(False, ["G2-item"], {"repeatable-read"})),
    Case("checker-test", "Strong SI violation, looking for G2", LA, STRONG_SI_H, only("G2"), V(True)),
    Case("checker-test", "Strong SI violation, serializable", LA, STRONG_SI_H, models("serializable"), V(True)),
    Case("checker-test", "Strong SI violation, strict-serializable", LA, STRONG_SI_H, models("strict-serializable"),
         V(False, ["G-single-item-realtime"], {"strong-snapshot-isolation"})),
    Case("checker-test", "Strong session SI violation, serializable", LA, SESSION_SI_H, models("serializable"),
         V(True)),
    Case("checker-test", "Strong session SI violation, strong-session-SI", LA, SESSION_SI_H,
         models("strong-session-snapshot-isolation"),
         V(False, ["G-single-item-process"], {"strong-session-snapshot-isolation"})),
    Case("checker-test", "G-nonadjacent-process, serializable", LA, NONADJ_PROCESS_H, models("serializable"), V(True)),
    Case("checker-test", "G-nonadjacent-process, strong-session-SI", LA, NONADJ_PROCESS_H,
         models("strong-session-snapshot-isolation"),
         V(False, ["G-nonadjacent-item-process"], {"strong-session-snapshot-isolation"})),
    Case("checker-test", "contradictory read orders", LA,
         ok_only(*[("ok", la(s)) for s in ["ax1ry1", "ax2", "ax3ay1", "rx13", "rx123"]]), only("G1"),
         V(False, ["G1c", "incompatible-order"], {"read-committed"})),
    Case("checker-test", "dirty update, none", LA, ok_only(("fail", la("ax1"))), only("dirty-update"),
         V("unknown", ["empty-transaction-graph"], set())),
    Case("checker-test", "dirty update, direct", LA,
         ok_only(("fail", la("ax1")), ("ok", la("ax2")), ("ok", la("rx12"))), only("dirty-update"),
         V(False, ["dirty-update"], {"read-committed"})),
    Case("checker-test", "dirty update, indirect", LA,
         ok_only(("fail", la("ax1")), ("info", la("ax2")), ("ok", la("ax3")), ("ok", la("rx123"))),
         only("dirty-update"), V(False, ["dirty-update"], {"read-committed"})),
    Case("checker-test", "duplicated elements", LA,
         ok_only(("ok", la("ax1ry1")), ("ok", la("ax2ay1")), ("ok", la("rx121"))), models("read-committed"),
         V(False, ["G1c", "duplicate-elements"], {"read-uncommitted"})),
    Case("checker-test", "internal consistency violation", LA,
         ok_only(("ok", la("ax1ax2ax4")), ("ok", la("ax3rx1234"))), only("internal"),
         V(False, ["internal"], {"read-uncommitted"})),
    Case("unobserved-write-test", "unobserved write", LA, UNOBSERVED_H, models("serializable"),
         V(False, ["G-single-item", "G0"], {"read-uncommitted"})),
    Case("repeatable-read-test", "write skew, read-committed", LA, G2_H, models("read-committed"), V(True)),
    Case("repeatable-read-test", "write skew, repeatable-read", LA, ok_only(("ok", la("rxay1")), ("ok", la("ryax1"))),
         models("repeatable-read"), V(False, ["G2-item"], {"repeatable-read"})),
    Case("G-nonadjacent-test", "G-nonadjacent", LA,
         pairs((0, la("ax1")), (0, la("rx1ry")), (0, la("ay1")), (0, la("ry1rx"))), {},
         V(False, ["G-nonadjacent-item"], {"snapshot-isolation", "repeatable-read"}),
         Diff(V(False, ["G-nonadjacent-item", "G-single-item-realtime"], {"snapshot-isolation", "repeatable-read"}),
              "these txns run one after another, so T3's read of x (empty) after T0's append completed is also a "
              "stale read in real time, which strict-serializable forbids; Elle's test does not list it")),
    Case("G-nonadjacent-test", "adjacent rw edges are not G-nonadjacent", LA,
         pairs(*[(0, la(s)) for s in ["rx5ay1", "ryaz2", "rzat3", "rt3au4", "ruax5"]]), models("snapshot-isolation"),
         V(True)),
    Case("lost-update-test", "lost update", LA, pairs((0, la("ax0")), (0, la("rx0ax1")), (0, la("rx0ax2"))), {},
         V(False, ["G2-item", "lost-update"], {"update-atomic", "cursor-stability"}),
         Diff(V(False, ["G-single-item-realtime", "G2-item", "lost-update"], {"update-atomic", "cursor-stability"}),
              "the second read of [0] happens after the first txn appended 1 and completed: a stale read in real "
              "time as well, which strict-serializable forbids; Elle's test does not list it")),
    Case("lost-update-test", "one txn, double write", LA, pairs((0, la("rxax1ax2")), (0, la("rx12"))), {}, V(True)),
    Case("wr-process-test", "wr then process", LA, WR_PROCESS_H, models("strong-session-snapshot-isolation"),
         V(False, ["G1c-process"], {"strong-session-read-committed"})),
    Case("rr-g-single-item-test", "repeatable read forbids G-single-item", LA,
         pairs((0, la("ax1ay1")), (0, la("rx1ry"))), models("repeatable-read"),
         V(False, ["G-single-item"], {"consistent-view", "repeatable-read"})),
    Case("rr-g-nonadjacent-item-test", "repeatable read forbids G-nonadjacent-item", LA,
         pairs(*[(0, la(s)) for s in ["ax1at1", "rx1ry", "ay1az2", "rz2rt"]]), models("repeatable-read"),
         V(False, ["G-nonadjacent-item"], {"repeatable-read", "snapshot-isolation"})),
    Case("future-read-test", "future read", LA, FUTURE_H, models("read-committed"),
         V(False, ["empty-transaction-graph", "future-read"], {"read-committed"})),
    Case("intermediate-sequential-extension-test", "si-without-g-single.edn", LA, "si-without-g-single.edn",
         models("snapshot-isolation", "repeatable-read"), V(False, ["G2-item"], {"repeatable-read"})),
    Case("huge-scc-test", "huge-scc.edn (10k txns)", LA, "huge-scc.edn.gz", {},
         V(False, ["G2-item-realtime", "cycle-search-timeout", "strong-snapshot-isolation-cycle-exists"],
           {"strong-snapshot-isolation"}),
         Diff(V(False, ["G-nonadjacent-item-realtime"], {"strong-snapshot-isolation"}),
              "Elle gives each component 1 s and then falls back to 'a cycle exists' (its test says the exact "
              "types depend on speed); our search finishes within the time limit and names a cycle"), slow=True),
    Case("unfindable-g-single", "a G-single ring in a sea of G2-item (30k txns)", LA, unfindable_g_single,
         models("snapshot-isolation"), V(False, ["PL-SI-cycle-exists", "cycle-search-timeout"],
                                          {"snapshot-isolation", "repeatable-read"}),
         Diff(V(False, ["G-single-item"], {"consistent-view", "repeatable-read"}),
              "built so that Elle's 1 s search times out and it can only prove a cycle exists; ours finds the "
              "G-single itself (so the weakest model ruled out is consistent-view, below snapshot isolation)"),
         slow=True),
]

RW_REGISTER: list[Case] = [
    Case("checker-test", "read of a value nobody wrote", RW, pairs((0, rw("wx1")), (0, rw("rx2"))),
         models("strict-serializable", linearizable_keys=True, wfr_keys=False), V(True),
         Diff(V(False, ["garbage-read"], {"read-uncommitted"}),
              "Elle's test marks its own 'valid' here as a bug (TODO); x was never 2 and does not start as 2")),
    Case("checker-test", "read, read back what was written", RW, RW_READ_BACK,
         models("strict-serializable", linearizable_keys=True, wfr_keys=False),
         V(False, ["cyclic-versions"], {"read-uncommitted"}),
         Diff(V(False, ["cyclic-versions", "garbage-read"], {"read-uncommitted"}),
              "also garbage-read: nobody wrote 2 and x starts as nil")),
    Case("checker-test", "G0 with no completions", RW,
         events(("invoke", 0, rw("wx1wy2")), ("invoke", 1, rw("wx2wy1"))), only("G0"),
         V("unknown", ["empty-transaction-graph"], set())),
    Case("checker-test", "G0 with sequential keys", RW,
         events(("invoke", 0, rw("wx1wy2")), ("ok", 0, rw("wx1wy2")), ("invoke", 1, rw("wx2wy1")),
                ("ok", 1, rw("wx2wy1")), ("invoke", 0, rw("rx2")), ("ok", 0, rw("rx2")),
                ("invoke", 1, rw("ry2")), ("ok", 1, rw("ry2"))),
         {**only("G0"), "sequential_keys": True, "wfr_keys": False}, V(False, ["G0"], {"read-uncommitted"})),
    Case("checker-test", "G1a", RW, ok_only(("ok", rw("rx1")), ("fail", rw("wx1"))), only("G1"),
         V(False, ["G1a", "empty-transaction-graph"], {"read-committed"})),
    Case("checker-test", "G1b, looking for G0", RW, ok_only(("ok", rw("wx1wx2")), ("ok", rw("rx1"))), only("G0"),
         V("unknown", ["empty-transaction-graph"], {"read-committed"})),
    Case("checker-test", "G1b, looking for G1", RW, ok_only(("ok", rw("wx1wx2")), ("ok", rw("rx1"))), only("G1"),
         V(False, ["G1b", "empty-transaction-graph"], {"read-committed"})),
    Case("checker-test", "G1b, repeatable-read", RW, ok_only(("ok", rw("wx1wx2")), ("ok", rw("rx1"))),
         models("repeatable-read"), V(False, ["G1b", "empty-transaction-graph"], {"read-committed"})),
    Case("checker-test", "G-single without a transaction order", RW,
         ok_only(("ok", rw("rx_wy2")), ("ok", rw("wx3wy4"))), models("serializable", wfr_keys=False), V(True)),
    Case("checker-test", "G2-item without a transaction order", RW,
         ok_only(*[("ok", rw(s)) for s in ["wx1wy2wz3", "rx1wy5", "rz3wx4", "wz7wy8"]]),
         models("serializable", wfr_keys=False), V(True)),
    Case("checker-test", "G1c, looking for G0", RW, ok_only(("ok", rw("wx1ry1")), ("ok", rw("wy1rx1"))), only("G0"),
         V(True)),
    Case("checker-test", "G1c, read-uncommitted", RW, ok_only(("ok", rw("wx1ry1")), ("ok", rw("wy1rx1"))),
         models("read-uncommitted"), V(True)),
    Case("checker-test", "G1c, looking for G1", RW, ok_only(("ok", rw("wx1ry1")), ("ok", rw("wy1rx1"))), only("G1"),
         V(False, ["G1c"], {"read-committed"})),
    Case("checker-test", "G1c, read-committed", RW, ok_only(("ok", rw("wx1ry1")), ("ok", rw("wy1rx1"))),
         models("read-committed"), V(False, ["G1c"], {"read-committed"})),
    Case("checker-test", "G1c, looking for G2", RW, ok_only(("ok", rw("wx1ry1")), ("ok", rw("wy1rx1"))), only("G2"),
         V(True)),
    Case("checker-test", "G1c, serializable", RW, ok_only(("ok", rw("wx1ry1")), ("ok", rw("wy1rx1"))),
         models("serializable"), V(False, ["G1c"], {"read-committed"})),
    Case("checker-test", "G2-item, read-committed with linearizable keys", RW,
         events(("invoke", 0, rw("rx1ry1")), ("ok", 0, rw("rx1ry1")), ("invoke", 1, rw("rx1wy2")),
                ("invoke", 2, rw("ry1wx2")), ("ok", 2, rw("ry1wx2")), ("ok", 1, rw("rx1wy2"))),
         models("read-committed", linearizable_keys=True, wfr_keys=False, initial=1), V(True)),
    Case("checker-test", "internal", RW, ok_only(("ok", rw("rx1rx2"))), {**only("internal"), "initial": 1},
         V(False, ["empty-transaction-graph", "internal"], {"read-atomic"})),
    Case("checker-test", "initial state", RW,
         events(("invoke", 0, rw("rx_ry1")), ("invoke", 1, rw("wy1wx2")), ("ok", 1, rw("wy1wx2")),
                ("ok", 0, rw("rx_ry1"))), models("serializable", wfr_keys=False),
         V(False, ["G-single-item"], {"consistent-view", "repeatable-read"})),
    Case("checker-test", "wfr off", RW, ok_only(("ok", rw("ry1wx1wy2")), ("ok", rw("rx1ry1"))),
         models("serializable", wfr_keys=False, initial_by_key={"y": 1}), V(True),
         Diff(V(False, ["G-single-item"], {"consistent-view", "repeatable-read"}),
              "y is read as 1 but never written: we take the test's word that y starts at 1, and then 1 < 2 is known "
              "without assuming writes follow reads, so the G-single shows anyway")),
    Case("checker-test", "wfr on", RW, ok_only(("ok", rw("ry1wx1wy2")), ("ok", rw("rx1ry1"))),
         models("serializable", wfr_keys=True, initial_by_key={"y": 1}),
         V(False, ["G-single-item"], {"consistent-view", "repeatable-read"})),
    Case("checker-test", "cyclic version order", RW, pairs((0, rw("wx1")), (0, rw("wx2")), (0, rw("rx1"))),
         {"sequential_keys": True, "wfr_keys": False}, V(False, ["cyclic-versions"], {"read-uncommitted"})),
    Case("lost-update-test", "lost update", RW, pairs((0, rw("rx0wx1")), (1, rw("rx0wx2"))), {"initial": 0},
         V(False, ["lost-update"], {"update-atomic", "cursor-stability"}),
         Diff(V(False, ["G-single-item-realtime", "G2-item", "lost-update"], {"update-atomic", "cursor-stability"}),
              "with 0 the initial value, both writes come after it, so each txn's read of 0 precedes the other's "
              "write: the G2-item Elle's lost-update note says lies behind every lost update (and, these txns "
              "being sequential, a stale read in real time)")),
    Case("scc-sort-bug-test", "cyclic versions from wfr and linearizable keys", RW,
         pairs((0, rw("rx1")), (0, rw("rx_")), (0, rw("rx4wx3")), (0, rw("wx4"))),
         models("strict-serializable", wfr_keys=True, linearizable_keys=True),
         V(False, ["G1c-realtime", "cyclic-versions"], {"read-uncommitted"}),
         Diff(V(False, ["G0-realtime", "cyclic-versions", "garbage-read"], {"read-uncommitted"}),
              "nobody wrote 1 (garbage-read); and T4 -> T3 is both ww and wr, so the cycle T3 -rt-> T4 -> T3 is "
              "G0-realtime, which implies the G1c-realtime Elle names (its explainer prefers wr)")),
    Case("cyclic-versions-bug-test", "no spurious version cycle", RW,
         events(("invoke", 0, []), ("ok", 0, []), ("invoke", 0, [["r", 1, None]]), ("invoke", 1, [["w", 1, 4]]),
                ("invoke", 2, []), ("ok", 0, [["r", 1, None]]), ("ok", 1, [["w", 1, 4]]), ("ok", 2, []),
                ("invoke", 0, []), ("ok", 0, []), ("invoke", 0, [["r", 1, None]]), ("ok", 0, [["r", 1, 4]])),
         models("serializable", linearizable_keys=True, wfr_keys=False), V(True)),
]

CASES = LIST_APPEND + RW_REGISTER


def run(case: Case) -> dict[str, Any]:
    history = case.history
    if callable(history):
        history = history()
    elif isinstance(history, str):
        history = edn(history)
    opts = dict(case.options)
    consistency = opts.pop("consistency", "strict-serializable")
    return check(history, case.workload, consistency=consistency, time_limit_s=120, **opts)


def expected(case: Case) -> Verdict:
    return case.diff.ours if case.diff else case.elle


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.workload}:{c.name}",
                                               marks=[pytest.mark.slow] if c.slow else []) for c in CASES])
def test_elle_test_history(case: Case) -> None:
    r = run(case)
    want = expected(case)
    assert r["valid"] == want.valid, (r["summary"], r["anomaly_types"])
    assert tuple(r["anomaly_types"]) == want.types, r["summary"]
    if want.not_ is not None and want.valid is not True:
        assert set(r["not"]) == set(want.not_), r["not"]


def test_every_difference_is_explained_and_real() -> None:
    for c in CASES:
        if c.diff is not None:
            assert c.diff.why and c.diff.ours != c.elle, c.name


def test_the_issue_example_is_g_single() -> None:
    """T2 read y before T1's unobserved-by-anyone-else append of y: T2 -rw-> T1 -ww-> T2 (issue 13)."""
    h = ok_only(("ok", la("ax1ay1")), ("ok", [["append", "x", 2], ["r", "y", []]]), ("ok", la("rx12")))
    r = check(h, "list-append")
    assert r["valid"] is False and r["anomaly_types"] == ["G-single-item"]
    assert [s["rel"] for s in r["anomalies"]["G-single-item"][0]["steps"]] in (["rw", "ww"], ["ww", "rw"])


def test_paper_example_through_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Elle's paper example (histories/paper-example.edn), checked from the EDN file as a Jepsen user would."""
    code = cli_main([str(DATA / "paper-example.edn"), "--consistency", "serializable"])
    out = capsys.readouterr().out
    import json

    r = json.loads(out)
    assert code == 1 and r["anomaly_types"] == ["G-single-item"] and r["not"] == ["consistent-view", "repeatable-read"]


# --- the consistency model lattice (consistency_model_test.clj) -----------------------------------------------


def test_all_anomalies_in_elle_order() -> None:
    elle_order = [
        "G-MSR", "G-SI", "G-SIb", "G-cursor", "G-monotonic", "G-single-item", "G-update", "G0", "G1b", "GSIa",
        "PL-1-cycle-exists", "PL-2-cycle-exists", "PL-2.99-cycle-exists", "PL-3-cycle-exists", "PL-SI-cycle-exists",
        "PL-SS-cycle-exists", "cyclic-versions", "dirty-update", "duplicate-elements", "future-read",
        "incompatible-order", "internal", "lost-update", "predicate-read-miss", "strong-PL-1-cycle-exists",
        "strong-PL-2-cycle-exists", "strong-session-PL-1-cycle-exists", "strong-session-PL-2-cycle-exists",
        "strong-session-serializable-cycle-exists", "strong-session-snapshot-isolation-cycle-exists",
        "strong-snapshot-isolation-cycle-exists", "G-nonadjacent-item", "G-single-item-process", "G1a", "G1c",
        "write-skew", "G-nonadjacent-item-process", "G-single", "G-single-item-realtime", "G1", "G2-item",
        "G-nonadjacent", "G-nonadjacent-item-realtime", "GSIb", "G2", "GSI", "G0-process", "G1c-process",
        "G-single-process", "G1-process", "G2-item-process", "G-nonadjacent-process", "G2-process", "G0-realtime",
        "G1c-realtime", "G-single-realtime", "G1-realtime", "G2-item-realtime", "G-nonadjacent-realtime",
        "G2-realtime",
    ]
    ours = [a for a in A.depth_order(A.DEPTH) if not a.startswith(("garbage", "no-serial"))]
    assert ours == elle_order


def test_anomalies_prohibited_by_read_committed() -> None:
    assert A.prohibited_by(["read-committed"]) - {"garbage-read"} == {
        "dirty-update", "G1a", "G1b", "G1c", "G1", "G0", "PL-1-cycle-exists", "PL-2-cycle-exists", "cyclic-versions",
        "duplicate-elements", "incompatible-order", "future-read"}
    with pytest.raises(ValueError, match="unknown consistency model"):
        A.prohibited_by(["stricct-snappshot-isolation"])


def _impossible(anomalies: list[str]) -> set[str]:
    return {A.friendly(m) for m in A.impossible_models(anomalies)}


def test_impossible_models() -> None:
    ss = "strict-serializable"  # Elle: strong-serializable
    assert _impossible(["G-single"]) == {"consistent-view", "forward-consistent-view", ss, "serializable",
                                         "snapshot-isolation", "strong-session-serializable",
                                         "strong-session-snapshot-isolation", "strong-snapshot-isolation",
                                         "update-serializable"}
    assert _impossible(["G-SI"]) == {"snapshot-isolation", "serializable", ss, "strong-session-serializable",
                                     "strong-session-snapshot-isolation", "strong-snapshot-isolation"}
    assert _impossible(["internal"]) == {"causal-cerone", "parallel-snapshot-isolation", "prefix", "read-atomic",
                                         "update-atomic", "serializable", "snapshot-isolation", ss,
                                         "strong-session-serializable", "strong-session-snapshot-isolation",
                                         "strong-snapshot-isolation"}
    assert len(_impossible(["dirty-update"])) == 22


def test_friendly_boundaries() -> None:
    assert A.boundary([]) == {"not": [], "also_not": []}
    assert A.boundary(["cyclic-versions"])["not"] == ["read-uncommitted"]
    assert A.boundary(["cyclic-versions"])["also_not"] == sorted([
        "read-committed", "snapshot-isolation", "causal-cerone", "consistent-view", "cursor-stability",
        "forward-consistent-view", "monotonic-atomic-view", "monotonic-snapshot-read", "monotonic-view",
        "parallel-snapshot-isolation", "prefix", "read-atomic", "repeatable-read", "update-atomic", "serializable",
        "strong-read-committed", "strong-read-uncommitted", "strict-serializable", "strong-session-read-committed",
        "strong-session-read-uncommitted", "strong-session-serializable", "strong-session-snapshot-isolation",
        "strong-snapshot-isolation", "update-serializable"])
    assert A.boundary(["internal"])["not"] == ["read-atomic"]
    assert A.boundary(["G1a"])["not"] == ["read-committed"]
    assert A.boundary(["G-single"]) == {"not": ["consistent-view"], "also_not": sorted(
        ["snapshot-isolation", "serializable", "strict-serializable", "strong-session-snapshot-isolation",
         "strong-snapshot-isolation", "strong-session-serializable", "forward-consistent-view",
         "update-serializable"])}
    assert A.boundary(["G2", "internal"])["not"] == ["read-atomic"]
    assert A.boundary(["lost-update"])["not"] == ["cursor-stability", "update-atomic"]
    assert A.boundary(["G-single-realtime"]) == {"not": ["strong-snapshot-isolation"],
                                                 "also_not": ["strict-serializable"]}


def test_weakest_and_strongest_models() -> None:
    canon = [A.CANONICAL.get(m, m) for m in ["repeatable-read", "read-committed", "sequential", "read-your-writes"]]
    assert {A.friendly(m) for m in A.weakest(canon)} == {"read-your-writes", "read-committed"}
    assert {A.friendly(m) for m in A.strongest(canon)} == {"repeatable-read", "sequential"}
    assert {A.friendly(m) for m in A.strongest(["serializable", "strong-serializable", "strict-serializable"])} == {
        "strict-serializable"}
    assert {A.friendly(m) for m in A.weakest([A.CANONICAL.get(m, m) for m in ["serializable", "read-atomic"]])} == {
        "read-atomic"}


def table() -> str:
    """The parity table, in Markdown: each transcribed Elle test, Elle's verdict against ours."""
    rows = ["| Elle test | case | Elle | ours | note |", "|---|---|---|---|---|"]

    def show(v: Verdict) -> str:
        return f"{v.valid}: {', '.join(v.types) or '—'}"

    for c in CASES:
        r = run(c)
        ours = f"{r['valid']}: {', '.join(r['anomaly_types']) or '—'}"
        rows.append(f"| {c.source} | {c.workload}: {c.name} | {show(c.elle)} | {ours} | "
                    f"{c.diff.why if c.diff else 'same'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
