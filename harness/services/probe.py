"""A running cluster's status, from its record, its faults and the nodes' own status RPCs.

`gather(cdir)` returns one JSON-safe document; the dashboard renders it and
`harness cluster status --json` prints it:

    {"name", "system", "backend", "state", "error", "dir", "supervisor": {"pid", "alive"},
     "nodes": {id: {"address", "process", "pid", "restarts", "answers", "why"}},
     "faults": [{"kind", "nodes", "description", "colour"}],
     "views": [base.status.Table.to_json()], "events": [...], "taken": "HH:MM:SS"}

Rules this module keeps:

- Every node is asked by this process, over the cluster's own client
  addresses (cluster.json): a control `ping` (it answers with its pid while
  it runs) and the system's status RPC (its view module, `systems/<name>/
  status.py`; a system without one gets the nodes table alone). A node that
  does not answer is listed with why: the supervisor's account first (killed
  by hand, powered off, crashed and restarting, paused), else the RPC's
  error, with the fault in force that explains it (a pulled cable, the
  switch off) when there is one.
- Nodes are asked in parallel, each bounded by `timeout_s`, so one silent
  node never stalls the picture.
- An external system's members (etcd) speak none of the runtime's RPCs:
  each is asked through the system's own API instead (external_status.py),
  and that answer is both its ping and its status.
- With the supervisor gone the nodes are still asked; the document says the
  supervisor is gone, and the process states are unknown.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from base.status import NodeReply, Table
from harness.services.clusterdir import ClusterDir, supervisor_alive
from harness.services.external_status import ASKERS, Asker
from harness.services.hand_faults import in_force
from systems.runtime.api import RpcError
from systems.runtime.node_main import load_cluster_file
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_auth import Credentials

DOWN_WORDS = {
    "killed": "killed by hand (`harness cluster heal` or `restart` brings it back)",
    "powered off": "powered off by hand (`harness cluster heal` powers it on)",
    "crashed": "crashed; the supervisor restarts it",
    "restarting": "being restarted",
    "stopped": "stopped with the cluster",
}


def view_module(system: str) -> ModuleType | None:
    """The system's status view (`systems/<name>/status.py`), or None when it has none."""
    try:
        return importlib.import_module(f"systems.{system}.status")
    except ModuleNotFoundError as e:
        if e.name in (f"systems.{system}.status", f"systems.{system}"):
            return None
        raise


def _why(e: RpcError, timeout_s: float) -> str:
    text = e.message or type(e).__name__
    if e.code == "timeout":
        return f"no answer within {timeout_s:g} s"
    if "refused" in text.lower() or "Connect call failed" in text:
        return "connection refused (nothing listens there)"
    return f"{e.code}: {text}"


def _fault_hint(node: str, faults: list[dict[str, Any]]) -> str:
    for f in faults:
        if f["kind"] == "switch-off":
            return " (the switch is off)"
        if f["kind"] == "link-down" and node in f["nodes"]:
            return " (its cable is pulled)"
    return ""


async def _ask(ep: ClientEndpoint, node: str, view: ModuleType | None, process: str | None,
               timeout_s: float) -> tuple[dict[str, Any], NodeReply]:
    if process in DOWN_WORDS:
        why = DOWN_WORDS[process]
        return {"answers": False, "why": why}, NodeReply(node, error=why)
    t0 = time.monotonic()
    try:
        ping = await ep.control(node, "ping", None, timeout=timeout_s)
    except RpcError as e:
        why = "paused (SIGSTOP): it cannot answer" if process == "paused" else _why(e, timeout_s)
        return {"answers": False, "why": why}, NodeReply(node, error=why)
    info: dict[str, Any] = {"answers": True, "why": None, "ping_ms": round((time.monotonic() - t0) * 1e3, 1),
                            "node_pid": ping.get("pid") if isinstance(ping, dict) else None}
    if view is None:
        return info, NodeReply(node, reply=ping)
    try:
        reply = await ep.call(node, view.METHOD, view.REQUEST, timeout=timeout_s)
    except RpcError as e:
        why = f"{view.METHOD}: {_why(e, timeout_s)}"
        return {**info, "answers": False, "why": why}, NodeReply(node, error=why)
    return info, NodeReply(node, reply=reply)


