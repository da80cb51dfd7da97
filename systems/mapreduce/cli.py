"""`python -m systems.mapreduce.cli --cluster FILE submit JOB --input PATTERN --output DIR [--reduces R]`.

Commands:

    submit NAME --input P [--input P ...] --output DIR [--reduces R] [--job ID] [--param K=V ...] [--no-wait]
    status JOB            one job's status as JSON
    jobs                  every job the coordinator keeps, one line each
    cat DIR               the job's output: its part files in order, concatenated
    put LOCAL PATH        store a local file ("-": stdin) in the DFS, atomically (staging name, then rename)

`submit` waits for the job and shows its progress on stderr (map and
reduce tasks completed, executions, backups), then prints the final status
line; NAME is a built-in job (wordcount, indexer, grep, sort) or a module
path the nodes can import. Exit codes: 0 done, 1 the job failed or an
operation failed, 2 bad usage or a broken cluster file (one line on
stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from systems.mapreduce.client import MrClient
from systems.mapreduce.store import StoreError
from systems.runtime.api import RpcError
from systems.runtime.node_main import ClusterFileError, load_cluster_file, open_client
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_disk import RealDisk


class UsageError(Exception):
    pass


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _read_local(local: str) -> bytes:
    """A local file's bytes ("-": stdin), through the runtime's disk (systems code opens no files itself)."""
    if local == "-":
        return sys.stdin.buffer.read()
    directory, _, name = local.rpartition("/")
    try:
        disk = RealDisk(directory or ".")
        data = disk.read(name)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {local}: {e}") from None
    if data is None:
        raise UsageError(f"local file {local} does not exist")
    return data


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m systems.mapreduce.cli", description="Run MapReduce jobs on the DFS.")
    p.add_argument("--cluster", required=True, help="cluster file (as for the nodes)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per operation")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("submit", help="submit a job and wait for it")
    s.add_argument("name", help="wordcount, indexer, grep, sort, or a module path")
    s.add_argument("--input", action="append", required=True, help="DFS path or pattern (repeatable)")
    s.add_argument("--output", required=True, help="DFS output directory")
    s.add_argument("--reduces", type=int, default=1)
    s.add_argument("--job", help="job id (default: NAME and the time)")
    s.add_argument("--param", action="append", default=[], help="job parameter KEY=VALUE (e.g. pattern=foo)")
    s.add_argument("--no-wait", action="store_true", help="return once the job is accepted")
    sub.add_parser("status").add_argument("job")
    sub.add_parser("jobs")
    sub.add_parser("cat").add_argument("output")
    put = sub.add_parser("put")
    put.add_argument("local")
    put.add_argument("path")
    return p


def _params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _progress(st: dict[str, Any]) -> str:
    m, r, e = st["map_tasks"], st["reduce_tasks"], st["executions"]
    return (f"{st['job']}: {st['state']}  maps {m['completed']}/{sum(m.values())}  "
            f"reduces {r['completed']}/{sum(r.values())}  executions {e['map']}+{e['reduce']} "
            f"(backups {e['backup']})")


async def _submit(mr: MrClient, args: argparse.Namespace, ep: ClientEndpoint) -> int:
    job = args.job or f"{args.name.rpartition('.')[2]}-{int(ep.now() * 1000) % 10**9}"
    st = await mr.submit(job, args.name, args.input, args.output, args.reduces, _params(args.param))
    if args.no_wait:
        _out(json.dumps(st))
        return 0
    last = ""
    while st["state"] == "running":
        line = _progress(st)
        if line != last:
            _err(line)
            last = line
        await ep.sleep(0.5)
        st = await mr.status(job)
    _out(_progress(st) + (f"  error: {st['error']}" if st.get("error") else ""))
    return 0 if st["state"] == "done" else 1


async def _run(args: argparse.Namespace) -> int:
    cluster = load_cluster_file(args.cluster)
    ep = open_client(cluster, "mr-cli")  # with the clients' key when the cluster has keys
    try:
        mr = MrClient(ep, sorted(cluster.nodes), cluster.options, timeout_s=args.timeout)
        match args.cmd:
            case "submit":
                return await _submit(mr, args, ep)
            case "status":
                _out(json.dumps(await mr.status(args.job)))
            case "jobs":
                for st in await mr.jobs():
                    _out(_progress(st))
            case "cat":
                parts = await mr.read_output(args.output.rstrip("/"))
                if not parts:
                    raise UsageError(f"{args.output}: no part files")
                for name in sorted(parts):
                    sys.stdout.buffer.write(parts[name])
                sys.stdout.flush()
            case "put":
                data = _read_local(args.local)
                await mr.put_file(args.path, data)
                _out(json.dumps({"path": args.path, "bytes": len(data)}))
        return 0
    finally:
        await ep.close()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = asyncio.run(_run(args))
    except (ClusterFileError, UsageError) as e:
        _err(f"mapreduce: error: {e}")
        code = 2
    except RpcError as e:
        _err(f"mapreduce: error: {e.code}: {e.message}")
        code = 1
    except StoreError as e:
        _err(f"mapreduce: error: DFS: {e}")
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
