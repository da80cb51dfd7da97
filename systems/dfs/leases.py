"""Chunk leases (GFS §3.1): the master's table, and the primary's own view of its lease.

Rules this module keeps (times are each side's own `rt.now()`):

- At most one unexpired lease per chunk. The master grants a new lease only
  when the chunk has none it still considers unexpired, and never before
  `grace_until` (a restarted master has forgotten its leases: it waits one
  lease period so every lease granted before the restart has expired).
- The master's view of a lease ends no earlier than the primary's: the
  primary starts its clock when the grant reaches it; the master starts its
  own only when the primary's answer reaches it (`granted`), or at once when
  no answer came (`in_doubt`: the grant may have landed, so the master
  assumes it did). An extension is timed by the primary from when it asked,
  by the master from when the request arrived.
- A lease is extended only for its own primary, and never once the master
  has marked it `revoked` (a member died or turned bad, or the chunk must be
  cloned): it then runs out and the next grant leaves the troubled replica out.
- Planted bug `lease-overlap`: when a client reports the primary as failed,
  the table forgets the lease at once and lets a new one be granted while
  the old primary still holds its own.
- `history` keeps recent grants and extensions (each with the expiry the
  master believed), for the node's status report and the lease checker.
- Pure: times are arguments.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

HISTORY = 256


@dataclass
class Lease:
    handle: int
    primary: str
    members: tuple[str, ...]
    version: int
    granted_at: float
    expires_at: float
    revoked: bool = False

    def to_report(self, now: float) -> dict[str, object]:
        return {
            "handle": self.handle, "primary": self.primary, "version": self.version,
            "members": list(self.members), "granted_ago_s": round(now - self.granted_at, 6),
            "expires_in_s": round(self.expires_at - now, 6),
        }


@dataclass
class LeaseTable:
    lease_s: float
    grace_until: float = 0.0
    overlap_bug: bool = False
    leases: dict[int, Lease] = field(default_factory=dict)
    history: deque[Lease] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def current(self, handle: int, now: float) -> Lease | None:
        lease = self.leases.get(handle)
        if lease is None or lease.expires_at <= now:
            return None
        return lease

    def may_grant(self, handle: int, now: float, *, suspect: str | None = None) -> bool:
        """True when a new lease may be granted for `handle` now."""
        if now < self.grace_until:
            return False
        lease = self.current(handle, now)
        if lease is None:
            return True
        if self.overlap_bug and suspect is not None and suspect == lease.primary:
            del self.leases[handle]  # the mistake: believe the client, forget a lease still running
            return True
        return False

    def granted(self, handle: int, primary: str, members: tuple[str, ...], version: int, now: float) -> Lease:
        """Record a grant the primary confirmed at `now` (its own clock started earlier)."""
        lease = Lease(handle, primary, members, version, now, now + self.lease_s)
        self.leases[handle] = lease
        self.history.append(lease)
        return lease

    def in_doubt(self, handle: int, primary: str, members: tuple[str, ...], version: int, now: float) -> Lease:
        """A grant whose answer never came: assume it landed, so nobody else gets the chunk meanwhile."""
        return self.granted(handle, primary, members, version, now)

    def extend(self, handle: int, primary: str, now: float) -> Lease | None:
        """Extend `primary`'s lease from `now`, unless it expired, is someone else's, or was revoked."""
        lease = self.current(handle, now)
        if lease is None or lease.primary != primary or lease.revoked:
            return None
        lease.expires_at = now + self.lease_s
        return lease

    def revoke(self, handle: int, now: float) -> bool:
        """Stop extending the chunk's lease; True if there was one to stop."""
        lease = self.current(handle, now)
        if lease is None:
            return False
        lease.revoked = True
        return True

    def revoke_member(self, node: str, now: float) -> list[int]:
        """Revoke every lease in which `node` takes part; the handles touched."""
        touched = []
        for handle, lease in self.leases.items():
            if node in lease.members and lease.expires_at > now and not lease.revoked:
                lease.revoked = True
                touched.append(handle)
        return touched

    def report(self, now: float) -> list[dict[str, object]]:
        return [lease.to_report(now) for lease in self.history]


@dataclass
class PrimaryLease:
    """A chunkserver's own lease on a chunk it is primary for."""

    handle: int
    version: int
    members: tuple[str, ...]
    granted_at: float
    expires_at: float
    next_offset: int
    period_s: float = 0.0
    """The lease length the master granted (extensions add as much again)."""
    serial: int = 0
    last_mutation_at: float = -1.0

    def valid(self, now: float, margin_s: float) -> bool:
        return now < self.expires_at - margin_s

    def to_report(self, now: float) -> dict[str, object]:
        return {
            "handle": self.handle, "version": self.version, "members": list(self.members),
            "granted_ago_s": round(now - self.granted_at, 6), "expires_in_s": round(self.expires_at - now, 6),
        }
