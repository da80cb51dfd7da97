"""The nemesis schedule: random faults one at a time, or an explicit script of faults.

The random schedule. Each cycle: a healthy stretch, then one package
inflicts its fault, holds it, and cures it. Packages are dealt from a
shuffled deck (every chosen package once per round, or `Pace.weights` times,
in a seeded random order), so a run long enough for one round exercises
every fault it names rather than whichever the dice favour. Durations scale
with `nemesis_interval_s` (by default healthy 0.5-1.0x, fault 0.5-1.0x, so a
new fault starts every ~1-2 intervals; `Pace` changes the ranges); a fault
that could not be held its whole drawn time before `stop_at` is not
started, so no fault is cut short by the end of the test. The loop stops at
`stop_at` (test clock); the caller then runs the final heal
(nemesis/heal.py), which cures whatever is still in place. The default
`Pace` draws exactly what this schedule always drew, so a seed's history
does not change with it.

The script (`Script`, `harness run --schedule FILE`, what `harness shrink`
writes). A list of faults, each naming its package, when it starts and when
it stops (seconds since the test began; no stop: held until the final heal).
A fault either says exactly what to inflict (`inflict`: the start op a
history recorded, `{"f": ..., "value": ..., <detail>}`) or lets its package
run live between the two times (drawing its choices from the nemesis RNG).
A recorded fault is replayed by its kind's effect, which every backend's
cluster carries: nodes down (killed, then restarted), nodes paused (then
continued), links cut (the grudge its links make, then healed) or degraded
(link rows of `base.links.LinkFault` fields, then healed). Other kinds are
played live. Rules the script keeps:
- Events run in time order; at one instant cures come before new faults.
- A live package never overlaps itself (it is one instance); network faults
  replace each other and a network cure heals the whole network, as in the
  random schedule.
- What is inflicted is recorded with the op names of its kind, naming its
  package, so the history, the report and the checkers read a scripted run
  as any other; faults starting at or after `stop_at` are not played.

Either way: while a package starts or stops, the ops it records carry its
name. A package that raises (a fault the cluster refused) is recorded as a
`nemesis-error` op naming it, the phase and the error, and the schedule goes
on: the run is then reported as one whose faults did not all take effect,
never as a crash halfway.

Drawn faults take effect (a run where one never did is at best unknown):
- A round deals every package once before it deals any a second time
  (`deal`), so time lost late in a round costs a repeat, not a package's
  only dealing.
- A package that found nothing to do at its slot (it recorded no op,
  `ctx.recorded`, from its start through its stop: no leader elected yet,
  no job to hit) is dealt again at the next slot, the deck waiting. If it
  misses again and has never taken effect in this run (which is therefore
  unknown without it), it is owed: dealt after every deck card until it
  fires. So a package that can never fire takes at most every other slot,
  and one that has already fired is retried once.
- Both schedules tell packages when they end (`ctx.stop_at`), so one that
  waits for something to hit (nemesis/mapreduce.py's output-holder-kill)
  waits no longer.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from base.faults import ANY, NEMESIS_ERROR, Effect, FaultKind, Vocabulary
from base.links import LinkFault, LinkFaultError
from nemesis.package import ACTING, Fault, NemesisContext, heal_network

# -- pace of the random schedule -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pace:
    """How the random schedule paces faults: ranges are multiples of the interval."""

    healthy: tuple[float, float] = (0.5, 1.0)
    """A healthy stretch lasts interval x uniform(healthy)."""
    hold: tuple[float, float] = (0.5, 1.0)
    """A fault is held interval x uniform(hold)."""
    weights: Mapping[str, int] = field(default_factory=dict)
    """Package -> how many times it is dealt per round (default 1)."""

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Pace:
        """A pace from test.json's `pace`; ValueError (one line) for anything malformed."""
        if not d:
            return cls()
        if not isinstance(d, Mapping):
            raise ValueError(f"pace must be an object, got {type(d).__name__}")
        unknown = sorted(set(d) - {"healthy", "hold", "weights"})
        if unknown:
            raise ValueError(f"pace: unknown key(s) {unknown}; known: healthy, hold, weights")
        out = {}
        for key in ("healthy", "hold"):
            if key in d:
                out[key] = _range(f"pace.{key}", d[key])
        weights = d.get("weights") or {}
        if not isinstance(weights, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in weights.items()
        ):
            raise ValueError("pace.weights must map package names to counts >= 0")
        return cls(**out, weights=dict(weights))

    def to_json(self) -> dict[str, Any]:
        return {"healthy": list(self.healthy), "hold": list(self.hold), "weights": dict(self.weights)}


