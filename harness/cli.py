"""The `harness` command line: run a test, re-check a run, browse results.

Exit codes (like Jepsen's): 0 valid, 1 invalid, 2 unknown, 3 the harness
itself failed, 64 bad usage (a bad flag, an unknown system, bug or option, a
broken run directory), 130 interrupted by SIGINT (Ctrl-C), 143 terminated by
SIGTERM. Interrupted or terminated, the cluster is torn down first; the run
is marked interrupted (session.mark_interrupted) and its partial history is
checked at once (a second Ctrl-C skips that; `harness check` does it later).
Every usage error comes before the `seed N` line, which is the first line of
a run that starts.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from base.history import HistoryError
from base.spec import TestSpec
from harness import registry

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_CRASH, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3, 64, 130
EXIT_TERMINATED = 128 + signal.SIGTERM

console = Console(highlight=False, soft_wrap=True)


def verdict_exit(valid: Any) -> int:
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


def _fail_usage(message: str) -> NoReturn:
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(message)}")
    sys.exit(EXIT_USAGE)


def _fail_setup(message: str, run_dir: Path) -> NoReturn:
    """The backend could not set the run up: one line, exit 64, and no run directory left behind
    (unless it records something to clean up, which the line then says how to remove)."""
    from harness.rundir import discard_run_dir

    if not discard_run_dir(run_dir):
        message += f"; what it had set up is recorded: remove it with `harness cleanup {run_dir}`"
    _fail_usage(message)


def _warn_about_leftovers() -> None:
    """Say what killed runs left behind (node processes, namespaces, chains) and the command that removes it."""
    from harness.hosts_state import describe, leftovers

    for state in leftovers():
        where = state.run_dir if state.run_dir and Path(state.run_dir).is_dir() else ""
        command = f"harness cleanup {where}".strip()
        console.print(f"[yellow]warning:[/yellow] a killed run left {describe(state)}; remove it with `{command}`")


def _raise_terminated(signum: int, frame: Any) -> None:
    """SIGTERM: the same exit the process backends give it (harness/backends/exit_signals.py)."""
    raise SystemExit(EXIT_TERMINATED)


def _forget_abandoned_tasks() -> None:
    """A signal stops the sim backend's event loop where it stands, on purpose; its unfinished tasks are
    garbage from then on, and Python would print "Task was destroyed but it is pending!" (and a traceback
    per abandoned coroutine) as they are collected. The run is over: say nothing about them."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
    sys.unraisablehook = lambda unraisable: None


