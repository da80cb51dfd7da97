"""The linearizability checker's input handling: crash completions, one numbering, empty histories,
JSON values in evidence, and the harness's own histories through the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checkers.linearizable import check_history
from checkers.linearizable.__main__ import main as cli_main
from workloads.raft import cas_mismatches_as_reads


def H(*events: tuple[Any, ...]) -> list[dict[str, Any]]:
    """(process, type, f, value[, key]) -> ops with index = position, as the harness writes them."""
    out = []
    for i, (p, t, f, v, *key) in enumerate(events):
        op: dict[str, Any] = {"index": i, "time": i * 1000, "process": p, "type": t, "f": f, "value": v}
        if key:
            op["key"] = key[0]
        out.append(op)
    return out


def write(tmp_path: Path, name: str, ops: list[dict[str, Any]]) -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(op) + "\n" for op in ops))
    return p


def test_a_crash_completion_under_another_f_completes_the_op_as_unknown() -> None:
    # Knossos/Jepsen: {:type :info, :f :crash}. The write may have happened: a later read of 1 is fine...
    h = H((0, "invoke", "write", 1), (0, "info", "crash", None), (1, "invoke", "read", None), (1, "ok", "read", 1))
    r = check_history(h, "register")
    assert r["valid"] is True, r["summary"]
    # ...and it is kept, not dropped: without it a read of 1 would be impossible.
    assert check_history(h[2:], "register")["valid"] is False
    # An ok completion under another f is still an error.
    bad = H((0, "invoke", "write", 1), (0, "ok", "read", 1))
    assert "does not match" in check_history(bad, "register")["summary"]


def test_errors_name_the_file_and_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orphan = write(tmp_path, "orphan.jsonl", H((0, "invoke", "write", 1), (0, "ok", "write", 1), (1, "ok", "read", 1)))
    assert cli_main([str(orphan), "--model", "register"]) == 3
    err = capsys.readouterr().err
    assert f"{orphan}:3: ok completion for process 1 with no open invocation" in err
    arity = write(tmp_path, "arity.jsonl", H((0, "invoke", "write", 1), (0, "ok", "write", 1),
                                             (0, "invoke", "cas", [1]), (0, "ok", "cas", [1])))
    assert cli_main([str(arity), "--model", "cas-register"]) == 3
    err = capsys.readouterr().err
    assert f"{arity}:3: cas needs [expected, new]" in err and "op index" not in err
    # In-memory histories keep their own index.
    r = check_history(H((0, "invoke", "write", 1), (1, "ok", "read", 1)), "register")
    assert "op 1:" in r["summary"]


def test_op_numbers_in_a_files_result_are_its_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ops = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 2))
    path = tmp_path / "stale.jsonl"
    path.write_text("\n" + "".join(json.dumps(op) + "\n" for op in ops))  # a blank first line shifts lines by one
    assert cli_main([str(path), "--model", "register"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert r["numbering"] == "line"
    assert "read → 2 by process 1 (line 4)" in r["summary"]
    assert [s["index"] for s in r["evidence"]["cannot_come_next"]] == [4]


def test_an_empty_history_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_history([], "register")["valid"] == "unknown"
    nemesis_only = [{"index": 0, "process": "nemesis", "type": "info", "f": "start-partition", "value": None}]
    r = check_history(nemesis_only, "register")
    assert r["valid"] == "unknown" and "no operations" in r["summary"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli_main([str(empty), "--model", "register"]) == 2
    assert json.loads(capsys.readouterr().out)["valid"] == "unknown"


def test_object_values_print_as_json() -> None:
    h = H((0, "invoke", "write", {"a": 1, "b": [2, 3]}), (0, "ok", "write", {"a": 1, "b": [2, 3]}),
          (1, "invoke", "read", None), (1, "ok", "read", {"a": 2}))
    r = check_history(h, "register")
    assert r["valid"] is False
    assert 'read → {"a": 2}' in r["summary"] and '{"a": 1, "b": [2, 3]}' in r["summary"], r["summary"]
    assert "(('a'" not in json.dumps(r)
    assert r["evidence"]["cannot_come_next"][0]["value"] == {"a": 2}
    h[3]["value"] = {"b": [2, 3], "a": 1}  # the same object, keys in another order
    assert check_history(h, "register")["valid"] is True


def harness_like_history() -> list[dict[str, Any]]:
    """What the raft register workload records: register ops per key, status polls, faults, and cas ops that
    failed on a mismatch (a failed compare is information the harness uses)."""
    return H(
        ("nemesis", "info", "start-partition", {"n1": ["n2"]}),
        (0, "invoke", "write", 1, "r1"), (0, "ok", "write", 1, "r1"),
        (1, "invoke", "status", None), (1, "ok", "status", {"node": "n1", "term": 2, "role": "leader"}),
        (2, "invoke", "cas", [3, 4], "r1"), (2, "fail", "cas", [3, 4], "r1"),
        (3, "invoke", "cas", [1, 2], "r1"), (3, "info", "cas", [1, 2], "r1"),
        (4, "invoke", "read", None, "r2"), (4, "info", "read", None, "r2"),
        (5, "invoke", "read", None, "r1"), (5, "ok", "read", 2, "r1"),
        ("nemesis", "info", "stop-partition", None),
    )


def test_a_harness_history_checks_as_the_harness_checks_it(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    h = harness_like_history()
    h[6]["error"] = "cas-mismatch"
    harness = check_history(cas_mismatches_as_reads(h), "cas-register")
    path = write(tmp_path, "history.jsonl", h)
    assert cli_main([str(path), "--model", "cas-register"]) == 0
    out = capsys.readouterr()
    r = json.loads(out.out)
    assert r["valid"] is harness["valid"] is True
    assert r["ops"] == harness["ops"] == 4  # write, cas-failed, unknown cas, read: the info read tells nothing
    assert "left out 1 op(s) the cas-register model does not know: status (1)" in out.err
    assert r["notes"] and "status (1)" in r["summary"]


def test_a_failed_cas_mismatch_constrains_the_state() -> None:
    h = H((0, "invoke", "write", 3), (0, "ok", "write", 3), (1, "invoke", "cas", [3, 4]), (1, "fail", "cas", [3, 4]))
    h[3]["error"] = "cas-mismatch"
    assert check_history(h, "cas-register")["valid"] is False  # the register held 3: the compare could not fail
    h[3]["error"] = "timeout-before-send"
    assert check_history(h, "cas-register")["valid"] is True  # any other failure: it just did not happen


@pytest.mark.sim
def test_the_cli_on_a_real_harness_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A simulated raft run's own history.jsonl: the CLI gives the harness's verdict and op count."""
    from base.spec import TestSpec
    from harness.session import check, execute, prepare

    spec = prepare(TestSpec(system="raft", workload="register", nemesis=("partition",), backend="sim", node_count=3,
                            concurrency=3, time_limit_s=8.0, seed=7), tmp_path)
    execute(spec)
    check(spec.path)
    harness = json.loads((spec.path / "results.json").read_text())["checkers"]["linearizable"]
    assert cli_main([str(spec.path / "history.jsonl"), "--model", "cas-register"]) in (0, 1)
    r = json.loads(capsys.readouterr().out)
    assert r["valid"] == harness["valid"] and r["ops"] == harness["ops"] > 0
    assert any("status" in n for n in r["notes"])
