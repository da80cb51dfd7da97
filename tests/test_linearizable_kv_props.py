"""The kv model and both search engines against a brute-force oracle, on small and very concurrent histories.

Written to kill the mutants that change a verdict (issue 20): kv histories with a null (picluster)
or "" (Porcupine) initial value, mixed value types (strings, lists, numbers), many concurrent puts
(reduction 5 follows at most MAX_BASES of them), unknown outcomes; the model's contract (compile
agrees with step, read-only ops change nothing, total ops are legal everywhere, `reachable` never
rules out a state that appends can reach); the evidence (the longest prefix replays legally); and
effort limits (an unfinished search is "unknown", never valid).

The oracle keeps its own copy of the semantics and tries every order the real-time order allows,
memoized on (ops linearized, state).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.linearizable import check_operations
from checkers.linearizable.jit import JitSearch
from checkers.linearizable.models import (
    ILLEGAL,
    CasRegisterModel,
    KvModel,
    Model,
    Operation,
    RegisterModel,
)
from checkers.linearizable.search import MAX_BASES, Search

# Examples: hypothesis's default (100), or the mutation profile's (tests/conftest.py).
SETTINGS = settings(deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

PUT_VALUES: list[Any] = [1, 2, "a", "b", (1,), ""]
APPEND_VALUES: list[Any] = ["a", "b", 1]
READ_VALUES: list[Any] = [None, "", "a", "b", "ab", "ba", "aa", 1, 2, (1,), (1, 1), ("a",), (1, "a")]

# ---------------------------------------------------------------------------------------------------------------
# the oracle, with its own semantics


def oracle_step(state: Any, f: str, arg: Any, out: Any) -> tuple[bool, Any]:
    """kv: get/read must see the state; put/write replace it; append concatenates strings, extends lists,
    starts a string or a list on null, and is impossible on anything else."""
    if f in ("get", "read"):
        return state == out, state
    if f in ("put", "write"):
        return True, arg
    if state is None:
        return True, arg if isinstance(arg, str) else (arg,)
    if isinstance(state, str):
        return (True, state + arg) if isinstance(arg, str) else (False, state)
    if isinstance(state, tuple):
        return True, (*state, arg)
    return False, state


def oracle(ops: list[Operation], initial: Any) -> bool:
    """Is there an order of all ok ops and some unknown-outcome ops, respecting real time, legal from `initial`?"""
    n = len(ops)
    ok_mask = sum(1 << i for i, op in enumerate(ops) if not op.info)
    before = [0] * n  # ops that returned before op i was called: they must come first
    for i, y in enumerate(ops):
        for j, x in enumerate(ops):
            if not x.info and x.ret is not None and x.ret < y.call:
                before[i] |= 1 << j

    @cache
    def go(done: int, state: Any) -> bool:
        if done & ok_mask == ok_mask:
            return True
        for i, op in enumerate(ops):
            if done >> i & 1 or (before[i] & ok_mask) & ~done:
                continue
            legal, nxt = oracle_step(state, op.f, op.arg, op.out)
            if legal and go(done | 1 << i, nxt):
                return True
        return False

    return go(0, initial)


# ---------------------------------------------------------------------------------------------------------------
# histories: a sequential execution, its intervals widened (often all overlapping), maybe one read changed


@st.composite
def kv_histories(
    draw: st.DrawFn, max_ops: int = 8, min_ops: int = 1, put_weight: int = 0
) -> tuple[list[Operation], Any]:
    initial = draw(st.sampled_from([None, ""]))
    n = draw(st.integers(min_ops, max_ops))
    width = draw(st.sampled_from([1, 3, 8, 40]))  # how far an interval reaches around its point, in ops
    put_weight = put_weight or draw(st.integers(1, 4))
    state = initial
    raw = []
    for i in range(n):
        f = draw(st.sampled_from(["get", "append"] + ["put"] * put_weight))
        status = "ok" if f == "get" else draw(st.sampled_from(["ok", "ok", "info"]))
        arg: Any = None
        out: Any = None
        if f == "get":
            out = state
        else:
            arg = draw(st.sampled_from(PUT_VALUES if f == "put" else APPEND_VALUES))
            legal, nxt = oracle_step(state, f, arg, None)
            if not legal:
                status = "info"  # it cannot have happened here: unknown outcome, did not take effect
            if legal and (status == "ok" or draw(st.booleans())):
                state = nxt
        point = 10 * (i + 1)
        call = point - draw(st.integers(1, 10 * width))
        ret = point + draw(st.integers(1, 10 * width))
        raw.append((f, arg, out, status, call, ret))
    if draw(st.booleans()):
        gets = [i for i, r in enumerate(raw) if r[0] == "get"]
        if gets:
            i = draw(st.sampled_from(gets))
            f, arg, out, status, call, ret = raw[i]
            raw[i] = (f, arg, draw(st.sampled_from(READ_VALUES)), status, call, ret)
    ops = []
    for i, (f, arg, out, status, call, ret) in enumerate(raw):
        # distinct event positions: real order by time, op index breaking ties
        ops.append(Operation(id=i, process=i, f=f, key="k", arg=arg, out=out, status=status,
                             call=call * 64 + 2 * i, ret=None if status == "info" else ret * 64 + 2 * i + 1))
    return ops, initial


def engines(model: Model, ops: list[Operation]) -> dict[str, Any]:
    return {
        "dfs": Search(model, ops).run(10**7),
        "jit": JitSearch(model, ops).run(10**7),
        "check": check_operations(ops, model)["valid"],
    }


@SETTINGS
@given(kv_histories())
def test_kv_engines_match_the_oracle(case: tuple[list[Operation], Any]) -> None:
    ops, initial = case
    want = oracle(ops, initial)
    got = engines(KvModel(initial), ops)
    assert got == {"dfs": want, "jit": want, "check": want}, (initial, ops)


@settings(SETTINGS, max_examples=max(10, SETTINGS.max_examples // 3))
@given(kv_histories(min_ops=MAX_BASES + 1, max_ops=MAX_BASES + 2, put_weight=8))
def test_kv_with_many_concurrent_puts_matches_the_oracle(case: tuple[list[Operation], Any]) -> None:
    ops, initial = case
    want = oracle(ops, initial)
    assert engines(KvModel(initial), ops) == {"dfs": want, "jit": want, "check": want}, (initial, ops)


def op(i: int, f: str, call: int, ret: int | None, *, arg: Any = None, out: Any = None) -> Operation:
    return Operation(id=i, process=i, f=f, key="k", arg=arg, out=out, status="ok" if ret is not None else "info",
                     call=call, ret=ret)


@pytest.mark.parametrize("puts", [MAX_BASES - 1, MAX_BASES, MAX_BASES + 1, MAX_BASES + 3])
def test_a_read_of_the_last_of_many_concurrent_puts_is_linearizable(puts: int) -> None:
    """Reduction 5 may follow only MAX_BASES resets: with more called, it must give up, not prune."""
    ops = [op(0, "put", 0, 1, arg="x")]
    ops += [op(1 + i, "put", 10 + i, 100 + i, arg=f"v{i}") for i in range(puts)]
    ops.append(op(puts + 1, "get", 10 + puts, 200, out=f"v{puts - 1}"))
    ops.append(op(puts + 2, "append", 5, None, arg="z"))  # unknown outcome: makes the model's pruning apply
    assert engines(KvModel(), ops) == {"dfs": True, "jit": True, "check": True}
    assert oracle(ops, None) is True


def test_a_number_read_after_another_number_with_an_append_about_is_linearizable() -> None:
    """A state that appends cannot grow (a number) still satisfies a read of that same number.

    Found by mutation testing: `reachable` said a number could never reach a read of itself, so the search
    pruned put 5, put 7, get 7 as hopeless once an append had been called somewhere on the key."""
    ops = [op(0, "put", 0, 1, arg=5), op(1, "get", 2, 5, out=7), op(2, "put", 3, 4, arg=7),
           op(3, "append", 6, None, arg=1)]
    assert oracle(ops, None) is True
    assert engines(KvModel(), ops) == {"dfs": True, "jit": True, "check": True}


def test_null_initial_value_with_string_appends() -> None:
    ops = [op(0, "append", 0, 1, arg="a"), op(1, "get", 2, 3, out="a"), op(2, "append", 4, 5, arg="b"),
           op(3, "get", 6, 7, out="ab")]
    assert engines(KvModel(), ops) == {"dfs": True, "jit": True, "check": True}
    bad = [*ops[:3], op(3, "get", 6, 7, out="ba")]
    assert engines(KvModel(), bad) == {"dfs": False, "jit": False, "check": False}
    assert engines(KvModel(""), ops) == {"dfs": True, "jit": True, "check": True}


# ---------------------------------------------------------------------------------------------------------------
# the model's contract

STATES: list[Any] = [None, "", "a", "ab", 1, 2, (1,), (1, "a"), ()]


def model_ops(model: Model) -> list[Operation]:
    out = []
    values = [None, 1, 2, "a", (1,)]
    fs = sorted(model.fs)
    for f in fs:
        for status in ("ok", "info"):
            for v in values:
                arg: Any = v
                if f in ("cas", "cas-failed"):
                    arg = (v, 2)
                outv = v if f in model.read_fs else None
                out.append(Operation(id=0, process=0, f=f, key=None, arg=arg, out=outv, status=status,
                                     call=0, ret=None if status == "info" else 1))
    return out


@pytest.mark.parametrize("model", [RegisterModel(), CasRegisterModel(), KvModel(), KvModel("")],
                         ids=["register", "cas-register", "kv", "kv-strings"])
def test_models_keep_their_contract(model: Model) -> None:
    for o in model_ops(model):
        fn = model.compile(o)
        for s in STATES:
            legal, nxt = model.step(s, o)
            compiled = fn(s)
            assert (compiled is not ILLEGAL) is legal, (o, s)
            assert nxt == (compiled if legal else s), (o, s)
            if model.read_only(o) and legal:
                assert nxt == s, (o, s)
            if model.total(o):
                assert legal, (o, s)
            reset = model.resets_to(o)
            if reset is not ILLEGAL:
                assert legal and nxt == reset, (o, s)
            stronger = model.stronger(o)
            if stronger is not None:  # the stronger op can do whatever this one does
                f, arg = stronger
                st_op = Operation(id=1, process=1, f=f, key=None, arg=arg, out=None, status="info", call=0, ret=None)
                if legal and nxt != s:
                    assert model.compile(st_op)(s) == nxt, (o, s)


def grown(state: Any, depth: int) -> set[Any]:
    """Every state appends can make from `state` in at most `depth` steps (oracle semantics)."""
    out, frontier = {state}, {state}
    for _ in range(depth):
        nxt = set()
        for s in frontier:
            for v in APPEND_VALUES:
                legal, t = oracle_step(s, "append", v, None)
                if legal:
                    nxt.add(t)
        out |= nxt
        frontier = nxt
    return out


@pytest.mark.parametrize("initial", [None, ""])
def test_kv_reachable_never_rules_out_a_reachable_read(initial: Any) -> None:
    m = KvModel(initial)
    for s in STATES:
        reach = grown(s, 3)
        for want in READ_VALUES:
            target = Operation(id=0, process=0, f="get", key="k", arg=None, out=want, status="ok", call=0, ret=1)
            if want in reach:
                assert m.reachable(s, target), (s, want)
                assert m.reach_fn(target)(s), (s, want)
            write = Operation(id=0, process=0, f="put", key="k", arg=want, out=None, status="ok", call=0, ret=1)
            assert m.reachable(s, write)  # only reads are ever ruled out
    appends = [o for o in model_ops(m) if o.f == "append"]
    assert appends and all(m.monotone(o) for o in appends)
    assert not any(m.monotone(o) for o in model_ops(m) if o.f != "append")


def test_kv_reachable_rules_out_what_no_append_can_make() -> None:
    m = KvModel()
    get = Operation(id=0, process=0, f="get", key="k", arg=None, out="ab", status="ok", call=0, ret=1)
    assert m.reachable("a", get) and not m.reachable("b", get) and not m.reachable((1,), get)
    assert not m.reach_fn(get)("b") and m.reach_fn(get)("a")
    lst = Operation(id=0, process=0, f="get", key="k", arg=None, out=(1, 2), status="ok", call=0, ret=1)
    assert m.reachable((1,), lst) and not m.reachable((2,), lst) and not m.reachable("a", lst)
    assert not m.reachable(3, lst) and m.reachable(None, lst)


# ---------------------------------------------------------------------------------------------------------------
# evidence: the longest prefix is a legal start of a linearization


def replay(model: Model, ops: list[Operation], prefix: list[int]) -> Any:
    """Apply the prefix from the initial state, checking legality and real-time order; the final state."""
    state = model.init()
    done: set[int] = set()
    for i in prefix:
        assert i not in done
        for j, x in enumerate(ops):
            if j not in done and j != i and not x.info and x.ret is not None:
                assert not x.ret < ops[i].call, (prefix, i, j)
        legal, state = model.step(state, ops[i])
        assert legal, (prefix, i)
        done.add(i)
    return state


@SETTINGS
@given(kv_histories(max_ops=8))
def test_the_longest_prefix_replays_legally(case: tuple[list[Operation], Any]) -> None:
    ops, initial = case
    m = KvModel(initial)
    for search in (Search(m, ops), JitSearch(m, ops)):
        verdict = search.run(10**7)
        prefix = search.progress.best_prefix
        assert replay(m, ops, prefix) == search.progress.best_state, (ops, prefix)
        if verdict is False:
            assert search.stuck_ops(), ops
            assert all(i not in prefix for i in search.stuck_ops())


# ---------------------------------------------------------------------------------------------------------------
# effort limits: an unfinished search is unknown, never valid


def hard_ops(n: int) -> list[Operation]:
    """n concurrent puts, then a read of a value none of them wrote: not linearizable, expensive to refute."""
    ops = [op(i, "put", i, 100 + i, arg=i) for i in range(n)]
    ops += [op(n + i, "append", n + i, None, arg=i) for i in range(n)]
    ops.append(op(2 * n, "get", 10, 200, out="never"))
    return ops


def test_budgets_give_unknown_never_valid() -> None:
    m = KvModel()
    small, big = hard_ops(5), hard_ops(9)  # refuted in 34 steps; more resets than reduction 5 follows
    assert check_operations(small, m)["valid"] is False
    r = check_operations(small, m, step_limit=20)
    assert r["valid"] == "unknown" and "step limit of 20" in r["keys"]["k"]["reason"]
    r = check_operations(big, m, time_limit_s=0.0)
    assert r["valid"] == "unknown" and "time limit" in r["keys"]["k"]["reason"]
    r = check_operations(big, m, memory_limit_mb=0)
    assert r["valid"] == "unknown" and "memory limit" in r["keys"]["k"]["reason"]
    s = Search(m, small)
    assert s.run(5) is None and s.progress.steps == 5
    assert s.run(10**6) is False
    j = JitSearch(m, small)
    assert j.run(1) is None
    assert j.run(10**6) is False


def test_models_describe_ops_for_the_evidence() -> None:
    cas = CasRegisterModel()

    def o(f: str, arg: Any, status: str = "ok", out: Any = None) -> Operation:
        return Operation(id=0, process=0, f=f, key=None, arg=arg, out=out, status=status, call=0,
                         ret=None if status == "info" else 1)

    assert cas.describe(o("cas", (None, 2))) == "cas null→2"
    assert cas.describe(o("cas", (1, 2), "info")) == "cas 1→2 (outcome unknown)"
    assert cas.describe(o("cas-failed", (1, 3))) == "cas 1→3 failed"
    assert cas.describe(o("write", 4, "info")) == "write 4 (outcome unknown)"
    assert cas.describe(o("write", None)) == "write null"
    assert cas.describe(o("read", None, out=5)) == "read → 5"
    assert KvModel().describe(o("append", "a")) == "append 'a'"
    with pytest.raises(ValueError, match="register: unknown f 'cas'"):
        RegisterModel().step(None, o("cas", (1, 2)))


class Counter(Model):
    """A model that defines only `step`: the base class's compile, hints and equality serve it."""

    name = "counter"
    fs = frozenset({"inc", "read"})
    read_fs = frozenset({"read"})

    def init(self) -> Any:
        return 0

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        return (state == op.out, state) if op.f == "read" else (True, state + 1)


