"""The smallest system: every node answers `echo` with what it was sent.

It exists to exercise the runtime seam (tests, the RPC benchmark) with no
logic of its own in the way. It also keeps a durable counter so tests can
prove that synced writes survive a crash and unsynced ones need not.

RPCs: echo(msg) -> msg; incr({"sync": bool}) -> new count; count() -> count;
relay({"to": node, "msg": m, "timeout": seconds}) -> what `to` echoed.
A relay naming no node of the cluster, or a timeout that is not a number in
(0, 60], is a definite "bad-request".
"""

from __future__ import annotations

from systems.runtime.api import Message, NodeConfig, RemoteError, Runtime

BUGS: dict[str, str] = {}
DEFAULT_OPTIONS: dict[str, object] = {}


async def start_node(rt: Runtime, config: NodeConfig) -> None:
    raw = rt.disk.read("count")
    state = {"count": int(raw) if raw else 0}

    async def echo(src: str, msg: Message) -> Message:
        return msg

    async def incr(src: str, msg: Message) -> Message:
        state["count"] += 1
        rt.disk.write("count", str(state["count"]).encode())
        if isinstance(msg, dict) and msg.get("sync"):
            await rt.disk.sync("count")
        return state["count"]

    async def count(src: str, msg: Message) -> Message:
        return state["count"]

    async def relay(src: str, msg: Message) -> Message:
        to = msg.get("to") if isinstance(msg, dict) else None
        timeout = msg.get("timeout", 1.0) if isinstance(msg, dict) else None
        if to not in rt.peers or isinstance(timeout, bool) or not isinstance(timeout, int | float) \
                or not 0 < timeout <= 60:
            raise RemoteError(f"relay needs {{to: a peer, msg, timeout: 0..60 s}}, got {str(msg)[:80]}",
                              code="bad-request", definite=True)
        return await rt.call(to, "echo", msg.get("msg"), timeout=timeout)

    rt.serve("echo", echo)
    rt.serve("incr", incr)
    rt.serve("count", count)
    rt.serve("relay", relay)
    rt.log.info("echo-started", count=state["count"])
