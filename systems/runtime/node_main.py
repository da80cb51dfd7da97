"""The command line behind every `python -m systems.<name>`: run one node on the real runtime.

    python -m systems.echo --cluster FILE --id NODE [--data-dir DIR] [--log FILE]
                           [--bug NAME]... [--seed N]

Rules this module keeps:

- The cluster file is JSON, or TOML when its name ends in `.toml`:
  `{"system": "echo", "seed": 0, "bugs": [], "options": {...},
    "nodes": {"n1": {"host": "127.0.0.1", "port": 7001}, ...},
    "auth": {"keys": "keys"}}`.
  Only "nodes" is required. Node ids are safe names (`api.check_node_id`:
  no "/", never ".."). "auth.keys" is the cluster's key directory
  (real_auth), relative to the cluster file: each node reads its own
  `node-<id>.key` there and every connection is authenticated; without
  "auth" the cluster runs open and each node logs `auth-off`. A broken file
  (missing, unreadable, bad syntax, wrong shape, another system's file,
  unknown or unsafe node id, bad host or port, a key file missing or open
  to others) or an unknown `--bug` ends the process with one line
  `node: error: ...` on stderr naming the problem and exit code 2: never a
  traceback.
- The system's entry point (`systems/<name>/__main__.py`) passes its
  `start_node`, `BUGS` and `DEFAULT_OPTIONS` in; this module imports no
  system.
- `--seed` overrides the file's seed; `--bug`s are added to the file's bugs
  and must be among the system's BUGS; options are the system's
  DEFAULT_OPTIONS overlaid with the file's options.
- `--data-dir` defaults to `data/<id>` beside the cluster file, which
  stays inside that directory because node ids are safe names (no `/`,
  no `..`: check_node_id). An explicit `--data-dir` is the operator's
  choice and may be anywhere (ssh services keep data apart from the run's
  cluster file). `--log` defaults to stderr (JSON lines, see real_log).
- At start the open-file limit is raised to the hard limit (logged as
  `open-file-limit`), and the event loop's own errors (an `accept` out of
  descriptors, which asyncio retries every second) become throttled log
  records, never a traceback per attempt.
- Start: the node listens on its address, runs `start_node(rt, config)`,
  then marks itself ready (requests that arrived meanwhile wait; `ping`
  answers `ready: false` until then) and logs `node-started` with its pid.
  A port already taken logs the reason, prints one line and exits
  `EXIT_PORT_TAKEN` (3: the local backend then picks other ports); any other
  failure to listen, or `start_node` raising, does the same with exit 1;
  damaged durable data (`CorruptData`) is said as the file's full path, the
  byte offset and what to do.
- It serves until SIGTERM or SIGINT (logs `node-stopping`, closes
  connections, cancels tasks, exit 0) or SIGKILL, or until the runtime
  fails (fail-stop, see real.py: a disk error, an essential task that
  died): then `node-failed` is in the log, one line on stderr, and the
  process exits `EXIT_NODE_FAILED` at once, whatever is still running.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import ipaddress
import json
import os
import resource
import signal
import sys
import tomllib
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from systems.runtime.api import CorruptData, NodeConfig, NodeMain, Throttle, check_node_id
from systems.runtime.real import ClientEndpoint, RealRuntime
from systems.runtime.real_auth import (
    CLIENT_KEY_FILE,
    HARNESS_KEY_FILE,
    Credentials,
    KeyFileError,
    load_key_file,
    node_key_file,
)
from systems.runtime.real_log import JsonLog
from systems.runtime.real_transport import Address

EXIT_PORT_TAKEN = 3
"""Exit status when the node's address is already in use."""
EXIT_NODE_FAILED = 70
"""Exit status of a node that stopped itself (fail-stop): its disk or its protocol loop failed."""
OPEN_FILES_WANTED = 65536
"""The open-file limit asked for when the hard limit is unlimited."""


class ClusterFileError(ValueError):
    """The cluster file cannot be used; the message names the problem."""


@dataclass(frozen=True, slots=True)
class ClusterFile:
    system: str | None
    seed: int
    bugs: tuple[str, ...]
    options: dict[str, Any]
    nodes: dict[str, Address]
    key_dir: Path | None = None
    """The cluster's key directory ("auth": {"keys": DIR}, resolved beside the file); None: open."""

    def credentials(self, who: str) -> Credentials | None:
        """The key file of `who` (a node id, "harness" or "client"); None for an open cluster.
        Raises ClusterFileError naming the file when it is missing, unreadable or open to others."""
        if self.key_dir is None:
            return None
        name = {"harness": HARNESS_KEY_FILE, "client": CLIENT_KEY_FILE}.get(who) or node_key_file(who)
        try:
            creds = load_key_file(self.key_dir / name)
        except KeyFileError as e:
            raise ClusterFileError(str(e)) from None
        expected = who if who in ("harness", "client") else "node"
        if creds.role != expected or (expected == "node" and creds.name != who):
            raise ClusterFileError(f"key file {self.key_dir / name} is not {who}'s")
        return creds


