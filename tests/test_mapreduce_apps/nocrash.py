"""The crash app without the crashes (the lab's nocrash.go): the answer the crash test must reproduce."""

from __future__ import annotations


def map(key: str, value: str) -> list[tuple[str, str]]:
    return [("a", key), ("b", str(len(key))), ("c", str(value.count("\n"))), ("d", "xyzzy")]


def reduce(key: str, values: list[str]) -> str:
    if key == "c":
        return str(sum(int(v) for v in values))
    return " ".join(sorted(set(values)))
