"""Synthetic transactional histories for tests and benchmarks.

Rules:

- A simulated store with concurrent clients: each process invokes a txn, and
  later the store runs it atomically against one in-memory database and
  completes it. Each txn takes effect at one instant between its invocation
  and its completion, so an unplanted history is strict-serializable.
- Some txns end `info` (taken effect or not, at random) and their process is
  replaced by a fresh one; some end `fail` without taking effect.
- Keys rotate as in Jepsen's list-append workload: a small pool of active keys,
  each retired after `max_writes_per_key` appends, so reads stay short.
- `plant` breaks the store on purpose, at rate `plant_rate` per read:
  "stale" returns the key as it was before its last write (a stale read),
  "duplicate" shows the last element of a list twice. Nothing else changes.
- rw-register histories come from the same store: the register's value is
  the last element of the key's list of writes.
- Deterministic: the same arguments give the same history.
"""

from __future__ import annotations

import random
from typing import Any


def list_append_history(n_txns: int, **options: Any) -> list[dict[str, Any]]:
    """A list-append history: micro-ops ["append", k, v] and ["r", k, list]."""
    return _simulate("list-append", n_txns, **options)


def rw_register_history(n_txns: int, **options: Any) -> list[dict[str, Any]]:
    """A rw-register history: micro-ops ["w", k, v] and ["r", k, value]; "duplicate" plants nothing here."""
    return _simulate("rw-register", n_txns, **options)


def _simulate(
    kind: str,
    n_txns: int,
    *,
    concurrency: int = 10,
    active_keys: int = 8,
    max_writes_per_key: int = 32,
    max_mops: int = 4,
    info_rate: float = 0.01,
    fail_rate: float = 0.01,
    plant: str | None = None,
    plant_rate: float = 0.001,
    seed: int = 0,
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    db: dict[int, list[int]] = {}
    writes: dict[int, int] = {}
    keys = list(range(active_keys))
    next_key = active_keys
    history: list[dict[str, Any]] = []
    procs = list(range(concurrency))
    next_proc = concurrency
    pending: dict[int, list[list[Any]]] = {}
    issued = 0

    def emit(op: dict[str, Any]) -> None:
        history.append({"index": len(history), "time": len(history) * 1000, **op})

    def new_txn() -> list[list[Any]]:
        nonlocal next_key
        mops: list[list[Any]] = []
        for _ in range(rng.randint(1, max_mops)):
            slot = rng.randrange(len(keys))
            k = keys[slot]
            if rng.random() < 0.5:
                mops.append(["r", k, None])
            else:
                writes[k] = writes.get(k, 0) + 1
                mops.append(["append" if kind == "list-append" else "w", k, writes[k]])
                if writes[k] >= max_writes_per_key:
                    keys[slot] = next_key
                    next_key += 1
        return mops

    def apply(mops: list[list[Any]]) -> list[list[Any]]:
        out = []
        for f, k, v in mops:
            if f != "r":
                db.setdefault(k, []).append(v)
                out.append([f, k, v])
                continue
            seen = list(db.get(k, []))
            if plant and seen and rng.random() < plant_rate:
                seen = seen[:-1] if plant == "stale" else [*seen, seen[-1]]
            if kind == "list-append":
                out.append([f, k, seen])
            else:
                out.append([f, k, seen[-1] if seen else None])
        return out

    while issued < n_txns or pending:
        slot = rng.randrange(len(procs))
        p = procs[slot]
        if p not in pending:
            if issued >= n_txns:
                continue
            issued += 1
            pending[p] = new_txn()
            emit({"process": p, "type": "invoke", "f": "txn", "value": pending[p]})
            continue
        mops = pending.pop(p)
        roll = rng.random()
        if roll < fail_rate:
            emit({"process": p, "type": "fail", "f": "txn", "value": mops, "error": "aborted"})
        elif roll < fail_rate + info_rate:
            if rng.random() < 0.5:
                apply(mops)
            emit({"process": p, "type": "info", "f": "txn", "value": mops, "error": "timeout"})
            procs[slot] = next_proc
            next_proc += 1
        else:
            emit({"process": p, "type": "ok", "f": "txn", "value": apply(mops)})
    return history