def open_client(cluster: ClusterFile, name: str = "client", *, role: str = "client",
                log: JsonLog | None = None) -> ClientEndpoint:
    """A client endpoint for this cluster, holding the clients' (or the harness's) key when it has keys."""
    return ClientEndpoint(cluster.nodes, node_id=name, log=log, credentials=cluster.credentials(role))


def load_cluster_file(path: str | Path) -> ClusterFile:
    """Parse and validate a cluster file (JSON, or TOML by extension). Raises ClusterFileError."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ClusterFileError(f"cluster file {p} does not exist") from None
    except OSError as e:
        raise ClusterFileError(f"cannot read cluster file {p}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8")) if p.suffix.lower() == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        kind = "TOML" if p.suffix.lower() == ".toml" else "JSON"
        raise ClusterFileError(f"cluster file {p} is not valid {kind}: {e}") from None
    cf = parse_cluster(data, str(p))
    if cf.key_dir is not None and not cf.key_dir.is_absolute():
        cf = dataclasses.replace(cf, key_dir=(p.resolve().parent / cf.key_dir))
    return cf


def parse_cluster(data: Any, source: str = "cluster file") -> ClusterFile:
    if not isinstance(data, dict):
        raise ClusterFileError(f"{source}: top level must be an object/table")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise ClusterFileError(f"{source}: 'system' must be a string")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ClusterFileError(f"{source}: 'seed' must be an integer, got {seed!r}")
    bugs = data.get("bugs", [])
    if not isinstance(bugs, list) or not all(isinstance(b, str) for b in bugs):
        raise ClusterFileError(f"{source}: 'bugs' must be a list of strings")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise ClusterFileError(f"{source}: 'options' must be an object/table")
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        raise ClusterFileError(f"{source}: 'nodes' must be a non-empty object of node id -> {{host, port}}")
    nodes: dict[str, Address] = {}
    for nid, spec in nodes_raw.items():
        try:
            check_node_id(nid)
        except ValueError as e:
            raise ClusterFileError(f"{source}: {e}") from None
        if nid == "client":
            raise ClusterFileError(f"{source}: bad node id {nid!r} (reserved for the harness's endpoint)")
        if not isinstance(spec, dict):
            raise ClusterFileError(f"{source}: node {nid}: must be an object with host and port")
        host, port = spec.get("host"), spec.get("port")
        if not isinstance(host, str) or not host:
            raise ClusterFileError(f"{source}: node {nid}: 'host' must be a non-empty string, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ClusterFileError(f"{source}: node {nid}: 'port' must be an integer in 1..65535, got {port!r}")
        nodes[nid] = (host, port)
    auth = data.get("auth")
    key_dir: Path | None = None
    if auth is not None:
        keys = auth.get("keys") if isinstance(auth, dict) else None
        if not isinstance(keys, str) or not keys:
            raise ClusterFileError(f"{source}: 'auth' must be {{\"keys\": \"<key directory>\"}}")
        key_dir = Path(keys)
    return ClusterFile(system, seed, tuple(bugs), dict(options), nodes, key_dir)


def _fail(msg: str, code: int = 2) -> NoReturn:
    print(f"node: error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _parser(system_name: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m systems.{system_name}", description=f"Run one {system_name} node.")
    ap.add_argument("--cluster", required=True, help="cluster file (JSON, or TOML by .toml extension)")
    ap.add_argument("--id", required=True, dest="node_id", help="this node's id in the cluster file")
    ap.add_argument("--data-dir", help="the node's data directory (default: data/<id> beside the cluster file)")
    ap.add_argument("--log", help="append the JSON-lines log to this file (default: stderr)")
    ap.add_argument("--bug", action="append", default=[], help="switch on a planted bug (repeatable)")
    ap.add_argument("--seed", type=int, help="override the cluster file's seed")
    return ap


def main(
    system_name: str,
    start_node: NodeMain,
    *,
    bugs: Mapping[str, str],
    default_options: Mapping[str, Any],
    argv: Sequence[str] | None = None,
) -> None:
    """Run one node of `system_name` (its BUGS and DEFAULT_OPTIONS given by its entry point)."""
    args = _parser(system_name).parse_args(argv)
    try:
        cf = load_cluster_file(args.cluster)
    except ClusterFileError as e:
        _fail(str(e))
    if cf.system is not None and cf.system != system_name:
        _fail(f"cluster file {args.cluster} is for system {cf.system!r}, not {system_name!r}")
    if args.node_id not in cf.nodes:
        _fail(f"node id {args.node_id!r} is not in cluster file {args.cluster} (nodes: {', '.join(cf.nodes)})")
    host, _port = cf.nodes[args.node_id]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None  # a host name: resolved when binding
    if ip is not None and ip.is_multicast:
        _fail(f"node {args.node_id}: host {host} is a multicast address")
    planted = tuple(dict.fromkeys([*cf.bugs, *args.bug]))
    unknown = [b for b in planted if b not in bugs]
    if unknown:
        known = ", ".join(sorted(bugs)) or "none"
        _fail(f"unknown bug {unknown[0]!r} for system {system_name} (known: {known})")
    seed = args.seed if args.seed is not None else cf.seed
    config = NodeConfig(system=system_name, bugs=planted, options={**default_options, **cf.options}, seed=seed)
    home = Path(args.cluster).resolve().parent
    data_dir = (Path(args.data_dir) if args.data_dir else home / "data" / args.node_id).resolve()
    try:
        creds = cf.credentials(args.node_id)
    except ClusterFileError as e:
        _fail(str(e))
    try:
        log = JsonLog.to_file(args.node_id, args.log) if args.log else JsonLog(args.node_id)
    except OSError as e:
        _fail(f"cannot open log file {args.log}: {e.strerror or e}")
    limit = raise_open_file_limit()
    try:
        code = asyncio.run(_serve(args.node_id, cf.nodes, data_dir, seed, log, start_node, config, creds, limit))
    except KeyboardInterrupt:
        code = 0
    log.close()
    raise SystemExit(code)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (OPEN_FILES_WANTED when unlimited), where the
    OS allows; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            return soft, want
        except (ValueError, OSError):
            pass
    return soft, soft


def quiet_loop_errors(loop: asyncio.AbstractEventLoop, warn: Throttle) -> None:
    """The loop's own errors become throttled records: asyncio retries an `accept` that ran out of
    descriptors every second, and would print a traceback each time."""

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            warn.warning("accept-backoff", error=repr(exc), retry_s=1.0)
        else:
            warn.warning("loop-error", message=message, error=repr(exc))

    loop.set_exception_handler(handler)


async def _serve(
    node_id: str,
    nodes: dict[str, Address],
    data_dir: Path,
    seed: int,
    log: JsonLog,
    start_node: NodeMain,
    config: NodeConfig,
    creds: Credentials | None,
    limit: tuple[int, int],
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        rt = RealRuntime(node_id, nodes, data_dir, seed=seed, log=log, credentials=creds)
    except OSError as e:
        log.error("node-failed", reason=f"data dir {data_dir}: {e}")
        print(f"node: error: cannot use data directory {data_dir}: {e.strerror or e}", file=sys.stderr)
        return 1
    quiet_loop_errors(loop, rt.warn)
    failed: list[str] = []

    def on_failure(reason: str) -> None:
        failed.append(reason)
        stop.set()

    rt.on_failure = on_failure
    log.info("open-file-limit", before=limit[0], after=limit[1])
    if creds is None:
        log.warning("auth-off", why="the cluster file has no auth section: any process can talk to this node")
    try:
        await rt.start()
    except OSError as e:
        host, port = nodes[node_id]
        log.error("node-failed", reason=f"cannot listen on {host}:{port}: {e}")
        print(f"node: error: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
        await rt.close()
        return EXIT_PORT_TAKEN if e.errno == errno.EADDRINUSE else 1
    try:
        await start_node(rt, config)
        if failed:
            raise RuntimeError(failed[0])
    except CorruptData as e:
        path = data_dir / e.name
        log.error("node-failed", reason="damaged durable data", file=str(path), offset=e.offset, why=e.reason)
        print(f"node: error: {path}: damaged at byte {e.offset} ({e.reason}); {node_id} will not start on it "
              f"(move {data_dir} away to let the node rejoin empty and catch up from its peers)", file=sys.stderr)
        await rt.close()
        return 1
    except Exception as e:
        log.error("node-failed", reason="start_node raised", error=repr(e),
                  traceback="".join(traceback.format_exception(e)))
        print(f"node: error: start_node failed: {e!r}", file=sys.stderr)
        await rt.close()
        return 1
    rt.mark_ready()
    host, port = nodes[node_id]
    log.info("node-started", pid=os.getpid(), system=config.system, host=host, port=port,
             bugs=list(config.bugs), seed=seed, data_dir=str(data_dir))
    await stop.wait()
    if failed:
        _die(rt, log, failed[0])
    log.info("node-stopping", pid=os.getpid())
    await rt.close()
    log.info("node-stopped", pid=os.getpid())
    return 0


def _die(rt: RealRuntime, log: JsonLog, reason: str) -> NoReturn:
    """Fail-stop: the runtime has logged `node-failed` and cut its connections; leave now, without
    waiting for tasks or threads that may hang on a failing disk."""
    print(f"node: error: {rt.node_id} stopped itself: {reason}", file=sys.stderr, flush=True)
    log.close()
    os._exit(EXIT_NODE_FAILED)
