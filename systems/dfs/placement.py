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
