"""Wing & Gong / Lowe linearizability search over one independent sub-history.

The history is a doubly linked list of call and return entries in event
order (arrays, dancing-links style). At each node (the set of linearized ops
as a bitset int, the model state) the candidates are the calls before the
first return in the list; linearizing one lifts its entries out of the list,
and backtracking puts them back. Every (bitset, state) visited is memoized,
as Porcupine does, so no node is explored twice; with ops of unknown outcome
the memo also prunes by dominance: a node is skipped if a visited node had
the same state and the same `ok` ops but a subset of its unknown-outcome ops
(whatever completes the bigger node completes the smaller one, leaving the
extra unknown ops out).

Reductions, each sound and complete (a node has a linearizable completion iff
the reduced search finds one):

1. Ops of unknown outcome (`info`) have no return entry: they may take
   effect after their call or never, so the search succeeds once every `ok`
   op is linearized.
2. A legal read-only candidate is linearized at once with no alternatives:
   it may move to the front of any completion (nothing remaining must precede
   it, and it changes no state).
3. An unknown-outcome op that is total and would leave the state unchanged is
   never tried: the same completion with it moved to the end (or dropped) works.
4. Unknown-outcome ops with the same f and argument are interchangeable once
   called: only the earliest-called unlinearized one of them is tried.
5. (Models with growing ops, e.g. kv append.) Before a read-only op R
   returns, the state is the current one or the value of a reset op (put)
   called before R returns, grown by growing ops (appends); if no such state
   can make R legal (`model.reachable`), the node fails. Only checked while
   every op called so far is read-only, growing or a reset.

The search runs in slices (`run(max_steps)`), keeping its stack between
calls, so a caller can interleave many keys and stop any of them. While it
runs it records the longest linearizable prefix found, for the evidence.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from checkers.linearizable.models import ILLEGAL, Model, Operation

LOOKAHEAD = 4
"""How many read-only returns reduction 5 checks at each node (any number is sound)."""

MAX_BASES = 8
"""How many called resets reduction 5 follows before giving up on a node."""

CACHE_ENTRY_BYTES = 150
"""Rough bytes one memo entry costs besides its state and bitset (tuple, set slot); for the memory budget."""


def entry_bytes(state_bytes: int, n_ops: int) -> int:
    """Estimated bytes per memo entry, given the size of a large state seen (checked against RSS on kv)."""
    return CACHE_ENTRY_BYTES + state_bytes + n_ops // 8


@dataclass
class Progress:
    """Where a search stands: for "unknown" verdicts and the evidence of a violation."""

    steps: int = 0
    cache_entries: int = 0
    best_prefix: list[int] = field(default_factory=list)
    best_state: Any = None


def _dominated(seen: list[int], ni: int) -> bool:
    """True if some visited info set is a subset of `ni`; else record `ni`, dropping its supersets."""
    for j in seen:
        if j & ni == j:
            return True
    seen[:] = [j for j in seen if j & ni != ni]
    seen.append(ni)
    return False


class Search:
    """A resumable WGL search over `ops` (all from one independent part).

    Layout: entry 0 heads the list of `ok` ops' calls and returns in event
    order, ending at `end1`; entry `head2` heads the list of unknown-outcome
    ops' calls in call order, ending at `end2`. At a node the candidates are
    the `ok` calls before the first return (`limit`), then the unknown-outcome
    calls made before `limit`: those are tried last, so the dominance memo
    meets the nodes that use fewer of them first.
    """

    def __init__(self, model: Model, ops: list[Operation]) -> None:
        self.model = model
        self.ops = ops
        n = len(ops)
        main: list[tuple[int, int, int]] = []  # (position, 1 call | 0 return, local op) of ok ops
        for i, op in enumerate(ops):
            if not op.info:
                main.append((op.call, 1, i))
                main.append((op.ret if op.ret is not None else op.call, 0, i))
        main.sort()
        infos = sorted((op.call, i) for i, op in enumerate(ops) if op.info)
        m, k = len(main), len(infos)
        self.end1 = m + 1
        self.head2 = m + 2
        self.end2 = m + 3 + k
        size = m + 4 + k
        self.nxt = [e + 1 for e in range(size)]
        self.prv = [e - 1 for e in range(size)]
        self.nxt[self.end1] = self.end1
        self.prv[self.head2] = self.head2
        self.nxt[self.end2] = self.end2
        self.is_call = [False] * size
        self.ent_op = [-1] * size
        self.pos = [0] * size
        self.call_entry = [0] * n
        self.ret_entry = [-1] * n
        for e, (p, is_call, i) in enumerate(main, start=1):
            self.is_call[e] = bool(is_call)
            self.ent_op[e] = i
            self.pos[e] = p
            if is_call:
                self.call_entry[i] = e
            else:
                self.ret_entry[i] = e
        for e, (p, i) in enumerate(infos, start=self.head2 + 1):
            self.is_call[e] = True
            self.ent_op[e] = i
            self.pos[e] = p
            self.call_entry[i] = e
        self.fns = [model.compile(op) for op in ops]
        self.read_only = [model.read_only(op) for op in ops]
        self.okflag = [0 if op.info else 1 for op in ops]
        self.monotone = [model.monotone(op) for op in ops]
        self.prunable = any(self.monotone)
        self.reset_val = [model.resets_to(op) for op in ops]
        self.reach = [model.reach_fn(op) if ro and self.prunable else None
                      for op, ro in zip(ops, self.read_only, strict=True)]
        self.noop_skip = [op.info and model.total(op) for op in ops]
        self.bits = [1 << i for i in range(n)]
        # Reduction 4: the previous unknown-outcome op with the same f and argument.
        self.prevbit = [0] * n
        last: dict[tuple[str, Any], int] = {}
        for _, i in infos:
            key = (ops[i].f, ops[i].arg)
            if key in last:
                self.prevbit[i] = self.bits[last[key]]
            last[key] = i
        self.remaining = sum(self.okflag)
        self.state: Any = model.init()
        self.lin = 0
        self.stack: list[tuple[int, Any, bool, int]] = []  # (op, state before, forced, limit)
        self.cache: set[tuple[int, Any]] = set()  # parts with no unknown-outcome ops
        self.memo: dict[tuple[int, Any], list[int]] = {}  # (ok ops bitset, state) -> antichain of info bitsets
        self.entries = 0
        self.infomask = sum(self.bits[i] for _, i in infos)
        self.okmask = sum(self.bits) ^ self.infomask
        self.fresh = True  # at a node not yet scanned for greedy reads
        self.entry = 0
        self.limit = 0
        self.result: bool | None = True if self.remaining == 0 else None
        self.progress = Progress(best_state=self.state)
        self._best_len = 0
        self._best_dirty = False
        self._state_bytes = 0

    def memory_bytes(self) -> int:
        self._state_bytes = max(self._state_bytes, sys.getsizeof(self.state), sys.getsizeof(self.progress.best_state))
        return (len(self.cache) + self.entries) * entry_bytes(self._state_bytes, len(self.ops))

    def drop_cache(self) -> None:
        """Free the memo (after giving up on this part)."""
        self.cache = set()
        self.memo = {}

    def run(self, max_steps: int) -> bool | None:
        """Search for at most `max_steps` steps; True/False when decided, None to be continued."""
        if self.result is not None:
            return self.result
        nxt, prv, is_call, ent_op, pos = self.nxt, self.prv, self.is_call, self.ent_op, self.pos
        call_entry, ret_entry = self.call_entry, self.ret_entry
        fns, read_only, okflag, noop_skip = self.fns, self.read_only, self.okflag, self.noop_skip
        bits, prevbit = self.bits, self.prevbit
        cache, memo, stack = self.cache, self.memo, self.stack
        has_info, okmask, infomask = self.infomask != 0, self.okmask, self.infomask
        entries = self.entries
        end1, head2, end2 = self.end1, self.head2, self.end2
        prunable = self.prunable
        state, lin, entry, remaining, fresh = self.state, self.lin, self.entry, self.remaining, self.fresh
        limit = self.limit
        best_len, best_dirty = self._best_len, self._best_dirty
        steps = 0
        result: bool | None = None
        while steps < max_steps:
            steps += 1
            if fresh:
                # Reduction 2: take a legal read-only candidate, with no alternatives.
                fresh = False
                e = nxt[0]
                while is_call[e]:
                    o = ent_op[e]
                    if read_only[o] and fns[o](state) is not ILLEGAL:
                        break
                    e = nxt[e]
                else:
                    entry = end2 if prunable and self._hopeless(state) else nxt[0]
                    continue
                nl = lin | bits[o]
                if has_info:
                    k = (nl & okmask, state)
                    ni = nl & infomask
                    seen = memo.get(k)
                    if seen is None:
                        memo[k] = [ni]
                    elif _dominated(seen, ni):
                        entry = end2  # a node at least as good failed before, so this node fails
                        continue
                    entries += 1
                else:
                    k = (nl, state)
                    if k in cache:
                        entry = end2  # that child failed before, so this node fails
                        continue
                    cache.add(k)
                stack.append((o, state, True, limit))
                c = call_entry[o]
                nxt[prv[c]] = nxt[c]
                prv[nxt[c]] = prv[c]
                r = ret_entry[o]
                nxt[prv[r]] = nxt[r]
                prv[nxt[r]] = prv[r]
                lin = nl
                remaining -= 1
                if len(stack) > best_len:
                    best_len = len(stack)  # copied when the search first turns back from it
                    best_dirty = True
                if remaining == 0:
                    result = True
                    break
                fresh = True
                continue
            if is_call[entry]:
                o = ent_op[entry]
                if entry > head2:
                    if pos[entry] > limit:  # called after the first return: not a candidate, nor any after it
                        entry = end2
                        continue
                    pb = prevbit[o]
                    if pb and not lin & pb:
                        entry = nxt[entry]  # reduction 4
                        continue
                elif read_only[o]:
                    entry = nxt[entry]  # not legal here, or reduction 2 would have taken it
                    continue
                ns = fns[o](state)
                if ns is ILLEGAL or (noop_skip[o] and ns == state):  # reduction 3
                    entry = nxt[entry]
                    continue
                nl = lin | bits[o]
                if has_info:
                    k = (nl & okmask, ns)
                    ni = nl & infomask
                    seen = memo.get(k)
                    if seen is None:
                        memo[k] = [ni]
                    elif _dominated(seen, ni):
                        entry = nxt[entry]
                        continue
                    entries += 1
                else:
                    k = (nl, ns)
                    if k in cache:
                        entry = nxt[entry]
                        continue
                    cache.add(k)
                stack.append((o, state, False, limit))
                c = call_entry[o]
                nxt[prv[c]] = nxt[c]
                prv[nxt[c]] = prv[c]
                r = ret_entry[o]
                if r >= 0:
                    nxt[prv[r]] = nxt[r]
                    prv[nxt[r]] = prv[r]
                state = ns
                lin = nl
                remaining -= okflag[o]
                if len(stack) > best_len:
                    best_len = len(stack)  # copied when the search first turns back from it
                    best_dirty = True
                if remaining == 0:
                    result = True
                    break
                fresh = True
                continue
            if entry < end1 and has_info:
                # The first return: the ok candidates are done; now the unknown-outcome ones called before it.
                limit = pos[entry]
                entry = nxt[head2]
                continue
            # Nothing left to try at this node; backtrack.
            if best_dirty and len(stack) == best_len:
                self._record_best(state)
                best_dirty = False
            while True:
                if not stack:
                    result = False
                    break
                o, state, forced, limit = stack.pop()
                lin ^= bits[o]
                remaining += okflag[o]
                r = ret_entry[o]
                if r >= 0:
                    nxt[prv[r]] = r
                    prv[nxt[r]] = r
                c = call_entry[o]
                nxt[prv[c]] = c
                prv[nxt[c]] = c
                if not forced:
                    break
            if result is not None:
                break
            entry = nxt[call_entry[o]]
        self.state, self.lin, self.entry, self.remaining, self.fresh = state, lin, entry, remaining, fresh
        self.limit = limit
        if best_dirty and len(stack) == best_len:
            self._record_best(state)
            best_dirty = False
        self._best_len, self._best_dirty = best_len, best_dirty
        self.progress.steps += steps
        self.entries = entries
        self.progress.cache_entries = len(cache) + entries
        self.result = result
        return result

    def _hopeless(self, state: Any) -> bool:
        """Reduction 5: True if some read-only op returning soon can no longer become legal.

        Until an op that is neither read-only, growing nor resetting is called,
        the state at any later point is one of `bases` (now, or a reset's
        value) grown by growing ops. Unknown-outcome ops count as called at
        once (more bases only make the test weaker, never wrong).
        """
        nxt, is_call, ent_op, read_only, monotone, reset_val = (
            self.nxt, self.is_call, self.ent_op, self.read_only, self.monotone, self.reset_val)
        reach, end1 = self.reach, self.end1
        bases = [state]
        e = nxt[self.head2]
        while e != self.end2:
            o = ent_op[e]
            if not monotone[o]:
                if reset_val[o] is ILLEGAL or len(bases) == MAX_BASES:
                    return False
                bases.append(reset_val[o])
            e = nxt[e]
        checked = 0
        e = nxt[0]
        while e != end1:
            o = ent_op[e]
            if is_call[e]:
                if read_only[o] or monotone[o]:
                    pass
                elif reset_val[o] is not ILLEGAL and len(bases) < MAX_BASES:
                    bases.append(reset_val[o])
                else:
                    return False
            elif read_only[o]:
                fn = reach[o]
                for b in bases:
                    if fn(b):
                        break
                else:
                    return True
                checked += 1
                if checked == LOOKAHEAD:
                    return False
            e = nxt[e]
        return False

    def _record_best(self, state: Any) -> None:
        self.progress.best_prefix = [f[0] for f in self.stack]
        self.progress.best_state = state

    def stuck_ops(self) -> list[int]:
        return stuck_after(self.ops, self.progress.best_prefix)


def stuck_after(ops: list[Operation], prefix: list[int]) -> list[int]:
    """Ops (local ids) that could come next after `prefix`: not in it, called before its first remaining return."""
    done = set(prefix)
    rets = [op.ret for i, op in enumerate(ops) if i not in done and op.ret is not None and not op.info]
    if not rets:
        return []
    first_ret = min(rets)
    return sorted((i for i, op in enumerate(ops) if i not in done and op.call < first_ret), key=lambda i: ops[i].call)
