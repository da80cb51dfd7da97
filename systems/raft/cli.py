"""`python -m systems.raft.cli [--cluster FILE] get KEY | put KEY VALUE | cas KEY OLD NEW | status [NODE]`.

A small command line over the client library, for poking a running cluster
by hand. Values are parsed as JSON when they parse, else kept as strings.
Exit code 0 when the op succeeded, 1 when it failed or is in doubt, 2 on bad usage.
Without --cluster, the running raft cluster of `harness cluster up` is used
(systems/runtime/real_clusters.py says how it is found).

An op that did not succeed says, for every node it tried, what that node last
did: in the JSON line (`tried`: node -> what happened) and one line per node
on stderr ("n2 (127.0.0.1:7002): unreachable: connection refused"), so a
cluster with every node down reads as such, not as the last node's error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from systems.raft.client import RaftClient
from systems.runtime.api import RpcError
from systems.runtime.node_main import ClusterFileError, load_cluster_file, open_client
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_clusters import find_cluster_file


class Tried:
    """The client's runtime, recording what the last call to each node came to."""

    def __init__(self, rt: ClientEndpoint) -> None:
        self._rt = rt
        self.outcomes: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rt, name)

    async def call(self, dst: str, method: str, msg: Any, *, timeout: float) -> Any:
        try:
            reply = await self._rt.call(dst, method, msg, timeout=timeout)
        except RpcError as e:
            self.outcomes[dst] = f"{e.code}: {_why(e)}"
            raise
        status = reply.get("status") if isinstance(reply, dict) else None
        if status == "not-leader":
            hint = reply.get("leader")
            self.outcomes[dst] = "answered: not the leader" + (f" (it points to {hint})" if hint else " (knows none)")
        else:
            self.outcomes[dst] = f"answered: {status or 'a reply'}" + (
                f" ({reply['error']})" if isinstance(reply, dict) and reply.get("error") else "")
        return reply


def _why(e: RpcError) -> str:
    """The root of an RPC error's message: 'connection refused' rather than the transport's whole sentence."""
    text = e.message or type(e).__name__
    if "Connect call failed" in text or "refused" in text.lower():
        return "connection refused (is the node running?)"
    return text


def _value(s: str) -> Any:
    try:
        return json.loads(s)
    except ValueError:
        return s


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m systems.raft.cli", description="Talk to a Raft KV cluster.")
    p.add_argument("--cluster", help="cluster file (as for the nodes; default: the running raft cluster)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per operation")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("get").add_argument("key")
    put = sub.add_parser("put")
    put.add_argument("key")
    put.add_argument("value")
    app = sub.add_parser("append")
    app.add_argument("key")
    app.add_argument("value")
    cas = sub.add_parser("cas")
    cas.add_argument("key")
    cas.add_argument("old")
    cas.add_argument("new")
    st = sub.add_parser("status")
    st.add_argument("node", nargs="?")
    return p


async def _run(args: argparse.Namespace) -> int:
    cluster = load_cluster_file(args.cluster or find_cluster_file("raft"))
    ep = open_client(cluster, "raft-cli")  # with the clients' key when the cluster has keys
    tried = Tried(ep)
    try:
        client = RaftClient(tried, sorted(cluster.nodes), attempt_timeout_s=min(1.0, args.timeout))  # type: ignore[arg-type]
        if args.cmd == "status":
            nodes = [args.node] if args.node else sorted(cluster.nodes)
            for n in nodes:
                try:
                    _out(json.dumps(await client.status(n, timeout_s=args.timeout)))
                except RpcError as e:  # report every node, whatever went wrong with one
                    _out(json.dumps({"node": n, "error": f"{e.code}: {_why(e)}"}))
            return 0
        value: Any = None
        if args.cmd in ("put", "append"):
            value = _value(args.value)
        elif args.cmd == "cas":
            value = [_value(args.old), _value(args.new)]
        out = await client.request(args.cmd, args.key, value, timeout_s=args.timeout)
        line: dict[str, Any] = {"type": out.type, "value": out.value, "error": out.error, "leader": out.leader}
        if out.type != "ok":
            line["tried"] = dict(sorted(tried.outcomes.items()))
            for node, what in sorted(tried.outcomes.items()):
                addr = cluster.nodes.get(node)
                where = f" ({addr[0]}:{addr[1]})" if addr is not None else ""
                sys.stderr.write(f"raft-cli: {node}{where}: {what}\n")
            untried = sorted(set(cluster.nodes) - set(tried.outcomes))
            if untried:
                sys.stderr.write(f"raft-cli: not tried before the timeout: {' '.join(untried)}\n")
        _out(json.dumps(line))
        return 0 if out.type == "ok" else 1
    finally:
        await ep.close()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        sys.exit(asyncio.run(_run(args)))
    except ClusterFileError as e:
        sys.stderr.write(f"raft-cli: error: {e}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