def _range(name: str, v: Any) -> tuple[float, float]:
    ok = isinstance(v, list | tuple) and len(v) == 2 and all(_number(x) and x >= 0 for x in v)
    if not ok or v[0] > v[1]:
        raise ValueError(f"{name} must be [low, high] with 0 <= low <= high, got {v!r}")
    return float(v[0]), float(v[1])


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def deal(packages: list[Fault], rng: random.Random, weights: Mapping[str, int] | None = None) -> Iterator[Fault]:
    """Endless rounds. Each deals every package once (weight 0: never), in a fresh seeded order, then the
    extra copies its weight asks for (`weights[name] - 1`), in another: so every package's first dealing of
    a round comes within its first len(packages) slots, whatever the weights. Without weights a round is
    one shuffle of the packages, the same draws as ever."""
    if weights:
        once = [p for p in packages if weights.get(p.name, 1) > 0]
        extra = [p for p in once for _ in range(weights.get(p.name, 1) - 1)]
    else:
        once, extra = list(packages), []
    if not once:
        return
    while True:
        deck = list(once)
        rng.shuffle(deck)
        yield from deck
        if extra:
            more = list(extra)
            rng.shuffle(more)
            yield from more


async def acting(ctx: NemesisContext, package: Fault, phase: str) -> bool:
    """Run `package.start` or `.stop` as that package; False (and a nemesis-error op) when it raised."""
    token = ACTING.set(package.name)
    try:
        await (package.start(ctx) if phase == "start" else package.stop(ctx))
        return True
    except Exception as e:  # a refused fault is a fact of the run, recorded; never a crash halfway
        ctx.record(NEMESIS_ERROR, {"package": package.name, "phase": phase, "error": f"{type(e).__name__}: {e}"})
        return False
    finally:
        ACTING.reset(token)


async def run_schedule(
    ctx: NemesisContext, packages: list[Fault], interval_s: float, stop_at: float, pace: Pace | None = None
) -> None:
    rt = ctx.cluster.client
    pace = pace or Pace()
    if not packages:
        return
    ctx.stop_at, ctx.interval_s = stop_at, interval_s
    deck = deal(packages, ctx.rng, pace.weights)
    retry: Fault | None = None
    owed: list[Fault] = []
    while True:
        healthy_s = interval_s * ctx.rng.uniform(*pace.healthy)
        hold_s = interval_s * ctx.rng.uniform(*pace.hold)
        if rt.now() + healthy_s + hold_s > stop_at:
            return
        await rt.sleep(healthy_s)
        again = retry is not None
        package = retry if retry is not None else next(deck, None)
        retry = None
        if package is None:
            return
        before = ctx.recorded[package.name]
        if await acting(ctx, package, "start"):
            await rt.sleep(hold_s)
        await acting(ctx, package, "stop")
        missed = ctx.recorded[package.name] == before
        if missed and not again and package not in owed:
            retry = package  # it found nothing to do: a second try at the next slot (the deck waits)
        elif missed and ctx.recorded[package.name] == 0 and package not in owed:
            owed.append(package)  # never took effect yet, so the run is unknown without it: keep trying it
        if retry is None and owed and not again and package not in owed:
            retry = owed.pop(0)  # after each deck card (other than an owed package's own), one owed package's turn


# -- explicit scripts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """One fault of a script: which package, from when to when, and (optionally) exactly what."""

    package: str
    start_s: float
    stop_s: float | None = None
    """None: held until the final heal."""
    inflict: Mapping[str, Any] | None = None
    """The start op to inflict exactly ({"f", "value", detail...}); None: the package runs live."""

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"package": self.package, "start_s": self.start_s, "stop_s": self.stop_s}
        if self.inflict is not None:
            d["inflict"] = dict(self.inflict)
        return d


