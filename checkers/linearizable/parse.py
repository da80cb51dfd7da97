"""Turn histories into the search's Operations.

Rules:

- picluster history (DESIGN.md "History"): a completion belongs to the latest
  open invocation of the same process; nemesis ops are ignored; `fail` ops
  never happened and are dropped, except a cas that failed with error
  "cas-mismatch", which saw a value other than the expected one and becomes
  the read-only `cas-failed` op (as the harness checks it); an `info`
  completion, or none by the end, means the op may take effect any time
  after its call or never; a read (read-only op) of unknown outcome tells
  nothing and is dropped. An `info` completion under another f (Jepsen and
  Knossos record a crash as `:info :crash`) completes the open op as info.
  Ops whose f the model does not know (the harness's `status`, say) are left
  out, and a note says how many of each. The event order is the list order;
  `time` is kept only for drawing.
- porcupine-etcd: `INFO jepsen.util - <p> :<type> :<f> <value>` lines, one
  register. `:fail :cas [a b]` is a definite "compare failed" and becomes the
  read-only `cas-failed` op (legal only if the register does not hold a), as
  Porcupine's verdicts assume; `:fail :read` is dropped; `:info` is unknown.
- porcupine-kv: `{:process p, :type t, :f f, :key "k", :value v}` EDN maps;
  only invoke/ok occur.
- One numbering: an op read from a file is numbered by its (1-based) line,
  in its `index` and in every error ("FILE:LINE: ..."); an in-memory history
  keeps its ops' own "index" ("op N: ...").
- Values are JSON values made hashable: objects become JsonDict and arrays
  JsonList, tuples that print back as JSON ({"a": 1}, [1, 2]), so evidence
  and errors show what the history holds.
- Anything malformed raises ParseError naming the line; nothing is guessed,
  except that a jsonl file's last line cut short by a crash is skipped and
  noted, as harness/history.py does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from checkers.linearizable.models import Model, ModelError, Operation

FORMATS = ("jsonl", "porcupine-etcd", "porcupine-kv")


class JsonList(tuple):  # type: ignore[type-arg]
    """A JSON array, hashable; prints as JSON."""

    __slots__ = ()

    def __repr__(self) -> str:
        return json.dumps(plain(self))


class JsonDict(tuple):  # type: ignore[type-arg]
    """A JSON object as sorted (key, value) pairs, hashable; prints as JSON."""

    __slots__ = ()

    def __repr__(self) -> str:
        return json.dumps(plain(self))


def json_value(value: Any) -> Any:
    """A JSON value made hashable (see the module rules)."""
    if isinstance(value, list | tuple) and not isinstance(value, JsonList | JsonDict):
        return JsonList(json_value(v) for v in value)
    if isinstance(value, dict):
        return JsonDict(sorted((k, json_value(v)) for k, v in value.items()))
    return value


def plain(value: Any) -> Any:
    """Back to plain JSON: JsonDict -> dict, any other tuple -> list."""
    if isinstance(value, JsonDict):
        return {k: plain(v) for k, v in value}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


_OP_INDEX = re.compile(r"\s*\(op index [^)]*\)")


class ParseError(ValueError):
    """A history that cannot be read, with where it broke."""


class _Builder:
    """Pairs invocations with completions and emits Operations."""

    def __init__(self, model: Model, source: str | None = None) -> None:
        self.model = model
        self.source = source
        self.open: dict[Any, dict[str, Any]] = {}
        self.ops: list[Operation] = []
        self.left_out: dict[str, int] = {}
        self._skipped: set[Any] = set()  # processes whose open op the model does not know

    def invoke(self, pos: int, process: Any, f: str, key: Any, value: Any, **meta: Any) -> None:
        if process in self.open or process in self._skipped:
            raise ParseError(f"{_where(meta, pos, self.source)}: process {process} invoked while its previous op "
                             "was open")
        if f not in self.model.fs:
            self.left_out[f] = self.left_out.get(f, 0) + 1
            self._skipped.add(process)
            return
        self.open[process] = {"pos": pos, "f": f, "key": key, "value": value, **meta}

    def complete(self, pos: int, process: Any, type_: str, f: str, value: Any, **meta: Any) -> None:
        if process in self._skipped:
            self._skipped.discard(process)
            return
        inv = self.open.pop(process, None)
        if inv is None:
            raise ParseError(f"{_where(meta, pos, self.source)}: {type_} completion for process {process} with no "
                             "open invocation")
        if f != inv["f"]:
            if type_ != "info":
                raise ParseError(f"{_where(meta, pos, self.source)}: completion f {f!r} does not match invocation "
                                 f"f {inv['f']!r}")
            value = None  # a crash recorded under its own f: the op's outcome is unknown
        self._emit(inv, process, type_, value, pos, meta)

    def finish(self, notes: list[str] | None = None) -> list[Operation]:
        for process, inv in list(self.open.items()):
            self._emit(inv, process, "info", None, None, {})
        self.open.clear()
        if self.left_out and notes is not None:
            listed = ", ".join(f"{f} ({n})" for f, n in sorted(self.left_out.items()))
            total = sum(self.left_out.values())
            notes.append(f"left out {total} op(s) the {self.model.name} model does not know: {listed}")
        ordered = sorted(self.ops, key=lambda o: o.call)
        return [replace(op, id=i) for i, op in enumerate(ordered)]  # ids follow call order

    def _emit(self, inv: dict[str, Any], process: Any, type_: str, value: Any, pos: int | None,
              meta: dict[str, Any]) -> None:
        f = inv["f"]
        read_only = f in self.model.read_fs
        if type_ == "fail":
            if f == "cas" and (inv.get("fail_means_cas_failed") or meta.get("error") == "cas-mismatch") \
                    and "cas-failed" in self.model.fs:
                f, read_only = "cas-failed", True
            else:
                return
        if type_ == "info" and read_only:
            return
        info = type_ == "info"
        arg = json_value(inv["value"])
        out = json_value(value) if read_only and f != "cas-failed" else arg
        op = Operation(
            id=len(self.ops), process=process, f=f, key=json_value(inv["key"]), arg=arg,
            out=None if info else out, status="info" if info else "ok", call=inv["pos"],
            ret=None if info else pos, index=inv.get("index"), ret_index=None if info else meta.get("index"),
            time=inv.get("time"), ret_time=None if info else meta.get("time"),
        )
        try:
            self.model.validate(op)
        except ModelError as e:
            raise ParseError(f"{_where(inv, inv['pos'], self.source)}: {_OP_INDEX.sub('', str(e))}") from None
        self.ops.append(op)


def _where(meta: dict[str, Any], pos: int, source: str | None = None) -> str:
    if "line" in meta:
        return f"{source}:{meta['line']}" if source else f"line {meta['line']}"
    return f"op {meta.get('index', pos)}"


def from_history(history: Iterable[dict[str, Any]], model: Model, notes: list[str] | None = None,
                 lines: list[int] | None = None, source: str | None = None) -> list[Operation]:
    """Operations from a picluster history (a list of op dicts); `lines[i]` numbers history[i] (see the rules)."""
    b = _Builder(model, source)
    for pos, op in enumerate(history):
        line = {"line": lines[pos]} if lines is not None else {}
        if not isinstance(op, dict):
            raise ParseError(f"{_where(line, pos, source)}: expected an object, got {type(op).__name__}")
        process = op.get("process")
        if process == "nemesis":
            continue
        t, f = op.get("type"), op.get("f")
        if process is None or t not in ("invoke", "ok", "fail", "info") or not isinstance(f, str):
            raise ParseError(f"{_where({**line, 'index': op.get('index', pos)}, pos, source)}: needs process, type "
                             f"and f, got {json.dumps(op)[:200]}")
        index = lines[pos] if lines is not None else op.get("index", pos)
        meta = {**line, "index": index, "time": op.get("time")}
        if t == "invoke":
            b.invoke(pos, process, f, op.get("key"), op.get("value"), **meta)
        else:
            b.complete(pos, process, t, f, op.get("value"), error=op.get("error"), **meta)
    return b.finish(notes)


def read_jsonl(text: str, source: str = "history", notes: list[str] | None = None,
               lines: list[int] | None = None) -> list[dict[str, Any]]:
    """JSON lines; a last line cut short by a crash (no newline after it) is skipped and noted.

    `lines`, when given, receives each op's line number.
    """
    ops = []
    raw = text.splitlines()
    for n, line in enumerate(raw, start=1):
        if not line.strip():
            continue
        try:
            op = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(raw) and not text.endswith("\n"):
                if notes is not None:
                    notes.append(f"{source}:{n}: the last line is cut short (a crash mid-write); skipped")
                break
            raise ParseError(f"{source}:{n}: not JSON ({e.msg})") from None
        if not isinstance(op, dict):
            raise ParseError(f"{source}:{n}: expected a JSON object")
        ops.append(op)
        if lines is not None:
            lines.append(n)
    return ops


_ETCD = re.compile(r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+"
                   r"(nil|-?\d+|\[-?\d+ -?\d+\]|:timed-out)\s*$")


def _etcd_value(s: str) -> Any:
    if s in ("nil", ":timed-out"):
        return None
    if s.startswith("["):
        return [int(x) for x in s[1:-1].split()]
    return int(s)


def parse_porcupine_etcd(text: str, model: Model, source: str = "etcd") -> list[Operation]:
    b = _Builder(model, source)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _ETCD.match(line)
        if not m:
            raise ParseError(f"{source}:{n}: not a porcupine-etcd line: {line[:80]!r}")
        p, t, f, v = int(m[1]), m[2], m[3], _etcd_value(m[4])
        if t == "invoke":
            b.invoke(n, p, f, None, v, line=n, index=n, fail_means_cas_failed=True)
        else:
            b.complete(n, p, t, f, v, line=n, index=n)
    return b.finish()


_KV = re.compile(r'^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), '
                 r':key "([^"]*)", :value (nil|"[^"]*")\}\s*$')


def parse_porcupine_kv(text: str, model: Model, source: str = "kv") -> list[Operation]:
    b = _Builder(model, source)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _KV.match(line)
        if not m:
            raise ParseError(f"{source}:{n}: not a porcupine-kv line: {line[:80]!r}")
        p, t, f, k = int(m[1]), m[2], m[3], m[4]
        v = None if m[5] == "nil" else m[5][1:-1]
        if t == "invoke":
            b.invoke(n, p, f, k, v, line=n, index=n)
        else:
            b.complete(n, p, t, f, v, line=n, index=n)
    return b.finish()


def load(path: Path | str, fmt: str, model: Model, notes: list[str] | None = None) -> list[Operation]:
    """Read a history file in `fmt`; ParseError for a missing, unreadable or malformed file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ParseError(f"{path}: cannot read: {e}") from None
    if fmt == "jsonl":
        lines: list[int] = []
        history = read_jsonl(text, str(path), notes, lines)
        return from_history(history, model, notes, lines, str(path))
    if fmt == "porcupine-etcd":
        return parse_porcupine_etcd(text, model, str(path))
    if fmt == "porcupine-kv":
        return parse_porcupine_kv(text, model, str(path))
    raise ParseError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