def test_a_model_with_only_step_gets_working_defaults() -> None:
    m = Counter()
    inc = op(0, "inc", 0, 3)
    read = Operation(id=1, process=1, f="read", key="k", arg=None, out=1, status="ok", call=1, ret=2)
    assert m.compile(inc)(0) == 1 and m.compile(read)(0) is ILLEGAL and m.compile(read)(1) == 1
    assert m.reachable(5, read) and m.reach_fn(read)(7) and not m.monotone(inc) and m.equal(2, 2)
    assert not m.equal(2, 3) and repr(ILLEGAL) == "ILLEGAL"
    assert check_operations([inc, read], m)["valid"] is True
    late = Operation(id=1, process=1, f="read", key="k", arg=None, out=0, status="ok", call=4, ret=5)
    assert check_operations([inc, late], m)["valid"] is False


def test_a_dropped_frontier_search_stops_and_reports_its_size() -> None:
    ops = hard_ops(5)
    j = JitSearch(KvModel(), ops)
    assert j.run(3) is None and j.memory_bytes() > 0
    j.drop_cache()
    assert j.run(10**6) is None  # given up: it never decides after its memo is dropped


def test_memory_estimates_count_every_memo_entry_at_least_its_overhead() -> None:
    from checkers.linearizable.search import CACHE_ENTRY_BYTES

    s = Search(KvModel(), hard_ops(9))
    assert s.memory_bytes() == 0  # nothing memoized before the first step
    assert s.run(3000) is None
    entries = len(s.cache) + s.entries
    assert entries > 100 and s.memory_bytes() >= entries * (CACHE_ENTRY_BYTES + 16)
    j = JitSearch(KvModel(), hard_ops(9))
    assert j.run(3000) is None
    assert j.progress.cache_entries > 0
    assert j.memory_bytes() >= 2 * j.progress.cache_entries * CACHE_ENTRY_BYTES


