"""Each built-in MapReduce job run sequentially, written apart from the system's code, to judge its output.

The checker must not trust the code it judges (a bug in a job module, in the
partitioner or in the line splitting would otherwise agree with itself), so
this restates the documented results (systems/mapreduce/jobs/*.py and
partition.py, restated here) as plain whole-input computations:

- Input text is each file's bytes decoded as UTF-8 (undecodable bytes become
  U+FFFD); a line is split on "\\n" only; words are split on whitespace.
- wordcount: `word count` per distinct word.
- indexer: `word n path1,path2,...` with the files a word occurs in, sorted.
- grep (param `pattern`, Python `re.search` per line): one `path:line` per
  occurrence; the occurrences of one line are ordered by path.
- sort: every line, as often as it occurs; keys in code-point order.
- A key's output goes to partition CRC-32(UTF-8 key) mod R ("hash"), or for
  sort to bisect_right(boundaries, key) with the boundaries the coordinator
  reported ("range"). Within a partition, keys are in code-point order.
"""

from __future__ import annotations

import bisect
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

KNOWN_JOBS = ("wordcount", "indexer", "grep", "sort")


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _lines(text: str) -> list[str]:
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return out


def records(name: str, files: dict[str, bytes], params: dict[str, Any]) -> dict[str, str]:
    """Each output key and its output text, for the whole input at once."""
    if name == "wordcount":
        counts: Counter[str] = Counter()
        for data in files.values():
            counts.update(_text(data).split())
        return {w: f"{w} {n}\n" for w, n in counts.items()}
    if name == "indexer":
        docs: dict[str, set[str]] = defaultdict(set)
        for path, data in files.items():
            for w in set(_text(data).split()):
                docs[w].add(path)
        return {w: f"{w} {len(ps)} {','.join(sorted(ps))}\n" for w, ps in docs.items()}
    if name == "grep":
        pattern = re.compile(params["pattern"])
        where: dict[str, list[str]] = defaultdict(list)
        for path, data in files.items():
            for line in _lines(_text(data)):
                if pattern.search(line):
                    where[line].append(path)
        return {line: "".join(f"{p}:{line}\n" for p in sorted(ps)) for line, ps in where.items()}
    if name == "sort":
        lines: Counter[str] = Counter()
        for data in files.values():
            lines.update(_lines(_text(data)))
        return {line: f"{line}\n" * n for line, n in lines.items()}
    raise ValueError(f"no reference for job {name!r}; known: {', '.join(KNOWN_JOBS)}")


def partition_of(name: str, reduces: int, boundaries: Sequence[str]) -> Callable[[str], int]:
    if name == "sort":
        cut = list(boundaries)
        return lambda key: bisect.bisect_right(cut, key)
    return lambda key: zlib.crc32(key.encode("utf-8")) % reduces


def partitions(name: str, files: dict[str, bytes], reduces: int, params: dict[str, Any] | None = None,
               boundaries: Sequence[str] = ()) -> list[bytes]:
    """The R output partitions the job must produce."""
    out: list[list[str]] = [[] for _ in range(reduces)]
    part = partition_of(name, reduces, boundaries)
    recs = records(name, files, params or {})
    for key in sorted(recs):
        out[part(key)].append(recs[key])
    return ["".join(texts).encode("utf-8") for texts in out]
