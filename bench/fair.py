"""The fair race: contenders driven alike, cells interleaved, medians with spread, CPU per op.

Rules this module keeps:

- Every contender is up for the whole run; cells (op x clients) alternate
  between contenders, and the order flips every repetition (A B, then B A,
  ...), so slow drifts of the shared machine's load hit both alike.
- Each cell runs the same load generator (loadgen.drive): `clients` workers,
  each with a connection of its own, back to back for `seconds`. A cell
  records ops/s, p50/p99 latency, errors, and the CPU time every server
  process of that contender used during the cell (from /proc) divided by the
  ops done: the figure to compare first on a shared machine. The client's own
  CPU per op is recorded too.
- Figures are the median over repetitions, with the spread (min..max).
- Failover: SIGKILL the leader, then every `poll_s` start one put to each
  live member (each with a `try_s` timeout, never waiting for slower tries
  to finish first); the time from the kill to the first put answered ok.
  Same poll, same timeouts for every contender; kills alternate between
  contenders too. A killed process's port refuses connections at once,
  which a system may use as a hint; so failover is measured a second way
  too (`hang`): SIGSTOP the leader (its connections stay open and silent,
  as with a hung machine or a cut cable: only timeouts tell), the same
  poll, then SIGCONT and wait until the cluster serves puts again.
- Never a pass/fail: figures are printed, with the load average.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from loadgen import drive
from procstat import loadavg, own_cpu_seconds, total_cpu_seconds

OPS = ("put", "get")
CLIENTS = (1, 16, 64)


class Contender(Protocol):
    name: str

    async def open_clients(self, n: int) -> None:
        """Open n clients (one connection each) routed as the benchmark says."""
        ...

    async def prepare(self) -> None:
        """Before each cell: re-route clients if the leader moved."""
        ...

    async def close_clients(self) -> None: ...

    async def put(self, w: int, i: int) -> None: ...

    async def get(self, w: int, i: int) -> None: ...

    def server_pids(self) -> list[int]: ...


class FailoverContender(Contender, Protocol):
    async def leader(self) -> str: ...

    def live_members(self) -> list[str]: ...

    async def kill(self, member: str) -> None: ...

    async def restart(self, member: str) -> None:
        """Start the member again and return once the whole cluster serves puts."""
        ...

    async def try_put(self, member: str, timeout_s: float) -> bool:
        """One put sent to `member` (no retry): True when it was answered ok."""
        ...

    async def pause(self, member: str) -> None:
        """SIGSTOP the member."""
        ...

    async def resume(self, member: str) -> None:
        """SIGCONT the member and return once the whole cluster serves puts."""
        ...


@dataclass(frozen=True, slots=True)
class Sample:
    per_s: float
    p50: float
    p99: float
    errors: int
    server_us: float
    """Server CPU per op, µs (every server process of the contender)."""
    client_us: float


@dataclass
class Results:
    samples: dict[tuple[str, str, int], list[Sample]] = field(default_factory=dict)
    loads: list[tuple[float, float, float]] = field(default_factory=list)
    failovers: dict[str, list[float]] = field(default_factory=dict)
    hangs: dict[str, list[float]] = field(default_factory=dict)
    """Failover when the leader hangs (SIGSTOP) rather than dies."""

    def add(self, name: str, op: str, clients: int, s: Sample) -> None:
        self.samples.setdefault((name, op, clients), []).append(s)


async def run_cell(c: Contender, op: str, clients: int, seconds: float) -> Sample:
    await c.prepare()
    fn = c.put if op == "put" else c.get
    pids = c.server_pids()
    server0, client0 = total_cpu_seconds(pids), own_cpu_seconds()
    r = await drive(fn, clients, seconds)
    server = total_cpu_seconds(pids) - server0
    client = own_cpu_seconds() - client0
    ops = max(r.ok, 1)
    return Sample(r.per_s, r.p50, r.p99, r.errors, server / ops * 1e6, client / ops * 1e6)


async def run_matrix(
    contenders: Sequence[Contender],
    *,
    reps: int,
    seconds: float,
    ops: Sequence[str] = OPS,
    clients: Sequence[int] = CLIENTS,
    results: Results | None = None,
    verbose: bool = True,
) -> Results:
    res = results or Results()
    for c in contenders:
        await c.open_clients(max(clients))
    try:
        for rep in range(reps):
            order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
            res.loads.append(loadavg())
            for op in ops:
                for n in clients:
                    for c in order:
                        s = await run_cell(c, op, n, seconds)
                        res.add(c.name, op, n, s)
                        if verbose:
                            print(f"  rep {rep + 1} {c.name:5} {op} x{n:<3} {s.per_s:8.0f}/s  p50 {s.p50:6.2f}  "
                                  f"p99 {s.p99:7.2f} ms  server {s.server_us:6.0f} µs/op  "
                                  f"client {s.client_us:5.0f} µs/op  err {s.errors}", flush=True)
        res.loads.append(loadavg())
    finally:
        for c in contenders:
            await c.close_clients()
    return res


# -- failover ----------------------------------------------------------------------------------


async def poll_put(c: FailoverContender, *, poll_s: float, try_s: float, limit_s: float = 30.0) -> float:
    """Seconds until a put sent to some live member is answered ok (poll as in the module rules)."""
    started = time.monotonic()
    done = asyncio.Event()
    first: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def attempt(member: str) -> None:
        try:
            ok = await asyncio.wait_for(c.try_put(member, try_s), try_s + 0.05)
        except Exception:
            return
        if ok and not done.is_set():
            first.append(time.monotonic() - started)
            done.set()

    try:
        while time.monotonic() - started < limit_s:
            for m in c.live_members():
                t = asyncio.ensure_future(attempt(m))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            with_timeout = asyncio.ensure_future(done.wait())
            await asyncio.wait({with_timeout}, timeout=poll_s)
            with_timeout.cancel()
            if done.is_set():
                return first[0]
        raise RuntimeError(f"{c.name}: no put succeeded within {limit_s}s of the leader kill")
    finally:
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_failovers(
    contenders: Sequence[FailoverContender], *, kills: int, poll_s: float = 0.05, try_s: float = 0.25,
    results: Results | None = None, verbose: bool = True, hang: bool = False,
) -> Results:
    """`kills` leader failovers per contender, alternating; with `hang`, the leader is stopped, not killed."""
    res = results or Results()
    into, what = (res.hangs, "hang") if hang else (res.failovers, "kill")
    for k in range(kills):
        order = list(contenders) if k % 2 == 0 else list(reversed(contenders))
        for c in order:
            leader = await c.leader()
            await (c.pause(leader) if hang else c.kill(leader))
            took = await poll_put(c, poll_s=poll_s, try_s=try_s)
            into.setdefault(c.name, []).append(took)
            if verbose:
                print(f"  {what} {k + 1} {c.name:5} leader {leader}: next put ok after {took:.3f}s", flush=True)
            await (c.resume(leader) if hang else c.restart(leader))
            await asyncio.sleep(1.0)
    return res


# -- report --------------------------------------------------------------------------------------


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(values))}..{fmt.format(max(values))}" if values else "-"


def print_table(res: Results, names: Sequence[str], *, ratio: tuple[str, str] | None = None) -> None:
    """One row per (op, clients); per contender: ops/s median [spread], p50, p99, server and client µs/op."""
    head = f"{'op':4} {'cl':>3}"
    for n in names:
        head += f" | {n + ' ops/s':>11} {'spread':>11} {'p50':>6} {'p99':>7} {'srv µs/op':>13} {'cli µs':>6}"
    if ratio:
        head += f" | {ratio[0] + '/' + ratio[1]:>9} {'cpu':>5}"
    print(head)
    keys = sorted({(op, cl) for (_, op, cl) in res.samples}, key=lambda k: (OPS.index(k[0]), k[1]))
    for op, cl in keys:
        line = f"{op:4} {cl:>3}"
        for n in names:
            ss = res.samples.get((n, op, cl), [])
            if not ss:
                line += f" | {'-':>11} {'':>11} {'':>6} {'':>7} {'':>13} {'':>6}"
                continue
            per_s = [s.per_s for s in ss]
            srv = [s.server_us for s in ss]
            line += (f" | {med(per_s):11.0f} {spread(per_s):>11} {med([s.p50 for s in ss]):6.2f} "
                     f"{med([s.p99 for s in ss]):7.2f} {med(srv):5.0f} {spread(srv):>7} "
                     f"{med([s.client_us for s in ss]):6.0f}")
        if ratio:
            a, b = (res.samples.get((n, op, cl), []) for n in ratio)
            if a and b:
                r_tput = med([s.per_s for s in a]) / max(med([s.per_s for s in b]), 1e-9)
                r_cpu = med([s.server_us for s in b]) / max(med([s.server_us for s in a]), 1e-9)
                line += f" | {r_tput:9.2f} {r_cpu:5.2f}"
        print(line)
    errors = {n: sum(s.errors for (m, _, _), ss in res.samples.items() if m == n for s in ss) for n in names}
    print("errors (all cells): " + ", ".join(f"{n} {e}" for n, e in errors.items()))


def print_failover(res: Results, poll_s: float, try_s: float) -> None:
    for how, runs in (("SIGKILL", res.failovers), ("SIGSTOP, leader hung", res.hangs)):
        for name, times in runs.items():
            print(f"{name} leader failover ({how} -> next put ok; poll {poll_s * 1000:.0f} ms, try timeout "
                  f"{try_s * 1000:.0f} ms): median {med(times):.3f}s  spread {spread(times, '{:.3f}')}s  "
                  f"all {', '.join(f'{t:.3f}' for t in times)}")


def print_load(res: Results) -> None:
    if res.loads:
        ones = [x[0] for x in res.loads]
        print(f"load average (1 min) during the run: median {med(ones):.2f}, {spread(ones, '{:.2f}')} "
              f"({len(ones)} readings); at the end {res.loads[-1][0]:.2f} {res.loads[-1][1]:.2f} "
              f"{res.loads[-1][2]:.2f}")