async def _ask_external(asker: Asker, addr: tuple[str, int], node: str, process: str | None,
                        timeout_s: float) -> tuple[dict[str, Any], NodeReply]:
    """A member of an external system (etcd), asked through its own API: its answer is its status."""
    if process in DOWN_WORDS:
        why = DOWN_WORDS[process]
        return {"answers": False, "why": why}, NodeReply(node, error=why)
    t0 = time.monotonic()
    try:
        reply = await asker(addr[0], addr[1], timeout_s)
    except TimeoutError:
        why = "paused (SIGSTOP): it cannot answer" if process == "paused" else f"no answer within {timeout_s:g} s"
        return {"answers": False, "why": why}, NodeReply(node, error=why)
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = ("connection refused (nothing listens there)" if "refused" in text.lower() or "unavailable" in
               text.lower() else f"{type(e).__name__}: {text}")
        return {"answers": False, "why": why}, NodeReply(node, error=why)
    return {"answers": True, "why": None, "ping_ms": round((time.monotonic() - t0) * 1e3, 1)}, NodeReply(node, reply)


async def _probe(addrs: dict[str, tuple[str, int]], view: ModuleType | None, processes: dict[str, str | None],
                 timeout_s: float, asker: Asker | None = None,
                 credentials: Credentials | None = None) -> dict[str, tuple[dict[str, Any], NodeReply]]:
    if asker is not None:
        answers = await asyncio.gather(*(_ask_external(asker, addrs[n], n, processes.get(n), timeout_s)
                                         for n in sorted(addrs)))
        return dict(zip(sorted(addrs), answers, strict=True))
    ep = ClientEndpoint(addrs, node_id="status", credentials=credentials)
    try:
        answers = await asyncio.gather(*(_ask(ep, n, view, processes.get(n), timeout_s) for n in sorted(addrs)))
    finally:
        await ep.close()
    return dict(zip(sorted(addrs), answers, strict=True))


def _wall_clock(description: str, detail: Mapping[str, Any]) -> str:
    """A fault's description with its start as the time of day ("since 16:04:23"), not as seconds since the
    cluster came up (the form a run's report uses)."""
    wall = detail.get("wall")
    if not isinstance(wall, str) or len(wall) < 8:
        return description
    return re.sub(r" since [0-9.]+ s\b", f" since {wall[-8:]}", description, count=1)


def gather(cdir: ClusterDir, *, timeout_s: float = 1.0) -> dict[str, Any]:
    doc = cdir.read()
    alive = supervisor_alive(doc)
    state = str(doc.get("state"))
    out: dict[str, Any] = {
        "name": cdir.name, "dir": str(cdir.path), "system": doc.get("system"), "backend": doc.get("backend"),
        "state": state if alive or state not in ("up", "starting", "stopping") else "supervisor gone",
        "error": doc.get("error"),
        "supervisor": {"pid": (doc.get("supervisor") or {}).get("pid"), "alive": alive},
        "events": list(doc.get("events") or [])[-6:], "taken": time.strftime("%H:%M:%S"),
        "nodes": {}, "faults": [], "views": [],
    }
    faults = [{"kind": w.kind, "nodes": list(w.nodes), "description": _wall_clock(w.description, w.detail),
               "colour": w.colour} for w in in_force(cdir.faults_file)] if alive else []
    out["faults"] = faults
    if state != "up" or not cdir.cluster_file.exists():
        return out
    nodes_state: dict[str, dict[str, Any]] = doc.get("nodes_state") or {}
    processes = {n: (s.get("process") if alive else None) for n, s in nodes_state.items()}
    cluster = load_cluster_file(cdir.cluster_file)
    addrs = dict(cluster.nodes)
    view = view_module(str(doc.get("system")))
    asker = ASKERS.get(str(doc.get("system")))  # a system that is not ours is asked through its own API
    creds = cluster.credentials("harness") if asker is None else None  # views are control frames: the harness's
    probed = asyncio.run(_probe(addrs, view, processes, timeout_s, asker, creds))
    replies = {}
    for n, (info, reply) in probed.items():
        s = nodes_state.get(n, {})
        if info.get("why") and processes.get(n) not in (*DOWN_WORDS, "paused"):
            info["why"] += _fault_hint(n, faults)
            reply = NodeReply(n, error=info["why"])
        replies[n] = reply
        host, port = addrs[n]
        out["nodes"][n] = {"address": f"{host}:{port}", "process": processes.get(n) or "unknown",
                           "pid": s.get("pid") if alive else info.get("node_pid"), "restarts": s.get("restarts", 0),
                           **info}
    if view is not None:
        out["views"] = [t.to_json() for t in view.tables(replies)]
    return out


def tables_of(status: dict[str, Any]) -> list[Table]:
    return [Table.from_json(t) for t in status.get("views", [])]
