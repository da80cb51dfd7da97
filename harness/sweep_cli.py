"""The command line of sweeps: `harness sweep`, and `harness run`'s `--swarm` and `--schedule`.

Rules: bad input (a malformed --seeds, an unknown system, bug or nemesis, a
schedule file that does not parse, an unreachable Dask scheduler) is one
line and exit 64 before any seed runs, and so is a system the simulator
cannot run (an external program such as etcd); the exit code of a sweep is
harness/sweep.py's (1 if any seed was invalid); Ctrl-C stops the workers,
keeps every finished seed in summary.jsonl and the page, and exits 130.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from base.spec import TestSpec
from harness import registry

EXIT_USAGE, EXIT_INTERRUPTED = 64, 130
console = Console(highlight=False, soft_wrap=True)

PINNED_PARAMS = {
    "node_count": "node_count",
    "workload": "workload",
    "nemesis": "nemesis",
    "time_limit_s": "time_limit_s",
    "rate": "rate",
    "concurrency": "concurrency",
    "nemesis_interval_s": "nemesis_interval_s",
    "options": "options",
}
"""Click parameter name -> the TestSpec field a user pins by giving it."""


def _usage(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}")
    sys.exit(EXIT_USAGE)


def given_params(ctx: click.Context) -> frozenset[str]:
    """The TestSpec fields whose flags the user gave on the command line."""
    out = set()
    for param, field in PINNED_PARAMS.items():
        source = ctx.get_parameter_source(param)
        if source is not None and source is not click.core.ParameterSource.DEFAULT:
            value = ctx.params.get(param)
            if value not in (None, ()):
                out.add(field)
    return frozenset(out)


def load_schedule(path: str) -> Any:
    """A schedule file's content; ValueError (one line) when it cannot be read as JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def run_extras(spec: TestSpec, swarm: bool, schedule_file: str | None) -> TestSpec:
    """`harness run --swarm` (draw this seed's test) and `--schedule FILE` (play that script): the spec to run."""
    from harness.sweep_swarm import draw
    from nemesis.catalog import VOCABULARY
    from nemesis.schedule import Script

    ctx = click.get_current_context()
    given = given_params(ctx)
    if swarm and schedule_file:
        raise ValueError("--swarm draws random faults and --schedule plays given ones: use one of them")
    if swarm:
        return draw(spec, given)
    if schedule_file:
        script = Script.from_json(load_schedule(schedule_file))
        if "nemesis" in given and tuple(spec.nemesis) != script.packages():
            raise ValueError(f"{schedule_file} names its own packages ({', '.join(script.packages())}); drop --nemesis")
        try:
            script.check(spec.nodes, VOCABULARY)
        except ValueError as e:
            raise ValueError(f"{schedule_file}: {e}") from None
        return replace(spec, nemesis=script.packages(), schedule=script.to_json())
    return spec


# -- harness sweep -----------------------------------------------------------------------------------


