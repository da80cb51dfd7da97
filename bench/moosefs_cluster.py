"""MooseFS, a production GFS-style file system, started and stopped for a benchmark.

Debian's moosefs-master, moosefs-chunkserver and moosefs-client (3.0.x):
one master and `chunkservers` chunkservers, each daemon in a network
namespace of our own on a bridge of our own (MooseFS chunkservers refuse a
master on any 127.0.0.0/8 address, and we never use the machine's own
interface), and the file system mounted with FUSE (`mfsmount`) in the root
namespace, which reaches the daemons through the bridge's address.

Rules this module keeps:

- Everything it creates (namespaces, links, daemon pids) is written down in a
  `HostsState` before it is created, like the netns backend's runs, so
  `harness cleanup DIR` undoes a crashed benchmark; on every exit path the
  mount is unmounted, every daemon stopped (SIGTERM, then SIGKILL) and every
  namespace and link removed.
- Each daemon has its own config file (`-c`), data directory and ports; the
  master's metadata starts from Debian's `metadata.mfs.empty`. Daemons run as
  root at nice 0 (MooseFS's default is -19, which would let it take the CPU
  from the contender it is compared with).
- Durability: chunkservers fsync chunk files before close
  (`HDD_FSYNC_BEFORE_CLOSE = 1`); an fsync on the FUSE file makes mfsmount
  flush and close the chunk on every chunkserver of the chain, so a
  benchmark that fsyncs after every write has MooseFS sync what it
  acknowledges, as the DFS does.
- `goal` (replicas per chunk) and trash time 0 (a deleted file's chunks go
  at once) are set on the mount's root before any file is written; the
  context yields once every chunkserver is registered.
- mfsmount runs in the foreground as a child we hold (its pid is known, for
  CPU accounting and to stop it), at nice 0, with the cache mode asked for
  (`DIRECT` by default: no kernel page cache, every read reaches the
  chunkservers, as the DFS client library has no cache).
- Re-replication is not held back by configuration: the master starts
  replicating at once (`REPLICATIONS_DELAY_INIT = 0`) and loops over its
  chunks every `chunks_loop_s` seconds (MooseFS's default is 300).
- `kill_chunkserver` SIGKILLs one chunkserver (a crash: its connection to
  the master drops at once); `start_chunkserver` starts it again over its
  disk and waits until it is registered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.backends.lifecycle import Teardown
from harness.backends.netns import build_network, make_plan, teardown
from harness.hosts_state import HostsState

EMPTY_METADATA = Path("/var/lib/mfs/metadata.mfs.empty")
MASTER_CS_PORT = 9420
MASTER_CLIENT_PORT = 9421
CHUNKSERVER_PORT = 9422
BINARIES = ("mfsmaster", "mfschunkserver", "mfsmount")


class MooseFSUnavailable(RuntimeError):
    """MooseFS cannot run here (not root, a package missing); the message says what to install."""


def missing() -> str | None:
    """Why MooseFS cannot be benchmarked here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces for the daemons, a FUSE mount)"
    for binary in BINARIES:
        if shutil.which(binary) is None:
            return f"needs {binary} (apt-get install moosefs-master moosefs-chunkserver moosefs-client)"
    if not EMPTY_METADATA.exists():
        return f"needs {EMPTY_METADATA} (from moosefs-master)"
    if not Path("/dev/fuse").exists():
        return "needs /dev/fuse for mfsmount"
    return None


