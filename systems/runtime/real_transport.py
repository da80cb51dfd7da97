"""TCP transport of the real runtime: connections, who is on them, request ids, timeouts, the filter hook, limits.

Rules this module keeps:

- One outgoing connection per destination, opened lazily by the first `call`
  or `send` and reopened lazily after it dies; requests are pipelined on it
  (many in flight, matched to replies by request id). Replies always come
  back on the connection the request went out on, and a reply is taken only
  on that connection (a peer cannot answer a request sent to another).
- Who: an endpoint with `credentials` (real_auth) runs the handshake on
  every connection, both ways, before any frame; an outgoing connection is
  handed to callers only once the destination has proven itself. On an
  authenticated connection every frame's `src` is the name the peer
  proved: whatever the frame says is ignored. An endpoint without
  credentials is *open*: no handshake, `src` as the sender wrote it (for
  tests and hand-written clusters that ask for no keys).
- Errors, as api.py says: a refused or failed connect, a failed handshake,
  or one that does not finish within the call's timeout raises
  `Unreachable` (definite: nothing was sent); no reply within the timeout
  raises `RpcTimeout`; an ERROR frame raises `RemoteError` with the
  sender's code, definite flag and message; a connection that dies with
  requests in flight fails each of them with `ConnectionLost` (an
  `RpcTimeout`, indefinite: the request may have been delivered).
- Frames written to a connection during one turn of the event loop leave in
  one `transport.write`: every frame to one peer in that turn (requests,
  one-way messages, replies) shares a system call, and one `call_soon` per
  turn flushes every connection written to; order on a connection is kept.
- `send` never raises: a message that cannot be encoded is logged and
  dropped, one sent while connecting waits (bounded backlog) and is dropped
  if the connect fails, one that would overfill the socket buffer is dropped.
- Malformed input (see real_wire), a failed handshake or a frame whose tag
  does not verify closes that connection alone; the warning about it goes
  through the endpoint's `Throttle` (a flood is a few records and a summary).
- Limits (`Limits`): a handshake must finish within `handshake_timeout_s`;
  a frame once begun must be whole within `body_timeout_s`; an inbound
  connection that carried nothing for `idle_timeout_s` is closed; the bytes
  held in partial frames across all connections stay under
  `buffer_budget_bytes` (the connection that would pass it is closed); at
  most `max_conns_per_address` inbound connections per remote address. A
  sweeper task checks the clocks every `sweep_s`.
- Inbound frames pass `_admit` first: CONTROL frames go to `_on_control`;
  the filter (if any, see real_filter) applies to frames whose `src` is one
  of `filtered_srcs` (the cluster's nodes), never to the harness client.
  Delayed copies are delivered with `loop.call_later`.
- Subclasses decide what a request or one-way message does (`_dispatch`) and
  what a control frame does (`_on_control`); this base answers requests with
  a definite `unknown-method` error and control frames with `unknown-control`.
- Fail-stop: `fail(reason)` logs `node-failed`, closes every connection at
  once (nothing more is answered) and calls `on_failure`; an `essential`
  spawned task that raises calls it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from systems.runtime.api import (
    ConnectionLost,
    Message,
    ProtocolError,
    RemoteError,
    RpcError,
    RpcTimeout,
    Throttle,
    Unreachable,
)
from systems.runtime.common import log_task_failure
from systems.runtime.real_auth import AuthError, Credentials, Handshake, Session
from systems.runtime.real_filter import PacketFilter
from systems.runtime.real_log import JsonLog
from systems.runtime.real_wire import MAX_FRAME_BYTES, Frame, FrameDecoder, Kind, encode_raw

SEND_BACKLOG_FRAMES = 10_000
"""One-way frames kept per destination while its connection is being opened."""
SEND_BUFFER_LIMIT_BYTES = 4 * MAX_FRAME_BYTES
"""A one-way frame is dropped when the socket's write buffer already holds this much."""