def test_cas_needs_a_pair() -> None:
    m = CasRegisterModel()
    for f in ("cas", "cas-failed"):
        with pytest.raises(ValueError, match="cas needs"):
            m.validate(Operation(id=0, process=0, f=f, key=None, arg=5, out=None, status="ok", call=0, ret=1))
        m.validate(Operation(id=0, process=0, f=f, key=None, arg=(1, 2), out=None, status="ok", call=0, ret=1))


def test_reduction_5_counts_unknown_outcome_puts_as_possible_states() -> None:
    """An unknown-outcome put may be what a later read sees: pruning must keep its value as a base."""
    ops = [op(0, "put", 0, 1, arg="x"), op(1, "put", 2, None, arg="v"), op(2, "get", 3, 4, out="v"),
           op(3, "append", 5, 6, arg="z")]
    assert oracle(ops, None) is True
    assert engines(KvModel(), ops) == {"dfs": True, "jit": True, "check": True}
    many = [op(0, "put", 0, 1, arg="x")]
    many += [op(1 + i, "put", 2 + i, None, arg=f"v{i}") for i in range(MAX_BASES + 1)]
    many += [op(MAX_BASES + 2, "get", 20, 21, out=f"v{MAX_BASES}"), op(MAX_BASES + 3, "append", 22, 23, arg="z")]
    assert engines(KvModel(), many) == {"dfs": True, "jit": True, "check": True}


