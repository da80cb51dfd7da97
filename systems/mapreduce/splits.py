"""Input splits: one map task per DFS chunk, and which lines a split owns.

Rules this module keeps (Hadoop's line-record rule, stated exactly):

- A line is the bytes from a line start up to and including its "\\n" (the
  last line of a file may lack it). A line starts at offset 0 or right after
  a "\\n".
- The split [offset, offset + length) owns exactly the lines that *start*
  inside it. So every line of a file belongs to exactly one split, however
  the chunk boundaries cut it; a line that starts in this split and runs
  past its end is read on from the next chunk(s) up to its "\\n".
- A split's text is its owned bytes decoded as UTF-8 (undecodable bytes
  become U+FFFD); cutting at "\\n" never splits a character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NEWLINE = b"\n"


@dataclass(frozen=True, slots=True)
class Split:
    """A map task's input: a byte range of one file (one chunk) and the nodes that hold a replica."""

    path: str
    index: int
    offset: int
    length: int
    file_size: int
    replicas: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        return self.offset + self.length

    def to_wire(self) -> dict[str, Any]:
        return {
            "path": self.path, "index": self.index, "offset": self.offset, "length": self.length,
            "file_size": self.file_size, "replicas": list(self.replicas),
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Split:
        return cls(
            str(d["path"]), int(d["index"]), int(d["offset"]), int(d["length"]), int(d["file_size"]),
            tuple(str(r) for r in d.get("replicas") or ()),
        )


def owned_start(prev_byte: bytes, body: bytes) -> int | None:
    """Where in `body` the first owned line starts (None: no line starts in this split).

    `prev_byte` is the file's byte just before the split (b"" at offset 0).
    """
    if prev_byte in (b"", NEWLINE):
        return 0 if body else None
    nl = body.find(NEWLINE)
    if nl < 0 or nl + 1 >= len(body):
        return None
    return nl + 1


def needs_tail(prev_byte: bytes, body: bytes, split_end: int, file_size: int) -> bool:
    """True when the last owned line runs past the split and must be read on from the next chunk."""
    return owned_start(prev_byte, body) is not None and not body.endswith(NEWLINE) and split_end < file_size


def line_tail(more: bytes) -> tuple[bytes, bool]:
    """The part of `more` (bytes after the split) that finishes the last owned line, and whether it did."""
    nl = more.find(NEWLINE)
    if nl < 0:
        return more, False
    return more[: nl + 1], True


def owned_text(prev_byte: bytes, body: bytes, tail: bytes = b"") -> str:
    """The text of the lines the split owns: from the first owned line start, plus the tail that ends the last."""
    start = owned_start(prev_byte, body)
    if start is None:
        return ""
    return (body[start:] + tail).decode("utf-8", errors="replace")


def plan_splits(path: str, file_size: int, chunks: list[tuple[int, int, tuple[str, ...]]]) -> list[Split]:
    """One split per chunk, from (offset, length, replicas) in offset order; empty chunks get none."""
    out = []
    for offset, length, replicas in sorted(chunks):
        if length > 0:
            out.append(Split(path, len(out), offset, length, file_size, tuple(replicas)))
    return out
