"""`python -m systems.raft.cli --cluster FILE get KEY | put KEY VALUE | cas KEY OLD NEW | status [NODE]`.

A small command line over the client library, for poking a running cluster
by hand. Values are parsed as JSON when they parse, else kept as strings.
Exit code 0 when the op succeeded, 1 when it failed or is in doubt, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from systems.raft.client import RaftClient
from systems.runtime.node_main import ClusterFileError, load_cluster_file
from systems.runtime.real import ClientEndpoint


def _value(s: str) -> Any:
    try:
        return json.loads(s)
    except ValueError:
        return s


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m systems.raft.cli", description="Talk to a Raft KV cluster.")
    p.add_argument("--cluster", required=True, help="cluster file (as for the nodes)")
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
    cluster = load_cluster_file(args.cluster)
    ep = ClientEndpoint(cluster.nodes)
    try:
        client = RaftClient(ep, sorted(cluster.nodes), attempt_timeout_s=min(1.0, args.timeout))
        if args.cmd == "status":
            nodes = [args.node] if args.node else sorted(cluster.nodes)
            for n in nodes:
                try:
                    _out(json.dumps(await client.status(n, timeout_s=args.timeout)))
                except Exception as e:  # report every node, whatever went wrong with one
                    _out(json.dumps({"node": n, "error": repr(e)}))
            return 0
        value: Any = None
        if args.cmd in ("put", "append"):
            value = _value(args.value)
        elif args.cmd == "cas":
            value = [_value(args.old), _value(args.new)]
        out = await client.request(args.cmd, args.key, value, timeout_s=args.timeout)
        _out(json.dumps({"type": out.type, "value": out.value, "error": out.error, "leader": out.leader}))
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
