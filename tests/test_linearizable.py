"""The linearizability checker on small hand-made histories: semantics, budgets, evidence, HTML, CLI.

Every rule is shown with a history it must accept and one it must reject.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checkers.linearizable import check_history, check_operations, render_html
from checkers.linearizable.__main__ import main as cli_main
from checkers.linearizable.models import ILLEGAL, CasRegisterModel, KvModel, Operation, make_model
from checkers.linearizable.parse import ParseError, from_history, parse_porcupine_etcd, parse_porcupine_kv
from checkers.linearizable.search import Search


def H(*events: tuple[Any, ...]) -> list[dict[str, Any]]:
    """(process, type, f, value[, key]) tuples -> a picluster history with indices and times."""
    out = []
    for i, ev in enumerate(events):
        p, t, f, v, *rest = ev
        op: dict[str, Any] = {"index": i, "time": i * 1000, "process": p, "type": t, "f": f}
        if rest:
            op["key"] = rest[0]
        op["value"] = v
        out.append(op)
    return out


# --- register semantics -----------------------------------------------------------------------------------


def test_sequential_write_then_read_is_linearizable() -> None:
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert check_history(h, "register")["valid"] is True


def test_stale_read_after_completed_write_is_rejected() -> None:
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", None))
    r = check_history(h, "register")
    assert r["valid"] is False
    assert "not linearizable" in r["summary"]


def test_concurrent_read_may_see_either_value() -> None:
    for seen in (None, 1):
        h = H((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", seen), (0, "ok", "write", 1))
        assert check_history(h, "register")["valid"] is True


def test_read_of_a_value_never_written_is_rejected() -> None:
    h = H((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 2), (0, "ok", "write", 1))
    assert check_history(h, "register")["valid"] is False


def test_real_time_order_is_respected() -> None:
    # write 1 finishes, then write 2 finishes, then a read sees 1: stale.
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (0, "invoke", "write", 2), (0, "ok", "write", 2),
          (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert check_history(h, "register")["valid"] is False
    # the same read overlapping the second write is fine.
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (0, "invoke", "write", 2),
          (1, "invoke", "read", None), (1, "ok", "read", 1), (0, "ok", "write", 2))
    assert check_history(h, "register")["valid"] is True


def test_info_write_may_take_effect_later_or_never() -> None:
    later = H((0, "invoke", "write", 1), (0, "info", "write", 1), (1, "invoke", "read", None),
              (1, "ok", "read", None), (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert check_history(later, "register")["valid"] is True
    never = H((0, "invoke", "write", 1), (0, "info", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", None))
    assert check_history(never, "register")["valid"] is True
    no_completion = H((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert check_history(no_completion, "register")["valid"] is True
    # but it cannot take effect before it was invoked
    before = H((1, "invoke", "read", None), (1, "ok", "read", 1), (0, "invoke", "write", 1), (0, "info", "write", 1))
    assert check_history(before, "register")["valid"] is False


def test_info_write_cannot_take_effect_twice() -> None:
    h = H((0, "invoke", "write", 1), (0, "info", "write", 1), (1, "invoke", "write", 2), (1, "ok", "write", 2),
          (1, "invoke", "read", None), (1, "ok", "read", 1), (1, "invoke", "read", None), (1, "ok", "read", 2))
    assert check_history(h, "register")["valid"] is False


def test_failed_write_never_happened() -> None:
    h = H((0, "invoke", "write", 1), (0, "fail", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert check_history(h, "register")["valid"] is False
    h = H((0, "invoke", "write", 1), (0, "fail", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", None))
    assert check_history(h, "register")["valid"] is True


def test_failed_or_unknown_read_tells_nothing() -> None:
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (1, "invoke", "read", None), (1, "fail", "read", 7),
          (2, "invoke", "read", None), (2, "info", "read", 9))
    assert check_history(h, "register")["valid"] is True


def test_nemesis_ops_are_ignored() -> None:
    h = H((0, "invoke", "write", 1), ("nemesis", "info", "start-partition", {"n1": ["n2"]}), (0, "ok", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert check_history(h, "register")["valid"] is True


# --- cas-register ---------------------------------------------------------------------------------------


def test_cas_succeeds_only_on_expected_value() -> None:
    ok = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (0, "invoke", "cas", [1, 2]), (0, "ok", "cas", [1, 2]),
           (1, "invoke", "read", None), (1, "ok", "read", 2))
    assert check_history(ok)["valid"] is True
    bad = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (0, "invoke", "cas", [3, 2]), (0, "ok", "cas", [3, 2]))
    assert check_history(bad)["valid"] is False
    on_null = H((0, "invoke", "cas", [None, 2]), (0, "ok", "cas", [None, 2]))
    assert check_history(on_null)["valid"] is True


def test_failed_cas_is_dropped_in_picluster_histories() -> None:
    # The register holds 1, so a cas 1->2 that "failed" is odd, but fail means it did not happen: no verdict on it.
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (0, "invoke", "cas", [1, 2]), (0, "fail", "cas", [1, 2]),
          (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert check_history(h)["valid"] is True
    h[-1]["value"] = 2
    assert check_history(h)["valid"] is False


def test_info_cas_acts_only_if_the_register_holds_expected() -> None:
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (1, "invoke", "cas", [1, 5]), (1, "info", "cas", None),
          (2, "invoke", "read", None), (2, "ok", "read", 5))
    assert check_history(h)["valid"] is True
    h = H((0, "invoke", "write", 3), (0, "ok", "write", 3), (1, "invoke", "cas", [1, 5]), (1, "info", "cas", None),
          (2, "invoke", "read", None), (2, "ok", "read", 5))
    assert check_history(h)["valid"] is False


def test_register_model_rejects_cas_as_unknown_op() -> None:
    r = check_history(H((0, "invoke", "cas", [1, 2]), (0, "ok", "cas", [1, 2])), "register")
    assert r["valid"] == "unknown"
    assert "cas" in r["summary"]


def test_malformed_history_is_unknown_not_a_crash() -> None:
    r = check_history([{"index": 0, "process": 0, "type": "ok", "f": "read", "value": 1}])
    assert r["valid"] == "unknown"
    assert "no open invocation" in r["summary"]
    with pytest.raises(ParseError):
        from_history(H((0, "invoke", "read", None), (0, "invoke", "read", None)), make_model("register"))


# --- kv and partitioning ---------------------------------------------------------------------------------


def test_kv_keys_are_checked_independently() -> None:
    h = H((0, "invoke", "put", "a", "x"), (0, "ok", "put", "a", "x"), (1, "invoke", "put", "b", "y"),
          (1, "ok", "put", "b", "y"), (2, "invoke", "get", None, "x"), (2, "ok", "get", "a", "x"),
          (3, "invoke", "get", None, "y"), (3, "ok", "get", "x", "y"))
    r = check_history(h, "kv")
    assert r["valid"] is False
    assert r["keys"]["x"]["valid"] is True
    assert r["keys"]["y"]["valid"] is False
    assert r["failures"] == ["y"]


def test_kv_append_builds_lists_and_order_matters() -> None:
    h = H((0, "invoke", "append", 1, "k"), (0, "ok", "append", 1, "k"), (0, "invoke", "append", 2, "k"),
          (0, "ok", "append", 2, "k"), (1, "invoke", "get", None, "k"), (1, "ok", "get", [1, 2], "k"))
    assert check_history(h, "kv")["valid"] is True
    h[-1]["value"] = [2, 1]
    assert check_history(h, "kv")["valid"] is False


def test_porcupine_kv_strings_concatenate() -> None:
    text = "\n".join([
        '{:process 0, :type :invoke, :f :append, :key "1", :value "ab"}',
        '{:process 1, :type :invoke, :f :append, :key "1", :value "cd"}',
        '{:process 0, :type :ok, :f :append, :key "1", :value "ab"}',
        '{:process 1, :type :ok, :f :append, :key "1", :value "cd"}',
        '{:process 2, :type :invoke, :f :get, :key "1", :value nil}',
        '{:process 2, :type :ok, :f :get, :key "1", :value "cdab"}',
    ])
    m = KvModel(initial="")
    assert check_operations(parse_porcupine_kv(text, m), m)["valid"] is True
    bad = text.replace('"cdab"', '"cd"')
    assert check_operations(parse_porcupine_kv(bad, m), m)["valid"] is False


def test_reachability_pruning_respects_puts() -> None:
    # get sees "p" + "z": only possible through the concurrent put; pruning must not cut it.
    text = "\n".join([
        '{:process 0, :type :invoke, :f :append, :key "k", :value "a"}',
        '{:process 0, :type :ok, :f :append, :key "k", :value "a"}',
        '{:process 1, :type :invoke, :f :put, :key "k", :value "p"}',
        '{:process 2, :type :invoke, :f :append, :key "k", :value "z"}',
        '{:process 3, :type :invoke, :f :get, :key "k", :value nil}',
        '{:process 3, :type :ok, :f :get, :key "k", :value "pz"}',
        '{:process 1, :type :ok, :f :put, :key "k", :value "p"}',
        '{:process 2, :type :ok, :f :append, :key "k", :value "z"}',
    ])
    m = KvModel(initial="")
    assert check_operations(parse_porcupine_kv(text, m), m)["valid"] is True
    bad = text.replace('"pz"', '"az"').replace(':f :put, :key "k", :value "p"', ':f :append, :key "k", :value "p"')
    assert check_operations(parse_porcupine_kv(bad, m), m)["valid"] is True  # a, z: legal by appends alone
    worse = text.replace('"pz"', '"zp"')
    assert check_operations(parse_porcupine_kv(worse, m), m)["valid"] is False


# --- Porcupine etcd format: a failed cas is a definite "compare failed" --------------------------------------


def _etcd(lines: list[str]) -> str:
    return "\n".join(f"INFO  jepsen.util - {ln}" for ln in lines)


def test_porcupine_etcd_failed_cas_constrains_the_state() -> None:
    m = CasRegisterModel()
    ok = _etcd(["0\t:invoke\t:write\t1", "0\t:ok\t:write\t1", "1\t:invoke\t:cas\t[2 3]", "1\t:fail\t:cas\t[2 3]"])
    assert check_operations(parse_porcupine_etcd(ok, m), m)["valid"] is True
    bad = ok.replace("[2 3]", "[1 3]")
    assert check_operations(parse_porcupine_etcd(bad, m), m)["valid"] is False
    on_empty = _etcd(["1\t:invoke\t:cas\t[2 3]", "1\t:fail\t:cas\t[2 3]"])
    assert check_operations(parse_porcupine_etcd(on_empty, m), m)["valid"] is True
    timed_out = _etcd(["0\t:invoke\t:read\tnil", "0\t:fail\t:read\t:timed-out", "1\t:invoke\t:write\t2",
                       "1\t:info\t:write\t:timed-out", "2\t:invoke\t:read\tnil", "2\t:ok\t:read\t2"])
    assert check_operations(parse_porcupine_etcd(timed_out, m), m)["valid"] is True


def test_porcupine_parsers_reject_malformed_lines() -> None:
    m = CasRegisterModel()
    with pytest.raises(ParseError, match="line"):
        parse_porcupine_etcd("INFO jepsen.util - x :invoke :read nil", m)
    with pytest.raises(ParseError):
        parse_porcupine_kv('{:process 1, :type :invoke, :f :frob, :key "1", :value nil}', KvModel(""))


# --- the search's reductions, one by one -----------------------------------------------------------------------


def _op(i: int, f: str, arg: Any, out: Any, call: int, ret: int | None, status: str = "ok") -> Operation:
    return Operation(id=i, process=i, f=f, key=None, arg=arg, out=out, status=status, call=call, ret=ret, index=i)


def test_greedy_read_does_not_lose_a_linearization() -> None:
    # read 0 is legal at once (register null? no: reads 1 after the write); the other read needs the write first.
    m = make_model("register")
    ops = [_op(0, "write", 1, 1, 0, 5), _op(1, "read", None, None, 1, 6), _op(2, "read", None, 1, 2, 7)]
    assert Search(m, ops).run(10_000) is True
    ops = [_op(0, "write", 1, 1, 0, 3), _op(1, "read", None, None, 4, 6), _op(2, "read", None, 1, 2, 7)]
    assert Search(m, ops).run(10_000) is False


def test_interchangeable_info_ops_are_tried_once_but_both_usable() -> None:
    m = make_model("register")
    w = [_op(i, "write", 1, None, i, None, "info") for i in range(3)]
    reads = [_op(3, "read", None, 1, 5, 6), _op(4, "write", 2, 2, 7, 8), _op(5, "read", None, 1, 9, 10)]
    assert Search(m, w + reads).run(10_000) is True  # two of the three unknown writes of 1 are needed
    w1 = [_op(0, "write", 1, None, 0, None, "info")]
    reads2 = [_op(1, "read", None, 1, 5, 6), _op(2, "write", 2, 2, 7, 8), _op(3, "read", None, 1, 9, 10)]
    assert Search(m, w1 + reads2).run(10_000) is False  # one unknown write cannot take effect twice


def test_compiled_steps_agree_with_step() -> None:
    m = CasRegisterModel()
    cases = [_op(0, "read", None, 1, 0, 1), _op(1, "write", 2, 2, 0, 1), _op(2, "cas", (1, 2), (1, 2), 0, 1),
             _op(3, "cas", (1, 2), None, 0, None, "info"), _op(4, "cas-failed", (1, 2), (1, 2), 0, 1)]
    for op in cases:
        for state in (None, 1, 2):
            ok, nxt = m.step(state, op)
            got = m.compile(op)(state)
            assert (got is not ILLEGAL) == ok and (not ok or got == nxt), (op.f, state)


# --- budgets ------------------------------------------------------------------------------------------------


def _hard_history(n_writers: int = 12) -> list[dict[str, Any]]:
    """Many concurrent unknown cas ops then an impossible read: forces a long search."""
    evs: list[tuple[Any, ...]] = []
    for p in range(n_writers):
        evs.append((p, "invoke", "cas", [p % 4, (p + 1) % 4]))
    for p in range(n_writers):
        evs.append((p, "info", "cas", None))
    for j in range(6):
        evs.append((100 + j, "invoke", "write", j % 4))
    for j in range(6):
        evs.append((100 + j, "ok", "write", j % 4))
    evs += [(200, "invoke", "read", None), (200, "ok", "read", 99)]
    return H(*evs)


def test_step_limit_gives_unknown_with_progress() -> None:
    m = CasRegisterModel()
    ops = from_history(_hard_history(), m)
    r = check_operations(ops, m, step_limit=50)
    assert r["valid"] == "unknown"
    key = r["keys"]["null"]
    assert "step limit" in key["reason"] and key["steps"] == 50
    assert "unknown" in r["summary"]
    assert check_operations(ops, m)["valid"] is False  # given room it decides


def test_time_limit_zero_gives_unknown_never_a_pass() -> None:
    r = check_history(_hard_history(), time_limit_s=0.0)
    assert r["valid"] in ("unknown", False)  # a tiny history may decide within its first slice
    big = _hard_history(16)
    r = check_history(big, time_limit_s=0.0)
    assert r["valid"] != True  # noqa: E712 - must never be a pass


def test_memory_limit_gives_unknown() -> None:
    r = check_history(_hard_history(16), memory_limit_mb=0)
    assert r["valid"] == "unknown"
    assert "memory limit" in r["keys"]["null"]["reason"]


def test_stop_on_failure_leaves_other_keys_unknown() -> None:
    evs: list[tuple[Any, ...]] = [(0, "invoke", "write", 1, "bad"), (0, "ok", "write", 1, "bad"),
                                  (1, "invoke", "read", None, "bad"), (1, "ok", "read", 2, "bad")]
    for p in range(12):  # a big valid key after it
        evs += [(10 + p, "invoke", "write", p, "good")]
    for p in range(12):
        evs += [(10 + p, "ok", "write", p, "good")]
    h = H(*evs)
    m = make_model("register")
    ops = from_history(h, m)
    r = check_operations(ops, m)
    assert r["valid"] is False and r["keys"]["bad"]["valid"] is False
    assert r["keys"]["good"]["valid"] in (True, "unknown")
    r = check_operations(ops, m, stop_on_failure=False)
    assert r["keys"]["good"]["valid"] is True
    r = check_operations(ops, m, after_failure_steps=0)
    assert r["keys"]["good"]["valid"] == "unknown" and "stopped once key bad" in r["keys"]["good"]["reason"]
    r = check_history(h, "register")  # other keys still get a cheap look
    assert r["valid"] is False and r["keys"]["good"]["valid"] is True


# --- evidence and HTML ----------------------------------------------------------------------------------------


def _stale() -> list[dict[str, Any]]:
    return H((0, "invoke", "write", 1), (0, "ok", "write", 1), (0, "invoke", "write", 2), (0, "ok", "write", 2),
             (1, "invoke", "read", None), (1, "ok", "read", 1))


def test_evidence_names_prefix_state_and_stuck_op() -> None:
    r = check_history(_stale(), "register")
    k = r["keys"]["null"]
    assert [p["value"] for p in k["prefix"]] == [1, 2]
    assert k["state"] == "2"
    assert [s["index"] for s in k["stuck"]] == [4]
    assert k["stuck"][0]["legal_here"] is False
    assert "read → 1" in r["summary"] and "state 2" in r["summary"]


def test_render_html_is_self_contained_and_highlights() -> None:
    h = _stale()
    h[-1]["value"] = "<script>alert(1)</script>"
    r = check_history(h, "register")
    html = render_html(r)
    assert "<svg" in html and "</svg>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "#f08a8a" in html  # the stuck op's colour
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    valid_html = render_html(check_history(H((0, "invoke", "write", 1), (0, "ok", "write", 1)), "register"))
    assert "linearizable" in valid_html and "<svg" not in valid_html


def test_result_is_json_serializable() -> None:
    r = check_history(_stale(), "register")
    json.loads(json.dumps(r))


# --- CLI ------------------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, ops: list[dict[str, Any]]) -> str:
    p = tmp_path / name
    p.write_text("".join(json.dumps(o) + "\n" for o in ops))
    return str(p)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, "good.jsonl", H((0, "invoke", "write", 1), (0, "ok", "write", 1)))
    assert cli_main([good, "--model", "register"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    bad = _write(tmp_path, "bad.jsonl", _stale())
    html = tmp_path / "bad.html"
    assert cli_main([bad, "--model", "register", "--html", str(html)]) == 1
    assert "<svg" in html.read_text()
    capsys.readouterr()
    hard = _write(tmp_path, "hard.jsonl", _hard_history(16))
    assert cli_main([hard, "--time-limit", "0", "--memory-limit", "0"]) == 2
    capsys.readouterr()
    assert cli_main([str(tmp_path / "missing.jsonl")]) == 3
    assert "error:" in capsys.readouterr().err
    (tmp_path / "junk.jsonl").write_text("{not json\n")
    assert cli_main([str(tmp_path / "junk.jsonl")]) == 3
    torn = tmp_path / "torn.jsonl"
    torn.write_text(Path(good).read_text() + '{"index": 2, "proc')
    assert cli_main([str(torn), "--model", "register"]) == 0
    assert "cut short" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main([good, "--model", "nope"])
    assert exc.value.code == 3
    assert cli_main([good, "--format", "porcupine-etcd"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_frontier_engine_gives_the_same_evidence_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    from checkers.linearizable.jit import JitSearch

    m = make_model("register")
    ops = from_history(_stale(), m)
    s = JitSearch(m, ops)
    assert s.run(1000) is False
    assert [ops[i].arg for i in s.progress.best_prefix] == [1, 2]
    assert s.progress.best_state == 2
    assert [ops[i].index for i in s.stuck_ops()] == [4]
    import checkers.linearizable.portfolio as portfolio

    monkeypatch.setattr(portfolio, "WARMUP_STEPS", 0)
    monkeypatch.setattr(portfolio, "JIT_SHARE", 1)
    r = check_operations(ops, m, stop_on_failure=False)
    assert r["valid"] is False and r["keys"]["null"]["stuck"][0]["index"] == 4


def test_frontier_engine_resumes_across_slices() -> None:
    from checkers.linearizable.jit import JitSearch

    m = CasRegisterModel()
    ops = from_history(_hard_history(10), m)
    s = JitSearch(m, ops)
    results = []
    while (r := s.run(3)) is None:
        results.append(r)
    assert r is False and len(results) > 3
    assert s.run(3) is False  # stays decided


def test_model_hints_are_conservative() -> None:
    kv = KvModel(initial="")
    get = _op(0, "get", None, "ab", 0, 1)
    assert kv.reachable("a", get) and kv.reachable("", get) and not kv.reachable("b", get)
    assert kv.reach_fn(get)("a") and not kv.reach_fn(get)("ba")
    assert kv.resets_to(_op(1, "put", "x", "x", 0, 1)) == "x"
    assert kv.resets_to(_op(2, "append", "x", "x", 0, 1)) is ILLEGAL
    cas = CasRegisterModel()
    unknown_cas = _op(3, "cas", (1, 2), None, 0, None, "info")
    assert cas.stronger(unknown_cas) == ("write", 2)
    write2 = _op(4, "write", 2, None, 0, None, "info")
    for s in (None, 1, 2, 3):  # the write can do whatever the cas does (or the cas does nothing)
        after = cas.compile(unknown_cas)(s)
        assert after == s or after == cas.compile(write2)(s)
    assert cas.stronger(_op(5, "cas", (1, 2), (1, 2), 0, 1)) is None  # a known cas must swap: no stand-in


def test_picluster_cas_failed_op_is_a_read_only_constraint() -> None:
    """workloads/raft.py turns a cas that failed on a mismatch into an ok "cas-failed" op."""
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1), (1, "invoke", "cas-failed", [3, 2]),
          (1, "ok", "cas-failed", [3, 2]))
    assert check_history(h)["valid"] is True
    h[2]["value"] = h[3]["value"] = [1, 2]
    r = check_history(h)
    assert r["valid"] is False and "failed" in r["summary"]