@dataclass
class Daemon:
    netns: str
    argv: list[str]
    out: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class MooseFS:
    mount: Path
    master_ip: str
    chunkserver_ips: tuple[str, ...]
    goal: int
    daemons: dict[str, Daemon]
    """"master", "cs1".. and "mfsmount" (the mount's own process, in the root namespace)."""
    state: HostsState
    ready_timeout_s: float = 60.0

    def pids(self) -> dict[str, int]:
        """The pid of every running MooseFS process, by name."""
        return {name: d.proc.pid for name, d in self.daemons.items() if d.proc is not None and d.proc.poll() is None}

    def chunkserver_name(self, ip: str) -> str:
        return f"cs{self.chunkserver_ips.index(ip) + 1}"

    def kill_chunkserver(self, ip: str) -> None:
        d = self.daemons[self.chunkserver_name(ip)]
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(timeout=10)
            self.state.drop_pid(d.proc.pid)
        d.proc = None

    def start_chunkserver(self, ip: str) -> None:
        d = self.daemons[self.chunkserver_name(ip)]
        assert d.proc is None or d.proc.poll() is not None, f"{ip} is running"
        d.proc = _daemon(d.netns, d.argv, d.out, self.state)
        _wait_for_chunkservers(self, self.ready_timeout_s)


def _write(path: Path, lines: dict[str, object]) -> Path:
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    return path


@contextmanager
def moosefs(workdir: Path, *, chunkservers: int = 3, goal: int = 3, ready_timeout_s: float = 60.0,
            cache_mode: str = "DIRECT", chunks_loop_s: int = 1) -> Iterator[MooseFS]:
    """A running MooseFS mounted under workdir/mnt; everything is removed on exit."""
    why = missing()
    if why:
        raise MooseFSUnavailable(why)
    workdir = workdir.resolve()
    if workdir.exists() and any(workdir.iterdir()):
        raise MooseFSUnavailable(f"{workdir} is not empty: MooseFS wants a fresh directory")
    workdir.mkdir(parents=True, exist_ok=True)
    names = ["master", *(f"cs{i}" for i in range(1, chunkservers + 1))]
    plan = make_plan(names)
    state = HostsState(run_id=plan.prefix, backend="netns", run_dir=str(workdir), marker=str(workdir))
    state.save()
    daemons: dict[str, Daemon] = {}
    mount = workdir / "mnt"
    with Teardown() as td:
        td.push("forget the benchmark's record", lambda: state.finish() if state.is_empty() else None)
        td.push("remove MooseFS's namespaces and links", lambda: teardown(state))
        td.push("stop the MooseFS daemons", lambda: _stop(daemons, state))
        build_network(plan, state)
        master = plan.node("master")
        exports = workdir / "mfsexports.cfg"
        exports.write_text("*\t/\trw,alldirs,admin,maproot=0:0\n*\t.\trw\n")
        data = workdir / "master"
        data.mkdir(exist_ok=True)
        shutil.copy(EMPTY_METADATA, data / "metadata.mfs")
        cfg = _write(workdir / "mfsmaster.cfg", {
            "WORKING_USER": "root", "WORKING_GROUP": "root", "NICE_LEVEL": 0, "LOCK_MEMORY": 0,
            "DATA_PATH": data, "EXPORTS_FILENAME": exports, "MATOCS_LISTEN_PORT": MASTER_CS_PORT,
            "MATOCL_LISTEN_PORT": MASTER_CLIENT_PORT, "REPLICATIONS_DELAY_INIT": 0,
            "CHUNKS_LOOP_MIN_TIME": chunks_loop_s,
        })
        daemons["master"] = Daemon(master.netns, ["mfsmaster", "-c", str(cfg), "-f", "start"], workdir / "master.out")
        ips = []
        for name in names[1:]:
            node = plan.node(name)
            ips.append(node.ip)
            disk = workdir / name / "hdd"
            disk.mkdir(parents=True, exist_ok=True)
            hdd = workdir / name / "mfshdd.cfg"
            hdd.write_text(f"{disk}\n")
            cs_cfg = _write(workdir / name / "mfschunkserver.cfg", {
                "WORKING_USER": "root", "WORKING_GROUP": "root", "NICE_LEVEL": 0, "LOCK_MEMORY": 0,
                "DATA_PATH": workdir / name, "HDD_CONF_FILENAME": hdd, "MASTER_HOST": master.ip,
                "MASTER_PORT": MASTER_CS_PORT, "CSSERV_LISTEN_PORT": CHUNKSERVER_PORT,
                "HDD_FSYNC_BEFORE_CLOSE": 1, "HDD_LEAVE_SPACE_DEFAULT": "64MiB", "HDD_TEST_SPEED": 0,
            })
            daemons[name] = Daemon(node.netns, ["mfschunkserver", "-c", str(cs_cfg), "-f", "start"],
                                   workdir / f"{name}.out")
        for d in daemons.values():
            d.proc = _daemon(d.netns, d.argv, d.out, state)
        mount.mkdir(exist_ok=True)
        td.push("unmount MooseFS", lambda: _umount(mount))
        daemons["mfsmount"] = _mount(mount, master.ip, cache_mode, workdir / "mfsmount.out", state, ready_timeout_s)
        subprocess.run(["mfssetgoal", "-r", str(goal), str(mount)], check=True, capture_output=True, timeout=30)
        subprocess.run(["mfssettrashtime", "-r", "0", str(mount)], check=True, capture_output=True, timeout=30)
        fs = MooseFS(mount, master.ip, tuple(ips), goal, daemons, state, ready_timeout_s)
        _wait_for_chunkservers(fs, ready_timeout_s)
        yield fs