def _interrupted(run_dir: Path, signal_name: str, exit_code: int) -> NoReturn:
    """Mark the run interrupted, check its partial history (a second signal skips that), exit."""
    from harness.session import check, mark_interrupted

    _forget_abandoned_tasks()
    mark_interrupted(run_dir, signal_name, exit_code)
    console.print(f"[yellow]interrupted[/yellow] ({signal_name}): cluster torn down; "
                  "checking the partial history (Ctrl-C to skip)")
    try:
        results = check(run_dir)
    except (KeyboardInterrupt, SystemExit):
        console.print(f"check skipped; run `harness check {run_dir}`")
    else:
        _print_results(results, run_dir)
    sys.exit(exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """picluster's test harness: run systems under faults, check what they did."""


class RunCommand(click.Command):
    """`harness run`, whose help ends with every nemesis package in the catalog and where it applies."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from harness.applicability import package_help

        with formatter.section("Nemesis packages (--nemesis NAME,NAME,... or none)"):
            formatter.write_dl(package_help())
        super().format_epilog(ctx, formatter)


@cli.command(cls=RunCommand)
@click.argument("system")
@click.option(
    "--nemesis",
    default="partition",
    show_default=True,
    help="Comma list of nemesis packages (listed below), or none.",
)
@click.option(
    "--allow-no-faults",
    is_flag=True,
    help="Let the verdict be valid even when a requested fault never took effect.",
)
@click.option("--workload", default=None, help="The system's workload (default: the system's own default).")
@click.option("--backend", default="local", show_default=True, type=click.Choice(list(registry.BACKENDS)))
@click.option("--nodes", "node_count", default=5, show_default=True, type=click.IntRange(1, 64))
@click.option("--time-limit", "time_limit_s", default=30.0, show_default=True, type=click.FloatRange(0.0))
@click.option(
    "--concurrency", default=None, type=click.IntRange(1, 1024), help="Client processes (default: nodes)."
)
@click.option(
    "--rate",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Target ops/s over all clients; 0: unpaced, each client issues its next op as soon as the last ends.",
)
@click.option("--seed", default=None, type=int, help="Seed for every random choice (default: a fresh one).")
@click.option("--bug", "bugs", multiple=True, help="Plant a named bug in the system (repeatable).")
@click.option("--interval", "nemesis_interval_s", default=5.0, show_default=True, type=click.FloatRange(0.1))
@click.option(
    "--quiet",
    "quiet_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Quiet seconds after the final heal.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    help="Node option KEY=VALUE (VALUE parsed as JSON if it can be); KEY one of the system's options "
    "(`harness systems` lists them); on sim also sim='{\"loss\": 0.01}'.",
)
@click.option("--cluster", "cluster_file", default=None, help="Cluster file (TOML) for the ssh backend.")
@click.option("--capture", is_flag=True, help="netns: record the bridge's traffic to capture.pcap in the run dir.")
@click.option(
    "--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False)
)
def run(
    system: str,
    nemesis: str,
    allow_no_faults: bool,
    workload: str | None,
    backend: str,
    node_count: int,
    time_limit_s: float,
    concurrency: int | None,
    rate: float,
    seed: int | None,
    bugs: tuple[str, ...],
    nemesis_interval_s: float,
    quiet_s: float,
    options: tuple[str, ...],
    cluster_file: str | None,
    capture: bool,
    results_root: str,
) -> None:
    """Run SYSTEM under faults, check the history, and write a report under results/."""
    from harness.applicability import check_nemesis
    from harness.progress import Progress
    from harness.session import SetupFailed, check, execute, prepare

    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    try:
        spec = TestSpec(
            system=system,
            workload=workload or registry.default_workload(system),
            nemesis=tuple(n.strip() for n in nemesis.split(",") if n.strip()),
            backend=backend,
            node_count=node_count,
            concurrency=concurrency or node_count,
            rate=rate,
            time_limit_s=time_limit_s,
            seed=seed,
            bugs=tuple(bugs),
            options=_parse_options(options),
            nemesis_interval_s=nemesis_interval_s,
            quiet_s=quiet_s,
            cluster_file=cluster_file,
            command_line=" ".join(["harness", *sys.argv[1:]]),
            allow_no_faults=allow_no_faults,
        )
        registry.check_options(spec.system, spec.backend, spec.options)
        check_nemesis(spec)
        registry.preflight(spec)  # backend set-up errors: one line, before any run directory exists
        spec = prepare(spec, Path(results_root))
    except (registry.RegistryError, ValueError) as e:
        _fail_usage(str(e))
    console.print(f"seed {seed}")
    _warn_about_leftovers()
    console.print(f"run directory {spec.run_dir}")
    if capture:
        os.environ["PICLUSTER_CAPTURE"] = "1"
    signal.signal(signal.SIGTERM, _raise_terminated)
    progress = Progress(console)
    try:
        execute(spec, on_start=progress.attach, on_op=progress.on_op)
    except SetupFailed as e:
        progress.close()
        _fail_setup(str(e), Path(spec.run_dir))
    except KeyboardInterrupt:
        progress.close()
        _interrupted(Path(spec.run_dir), "SIGINT", EXIT_INTERRUPTED)
    except SystemExit as e:
        progress.close()
        if e.code != EXIT_TERMINATED:
            raise
        _interrupted(Path(spec.run_dir), "SIGTERM", EXIT_TERMINATED)
    except Exception:
        progress.close()
        console.print(
            f"[red]the harness failed[/red]; history so far in {spec.run_dir}\n{traceback.format_exc()}"
        )
        sys.exit(EXIT_CRASH)
    finally:
        progress.close()
    results = check(Path(spec.run_dir))
    _print_results(results, Path(spec.run_dir))
    sys.exit(verdict_exit(results["valid"]))


@cli.command("check")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def check_cmd(run_dir: Path) -> None:
    """Re-run the checkers on RUN_DIR's history; rewrite results.json and report.html."""
    from harness.session import check

    try:
        results = check(run_dir.resolve() if run_dir.is_symlink() else run_dir)
    except (FileNotFoundError, ValueError, HistoryError, registry.RegistryError) as e:
        _fail_usage(str(e))
    _print_results(results, run_dir)
    sys.exit(verdict_exit(results["valid"]))


@cli.command("systems")
def systems_cmd() -> None:
    """List the systems, their workloads, their bug switches and their node options."""
    import json

    from rich.markup import escape

    for name in registry.known_systems():
        module = registry.workload_module(name)
        console.print(
            f"[bold]{name}[/bold]  workloads: {', '.join(sorted(module.WORKLOADS))}"
            f" (default {module.DEFAULT_WORKLOAD})"
        )
        for bug, text in sorted(registry.bugs(name).items()):
            console.print(f"    --bug {bug}: {text}")
        options = registry.default_options(name)
        if options:
            listed = " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in options.items())
            console.print(f"    --option (defaults): {escape(listed)}")


@cli.command("serve")
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
def serve_cmd(results_root: str, host: str, port: int) -> None:
    """Browse results/ in a web page: runs and sweeps (filter, search, sort), a run's report and raw files,
    two runs compared, the message flow around an op. Read-only; loopback unless --host says otherwise."""
    from harness.serve import serve

    serve(Path(results_root), host, port)


def _parse_options(items: tuple[str, ...]) -> dict[str, Any]:
    import json

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


def _print_results(results: dict[str, Any], run_dir: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="checkers")
    for col in ("checker", "verdict", "summary"):
        table.add_column(col)
    for name, r in results.get("checkers", {}).items():
        v = r.get("valid")
        word = {True: "[green]valid[/green]", False: "[red]INVALID[/red]"}.get(v, "[yellow]unknown[/yellow]")
        if "expected" in r:
            word += " (as designed)" if r.get("as_designed") else " (NOT as designed)"
        table.add_row(name, word, escape(str(r.get("summary", ""))))
    console.print(table)
    faults = results.get("faults") or {}
    if faults.get("headline"):
        console.print(f"[yellow]faults: {faults['headline']}[/yellow]")
    if results.get("partial"):
        console.print(f"[yellow]{escape(results['partial'])}: the verdict is at best unknown[/yellow]")
    v = results.get("valid")
    word = {True: "[green]VALID[/green]", False: "[red]INVALID[/red]"}.get(v, "[yellow]UNKNOWN[/yellow]")
    console.print(f"verdict {word}; report {run_dir / 'report.html'}")


def _register_host_commands() -> None:
    from harness.cli_hosts import cleanup_cmd, doctor_cmd

    cli.add_command(doctor_cmd)
    cli.add_command(cleanup_cmd)


_register_host_commands()


def _register_cluster_commands() -> None:
    from harness.services.commands import cluster_cmd

    cli.add_command(cluster_cmd)


_register_cluster_commands()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception:
        console.print(f"[red]the harness failed[/red]\n{traceback.format_exc()}")
        sys.exit(EXIT_CRASH)


if __name__ == "__main__":
    main()
