"""The seeded Zipf text corpus that MapReduce tests and benchmarks store in the DFS.

Shared by the `jobs` workload (which writes it), the checker (which
regenerates it to run each job sequentially) and bench/bench_mapreduce.py.

Rules this module keeps:

- `corpus(seed, size)` is a pure function of its arguments: the same bytes
  on every machine, Python version and run (it uses `random.Random` seeded
  with an int, whose `random()` stream Python keeps stable). So the last few
  are kept: a run asks for each file's bytes when it plans the put, when it
  sends it and when it checks, and a sweep worker runs seed after seed.
- The text is ASCII lines of words separated by single spaces, every line
  ending in "\\n". Words come from a fixed vocabulary of lower-case words
  (`vocabulary()`), drawn with Zipf-distributed frequencies (rank k has
  weight 1/k^s). The result is the shortest run of whole lines at least
  `size` bytes long.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache, lru_cache
from itertools import accumulate

VOCABULARY = 20_000
ZIPF_S = 1.1
LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
BATCH_WORDS = 200_000


@cache
def vocabulary(size: int = VOCABULARY) -> tuple[str, ...]:
    """`size` distinct lower-case words, short ones first (the most frequent ranks are short, like English)."""
    rng = random.Random(20040101)
    seen: dict[str, None] = {}
    length = 2
    while len(seen) < size:
        for _ in range(size * 2):
            word = "".join(rng.choice(LETTERS) for _ in range(length + rng.randrange(3)))
            seen.setdefault(word, None)
            if len(seen) >= size or len(seen) >= 26 ** length // 4 * (length - 1):
                break
        length += 1
    return tuple(seen)


@cache
def _cumulative(size: int, s: float) -> tuple[float, ...]:
    return tuple(accumulate(1.0 / (k ** s) for k in range(1, size + 1)))


@lru_cache(maxsize=16)
def corpus(seed: int, size: int, *, vocab: int = VOCABULARY, s: float = ZIPF_S, words_per_line: int = 12) -> bytes:
    rng = random.Random(seed)
    words = vocabulary(vocab)
    cum = _cumulative(vocab, s)
    parts: list[bytes] = []
    total = 0
    while total < size:
        # The stream of words (and so the bytes) does not depend on the batch size: one random() per word,
        # and batches are whole lines.
        batch = min(BATCH_WORDS, max(16, (size - total) // 40 + 1) * words_per_line)
        drawn = rng.choices(words, cum_weights=cum, k=batch)
        lines = [" ".join(drawn[i : i + words_per_line]) for i in range(0, len(drawn), words_per_line)]
        block = ("\n".join(lines) + "\n").encode()
        if total + len(block) >= size:
            cut = block.index(b"\n", max(0, size - total - 1)) + 1
            block = block[:cut]
        parts.append(block)
        total += len(block)
    return b"".join(parts)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
