"""A small command line for a running KV cluster.

    python -m systems.kv.cli --cluster cluster.json [--node n1] get KEY
    python -m systems.kv.cli --cluster cluster.json put KEY VALUE [--context '{"n1": 3}']
    python -m systems.kv.cli --cluster cluster.json join NODE | leave NODE | dump
    python -m systems.kv.cli get KEY      # no --cluster: the running kv cluster of `harness cluster up`

Rules this module keeps:

- VALUE and --context are parsed as JSON when they can be (else VALUE is a
  string); the reply is printed as one JSON object.
- Parsing (`parse`) and the request itself (`perform`, over any Runtime) are
  separate from the process glue (`main`), so tests drive them in the
  simulator; only `main` touches the cluster file and the real runtime.
- Exit status: 0 on success, 1 when the cluster answered with an error
  (printed as {"error": code, "definite": bool, "message": ...}), 2 for a
  broken cluster file or a node that is not in it (`--node`, or the NODE of
  join/leave): one line on stderr, nothing sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from systems.kv.messages import AdminRequest, KeyRequest, PutRequest
from systems.runtime.api import Message, RpcError, Runtime


@dataclass(frozen=True, slots=True)
class Command:
    cluster: str | None
    node: str | None
    action: str
    key: str | None = None
    value: Any = None
    context: dict[str, int] = field(default_factory=dict)
    timeout_s: float = 3.0


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse(argv: Sequence[str]) -> Command:
    p = argparse.ArgumentParser(prog="python -m systems.kv.cli", description="Talk to a KV cluster.")
    p.add_argument("--cluster", help="the cluster file (as for the nodes; default: the running kv cluster)")
    p.add_argument("--node", help="the node to ask (default: the first in the cluster file)")
    p.add_argument("--timeout", type=float, default=3.0)
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("get").add_argument("key")
    put = sub.add_parser("put")
    put.add_argument("key")
    put.add_argument("value")
    put.add_argument("--context", default="{}", help="the context a get returned (JSON)")
    sub.add_parser("join").add_argument("key", metavar="NODE")
    sub.add_parser("leave").add_argument("key", metavar="NODE")
    sub.add_parser("dump")
    a = p.parse_args(list(argv))
    context = json.loads(getattr(a, "context", "{}") or "{}")
    if not isinstance(context, dict):
        p.error("--context must be a JSON object")
    value = _json_or_text(a.value) if a.action == "put" else None
    return Command(a.cluster, a.node, a.action, getattr(a, "key", None), value, context, a.timeout)


def request(cmd: Command) -> tuple[str, Message]:
    match cmd.action:
        case "get":
            return "kv.get", KeyRequest(str(cmd.key)).to_wire()
        case "put":
            return "kv.put", PutRequest(str(cmd.key), cmd.value, cmd.context).to_wire()
        case "join" | "leave":
            return f"kv.{cmd.action}", AdminRequest(str(cmd.key)).to_wire()
        case "dump":
            return "kv.dump", {}
    raise ValueError(f"unknown action {cmd.action!r}")


def refusal(cmd: Command, nodes: Sequence[str]) -> str | None:
    """Why the command cannot be sent to a cluster of `nodes`, or None when it can."""
    if cmd.node is not None and cmd.node not in nodes:
        return f"--node {cmd.node} is not in the cluster file (nodes: {', '.join(nodes)})"
    if cmd.action in ("join", "leave") and cmd.key not in nodes:
        return (f"cannot {cmd.action} {cmd.key}: it is not a node of the cluster file (nodes: {', '.join(nodes)}); "
                f"add it to the file and start it first")
    return None


async def perform(rt: Runtime, node: str, cmd: Command) -> tuple[int, dict[str, Any]]:
    """(exit status, the reply or the error) for one command against `node`."""
    method, msg = request(cmd)
    try:
        reply = await rt.call(node, method, msg, timeout=cmd.timeout_s)
    except RpcError as e:
        return 1, {"error": e.code, "definite": e.definite, "message": e.message}
    return 0, reply if isinstance(reply, dict) else {"reply": reply}


def main(argv: Sequence[str] | None = None) -> None:
    from systems.runtime.node_main import ClusterFileError, load_cluster_file
    from systems.runtime.real import ClientEndpoint
    from systems.runtime.real_clusters import find_cluster_file

    cmd = parse(sys.argv[1:] if argv is None else argv)
    try:
        cluster = load_cluster_file(cmd.cluster or find_cluster_file("kv"))
        creds = cluster.credentials("client")  # the clients' key when the cluster has keys
    except ClusterFileError as e:
        sys.stderr.write(f"kv: error: {e}\n")
        raise SystemExit(2) from None
    why = refusal(cmd, list(cluster.nodes))
    if why is not None:
        sys.stderr.write(f"kv: error: {why}\n")
        raise SystemExit(2)
    node = cmd.node or next(iter(cluster.nodes))

    async def go() -> tuple[int, dict[str, Any]]:
        rt = ClientEndpoint(cluster.nodes, node_id="kv-cli", credentials=creds)
        try:
            return await perform(rt, node, cmd)
        finally:
            await rt.close()

    status, out = asyncio.run(go())
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    raise SystemExit(status)


if __name__ == "__main__":
    main()
