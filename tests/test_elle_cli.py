"""`python -m checkers.elle`: our JSONL and Jepsen's EDN, exit codes, one clear error line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from checkers.elle import check
from checkers.elle.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def txn(p: Any, typ: str, mops: list[list[Any]]) -> dict[str, Any]:
    return {"process": p, "type": typ, "f": "txn", "value": mops}


def jsonl(tmp_path: Path, name: str, ops: list[dict[str, Any]], tail: str = "") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps({"index": i, **op}) + "\n" for i, op in enumerate(ops)) + tail)
    return p


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any] | None, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, (json.loads(out.out) if out.out.strip() else None), out.err


SERIAL = [txn(0, "invoke", [["append", "x", 1]]), txn(0, "ok", [["append", "x", 1]]),
          txn(1, "invoke", [["r", "x", None]]), txn(1, "ok", [["r", "x", [1]]])]
STALE = [txn(0, "invoke", [["append", "x", 1]]), txn(0, "ok", [["append", "x", 1]]),
         txn(1, "invoke", [["r", "x", None]]), txn(1, "ok", [["r", "x", []]]),
         txn(2, "invoke", [["r", "x", None]]), txn(2, "ok", [["r", "x", [1]]])]


def test_exit_codes_follow_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, r, _ = run(capsys, str(jsonl(tmp_path, "ok.jsonl", SERIAL)))
    assert code == 0 and r is not None and r["valid"] is True
    code, r, _ = run(capsys, str(jsonl(tmp_path, "stale.jsonl", STALE)), "--consistency", "strict-serializable")
    assert code == 1 and r is not None and r["anomaly_types"] == ["G-single-item-realtime"]
    code, r, _ = run(capsys, str(jsonl(tmp_path, "stale2.jsonl", STALE)), "--consistency", "serializable")
    assert code == 0
    code, r, _ = run(capsys, str(jsonl(tmp_path, "one.jsonl", SERIAL[:2])))
    assert code == 2 and r is not None and r["anomaly_types"] == ["empty-transaction-graph"]
    html = tmp_path / "stale.html"
    assert main([str(tmp_path / "stale.jsonl"), "--html", str(html)]) == 1
    assert "<svg" in html.read_text()


@pytest.mark.parametrize(("ops", "tail", "args", "message"), [
    (SERIAL, "{not json\n", [], ":5: not JSON"),
    ([*SERIAL, txn(2, "invoke", [["inc", "x", 1]]), txn(2, "ok", [["inc", "x", 1]])], "", [],
     "line 5: micro-op 'inc' is not one of list-append's (append, r)"),
    ([*SERIAL, txn(2, "invoke", [["r", "x", None]]), txn(2, "ok", [["r", "x", 3]])], "", [],
     "line 6: a list-append read must return a list, got 3"),
    ([*SERIAL, txn(5, "ok", [["r", "x", [1]]])], "", [], "line 5: ok completion for process 5 with no open invocation"),
    ([*SERIAL, txn(2, "invoke", [["append", "x", 1]]), txn(2, "ok", [["append", "x", 1]])], "", [],
     "value 1 appended to key 'x' by both T0 and T4"),
    (SERIAL, "", ["--consistency", "strict-serializable,eventually-right"],
     "unknown consistency model 'eventually-right'"),
    (SERIAL, "", ["--anomalies", "G9"], "unknown anomaly 'G9'"),
    (SERIAL, "", ["--initial", "0"], "--initial only apply to --workload rw-register"),
])
def test_bad_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], ops: list[dict[str, Any]],
                                     tail: str, args: list[str], message: str) -> None:
    path = jsonl(tmp_path, "bad.jsonl", ops, tail)
    code, r, err = run(capsys, str(path), *args)
    assert code == 3 and r is None
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_a_missing_file_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "nope.jsonl"))
    assert code == 3 and "cannot read" in err
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "nope.jsonl"), "--workload", "bank"])
    assert exc.value.code == 3


def test_a_torn_last_line_is_noted_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = jsonl(tmp_path, "torn.jsonl", SERIAL, tail='{"index": 4, "proc')
    code, _, err = run(capsys, str(path))
    assert code == 0 and "cut short" in err


def test_in_memory_errors_name_the_op_index() -> None:
    h = [{"index": 7, **txn(0, "invoke", [["append", "x", 1]])}, {"index": 9, **txn(0, "ok", [["w", "x", 1]])}]
    r = check(h, "list-append")
    assert r["valid"] == "unknown" and r["error"].startswith("op 9: micro-op 'w'")


JEPSEN_EDN = """\
; a Jepsen history.edn, as Jepsen writes it
{:type :invoke, :f :txn, :value [[:append :x 1] [:r :y nil]], :time 10, :process 0, :index 0}
{:type :invoke, :f :txn, :value [[:append :y 1] [:r :x nil]], :time 11, :process 1, :index 1}
#jepsen.history.Op{:index 2, :time 12, :type :info, :process :nemesis, :f :start-partition,
                   :value [:isolated {"n1" #{"n2"}}]}
{:type :ok, :f :txn, :value [[:append :x 1] [:r :y []]], :time 20, :process 0, :index 3}
{:type :ok, :f :txn, :value [[:append :y 1] [:r :x []]], :time 21, :process 1, :index 4}
{:type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]], :time 30, :process 2, :index 5}
{:type :ok, :f :txn, :value [[:r :x [1]] [:r :y [1]]], :time 31, :process 2, :index 6}
{:type :invoke, :f :txn, :value [[:append :x 2]], :time 40, :process 3, :index 7}
{:type :info, :f :crash, :value nil, :time 41, :process 3, :index 8, :error "indeterminate"}
"""


def test_a_jepsen_edn_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.edn"
    path.write_text(JEPSEN_EDN)
    code, r, _ = run(capsys, str(path), "--consistency", "serializable")
    assert code == 1 and r is not None
    assert r["anomaly_types"] == ["G2-item"] and r["not"] == ["repeatable-read"]  # write skew
    assert r["stats"]["info"] == 1  # the crashed append may have happened
    code, r, _ = run(capsys, str(path), "--consistency", "snapshot-isolation")
    assert code == 0 and r is not None and set(r["other_anomalies"]) == {"G2-item"}
    bad = tmp_path / "bad.edn"
    bad.write_text(JEPSEN_EDN.replace("[[:r :x [1]] [:r :y [1]]]", "[[:r :x [1]] [:r :y [1]]"))
    code, _, err = run(capsys, str(bad))
    assert code == 3 and f"{bad}: line 9: unexpected '}}'" in err, err


def test_rw_register_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ops = [txn(0, "invoke", [["r", "x", None], ["w", "x", 1]]), txn(0, "ok", [["r", "x", 0], ["w", "x", 1]]),
           txn(1, "invoke", [["r", "x", None], ["w", "x", 2]]), txn(1, "ok", [["r", "x", 0], ["w", "x", 2]])]
    path = jsonl(tmp_path, "lost.jsonl", ops)
    code, r, _ = run(capsys, str(path), "--workload", "rw-register")
    assert code == 1 and r is not None and "garbage-read" in r["anomaly_types"]  # x was never 0...
    code, r, _ = run(capsys, str(path), "--workload", "rw-register", "--initial-key", "x=0")
    assert code == 1 and r is not None and "garbage-read" not in r["anomaly_types"]  # ...unless it starts at 0
    assert "lost-update" in r["anomaly_types"] and "G2-item" in r["anomaly_types"]
    code, r, _ = run(capsys, str(path), "--workload", "rw-register", "--initial", "0", "--consistency",
                     "read-committed")
    assert code == 0


def test_the_module_runs_as_a_program(tmp_path: Path) -> None:
    path = jsonl(tmp_path, "stale.jsonl", STALE)
    out = subprocess.run([sys.executable, "-m", "checkers.elle", str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and json.loads(out.stdout)["valid"] is False


@pytest.mark.sim
def test_a_harness_list_append_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A simulated raft list-append run's own history: the CLI agrees with the harness's Elle verdict."""
    from base.spec import TestSpec
    from harness.session import check as harness_check
    from harness.session import execute, prepare

    spec = prepare(TestSpec(system="raft", workload="list-append", nemesis=("partition",), backend="sim",
                            node_count=3, concurrency=3, time_limit_s=8.0, seed=7), tmp_path)
    execute(spec)
    harness_check(spec.path)
    harness = json.loads((spec.path / "results.json").read_text())["checkers"]["elle"]
    code, r, _ = run(capsys, str(spec.path / "history.jsonl"))
    assert r is not None and r["valid"] == harness["valid"] is True and code == 0
    assert r["stats"]["txns"] == harness["stats"]["txns"] > 0
