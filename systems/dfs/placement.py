"""Where new replicas go, and which chunks are re-replicated first (GFS §4.2, §4.3).

Rules this module keeps:

- New chunks go to the live chunkservers holding the fewest replicas
  (below-average utilisation first), ties broken by the injected RNG; one
  replica per chunkserver.
- A clone's target is a live chunkserver without a replica of the chunk
  (stale, bad or current), fewest replicas first, not already busy with a
  clone; its source is a current replica, not busy, chosen by the RNG.
- Re-replication order (§4.3): the chunk missing the most replicas first
  (a chunk with one replica left before one with two); chunks of live files
  before chunks of deleted (hidden) files; then chunks a client is waiting
  on (it asked for a lease and was told to wait); then the lowest handle.
- A chunk with no current replica cannot be cloned: it is lost, and says so.
- A bad (corrupt) replica is deleted once the chunk has its goal of current
  replicas elsewhere (§5.2: clone a good one, then drop the bad one). When
  every live chunkserver already holds the chunk, the bad replica's node is
  the only place a copy can go: the bad replica is deleted first (it is
  worthless: never handed out, never a source) and a good one cloned onto the
  same node. It is kept while no current replica is left to copy from, and
  while a restarted master may not have heard from every chunkserver yet.
- Pure: the RNG and the facts are arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def place_new(load: dict[str, int], count: int, rng: random.Random) -> list[str]:
    """`count` distinct chunkservers (or all of them if fewer) for a new chunk's replicas."""
    nodes = sorted(load)
    rng.shuffle(nodes)
    nodes.sort(key=lambda n: load[n])
    return nodes[:count]


@dataclass(frozen=True, slots=True)
class Need:
    handle: int
    missing: int
    """How many current replicas short of the goal."""
    live_file: bool
    waited_on: bool
    """A client asked for a lease on it recently."""

    def priority(self) -> tuple[int, int, int, int]:
        return (-self.missing, 0 if self.live_file else 1, 0 if self.waited_on else 1, self.handle)


def order(needs: list[Need]) -> list[Need]:
    """Most endangered first (see the module rules)."""
    return sorted((n for n in needs if n.missing > 0), key=Need.priority)


def clone_plan(
    current: list[str], holders: set[str], load: dict[str, int], busy: set[str], rng: random.Random
) -> tuple[str, str] | None:
    """(source, target) for one more replica, or None when there is no free pair."""
    sources = sorted(n for n in current if n not in busy)
    targets = sorted(n for n in load if n not in holders and n not in busy)
    if not sources or not targets:
        return None
    rng.shuffle(targets)
    targets.sort(key=lambda n: load[n])
    return rng.choice(sources), targets[0]


def may_delete_bad(current: list[str], goal: int, holders: set[str], alive: set[str], *, settled: bool) -> bool:
    """Whether a bad replica of a chunk may be deleted now (see the module rules).

    `current`: the chunk's current replicas (never the bad one); `holders`: every node with a replica
    of it, bad or stale included; `settled`: the master is past its restart grace period. Before that
    its view of who holds what may be partial and nothing is cloned, so only a full goal elsewhere counts."""
    if len(current) >= goal:
        return True
    return settled and bool(current) and not alive - holders
