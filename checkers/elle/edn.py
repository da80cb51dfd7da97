"""Read Jepsen's EDN histories (history.edn, Elle's test histories) as picluster ops.

Rules:

- EDN as Jepsen writes it: maps, vectors, lists, sets, strings, characters,
  keywords, symbols (nil, true, false), integers (with N), floats (with M),
  ratios, comments (;), discards (#_) and tagged values (#jepsen.history.Op{…}
  is read as its map). Anything else is an EdnError naming the line.
- A file is a sequence of top-level ops, one map each, or one vector or list
  of them. Each op is returned with the line it starts on, so errors about
  it can name the line.
- Keywords become plain strings (:append -> "append", :nemesis ->
  "nemesis"), vectors and lists become lists, sets sorted lists when their
  elements sort, so a Jepsen txn op reads exactly like a picluster one:
  {:type :ok, :f :txn, :value [[:append 9 1] [:r 8 [1 2]]]} ->
  {"type": "ok", "f": "txn", "value": [["append", 9, 1], ["r", 8, [1, 2]]]}.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from fractions import Fraction
from typing import Any


class EdnError(ValueError):
    """Text that is not the EDN we read, with where it broke."""


_TOKEN = re.compile(
    r"""
    [\s,]*(?:
      (?P<atom>[^\s,;"\[\](){}\\\#][^\s,;"\[\](){}\\]*)
    | (?P<open>\#\{|[\[({])
    | (?P<close>[\])}])
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<comment>;[^\n]*)
    | (?P<discard>\#_)
    | (?P<tag>\#[A-Za-z][\w.\-/]*)
    | (?P<char>\\(?:newline|space|tab|return|formfeed|backspace|u[0-9A-Fa-f]{4}|.))
    | (?P<end>\Z)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_INT = re.compile(r"[+-]?\d+N?")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?")
_RATIO = re.compile(r"[+-]?\d+/\d+")
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r", "formfeed": "\f", "backspace": "\b"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f"}
_CLOSE = {"[": "]", "(": ")", "{": "}", "#{": "}"}


def _atom(s: str, at: int, line_at: Callable[[int], int]) -> Any:
    if s[0] == ":":
        if len(s) == 1:
            raise EdnError(f"line {line_at(at)}: a keyword needs a name")
        return s[1:]
    try:
        return int(s)
    except ValueError:
        pass
    if s == "nil":
        return None
    if s == "true":
        return True
    if s == "false":
        return False
    if _INT.fullmatch(s):
        return int(s.rstrip("N"))
    if _FLOAT.fullmatch(s):
        return float(s.rstrip("M"))
    if _RATIO.fullmatch(s):
        f = Fraction(s)
        return int(f) if f.denominator == 1 else float(f)
    return s  # a symbol


def _string(s: str, at: int, line_at: Callable[[int], int]) -> str:
    body = s[1:-1]
    if "\\" not in body:
        return body

    def unescape(m: re.Match[str]) -> str:
        c = m.group(1)
        if c.startswith("u"):
            return chr(int(c[1:], 16))
        if c in _ESCAPES:
            return _ESCAPES[c]
        raise EdnError(f"line {line_at(at)}: unknown escape \\{c} in a string")

    return re.sub(r"\\(u[0-9A-Fa-f]{4}|.)", unescape, body)


def _collection(opener: str, items: list[Any], at: int, line_at: Callable[[int], int]) -> Any:
    if opener == "{":
        if len(items) % 2:
            raise EdnError(f"line {line_at(at)}: a map needs an even number of forms")
        out = {}
        for k, v in zip(items[::2], items[1::2], strict=True):
            out[_key(k)] = v
        return out
    if opener == "#{":
        try:
            return sorted(items)
        except TypeError:
            return items
    return items


def _key(k: Any) -> Any:
    if isinstance(k, list):
        return tuple(_key(e) for e in k)
    if isinstance(k, dict):
        return tuple(sorted((a, _key(b)) for a, b in k.items()))
    return k


def read_all(text: str) -> list[tuple[int, Any]]:
    """Every top-level form of text, each with the line it starts on."""
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_at(pos: int) -> int:
        return bisect_right(newlines, pos - 1) + 1

    forms: list[tuple[int, Any]] = []
    stack: list[tuple[str, int, list[Any]]] = []  # (opener, position, items)
    items: list[Any] | None = None  # the innermost open collection's items
    pending: list[tuple[int, int]] = []  # tags (7) and discards (6) waiting for the next form, with their depth
    start = 0
    expect = 0
    for m in _TOKEN.finditer(text):
        if m.start() != expect:
            raise EdnError(f"line {line_at(expect)}: cannot read {text[expect:expect + 20].strip()!r}")
        expect = m.end()
        kind = m.lastindex
        if kind == 1:  # atom
            tok = m[1]
            c = tok[0]
            if c == ":":
                value: Any = tok[1:] if len(tok) > 1 else _atom(tok, m.start(1), line_at)
            elif c.isdigit() and tok.isdigit():
                value = int(tok)
            else:
                value = _atom(tok, m.start(1), line_at)
        elif kind == 2:  # open
            if not stack:
                start = m.start(2)
            items = []
            stack.append((m[2], m.start(2), items))
            continue
        elif kind == 3:  # close
            tok = m[3]
            if not stack or _CLOSE[stack[-1][0]] != tok:
                raise EdnError(f"line {line_at(m.start(3))}: unexpected {tok!r}")
            opener, open_at, done = stack.pop()
            items = stack[-1][2] if stack else None
            value = _collection(opener, done, open_at, line_at)
        elif kind == 4:  # string
            value = _string(m[4], m.start(4), line_at)
        elif kind == 5:  # comment
            continue
        elif kind in (6, 7):  # discard, tag
            if not stack:
                start = m.start(kind)
            pending.append((kind, len(stack)))
            continue
        elif kind == 8:  # char
            c = m[8][1:]
            value = _CHARS.get(c, chr(int(c[1:], 16)) if len(c) == 5 and c.startswith("u") else c)
        else:  # end of text
            break
        if pending and pending[-1][1] == len(stack):
            dropped = False
            while pending and pending[-1][1] == len(stack):
                if pending.pop()[0] == 6:
                    dropped = True
                    break
            if dropped:
                continue
        if items is not None:
            items.append(value)
        else:
            if kind != 3:
                start = m.start(kind)
            forms.append((line_at(start), value))
    else:
        if expect != len(text):
            raise EdnError(f"line {line_at(expect)}: cannot read {text[expect:expect + 20].strip()!r}")
    if stack:
        raise EdnError(f"line {line_at(stack[-1][1])}: {stack[-1][0]!r} is never closed")
    return forms


def read_history(text: str) -> tuple[list[dict[str, Any]], list[int]]:
    """Jepsen ops (as picluster op dicts) and the line each starts on."""
    forms = read_all(text)
    if len(forms) == 1 and isinstance(forms[0][1], list):
        forms = [(forms[0][0], op) for op in forms[0][1]]
    ops: list[dict[str, Any]] = []
    lines: list[int] = []
    for line, op in forms:
        if not isinstance(op, dict):
            raise EdnError(f"line {line}: expected an op (a map), got {op!r}"[:200])
        ops.append(op)
        lines.append(line)
    return ops, lines