@dataclass(frozen=True, slots=True)
class Script:
    """An explicit fault schedule."""

    faults: tuple[ScheduledFault, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> Script:
        """From a schedule file's content ({"faults": [...]} or the bare list); ValueError (one line) if bad."""
        rows = data.get("faults") if isinstance(data, Mapping) else data
        if not isinstance(rows, list):
            raise ValueError('a schedule is {"faults": [...]}: a list of faults')
        return cls(tuple(_fault(i, row) for i, row in enumerate(rows, 1)))

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.faults]

    def packages(self) -> tuple[str, ...]:
        """The packages it names, in order of first appearance."""
        return tuple(dict.fromkeys(f.package for f in self.faults))

    def check(self, nodes: Sequence[str], vocabulary: Vocabulary) -> None:
        """ValueError (one line) when a fault names a node not in the cluster, an op no kind starts, a
        recorded fault that cannot be replayed by its effect, or a live package that overlaps itself."""
        for i, f in enumerate(self.faults, 1):
            if f.inflict is None:
                continue
            kind = vocabulary.starting(str(f.inflict.get("f")))
            if kind is None:
                raise ValueError(f"fault {i}: no fault kind starts with op {f.inflict.get('f')!r}")
            if not replayable(kind):
                raise ValueError(
                    f"fault {i}: a {kind.name} fault cannot be replayed from its record; "
                    f"leave out `inflict` to run the {f.package} package live"
                )
            stray = sorted(set(_nodes_of(kind, f.inflict.get("value"))) - set(nodes))
            if stray:
                raise ValueError(f"fault {i}: names node(s) {stray} not in this cluster ({', '.join(nodes)})")
        live: dict[str, list[ScheduledFault]] = {}
        for f in self.faults:
            if f.inflict is None:
                live.setdefault(f.package, []).append(f)
        for name, spans in live.items():
            spans.sort(key=lambda f: f.start_s)
            for a, b in itertools.pairwise(spans):
                if a.stop_s is None or a.stop_s > b.start_s:
                    raise ValueError(
                        f"package {name} runs live twice at once (from {a.start_s:g} s and "
                        f"{b.start_s:g} s): one instance cannot"
                    )


def _fault(i: int, row: Any) -> ScheduledFault:
    if not isinstance(row, Mapping):
        raise ValueError(f"fault {i}: must be an object with package, start_s and stop_s")
    unknown = sorted(set(row) - {"package", "start_s", "stop_s", "inflict"})
    if unknown:
        raise ValueError(f"fault {i}: unknown key(s) {unknown}; known: package, start_s, stop_s, inflict")
    package, start, stop, inflict = row.get("package"), row.get("start_s"), row.get("stop_s"), row.get("inflict")
    if not isinstance(package, str) or not package:
        raise ValueError(f"fault {i}: package must be a package name")
    if not _number(start) or start < 0:
        raise ValueError(f"fault {i}: start_s must be a number >= 0, got {start!r}")
    if stop is not None and (not _number(stop) or stop < start):
        raise ValueError(f"fault {i}: stop_s must be a number >= start_s (or null), got {stop!r}")
    if inflict is not None and not (isinstance(inflict, Mapping) and isinstance(inflict.get("f"), str)):
        raise ValueError(f"fault {i}: inflict must be a recorded start op, an object with f and value")
    return ScheduledFault(
        package, float(start), None if stop is None else float(stop), None if inflict is None else dict(inflict)
    )


def replayable(kind: FaultKind) -> bool:
    """Whether a recorded fault of this kind can be inflicted again by its effect alone."""
    if not kind.stop:
        return False
    if kind.effect in (Effect.DOWN, Effect.PAUSED):
        return kind.targets is not None
    return kind.effect is Effect.NETWORK and kind.links is not None


def _nodes_of(kind: FaultKind, value: Any) -> tuple[str, ...]:
    if kind.targets is not None:
        return kind.targets(value)
    links = kind.links(value) if kind.links is not None else frozenset()
    return tuple(sorted({n for link in links for n in link}))