def test_stuck_ops_are_listed_in_call_order() -> None:
    ops = [op(0, "put", 0, 1, arg="a"), op(1, "get", 5, 9, out="q"), op(2, "put", 3, 8, arg="b"),
           op(3, "append", 2, None, arg="c")]
    s = Search(KvModel(), ops)
    assert s.run(10**6) is False
    stuck = s.stuck_ops()
    assert stuck == sorted(stuck, key=lambda i: ops[i].call) and len(stuck) >= 2


def test_model_errors_name_the_problem() -> None:
    from checkers.linearizable.models import make_model

    with pytest.raises(ValueError, match="unknown model 'nope'; known: cas-register, kv, register"):
        make_model("nope")
    cas_op = Operation(id=0, process=0, f="cas", key=None, arg=(1, 2), out=None, status="ok", call=0, ret=1)
    with pytest.raises(ValueError, match="register: unknown f 'cas'"):
        RegisterModel().compile(cas_op)
    with pytest.raises(ValueError, match="kv: unknown f 'cas'"):
        KvModel().compile(cas_op)
    write = Operation(id=0, process=0, f="write", key=None, arg=(1, 2), out=None, status="ok", call=0, ret=1)
    assert CasRegisterModel().describe(write) == "write (1, 2)"
    kv = KvModel()
    for f in ("put", "write"):
        assert kv.total(Operation(id=0, process=0, f=f, key="k", arg=1, out=None, status="info", call=0, ret=None))


