"""The real runtime: one node in one OS process, asyncio TCP, files, wall clock.

`RealRuntime` implements `api.Runtime` for a cluster node; `ClientEndpoint`
is the harness's Runtime-like endpoint (no serving, no disk) that can also
drive the control channel. Transport rules are in real_transport, framing in
real_wire, the packet filter in real_filter, the disk in real_disk.

Rules this module keeps:

- `now()` is `time.monotonic()` and `sleep` is `asyncio.sleep`, both read
  through the node's `NodeClock` (systems.runtime.clock): a clock fault sent
  on the control channel moves what the node sees. The harness's
  `ClientEndpoint` reads the true clock.
- `rng` is `derive_rng(seed, node_id, pid)`: runs are reproducible in `sim`
  only; on the real runtime each process start gets a fresh stream (a
  restarted node must not replay its previous life's random choices, e.g.
  the same election timeouts). The packet filter draws from its own stream
  `derive_rng(seed, node_id, pid, "filter")` so a system's use of `rng` and
  the filter's draws do not disturb each other.
- Requests and one-way messages reach handlers only once the node is ready
  (`mark_ready()`, called by node_main after `start_node` returns); earlier
  ones wait. A request for a method nobody serves is logged
  (`unknown-method`) and answered with a definite `RemoteError`
  code "unknown-method" (the connection stays open: other calls pipelined on
  it are fine); a one-way message for one is logged and dropped.
- A handler raising `RpcError` answers with its code/definite/message; any
  other exception is logged (`handler-error`, with traceback) and answered
  as an indefinite `RemoteError` code "internal". One-way handlers' errors
  are logged the same way and answer nothing.

Who may do what (real_auth, real_transport): with credentials every
connection is authenticated both ways and `src` is the proven name; control
frames are obeyed from the harness's identity alone (others get a definite
error code "forbidden"). Without credentials the endpoint is open, as a
hand-written cluster file with no `auth` asks.

Fail-stop: a disk that fails a write or sync (real_disk) or an essential
task that dies stops the node (`fail`): `node-failed` logged, every
connection cut, `on_failure` told (node_main then exits non-zero).

Control channel (CONTROL frames on the node's own port, handled by the
runtime, never filtered, answered with RESPONSE/ERROR frames):

- `ping` (body ignored) -> {"node", "pid", "ready"}
- `set-filter` {"grudge": [src, ...], "links": {src: {"drop", "delay_s",
  "jitter_s", "duplicate"}}, "version": int} -> {"applied": bool, "version"}
- `clear-filter` {"version": int} or null -> {"applied": bool, "version"}
- `get-filter` -> {"version", "grudge", "links", "stats"} (stats: frames
  passed, dropped, duplicated, delayed by the filter)
- `stats` -> {"node", "pid", "connections", "pending", "tasks", "fsyncs", "filter",
  "dropped": {warning event: count} (bad frames, failed handshakes, refused
  control frames, limits hit), "held_bytes", "clock", "disk_fault"}
- `clock` {"reset": true} | {"jump_s": d} | {"rate": r} (systems.runtime.clock)
  or null (read only) -> {"now", "true", "offset_s", "rate"}
- `disk-fault` {"fault": "eio"|"enospc"|"slow-fsync", ...} or {"fault": null}
  (clear) -> {"fault", "ops", "delay_s", "injected", "delayed"}
  (systems.runtime.disk_faults); the next failing disk operation stops the
  node (fail-stop, exit 70); the fault is held in memory only, so a
  restarted node starts without it.
- `arm-power-loss` -> {"armed": true}: the next start over this data
  directory reverts every write not synced by then (real_unsynced); the
  harness sends it just before it cuts the node's power (SIGKILL).

`set-filter` replaces the whole filter; one with a lower version than the
current is ignored (applied false), so a late control frame cannot undo a
newer one. Versions are 0..INT_MAX. A malformed body answers a definite error code "bad-control";
an unknown method code "unknown-control".
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import traceback
from pathlib import Path
from typing import Any

from systems.runtime.api import INT_MAX, Handler, Message, ProtocolError, RpcError, derive_rng
from systems.runtime.clock import NodeClock
from systems.runtime.real_auth import Credentials, check_client_name
from systems.runtime.real_disk import RealDisk
from systems.runtime.real_filter import PacketFilter
from systems.runtime.real_log import JsonLog
from systems.runtime.real_transport import Address, Conn, Endpoint, Limits, error_body
from systems.runtime.real_wire import Frame, Kind

__all__ = ["ClientEndpoint", "NoDisk", "RealRuntime"]


class RealRuntime(Endpoint):
    """A cluster node: serves RPCs on its own address, owns a disk and a packet filter."""

    def __init__(
        self,
        node_id: str,
        addrs: dict[str, Address],
        data_dir: Path | str,
        *,
        seed: int = 0,
        log: JsonLog | None = None,
        credentials: Credentials | None = None,
        limits: Limits | None = None,
    ) -> None:
        if node_id not in addrs:
            raise ValueError(f"node {node_id!r} is not in the cluster ({', '.join(sorted(addrs))})")
        if credentials is not None and (credentials.role != "node" or credentials.name != node_id):
            raise ValueError(f"the credentials are {credentials.role} {credentials.name!r}'s, not node {node_id!r}'s")
        pid = os.getpid()
        super().__init__(
            node_id,
            addrs,
            log or JsonLog(node_id),
            packet_filter=PacketFilter(derive_rng(seed, node_id, pid, "filter")),
            filtered_srcs=frozenset(addrs),
            credentials=credentials,
            limits=limits,
        )
        self.peers: list[str] = sorted(n for n in addrs if n != node_id)
        self.rng: random.Random = derive_rng(seed, node_id, pid)
        self.disk = RealDisk(data_dir, on_failure=self.fail)
        self.clock = NodeClock(time.monotonic)
        if self.disk.recovered.power_loss:
            self.log.warning("disk-power-loss", reverted=self.disk.recovered.reverted)
        self._handlers: dict[str, Handler] = {}
        self._ready = asyncio.Event()
        self._server: asyncio.Server | None = None

    # -- api.Runtime ---------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.clock.true_duration(seconds))

    def serve(self, method: str, handler: Handler) -> None:
        self._handlers[method] = handler

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on this node's address (OSError if it is taken)."""
        host, port = self.addrs[self.node_id]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Conn(self, None), host, port, reuse_address=True)

    def mark_ready(self) -> None:
        self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        self._stop_listening()
        await super().close()
        self.disk.close()

    # -- dispatch -----------------------------------------------------------------------------
    def _dispatch(self, conn: Conn, frame: Frame) -> None:
        handler = self._handlers.get(frame.method)
        if handler is None and self._ready.is_set():
            super()._dispatch(conn, frame)
            return
        self.spawn(self._run_handler(conn, frame), name=f"handle-{frame.method}")

    async def _run_handler(self, conn: Conn, frame: Frame) -> None:
        if not self._ready.is_set():
            await self._ready.wait()
        handler = self._handlers.get(frame.method)
        if handler is None:
            super()._dispatch(conn, frame)
            return
        is_request = frame.kind == Kind.REQUEST
        try:
            reply = await handler(frame.src, frame.body)
        except RpcError as e:
            if is_request:
                b = error_body(e)
                self._reply_error(conn, frame.id, b["code"], b["definite"], b["message"])
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.warn.warning(
                "handler-error", method=frame.method, src=frame.src, error=repr(e),
                traceback="".join(traceback.format_exception(e)),
            )
            if is_request:
                self._reply_error(conn, frame.id, "internal", False, f"{type(e).__name__}: {e}")
            return
        if is_request:
            self._reply(conn, frame.id, reply)

    def _on_control(self, conn: Conn, frame: Frame) -> None:
        try:
            body = self._control(frame.method, frame.body)
        except ProtocolError as e:
            self.log.warning("bad-control", method=frame.method, reason=str(e))
            self._reply_error(conn, frame.id, "bad-control", True, str(e))
            return
        if body is None:
            self.log.warning("unknown-control", method=frame.method)
            self._reply_error(conn, frame.id, "unknown-control", True, f"no control method {frame.method!r}")
            return
        self._reply(conn, frame.id, body)

    def _control(self, method: str, body: Any) -> dict[str, Any] | None:
        f = self.filter
        assert f is not None
        match method:
            case "ping":
                return {"node": self.node_id, "pid": os.getpid(), "ready": self.ready}
            case "set-filter":
                applied = f.set(body)
                self.log.info("filter-set", applied=applied, **f.describe())
                return {"applied": applied, "version": f.version}
            case "clear-filter":
                version = body.get("version") if isinstance(body, dict) else None
                if version is not None and (type(version) is not int or not 0 <= version <= INT_MAX):
                    raise ProtocolError(f"clear-filter version must be an int in 0..{INT_MAX}")
                applied = f.clear(version)
                self.log.info("filter-cleared", applied=applied, version=f.version)
                return {"applied": applied, "version": f.version}
            case "get-filter":
                return f.describe()
            case "stats":
                return {
                    "node": self.node_id, "pid": os.getpid(), "connections": len(self._conns),
                    "pending": len(self._pending), "tasks": len(self._tasks), "fsyncs": self.disk.fsyncs,
                    "filter": f.describe(), "dropped": dict(sorted(self.warn.counts.items())),
                    "held_bytes": self._held_bytes, "clock": self.clock.describe(),
                    "disk_fault": self.disk.faults.describe(),
                }
            case "clock":
                try:
                    reply = self.clock.describe() if body is None else self.clock.change(body)
                except ValueError as e:
                    raise ProtocolError(str(e)) from None
                if body is not None:
                    self.log.warning("clock-changed", change=body, **reply)
                return reply
            case "disk-fault":
                try:
                    if isinstance(body, dict) and body.get("fault") is None:
                        reply = self.disk.faults.clear()
                    else:
                        reply = self.disk.faults.set(body)
                except ValueError as e:
                    raise ProtocolError(str(e)) from None
                self.log.warning("disk-fault", **reply)
                return reply
            case "arm-power-loss":
                self.disk.arm_power_loss()
                self.log.warning("power-loss-armed")
                return {"armed": True}
        return None