def _link_rows(value: Any) -> dict[tuple[str, str], LinkFault] | None:
    """Degraded links ({src, dst, LinkFault fields} rows), or None when the value is not such rows."""
    if not (
        isinstance(value, list) and value and all(isinstance(r, Mapping) and "src" in r and "dst" in r for r in value)
    ):
        return None
    try:
        return {
            (str(r["src"]), str(r["dst"])): LinkFault.from_wire({k: v for k, v in r.items() if k not in ("src", "dst")})
            for r in value
        }
    except LinkFaultError:
        return None


def _grudge(links: frozenset[tuple[str, str]], nodes: list[str]) -> dict[str, list[str]]:
    if any(ANY in link for link in links):
        raise ValueError("a fault cutting every link cannot be replayed as a partition")
    return {n: sorted(src for src, dst in links if dst == n) for n in sorted(nodes)}


async def inflict(ctx: NemesisContext, kind: FaultKind, op: Mapping[str, Any]) -> None:
    """Inflict a recorded fault by its kind's effect, and record it as it was recorded."""
    value = op.get("value")
    detail = {k: v for k, v in op.items() if k not in ("f", "value")}
    if kind.effect is Effect.DOWN:
        for n in kind.targets(value) if kind.targets else ():
            if n not in ctx.killed:
                await ctx.cluster.kill(n)
                ctx.killed.add(n)
    elif kind.effect is Effect.PAUSED:
        for n in kind.targets(value) if kind.targets else ():
            if n not in ctx.paused and n not in ctx.killed:
                await ctx.cluster.pause(n)
                ctx.paused.add(n)
    else:
        rows = _link_rows(value)
        if rows is not None:
            await ctx.cluster.set_links(rows)
        else:
            await ctx.cluster.partition(_grudge(kind.links(value) if kind.links else frozenset(), ctx.nodes))
        ctx.network_fault(kind.stop[0])
    ctx.record(kind.start, value, **detail)


async def cure(ctx: NemesisContext, kind: FaultKind, op: Mapping[str, Any]) -> None:
    """Cure a fault `inflict` put in place (what is already cured is left alone), and record it."""
    nodes = list(kind.targets(op.get("value"))) if kind.targets else []
    if kind.effect is Effect.DOWN:
        back = [n for n in nodes if n in ctx.killed]
        for n in back:
            await ctx.cluster.restart(n)
            ctx.killed.discard(n)
    elif kind.effect is Effect.PAUSED:
        back = [n for n in nodes if n in ctx.paused]
        for n in back:
            await ctx.cluster.resume(n)
            ctx.paused.discard(n)
    else:
        await heal_network(ctx)
        return
    if back:
        ctx.record(kind.stop[0], back)


async def _scripted(ctx: NemesisContext, name: str, step: Any) -> None:
    token = ACTING.set(name)
    try:
        await step
    except Exception as e:  # as in `acting`: a refused fault is recorded, the script goes on
        ctx.record(NEMESIS_ERROR, {"package": name, "phase": "script", "error": f"{type(e).__name__}: {e}"})
    finally:
        ACTING.reset(token)


async def run_script(
    ctx: NemesisContext,
    packages: list[Fault],
    script: Script,
    vocabulary: Vocabulary,
    started_at: float,
    stop_at: float,
) -> None:
    """Play `script` on the test clock (times from `started_at`); stops at `stop_at`."""
    rt = ctx.cluster.client
    ctx.stop_at = stop_at
    by_name = {p.name: p for p in packages}
    events = []
    for i, f in enumerate(script.faults):
        events.append((f.start_s, 1, i))
        if f.stop_s is not None:
            events.append((f.stop_s, 0, i))
    for at_s, phase, i in sorted(events):
        when = started_at + at_s
        if when >= stop_at:
            return
        if when > rt.now():
            await rt.sleep(when - rt.now())
        f = script.faults[i]
        if f.inflict is None:
            package = by_name.get(f.package)
            if package is not None:
                await acting(ctx, package, "start" if phase else "stop")
            continue
        kind = vocabulary.starting(str(f.inflict["f"]))
        if kind is None:
            continue
        step = inflict(ctx, kind, f.inflict) if phase else cure(ctx, kind, f.inflict)
        await _scripted(ctx, f.package, step)
