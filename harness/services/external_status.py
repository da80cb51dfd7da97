"""Asking an external system's members (etcd) for their status, through the system's own API.

External systems' nodes speak none of the runtime's RPCs (harness/external.py), so
`harness cluster status` cannot ping them or call a status RPC; instead an asker per
system calls the member's own API and returns the dict its view
(`systems/<name>/status.py`) reads.

Rules this module keeps:

- `ASKERS` maps an external system to its asker: `async (host, port, timeout_s) -> dict`;
  it raises on any failure (the probe turns that into the reason shown).
- Every connection an asker opens is closed before it returns, whatever happened.
- The whole ask is bounded by `timeout_s` (the connection included).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Asker = Callable[[str, int, float], Awaitable[dict[str, Any]]]


async def ask_etcd(host: str, port: int, timeout_s: float) -> dict[str, Any]:
    """An etcd member's status (workloads/etcd_client.member_status: the maintenance API and /debug/vars)."""
    from workloads.etcd_client import Connections, member_status

    connections = Connections()
    try:
        async def ask() -> dict[str, Any]:
            return await member_status(await connections.get((host, port)), (host, port), timeout_s)

        return await asyncio.wait_for(ask(), timeout_s)
    finally:
        await connections.aclose()


ASKERS: dict[str, Asker] = {"etcd": ask_etcd}