def _daemon(netns: str, argv: list[str], out: Path, state: HostsState) -> subprocess.Popen[bytes]:
    """`argv` in the namespace (`ip netns exec` execs in place: the pid is the daemon's); "" is the root one."""
    with open(out, "ab") as log:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, *argv] if netns else argv, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    state.add_pid(proc.pid)
    return proc


def _stop(daemons: dict[str, Daemon], state: HostsState) -> None:
    procs = [d.proc for d in daemons.values() if d.proc is not None]
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
        state.drop_pid(p.pid)


def _mount(mount: Path, master_ip: str, cache_mode: str, out: Path, state: HostsState, timeout_s: float) -> Daemon:
    """mfsmount in the foreground (a child we hold), once the mount point is a mount."""
    argv = ["mfsmount", str(mount), "-f", "-H", master_ip, "-P", str(MASTER_CLIENT_PORT), "-o", "mfsioretries=5",
            "-o", "mfsnice=0", "-o", f"mfscachemode={cache_mode}"]
    deadline = time.monotonic() + timeout_s
    while True:
        d = Daemon("", argv, out)
        d.proc = _daemon("", argv, out, state)
        while time.monotonic() < deadline and d.proc.poll() is None:
            if os.path.ismount(mount):
                return d
            time.sleep(0.1)
        if d.proc.poll() is None:
            d.proc.kill()
        d.proc.wait(timeout=10)
        state.drop_pid(d.proc.pid)
        if time.monotonic() > deadline:
            raise RuntimeError(f"mfsmount failed; see {out}")
        time.sleep(0.5)


def _umount(mount: Path) -> None:
    if os.path.ismount(mount):
        r = subprocess.run(["umount", str(mount)], capture_output=True, timeout=60)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=60)


def _wait_for_chunkservers(fs: MooseFS, timeout_s: float) -> None:
    """Wait until the master lists every chunkserver, each with its disk scanned (mfscli -SCS)."""
    deadline = time.monotonic() + timeout_s
    argv = ["mfscli", "-H", fs.master_ip, "-P", str(MASTER_CLIENT_PORT), "-n", "-p", "-s", "|", "-SCS"]
    last = ""
    while time.monotonic() < deadline:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        last = r.stdout + r.stderr
        rows = [line.split("|") for line in last.splitlines() if line.startswith("chunk servers:")]
        listed = {row[1] for row in rows if len(row) > 10 and row[10] not in ("", "0", "-")}  # total space known
        if listed >= set(fs.chunkserver_ips):
            return
        time.sleep(0.5)
    raise RuntimeError(f"MooseFS: the chunkservers did not all register in {timeout_s:g}s: {last.strip()[-400:]}")