CONNECT_FAILURE_LOG_S = 5.0
"""Repeated connect failures to one destination are logged at most this often."""

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one endpoint lets its peers hold (see the module rules)."""

    handshake_timeout_s: float = 5.0
    body_timeout_s: float = 30.0
    """A 16 MiB frame at 1 MB/s still makes it; a body that trickles in slower is an attack or a dead link."""
    idle_timeout_s: float = 900.0
    buffer_budget_bytes: int = 64 * 1024 * 1024
    """Four largest frames at once, across every connection."""
    max_conns_per_address: int = 128
    """Loopback carries a whole local cluster and its clients, so this is per address, not per peer."""
    sweep_s: float = 1.0


class Conn(asyncio.Protocol):
    """One TCP connection, in either direction, carrying frames both ways."""

    def __init__(self, ep: Endpoint, dst: str | None) -> None:
        self.ep = ep
        self.dst = dst  # the node this outgoing connection goes to; None for inbound ones
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.in_flight: set[int] = set()
        self.closed = False
        self.peer = "?"
        self.address = ""
        self._wbuf: list[bytes] = []
        self._wbuf_bytes = 0
        now = time.monotonic()
        self.opened = now
        self.last_rx = now
        self.partial_since: float | None = None
        self.held = 0
        """Bytes of partial frames this connection holds (counted in the endpoint's budget)."""
        self.handshake: Handshake | None = None
        self.session: Session | None = None
        self.ready: asyncio.Future[Conn] | None = None
        """Outgoing connections: done once the destination has proven itself (or failed to)."""

    # -- who ---------------------------------------------------------------------------------
    @property
    def peer_name(self) -> str | None:
        return self.session.name if self.session is not None else None

    @property
    def peer_role(self) -> str | None:
        return self.session.role if self.session is not None else None

    @property
    def authenticated(self) -> bool:
        return self.handshake is None

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.ep._conns.add(self)
        self.ep._ensure_sweeper()
        if self.dst is None and not self.ep._admit_inbound(self):
            return
        creds = self.ep.credentials
        if creds is not None:
            self.handshake = Handshake(creds, name=self.ep.node_id, to=self.dst, nodes=self.ep.nodes)
            if self.dst is not None:
                try:
                    transport.write(self.handshake.hello())
                except AuthError as e:
                    self._refuse(e)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_rx = time.monotonic()
        if self.handshake is not None:
            try:
                out, session, data = self.handshake.feed(data)
            except AuthError as e:
                self._refuse(e)
                return
            if out and self.transport is not None:
                self.transport.write(out)
            if session is None:
                return
            self.handshake = None
            self.session = self.decoder.session = session
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(self)
            if not data:
                return
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as e:
            self.ep.warn.warning("bad-frame", reason=str(e), peer=self.peer, who=self.peer_name, dst=self.dst)
            self.close()
            return
        finally:
            self._account()
        name = self.peer_name
        for frame in frames:
            if self.closed:
                return
            if name is not None and frame.src != name:
                frame = Frame(frame.kind, frame.id, name, frame.method, frame.body)
            self.ep._admit(self, frame)

    def _account(self) -> None:
        """Keep the endpoint's count of partial-frame bytes, and this connection's partial-frame clock."""
        held = self.decoder.buffered
        if held != self.held:
            self.ep._held_bytes += held - self.held
            self.held = held
        if held == 0:
            self.partial_since = None
        elif self.partial_since is None:
            self.partial_since = self.last_rx
        if self.ep._held_bytes > self.ep.limits.buffer_budget_bytes and held and not self.closed:
            self.ep.warn.warning("buffer-budget", peer=self.peer, who=self.peer_name, held=held,
                                 total=self.ep._held_bytes)
            self.close()

    def _refuse(self, e: AuthError) -> None:
        self.ep.warn.warning("auth-failed", reason=str(e), peer=self.peer, dst=self.dst)
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(Unreachable(f"{self.dst} at {self.peer}: {e}"))
        self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.decoder.buffered and not self.closed:
            self.ep.warn.warning("truncated-frame", peer=self.peer, bytes=self.decoder.buffered)
        self.closed = True
        self.decoder = FrameDecoder()
        self._account()
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(Unreachable(f"connection to {self.dst} closed during the handshake"))
        self.ep._on_conn_lost(self, exc)

    # -- writing -----------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Queue one encoded frame (sealed here on an authenticated connection); False when the
        connection is closing or not yet authenticated.

        Writes made in one turn of the event loop leave in one `send` per connection
        (the endpoint flushes every connection written to in one `call_soon`): under
        load many frames to a peer share a system call."""
        t = self.transport
        if self.closed or t is None or t.is_closing() or self.handshake is not None:
            return False
        if self.session is not None:
            data = self.session.seal(data)
        if not self._wbuf:
            self.ep._schedule_flush(self)
        self._wbuf.append(data)
        self._wbuf_bytes += len(data)
        return True

    def flush(self) -> None:
        data, self._wbuf = self._wbuf, []
        self._wbuf_bytes = 0
        t = self.transport
        if data and t is not None and not t.is_closing():
            t.write(data[0] if len(data) == 1 else b"".join(data))

    def buffered_bytes(self) -> int:
        t = self.transport
        return (t.get_write_buffer_size() if t is not None else 0) + self._wbuf_bytes

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping whatever is queued (fail-stop: nothing more leaves)."""
        self.closed = True
        self._wbuf = []
        if self.transport is not None:
            self.transport.abort()


class Endpoint:
    """The client half of a runtime: call/send to named nodes over TCP."""

    def __init__(
        self,
        node_id: str,
        addrs: dict[str, Address],
        log: JsonLog,
        *,
        packet_filter: PacketFilter | None = None,
        filtered_srcs: frozenset[str] = frozenset(),
        credentials: Credentials | None = None,
        nodes: frozenset[str] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.node_id = node_id
        self.addrs = dict(addrs)
        self.log = log
        self.filter = packet_filter
        self.filtered_srcs = filtered_srcs - {node_id}
        self.credentials = credentials
        self.nodes: frozenset[str] = nodes if nodes is not None else frozenset(addrs)
        """The cluster's node ids (who may connect as a node)."""
        self.limits = limits or Limits()
        self.warn = Throttle(log, time.monotonic)
        """Warnings about peers (bad frames, failed handshakes, limits): a flood becomes a summary."""
        self.on_failure: Callable[[str], None] | None = None
        """Called once by `fail` (node_main: end the process)."""
        self.failed: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._out: dict[str, Conn] = {}
        self._connecting: dict[str, asyncio.Task[Conn]] = {}
        self._backlog: dict[str, list[bytes]] = {}
        self._conns: set[Conn] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._essential: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._connect_failure_logged: dict[str, float] = {}
        self._dirty: list[Conn] = []
        """Connections with frames queued in this turn of the loop (flushed together at its end)."""
        self._held_bytes = 0
        self._per_address: dict[str, int] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def _schedule_flush(self, conn: Conn) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._dirty.append(conn)

    def _flush_all(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    # -- time and tasks -----------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "", *, essential: bool = False) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        if essential:
            self._essential.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        log_task_failure(self.log, task)
        if task in self._essential:
            self._essential.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self.fail(f"essential task {task.get_name()} died: {task.exception()!r}")

    # -- fail-stop ----------------------------------------------------------------------------
    def fail(self, reason: str) -> None:
        """Stop for good: log why, cut every connection at once, tell `on_failure`. Idempotent."""
        if self.failed is not None:
            return
        self.failed = reason
        self.log.error("node-failed", reason=reason)
        for conn in list(self._conns):
            conn.abort()
        self._stop_listening()
        if self.on_failure is not None:
            self.on_failure(reason)

    def _stop_listening(self) -> None:
        """Subclasses that listen close their server here."""

    # -- limits -------------------------------------------------------------------------------
    def _admit_inbound(self, conn: Conn) -> bool:
        """Count an inbound connection against its address's cap; close it when over."""
        n = self._per_address.get(conn.address, 0) + 1
        self._per_address[conn.address] = n
        if n > self.limits.max_conns_per_address or self.failed is not None:
            self.warn.warning("too-many-connections", address=conn.address, open=n - 1,
                              limit=self.limits.max_conns_per_address)
            conn.close()
            return False
        return True

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="transport-sweeper")

    async def _sweep(self) -> None:
        lim = self.limits
        while True:
            await asyncio.sleep(lim.sweep_s)
            now = time.monotonic()
            for conn in list(self._conns):
                if conn.closed:
                    continue
                if conn.handshake is not None and now - conn.opened > lim.handshake_timeout_s:
                    self.warn.warning("handshake-timeout", peer=conn.peer, dst=conn.dst)
                    conn.close()
                elif conn.partial_since is not None and now - conn.partial_since > lim.body_timeout_s:
                    self.warn.warning("slow-frame", peer=conn.peer, who=conn.peer_name, held=conn.held)
                    conn.close()
                elif conn.dst is None and now - conn.last_rx > lim.idle_timeout_s and not conn.in_flight:
                    self.log.debug("idle-connection-closed", peer=conn.peer, who=conn.peer_name)
                    conn.close()
            self.warn.flush()

    # -- outgoing ----------------------------------------------------------------------------
    async def call(self, dst: str, method: str, msg: Message, timeout: float = 1.0) -> Message:
        return await self._request(Kind.REQUEST, dst, method, msg, timeout)

    def send(self, dst: str, method: str, msg: Message) -> None:
        if self._closed or self.failed is not None:
            return
        try:
            data = encode_raw(Kind.ONEWAY, 0, self.node_id, method, msg)
        except (TypeError, ValueError) as e:
            self.log.error("send-unencodable", dst=dst, method=method, error=repr(e))
            return
        conn = self._out.get(dst)
        if conn is not None and not conn.closed:
            if conn.buffered_bytes() > SEND_BUFFER_LIMIT_BYTES:
                self.log.debug("send-dropped", dst=dst, method=method, reason="write buffer full")
                return
            conn.write(data)
            return
        if dst not in self.addrs:
            self.log.debug("send-dropped", dst=dst, method=method, reason="unknown node")
            return
        backlog = self._backlog.setdefault(dst, [])
        if len(backlog) >= SEND_BACKLOG_FRAMES:
            self.log.debug("send-dropped", dst=dst, method=method, reason="connect backlog full")
            return
        backlog.append(data)
        self._start_connect(dst)

    async def _request(self, kind: Kind, dst: str, method: str, msg: Message, timeout: float) -> Message:
        if self._closed or self.failed is not None:
            raise Unreachable(f"{self.node_id} is shut down")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        rid = next(self._ids)
        data = encode_raw(kind, rid, self.node_id, method, msg)  # TypeError/ValueError: caller's bug
        conn = await self._get_conn(dst, timeout)
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = fut
        conn.in_flight.add(rid)
        timer = loop.call_at(deadline, _expire, fut, dst, method, timeout)
        try:
            if not conn.write(data):
                raise Unreachable(f"connection to {dst} closed before the request was sent")
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(rid, None)
            conn.in_flight.discard(rid)

    async def _get_conn(self, dst: str, timeout: float) -> Conn:
        conn = self._out.get(dst)
        if conn is not None and not conn.closed:
            return conn
        if dst not in self.addrs:
            raise Unreachable(f"unknown node {dst!r}")
        task = self._start_connect(dst)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise Unreachable(f"connect to {dst} did not finish within {timeout}s") from None

    def _start_connect(self, dst: str) -> asyncio.Task[Conn]:
        task = self._connecting.get(dst)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._connect(dst), name=f"connect-{dst}")
            self._connecting[dst] = task
            task.add_done_callback(lambda t, d=dst: self._connect_done(d, t))
        return task

    async def _connect(self, dst: str) -> Conn:
        host, port = self.addrs[dst]
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Conn] = loop.create_future()
        ready.add_done_callback(_retrieved)  # a handshake nobody waits for any more may fail unheard

        def make() -> Conn:
            c = Conn(self, dst)
            c.ready = ready if self.credentials is not None else None
            return c

        try:
            _, conn = await loop.create_connection(make, host, port)
        except OSError as e:
            raise Unreachable(f"cannot connect to {dst} at {host}:{port}: {e.strerror or e}") from None
        if self.credentials is not None:
            try:
                await ready  # the handshake: Unreachable if the destination does not prove itself
            except asyncio.CancelledError:
                conn.close()
                raise
        if self._closed:
            conn.close()
            raise Unreachable(f"{self.node_id} is shut down")
        self._out[dst] = conn
        return conn

    def _connect_done(self, dst: str, task: asyncio.Task[Conn]) -> None:
        if self._connecting.get(dst) is task:
            del self._connecting[dst]
        backlog = self._backlog.pop(dst, [])
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # at most one record per destination every CONNECT_FAILURE_LOG_S: a dead peer is not news
            now = time.monotonic()
            if now - self._connect_failure_logged.get(dst, -CONNECT_FAILURE_LOG_S) >= CONNECT_FAILURE_LOG_S:
                self._connect_failure_logged[dst] = now
                self.log.debug("connect-failed", dst=dst, error=str(exc), dropped_sends=len(backlog))
            return
        self._connect_failure_logged.pop(dst, None)
        conn = task.result()
        for data in backlog:
            conn.write(data)

    async def readdress(self, addrs: dict[str, Address]) -> None:
        """Point nodes at new addresses; connections to a changed address are closed."""
        for node, addr in addrs.items():
            if self.addrs.get(node) == addr:
                continue
            self.addrs[node] = addr
            self._backlog.pop(node, None)
            task = self._connecting.pop(node, None)
            if task is not None:
                task.cancel()
            conn = self._out.pop(node, None)
            if conn is not None:
                conn.close()
        await asyncio.sleep(0)

    # -- incoming ----------------------------------------------------------------------------
    def _admit(self, conn: Conn, frame: Frame) -> None:
        if frame.kind == Kind.CONTROL:
            if self.credentials is not None and conn.peer_role != "harness":
                self.warn.warning("control-refused", method=frame.method, peer=conn.peer, who=conn.peer_name,
                                  role=conn.peer_role)
                self._reply_error(conn, frame.id, "forbidden", True, "control frames are the harness's alone")
                return
            self._on_control(conn, frame)
            return
        f = self.filter
        if f is None or not f.active or frame.src not in self.filtered_srcs:
            self._deliver(conn, frame)
            return
        loop = asyncio.get_running_loop()
        for delay in f.decide(frame.src):
            if delay <= 0:
                self._deliver(conn, frame)
            else:
                loop.call_later(delay, self._deliver, conn, frame)

    def _deliver(self, conn: Conn, frame: Frame) -> None:
        if self._closed or self.failed is not None:
            return
        kind = frame.kind
        if kind == Kind.RESPONSE or kind == Kind.ERROR:
            if frame.id not in conn.in_flight:
                return  # late, duplicated, for a caller that gave up, or not asked on this connection
            fut = self._pending.get(frame.id)
            if fut is None or fut.done():
                return
            if kind == Kind.RESPONSE:
                fut.set_result(frame.body)
            else:
                b = frame.body
                fut.set_exception(RemoteError(str(b.get("message", "")), code=b["code"], definite=b["definite"]))
        else:
            self._dispatch(conn, frame)

    def _dispatch(self, conn: Conn, frame: Frame) -> None:
        """A REQUEST or ONEWAY frame arrived (after the filter)."""
        self.warn.warning("unknown-method", method=frame.method, src=frame.src, peer=conn.peer)
        if frame.kind == Kind.REQUEST:
            self._reply_error(conn, frame.id, "unknown-method", True, f"{self.node_id} serves no {frame.method!r}")

    def _on_control(self, conn: Conn, frame: Frame) -> None:
        self._reply_error(conn, frame.id, "unknown-control", True, f"{self.node_id} takes no control frames")

    def _reply(self, conn: Conn, rid: int, body: Message) -> None:
        try:
            data = encode_raw(Kind.RESPONSE, rid, self.node_id, "", body)
        except (TypeError, ValueError) as e:
            self.log.error("bad-reply", error=repr(e))
            self._reply_error(conn, rid, "internal", False, f"reply could not be encoded: {e}")
            return
        conn.write(data)

    def _reply_error(self, conn: Conn, rid: int, code: str, definite: bool, message: str) -> None:
        body = {"code": code, "definite": definite, "message": message}
        conn.write(encode_raw(Kind.ERROR, rid, self.node_id, "", body))

    def _on_conn_lost(self, conn: Conn, exc: Exception | None) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            if conn.dst is None:
                n = self._per_address.get(conn.address, 1) - 1
                if n > 0:
                    self._per_address[conn.address] = n
                else:
                    self._per_address.pop(conn.address, None)
        if conn.dst is not None and self._out.get(conn.dst) is conn:
            del self._out[conn.dst]
        for rid in conn.in_flight:
            fut = self._pending.get(rid)
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionLost(f"connection to {conn.dst or conn.peer} lost"))

    # -- shutdown ----------------------------------------------------------------------------
    async def close(self) -> None:
        """Cancel every task, close every connection, fail every pending call. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._connecting.values()):
            task.cancel()
        tasks = [t for t in self._tasks if not t.done()]
        self._essential.clear()  # cancelled on purpose: not a failure
        for t in tasks:
            t.cancel()
        for conn in list(self._conns):
            conn.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(f"{self.node_id} is shutting down"))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await asyncio.sleep(0)  # let transports run their connection_lost callbacks


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _expire(fut: asyncio.Future[Any], dst: str, method: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(RpcTimeout(f"no reply from {dst} to {method} within {timeout}s"))


def error_body(e: RpcError) -> dict[str, Any]:
    return {"code": e.code, "definite": e.definite, "message": e.message}