@click.command("sweep")
@click.argument("system")
@click.option("--seeds", "seeds_text", default="1-100", show_default=True, help="Seeds: 1-1000, or 1,5,9-12.")
@click.option(
    "--nemesis",
    default=None,
    help="Comma list of nemesis packages (default partition; with --swarm: the packages each seed draws from).",
)
@click.option(
    "--swarm",
    is_flag=True,
    help="Every seed draws its own faults, pacing, workload, node count and "
    "system options (swarm testing); flags you give are kept as given.",
)
@click.option("--bug", "bugs", multiple=True, help="Plant a named bug in the system (repeatable).")
@click.option(
    "--workers", default=None, type=click.IntRange(1, 1024), help="Local worker processes (default: one per core)."
)
@click.option(
    "--scheduler",
    default=None,
    help="Send the seeds to this Dask scheduler (tcp://HOST:8786) instead of local processes.",
)
@click.option("--stop-on-first", is_flag=True, help="Stop once a seed is invalid (seeds running finish).")
@click.option("--workload", default=None, help="The system's workload (default: its own default).")
@click.option("--nodes", "node_count", default=None, type=click.IntRange(1, 64), help="Nodes (default 5).")
@click.option("--time-limit", "time_limit_s", default=None, type=click.FloatRange(0.0), help="Seconds (default 30).")
@click.option("--concurrency", default=None, type=click.IntRange(1, 1024), help="Client processes (default: nodes).")
@click.option("--rate", default=None, type=click.FloatRange(0.0), help="Target ops/s in total (default 20).")
@click.option(
    "--interval",
    "nemesis_interval_s",
    default=None,
    type=click.FloatRange(0.1),
    help="Fault spacing in seconds (default 5).",
)
@click.option(
    "--quiet",
    "quiet_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Quiet seconds after the final heal.",
)
@click.option("--option", "options", multiple=True, help="Node option KEY=VALUE (VALUE parsed as JSON if it can be).")
@click.option("--allow-no-faults", is_flag=True, help="Let a seed be valid even when a fault never took effect.")
@click.option(
    "--keep",
    default="failing",
    show_default=True,
    type=click.Choice(["failing", "all", "none"]),
    help="Which runs to keep in full under the sweep's runs/.",
)
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False))
@click.pass_context
def sweep_cmd(
    ctx: click.Context,
    system: str,
    seeds_text: str,
    nemesis: str | None,
    swarm: bool,
    bugs: tuple[str, ...],
    workers: int | None,
    scheduler: str | None,
    stop_on_first: bool,
    workload: str | None,
    node_count: int | None,
    time_limit_s: float | None,
    concurrency: int | None,
    rate: float | None,
    nemesis_interval_s: float | None,
    quiet_s: float,
    options: tuple[str, ...],
    allow_no_faults: bool,
    keep: str,
    results_root: str,
) -> None:
    """Run SYSTEM on the sim backend over many seeds in parallel; write a summary and a page of the failures."""
    from harness.sweep import SweepPlan, make_engine, make_sweep_dir, parse_seeds, run_defaults

    try:
        seeds = parse_seeds(seeds_text)
        if workers is not None and scheduler:
            raise ValueError("--workers counts local processes; a Dask cluster (--scheduler) has its own workers")
        defaults = run_defaults()
        nodes = node_count or defaults["node_count"]
        base = TestSpec(
            system=system,
            workload=workload or registry.default_workload(system),
            nemesis=tuple(n.strip() for n in (nemesis or ",".join(defaults["nemesis"])).split(",") if n.strip()),
            backend="sim",
            node_count=nodes,
            concurrency=concurrency or nodes,
            rate=rate if rate is not None else defaults["rate"],
            time_limit_s=time_limit_s if time_limit_s is not None else defaults["time_limit_s"],
            nemesis_interval_s=nemesis_interval_s or defaults["nemesis_interval_s"],
            quiet_s=quiet_s,
            bugs=tuple(bugs),
            options=_parse_options(options),
            allow_no_faults=allow_no_faults,
        )
        plan = SweepPlan(
            base=base,
            seeds=seeds,
            swarm=swarm,
            pinned=given_params(ctx) if swarm else frozenset(),
            keep=keep,
            stop_on_first=stop_on_first,
            command_line=" ".join(["harness", *sys.argv[1:]]),
        )
        _validate(plan)
    except (registry.RegistryError, ValueError) as e:
        _usage(str(e))
    try:
        engine = make_engine(workers, scheduler)
    except (OSError, TimeoutError, ValueError) as e:
        _usage(f"cannot reach the Dask scheduler at {scheduler}: {e}")
    sweep_dir = make_sweep_dir(Path(results_root), system)
    console.print(f"sweep of {system}: {len(seeds)} seeds on {engine.name}; directory {sweep_dir}")
    sys.exit(_run_with_progress(plan, sweep_dir, engine))


def _validate(plan: Any) -> None:
    """Refuse before any seed runs: a system the simulator cannot run (an external program), names, bugs,
    options, and (the first seed's) nemesis on this system."""
    from harness.applicability import check_nemesis

    if registry.is_external(plan.base.system):
        program = registry.system_module(plan.base.system).EXTERNAL
        raise ValueError(f"a sweep runs seeds on the sim backend, which cannot run {plan.base.system} (its nodes are "
                         f"the external program `{program}`); use harness run {plan.base.system} --backend local "
                         "or netns")
    spec = plan.spec_for(plan.seeds[0]) if plan.seeds else plan.base
    registry.make_workload(spec)
    registry.check_bugs(spec.system, spec.bugs)
    registry.check_options(spec.system, spec.backend, spec.options)
    check_nemesis(spec)


def _run_with_progress(plan: Any, sweep_dir: Path, engine: Any) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from harness.sweep import run_sweep

    counts = {"invalid": 0, "unknown": 0, "error": 0}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("seeds", total=len(plan.seeds))

        def on_row(row: dict[str, Any]) -> None:
            verdict = row.get("verdict", "unknown")
            if verdict in counts:
                counts[verdict] += 1
                what = "; ".join(row.get("anomalies") or []) or row.get("error") or ", ".join(row.get("failing") or {})
                colour = {"invalid": "red", "unknown": "yellow", "error": "magenta"}[verdict]
                progress.console.print(
                    f"[{colour}]seed {row['seed']} {verdict}[/{colour}]: {escape(str(what))}\n"
                    f"  replay: {escape(str(row.get('replay', '')))}"
                )
            bad = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            progress.update(task, advance=1, description=f"seeds ({bad})" if bad else "seeds")

        try:
            outcome = run_sweep(plan, sweep_dir, engine, on_row)
        except KeyboardInterrupt:
            engine.close()
            console.print(f"[yellow]interrupted[/yellow]: finished seeds are in {sweep_dir / 'summary.jsonl'}")
            return EXIT_INTERRUPTED
        finally:
            engine.close()
    c = outcome.counts
    meta = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    console.print(
        f"{c['valid']} valid, {c['invalid']} invalid, {c['unknown']} unknown, {c['error']} crashed; "
        f"CPU {meta['cpu_s']} s, wall {meta['wall_s']} s, {meta['seeds_per_min']} seeds/min; "
        f"page {sweep_dir / 'index.html'}"
    )
    return outcome.exit_code


def _parse_options(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--option wants KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
