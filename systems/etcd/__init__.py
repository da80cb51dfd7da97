"""etcd (3.x) as an external system: its nodes are the `etcd` program, not runtime-seam nodes.

Nothing here runs anything; the package *declares* how a member is started,
wiped and judged ready, and the harness (harness/external.py) turns that
into a `NodeProgram` that the local, netns and ssh backends run under the
shared process lifecycle. The sim backend refuses external systems.

Rules this package keeps:

- `EXTERNAL` names the program; a system package that defines it is an
  external system (harness.registry.is_external).
- `BUGS` are client-side mistakes the workloads can plant (etcd itself is
  not ours to break); `DEFAULT_OPTIONS` are the members' flags and the
  workloads' knobs, each checked by `check_options` (one clear line for an
  unknown key or a bad value).
- Everything else is in `members` (command lines, addresses, readiness),
  pure functions of their arguments.
"""

from __future__ import annotations

from typing import Any

from systems.etcd.members import (
    HEALTH_PATH,
    argv,
    client_url,
    config_files,
    endpoints,
    healthy,
    marker,
    peer_address,
    wipe,
)

EXTERNAL = "etcd"
"""The program every member runs (Debian's etcd-server; any etcd 3.x)."""

INSTALL_HINT = "Debian, Raspberry Pi OS: apt-get install etcd-server"

BUGS: dict[str, str] = {
    "lock-no-keepalive": "the lock client never renews its lease and ignores its expiry, so it may hold the lock "
                         "after etcd has given it to another client",
}

READ_MODES = ("linearizable", "serializable")

DEFAULT_OPTIONS: dict[str, Any] = {
    "read_mode": "linearizable",
    "heartbeat_ms": 100,
    "election_ms": 1000,
    "snapshot_count": 100000,
    "lock_ttl_s": 2,
    "lock_hold_s": 1.0,
    "lock_wait_s": 4.0,
}
"""read_mode: how reads are served (`linearizable`, etcd's default, or `serializable`: from the member's own
state); heartbeat_ms, election_ms, snapshot_count: the members' flags; lock_ttl_s: the lock's lease TTL (etcd
raises it to its minimum, 1.5 election timeouts); lock_hold_s: the longest critical section; lock_wait_s: how long
an acquire waits for the lock."""


def check_options(options: dict[str, Any]) -> None:
    """Raise ValueError (one line) for an unknown option or a bad value."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"etcd has no option {unknown[0]!r}; known: {', '.join(sorted(DEFAULT_OPTIONS))}")
    mode = options.get("read_mode", DEFAULT_OPTIONS["read_mode"])
    if mode not in READ_MODES:
        raise ValueError(f"etcd option read_mode must be one of {', '.join(READ_MODES)}, not {mode!r}")
    for key in ("heartbeat_ms", "election_ms", "snapshot_count", "lock_ttl_s"):
        value = options.get(key, DEFAULT_OPTIONS[key])
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"etcd option {key} must be a positive integer, not {value!r}")
    for key in ("lock_hold_s", "lock_wait_s"):
        value = options.get(key, DEFAULT_OPTIONS[key])
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"etcd option {key} must be a positive number of seconds, not {value!r}")
    heartbeat = options.get("heartbeat_ms", DEFAULT_OPTIONS["heartbeat_ms"])
    election = options.get("election_ms", DEFAULT_OPTIONS["election_ms"])
    if election < 5 * heartbeat:
        raise ValueError(f"etcd wants election_ms ({election}) at least 5 times heartbeat_ms ({heartbeat})")


__all__ = [
    "BUGS",
    "DEFAULT_OPTIONS",
    "EXTERNAL",
    "HEALTH_PATH",
    "INSTALL_HINT",
    "READ_MODES",
    "argv",
    "check_options",
    "client_url",
    "config_files",
    "endpoints",
    "healthy",
    "marker",
    "peer_address",
    "wipe",
]