def test_kv_puts_and_writes_reset_appends_do_not() -> None:
    kv = KvModel()
    for f in ("put", "write"):
        o = Operation(id=0, process=0, f=f, key="k", arg="v", out=None, status="ok", call=0, ret=1)
        assert kv.resets_to(o) == "v"
    a = Operation(id=0, process=0, f="append", key="k", arg="v", out=None, status="ok", call=0, ret=1)
    assert kv.resets_to(a) is ILLEGAL


def test_dominance_skips_only_nodes_that_used_more_unknown_ops() -> None:
    """A failed node prunes a later one with the same ok ops and state only if the later one used a superset
    of its unknown-outcome ops; one that used fewer still has them to spend (found by mutating _dominated)."""
    ops = [op(0, "append", -1792, None, arg="b"), op(1, "put", -1086, None, arg="b"), op(2, "put", -572, None, arg="a"),
           op(3, "get", 134, 4615, out="a"), op(4, "get", 2696, 4169, out="ab")]
    assert oracle(ops, None) is True
    assert engines(KvModel(), ops) == {"dfs": True, "jit": True, "check": True}


def test_reduction_5_gives_up_after_its_lookahead_of_reachable_reads() -> None:
    """Four reads ahead, each reachable: the node is not hopeless (a linearizable history stays so)."""
    ops = [op(0, "put", 0, 10, arg="a")] + [op(1 + i, "get", 11 + i, 20 + i, out="a") for i in range(5)]
    ops.append(op(6, "append", 30, None, arg="z"))
    assert engines(KvModel(), ops) == {"dfs": True, "jit": True, "check": True}


