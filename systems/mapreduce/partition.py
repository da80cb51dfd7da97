"""Which reduce partition a key goes to: a stable hash mod R, or sampled key ranges.

Rules this module keeps:

- `hash_partition(key, r)` is CRC-32 of the key's UTF-8 bytes mod r: the
  same on every node, process and machine. Python's `hash()` is salted per
  process and must never decide a partition.
- Range partitioning (the sort job): `boundaries` are R-1 keys in
  ascending order (fewer when the sample has fewer distinct keys; the last
  partitions are then empty); partition i holds the keys k with
  boundaries[i-1] <= k < boundaries[i]. So the partitions, concatenated in
  order, are in key order.
- `sample_boundaries(samples, r)` picks the boundaries at the i/r quantiles
  of the sorted sample (TeraSort's sampler); the same sample always gives
  the same boundaries.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Callable, Sequence

Partitioner = Callable[[str], int]


def stable_hash(key: str) -> int:
    return zlib.crc32(key.encode("utf-8"))


def hash_partition(key: str, r: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % r


def range_partition(key: str, boundaries: Sequence[str]) -> int:
    return bisect.bisect_right(boundaries, key)


def sample_boundaries(samples: Sequence[str], r: int) -> list[str]:
    """R-1 ascending, distinct split keys at the i/r quantiles of the sample (fewer if it has too few keys)."""
    if r < 1:
        raise ValueError(f"r must be at least 1, got {r}")
    ordered = sorted(samples)
    out: list[str] = []
    for i in range(1, r):
        if not ordered:
            break
        key = ordered[min(len(ordered) - 1, (i * len(ordered)) // r)]
        if not out or key > out[-1]:
            out.append(key)
    return out


def partitioner(kind: str, r: int, boundaries: Sequence[str] = ()) -> Partitioner:
    """The partition function of a job: "hash" (mod r) or "range" (by boundaries)."""
    if r < 1:
        raise ValueError(f"r must be at least 1, got {r}")
    if kind == "hash":
        if r == 1:
            return lambda key: 0
        return lambda key: zlib.crc32(key.encode("utf-8")) % r
    if kind == "range":
        if len(boundaries) > r - 1 or list(boundaries) != sorted(set(boundaries)):
            raise ValueError(f"range partitioning needs at most {r - 1} ascending distinct boundaries")
        cut = list(boundaries)
        return lambda key: bisect.bisect_right(cut, key)
    raise ValueError(f"unknown partitioner {kind!r}")
