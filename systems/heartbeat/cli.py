"""`python -m systems.heartbeat.cli [--cluster FILE] view [NODE] | watch [--interval S] [--count N]`.

A small command line for a running heartbeat cluster: what each node thinks
of every other.

- `view [NODE]` asks every node (or NODE) for its membership view and prints
  one JSON object per node: its own `view` reply, or {"node", "error"}
  saying why it did not answer. Exit 0 when every asked node answered, 1
  otherwise, 2 on bad usage (a broken cluster file, a node not in it).
- `watch` redraws the views as a table (rows: observers; columns: what each
  thinks of every node) every `--interval` seconds until Ctrl-C (or `--count`
  redraws), in plain text: it runs on a Pi with nothing but the node's
  dependencies.
- Without --cluster, the running heartbeat cluster of `harness cluster up`
  is used (systems/runtime/real_clusters.py says how it is found).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from base.status import NodeReply, plain_text
from systems.heartbeat.status import METHOD, REQUEST, tables
from systems.runtime.api import RpcError
from systems.runtime.node_main import ClusterFileError, load_cluster_file, open_client
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_clusters import find_cluster_file

CLEAR = "\x1b[H\x1b[2J"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m systems.heartbeat.cli",
                                description="Read a heartbeat cluster's membership views.")
    p.add_argument("--cluster", help="cluster file (default: the running heartbeat cluster of `harness cluster`)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each node")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("view", help="print each node's view as JSON").add_argument("node", nargs="?")
    watch = sub.add_parser("watch", help="redraw the views as a table until Ctrl-C")
    watch.add_argument("--interval", type=float, default=1.0)
    watch.add_argument("--count", type=int, default=0, help="stop after this many redraws (0: never)")
    return p


async def _ask(ep: ClientEndpoint, node: str, timeout: float) -> NodeReply:
    try:
        return NodeReply(node, await ep.call(node, METHOD, REQUEST, timeout=timeout))
    except RpcError as e:
        return NodeReply(node, error=f"{e.code}: {e.message or type(e).__name__}")


async def _views(ep: ClientEndpoint, nodes: Sequence[str], timeout: float) -> dict[str, NodeReply]:
    replies = await asyncio.gather(*(_ask(ep, n, timeout) for n in nodes))
    return {r.node: r for r in replies}


async def _run(args: argparse.Namespace) -> int:
    cluster = load_cluster_file(args.cluster or find_cluster_file("heartbeat"))
    nodes = sorted(cluster.nodes)
    if getattr(args, "node", None) and args.node not in cluster.nodes:
        sys.stderr.write(f"heartbeat-cli: error: {args.node} is not in the cluster file (nodes: {' '.join(nodes)})\n")
        return 2
    ep = open_client(cluster, "heartbeat-cli")  # with the clients' key when the cluster has keys
    try:
        if args.cmd == "view":
            replies = await _views(ep, [args.node] if args.node else nodes, args.timeout)
            for r in replies.values():
                line = r.reply if r.ok else {"node": r.node, "error": r.error}
                sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
            return 0 if all(r.ok for r in replies.values()) else 1
        shown = 0
        while True:
            replies = await _views(ep, nodes, args.timeout)
            sys.stdout.write(CLEAR + plain_text(tables(replies)))
            sys.stdout.flush()
            shown += 1
            if args.count and shown >= args.count:
                return 0
            await asyncio.sleep(args.interval)
    finally:
        await ep.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        sys.exit(asyncio.run(_run(args)))
    except ClusterFileError as e:
        sys.stderr.write(f"heartbeat-cli: error: {e}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