def test_two_unknown_appends_of_one_value_may_both_take_effect_at_different_times() -> None:
    """Reduction 4 tries interchangeable unknown-outcome ops earliest-called first: the later copy only once the
    earlier one is linearized, never the other way round (the later one is called too late for the first read)."""
    ops = [op(0, "append", 0, None, arg="x"), op(1, "get", 10, 20, out="x"), op(2, "append", 50, None, arg="x"),
           op(3, "get", 70, 80, out="xx")]
    assert oracle(ops, None) is True
    assert engines(KvModel(), ops) == {"dfs": True, "jit": True, "check": True}


def test_a_read_forced_into_a_node_dominated_by_a_failed_one_fails_there() -> None:
    """A legal read taken with no alternatives (reduction 2) whose child is dominated in the memo: the node fails
    at once, in the same slice. Found by a random search (about 1 in 2000 free kv histories reaches this branch)."""
    ops = [op(0, "put", 5, 7, arg=""), op(1, "put", 3, None, arg="b"), op(2, "get", 4, 8, out="b"),
           op(3, "put", 1, None, arg="a"), op(4, "get", 6, 9, out="aa"), op(5, "append", 0, 2, arg="b")]
    assert oracle(ops, "") is False
    assert engines(KvModel(""), ops) == {"dfs": False, "jit": False, "check": False}


def test_the_memo_size_counts_every_entry_once() -> None:
    """progress.cache_entries (the memory estimate's count) is one per node entered, in both kinds of memo."""
    plain = [op(0, "put", 0, 1, arg="a"), op(1, "put", 2, 3, arg="b"), op(2, "get", 4, 5, out="b"),
             op(3, "get", 6, 7, out="b")]  # no unknown outcome: the set of (ops, state), two choices, two forced reads
    s = Search(KvModel(), plain)
    assert s.run(100) is True and s.progress.cache_entries == len(s.cache) == 4
    unknown = [op(0, "put", 0, 1, arg="a"), op(1, "append", 2, None, arg="b"), op(2, "get", 3, 4, out="ab"),
               op(3, "get", 5, 6, out="ab")]  # the dominance memo: put, the append, two forced reads
    s = Search(KvModel(), unknown)
    assert s.run(100) is True and s.progress.cache_entries == sum(map(len, s.memo.values())) == 4


@SETTINGS
@given(kv_histories(max_ops=6))
def test_a_search_run_one_step_at_a_time_is_the_same_search(case: tuple[list[Operation], Any]) -> None:
    """Slices change nothing: same verdict, same step count, same evidence; each slice takes exactly its steps,
    leaves the longest prefix reached so far as evidence, and a decided search stays decided without stepping."""
    ops, initial = case
    whole = Search(KvModel(initial), ops)
    verdict = whole.run(10**7)
    sliced = Search(KvModel(initial), ops)
    result, deepest = sliced.result, 0
    for steps in range(whole.progress.steps):
        if result is not None:
            break
        result = sliced.run(1)
        assert sliced.progress.steps == steps + 1
        deepest = max(deepest, len(sliced.stack))
        assert len(sliced.progress.best_prefix) == deepest, (ops, sliced.progress.best_prefix)
    assert result == verdict and sliced.progress.steps == whole.progress.steps, (initial, ops)
    assert sliced.run(1) == verdict and sliced.progress.steps == whole.progress.steps
    assert (sliced.progress.best_prefix, sliced.progress.best_state) == \
        (whole.progress.best_prefix, whole.progress.best_state)