class NoDisk:
    """The harness client has no disk; any use is a bug in the caller."""

    def _no(self, *args: Any, **kw: Any) -> Any:
        raise RuntimeError("the harness client endpoint has no disk")

    read = write = append = truncate = delete = list = _no

    async def sync(self, name: str) -> None:
        self._no()


class ClientEndpoint(Endpoint):
    """The harness's endpoint (or a client's): calls and one-way messages to nodes, plus the control channel.

    Never partitioned (nodes filter cluster sources only), serves nothing, has no disk. With
    harness credentials its control frames are obeyed; with client credentials they are refused.
    """

    def __init__(
        self,
        addrs: dict[str, Address],
        *,
        node_id: str = "client",
        seed: int = 0,
        log: JsonLog | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        if node_id in addrs:
            raise ValueError(f"client id {node_id!r} clashes with a node id")
        if credentials is not None:
            if credentials.role not in ("harness", "client"):
                raise ValueError(f"a client endpoint takes harness or client credentials, not a {credentials.role}'s")
            check_client_name(node_id, addrs)
        super().__init__(node_id, addrs, log or JsonLog(node_id, min_level="warning"), credentials=credentials)
        self.peers: list[str] = sorted(addrs)
        self.rng: random.Random = derive_rng(seed, node_id, os.getpid())
        self.disk = NoDisk()

    def serve(self, method: str, handler: Handler) -> None:
        raise RuntimeError("the harness client endpoint serves no methods")

    async def control(self, node: str, op: str, body: Message = None, timeout: float = 2.0) -> Message:
        """Send a control frame to `node` and return its reply (RpcError subclasses as for `call`)."""
        return await self._request(Kind.CONTROL, node, op, body, timeout)
