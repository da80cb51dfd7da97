"""Sequential specifications (models) the linearizability search checks against.

Rules every model keeps:

- A model is pure: `init()` gives the start state, `step(state, op)` gives
  `(legal, next_state)` and never mutates anything; states are hashable and
  two states are equal exactly when `==` says so (the search memoizes on
  `hash`/`==`, which is what `equal` means here).
- `compile(op)` returns a one-argument step function for speed: it maps a
  state to the next state, or to `ILLEGAL`. It must agree with `step`.
- `read_only(op)` is True only for ops that never change the state in any
  state (reads, observed constraints). The search linearizes a legal
  read-only candidate greedily, which is sound only under this rule.
- `total(op)` is True for ops legal in every state; the search skips an
  unknown-outcome op that would change nothing only when it is total (the
  models here make a write's or cas's unknown form total).
- Optional hints, each safe to leave at its default: `monotone`/`reachable`/
  `resets_to` (ops that only grow the state, whether a read can still be
  reached, blind writes: used to cut dead branches early) and `stronger`
  (the class of unknown-outcome ops that can do whatever this one can).
- `partition(ops)` splits ops into independent sub-histories (P-compositionality);
  the default is by the op's key, which holds for any model whose keys are
  independent registers.

Values arrive normalized (JSON lists become tuples), so they are hashable.
To add a model (set, counter, queue): subclass Model, define fs, read_fs,
init and step (and compile for speed), and register it in MODELS.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

State = Hashable
Step = Callable[[Any], Any]


class _Illegal:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ILLEGAL"


ILLEGAL: Any = _Illegal()
"""What a compiled step returns when the op cannot take effect in that state."""


class ModelError(ValueError):
    """An op the model does not understand (unknown f, malformed value)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation as the search sees it.

    `call`/`ret` are positions in the event order (only their order matters);
    `ret` is None for an op of unknown outcome, which stays open to the end.
    `arg` is what was invoked with, `out` what the completion reported.
    """

    id: int
    process: Any
    f: str
    key: Any
    arg: Any
    out: Any
    status: str  # "ok" or "info"
    call: int
    ret: int | None
    index: int | None = None
    ret_index: int | None = None
    time: int | None = None
    ret_time: int | None = None

    @property
    def info(self) -> bool:
        return self.status == "info"


def normalize(value: Any) -> Any:
    """JSON values made hashable: lists become tuples, recursively; dicts become sorted item tuples."""
    if isinstance(value, list):
        return tuple(normalize(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, normalize(v)) for k, v in value.items()))
    return value


def show(value: Any) -> str:
    return "null" if value is None else repr(value)


class Model:
    """Base class: subclasses define `fs`, `read_fs`, `init` and `step`."""

    name = "model"
    fs: frozenset[str] = frozenset()
    read_fs: frozenset[str] = frozenset()

    def init(self) -> State:
        return None

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        raise NotImplementedError

    def equal(self, a: State, b: State) -> bool:
        return a == b

    def compile(self, op: Operation) -> Step:
        step = self.step

        def fn(state: Any) -> Any:
            ok, nxt = step(state, op)
            return nxt if ok else ILLEGAL

        return fn

    def read_only(self, op: Operation) -> bool:
        return op.f in self.read_fs

    def total(self, op: Operation) -> bool:
        return op.f not in self.read_fs and op.info

    def monotone(self, op: Operation) -> bool:
        """True if the op only grows the state (see `reachable`); False is always safe."""
        return False

    def reachable(self, state: State, target: Operation) -> bool:
        """False only if no sequence of `monotone` ops from `state` makes `target` legal; True is always safe."""
        return True

    def reach_fn(self, op: Operation) -> Callable[[Any], bool]:
        """`reachable` for one target op, precompiled for speed."""
        reachable = self.reachable
        return lambda s: reachable(s, op)

    def stronger(self, op: Operation) -> Any:
        """For an unknown-outcome op: the (f, arg) class of ops that can do whatever it can, or None."""
        return None

    def resets_to(self, op: Operation) -> Any:
        """The state the op leaves whatever the state was (a blind write), else ILLEGAL."""
        return ILLEGAL

    def validate(self, op: Operation) -> None:
        if op.f not in self.fs:
            raise ModelError(f"model {self.name!r} has no operation {op.f!r} (op index {op.index})")

    def partition(self, ops: Iterable[Operation]) -> dict[Any, list[Operation]]:
        parts: dict[Any, list[Operation]] = {}
        for op in ops:
            parts.setdefault(_key_id(op.key), []).append(op)
        return parts

    def describe(self, op: Operation) -> str:
        if op.f in self.read_fs:
            return f"{op.f} → {show(op.out)}"
        return f"{op.f} {show(op.arg)}" + (" (outcome unknown)" if op.info else "")

    def describe_state(self, state: State) -> str:
        return show(state)


def _key_id(key: Any) -> Any:
    return normalize(key)


class RegisterModel(Model):
    """One register, starting null: read returns the value; write sets it."""

    name = "register"
    fs = frozenset({"read", "write"})
    read_fs = frozenset({"read"})

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        if op.f == "read":
            return state == op.out, state
        if op.f == "write":
            return True, op.arg
        raise ModelError(f"register: unknown f {op.f!r}")

    def compile(self, op: Operation) -> Step:
        if op.f == "read":
            want = op.out
            return lambda s: s if s == want else ILLEGAL
        if op.f == "write":
            v = op.arg
            return lambda s: v
        raise ModelError(f"register: unknown f {op.f!r}")


class CasRegisterModel(RegisterModel):
    """A register with compare-and-set.

    cas carries (expected, new): ok → legal only if the register holds
    `expected`, then it holds `new`; unknown outcome → if it holds `expected`
    it becomes `new`, otherwise nothing changes (always legal). `cas-failed`
    is a definite "compare failed" answer (Porcupine's etcd `:fail :cas`):
    legal only if the register does not hold `expected`; nothing changes.
    """

    name = "cas-register"
    fs = frozenset({"read", "write", "cas", "cas-failed"})
    read_fs = frozenset({"read", "cas-failed"})

    def validate(self, op: Operation) -> None:
        super().validate(op)
        if op.f in ("cas", "cas-failed") and not (isinstance(op.arg, tuple) and len(op.arg) == 2):
            raise ModelError(f"cas needs [expected, new], got {op.arg!r} (op index {op.index})")

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        if op.f == "cas":
            a, b = op.arg
            if state == a:
                return True, b
            return op.info, state
        if op.f == "cas-failed":
            return state != op.arg[0], state
        return super().step(state, op)

    def compile(self, op: Operation) -> Step:
        if op.f == "cas":
            a, b = op.arg
            if op.info:
                return lambda s: b if s == a else s
            return lambda s: b if s == a else ILLEGAL
        if op.f == "cas-failed":
            a = op.arg[0]
            return lambda s: s if s != a else ILLEGAL
        return super().compile(op)

    def stronger(self, op: Operation) -> Any:
        if op.f == "cas" and op.info:
            return ("write", op.arg[1])  # a cas to v does nothing or what a write of v does
        return None

    def describe(self, op: Operation) -> str:
        if op.f == "cas" and isinstance(op.arg, tuple):
            a, b = op.arg
            return f"cas {show(a)}→{show(b)}" + (" (outcome unknown)" if op.info else "")
        if op.f == "cas-failed" and isinstance(op.arg, tuple):
            return f"cas {show(op.arg[0])}→{show(op.arg[1])} failed"
        return super().describe(op)


class KvModel(Model):
    """Independent keys under get / put / append; checked one key at a time.

    A key starts as `initial` (null for picluster histories, "" for
    Porcupine's kv files). append concatenates: a string onto a string, an
    element onto a list (tuple); appending to null starts a string or a list.
    `read`/`write` are accepted as aliases of get/put.
    """

    name = "kv"
    fs = frozenset({"get", "put", "append", "read", "write"})
    read_fs = frozenset({"get", "read"})

    def __init__(self, initial: Any = None) -> None:
        self.initial = initial

    def init(self) -> State:
        return self.initial

    @staticmethod
    def _append(s: Any, v: Any) -> Any:
        if isinstance(s, str) and isinstance(v, str):
            return s + v
        if s is None:
            return v if isinstance(v, str) else (v,)
        if isinstance(s, tuple):
            return (*s, v)
        return ILLEGAL

    def step(self, state: State, op: Operation) -> tuple[bool, State]:
        nxt = self.compile(op)(state)
        return (nxt is not ILLEGAL), (state if nxt is ILLEGAL else nxt)

    def compile(self, op: Operation) -> Step:
        if op.f in ("get", "read"):
            want = op.out
            return lambda s: s if s == want else ILLEGAL
        if op.f in ("put", "write"):
            v = op.arg
            return lambda s: v
        if op.f == "append":
            v, app = op.arg, self._append
            return lambda s: app(s, v)
        raise ModelError(f"kv: unknown f {op.f!r}")

    def monotone(self, op: Operation) -> bool:
        return op.f == "append"

    def resets_to(self, op: Operation) -> Any:
        return op.arg if op.f in ("put", "write") else ILLEGAL

    def reach_fn(self, op: Operation) -> Callable[[Any], bool]:
        want, slow = op.out, super().reach_fn(op)
        if op.f in self.read_fs and isinstance(want, str):
            starts = want.startswith
            return lambda s: starts(s) if s.__class__ is str else slow(s)
        return slow

    def reachable(self, state: State, target: Operation) -> bool:
        if target.f not in self.read_fs:
            return True
        want = target.out
        if isinstance(state, str) and isinstance(want, str):
            return want.startswith(state)
        if isinstance(state, tuple) and isinstance(want, tuple):
            return want[: len(state)] == state
        return state is None or state == want  # anything else appends cannot grow into `want`

    def total(self, op: Operation) -> bool:
        return op.info and op.f in ("put", "write")  # append may meet a non-appendable value


MODELS: dict[str, Callable[[], Model]] = {
    "register": RegisterModel,
    "cas-register": CasRegisterModel,
    "kv": KvModel,
}


def make_model(name: str) -> Model:
    try:
        return MODELS[name]()
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
