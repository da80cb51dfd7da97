"""`python -m systems.dfs.cli [--cluster FILE] COMMAND ...`: use a running DFS by hand.

Commands:

    put LOCAL PATH       copy a local file (LOCAL "-" reads stdin) into a new DFS file
    get PATH [LOCAL]     copy a DFS file out (to stdout without LOCAL)
    append PATH DATA     record-append DATA (a string) to PATH, creating PATH if missing; prints the offset
    ls [PATH]            list the files under PATH (default: all)
    mv A B               rename A to B (atomic)
    rm PATH              delete PATH (hidden at once, reclaimed later)
    stat PATH            the file's chunks, versions and replicas (JSON)
    fsck                 under-replicated, stale, corrupt and lost chunks (JSON); exit 1 unless healthy
    status [NODE]        each node's own report (JSON, one line per node)

Rules: without --cluster, the running dfs cluster of `harness cluster up` is
used (systems/runtime/real_clusters.py says how it is found). The master is
the cluster file's `options.master` or its first node.
Local files are read and written through the real runtime's disk (written
whole, then renamed into place); a local name starting with "." is refused.
Any error is one line `dfs: error: ...` on stderr and a non-zero exit:
1 when the operation failed (or may not have happened), 2 on bad usage or
a broken cluster file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from systems.dfs.client import DfsClient, DfsError, default_master
from systems.runtime.node_main import ClusterFileError, load_cluster_file, open_client
from systems.runtime.real_clusters import find_cluster_file
from systems.runtime.real_disk import RealDisk


class UsageError(ValueError):
    pass


def _local(path: str) -> tuple[RealDisk, str]:
    """A disk rooted at the local file's directory, and the file's name on it."""
    root, _, name = path.rpartition("/")
    if not name:
        raise UsageError(f"{path!r} names a directory, not a file")
    try:
        return RealDisk(root or ("/" if path.startswith("/") else ".")), _checked(name)
    except OSError as e:
        raise UsageError(f"cannot use directory of {path!r}: {e.strerror or e}") from None


def _checked(name: str) -> str:
    if name.startswith("."):
        raise UsageError(f"local file name {name!r} starts with '.'; rename it first")
    return name


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m systems.dfs.cli", description="Talk to a DFS cluster.")
    p.add_argument("--cluster", help="cluster file (as for the nodes; default: the running dfs cluster)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per operation")
    sub = p.add_subparsers(dest="cmd", required=True)
    put = sub.add_parser("put", help="copy a local file in")
    put.add_argument("local")
    put.add_argument("path")
    get = sub.add_parser("get", help="copy a file out")
    get.add_argument("path")
    get.add_argument("local", nargs="?")
    app = sub.add_parser("append", help="record-append a string")
    app.add_argument("path")
    app.add_argument("data")
    sub.add_parser("ls").add_argument("path", nargs="?", default="/")
    mv = sub.add_parser("mv")
    mv.add_argument("src")
    mv.add_argument("dst")
    sub.add_parser("rm").add_argument("path")
    sub.add_parser("stat").add_argument("path")
    sub.add_parser("fsck")
    sub.add_parser("status").add_argument("node", nargs="?")
    return p


async def _run(args: argparse.Namespace) -> int:
    path = args.cluster or find_cluster_file("dfs")
    cluster = load_cluster_file(path)
    nodes = sorted(cluster.nodes)
    if args.cmd == "status" and args.node and args.node not in cluster.nodes:
        raise UsageError(f"node {args.node!r} is not in {path} (nodes: {', '.join(nodes)})")
    ep = open_client(cluster, "dfs-cli")  # with the clients' key when the cluster has keys
    try:
        client = DfsClient(ep, nodes, master=default_master(nodes, cluster.options), timeout_s=args.timeout)
        return await _command(client, args, nodes)
    finally:
        await ep.close()


async def _command(client: DfsClient, args: argparse.Namespace, nodes: list[str]) -> int:
    match args.cmd:
        case "put":
            if args.local == "-":
                data = sys.stdin.buffer.read()
            else:
                disk, name = _local(args.local)
                got = disk.read(name)
                if got is None:
                    raise UsageError(f"local file {args.local} does not exist")
                data = got
            await client.put(args.path, data)
            _out(json.dumps({"path": args.path, "bytes": len(data)}))
        case "get":
            data = await client.get(args.path)
            if args.local:
                disk, name = _local(args.local)
                disk.write(name, data)
                await disk.sync(name)
                disk.close()
            else:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
        case "append":
            try:
                await client.create(args.path)
            except DfsError as e:
                if e.code != "exists":
                    raise
            offset = await client.append(args.path, args.data.encode())
            _out(json.dumps({"path": args.path, "offset": offset}))
        case "ls":
            for path in await client.ls(args.path):
                _out(path)
        case "mv":
            await client.rename(args.src, args.dst)
        case "rm":
            await client.delete(args.path)
        case "stat":
            _out(json.dumps(await client.stat(args.path)))
        case "fsck":
            report = await client.fsck()
            _out(json.dumps(report))
            return 0 if report.get("healthy") else 1
        case "status":
            for n in [args.node] if args.node else nodes:
                try:
                    _out(json.dumps(await client.status(n, timeout_s=min(args.timeout, 5.0)), default=_bytes))
                except DfsError as e:
                    _out(json.dumps({"node": n, "error": str(e)}))
    return 0


def _bytes(v: Any) -> str:
    return v.hex() if isinstance(v, bytes) else repr(v)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = asyncio.run(_run(args))
    except (ClusterFileError, UsageError) as e:
        sys.stderr.write(f"dfs: error: {e}\n")
        code = 2
    except DfsError as e:
        doubt = "" if e.definite else " (it may have happened)"
        sys.stderr.write(f"dfs: error: {e}{doubt}\n")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
