"""`harness shrink RUN_DIR`: minimise a failing sim run (harness/shrink.py) and print how to replay it.

Exit codes: 0 shrunk (schedule.json written), 2 the failure did not come
back when its faults were replayed (nothing to shrink), 64 bad usage (not a
run directory, not a sim run, not a failing run), 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from base.history import HistoryError

EXIT_SHRUNK, EXIT_NOT_REPRODUCED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 64, 130
console = Console(highlight=False, soft_wrap=True)


@click.command("shrink")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--max-runs", default=100, show_default=True, type=click.IntRange(1, 10_000), help="At most this many replays."
)
def shrink_cmd(run_dir: Path, max_runs: int) -> None:
    """Minimise a failing sim run: fewer faults, a shorter time limit, fewer clients and ops, still failing.

    Writes RUN_DIR/shrink/schedule.json and the smallest failing run, and prints the replay command."""
    from harness.shrink import CannotShrink, Shrinker

    run_dir = run_dir.resolve()
    try:
        shrinker = Shrinker(run_dir, max_runs=max_runs, log=lambda line: console.print(escape(line)))
    except (CannotShrink, FileNotFoundError, ValueError, HistoryError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        sys.exit(EXIT_USAGE)
    try:
        out = shrinker.shrink()
    except CannotShrink as e:
        console.print(f"[yellow]cannot shrink:[/yellow] {escape(str(e))}")
        sys.exit(EXIT_NOT_REPRODUCED)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(EXIT_INTERRUPTED)
    before, s = out["before"], out["settings"]
    console.print(
        f"shrunk in {out['runs']} replays ({out['cpu_s']} CPU s): {before['faults']} faults -> {len(out['faults'])}, "
        f"{before['time_limit_s']:g} s -> {s['time_limit_s']:g} s, {before['concurrency']} clients -> "
        f"{s['concurrency']}, {before['rate']:g} op/s -> {s['rate']:g}; still failing: "
        f"{', '.join(out['failing_checkers'])}"
    )
    for f in out["faults"]:
        what = f.get("inflict", {}).get("f", "live")
        until = "the end" if f["stop_s"] is None else f"{f['stop_s']:g} s"
        console.print(f"  {f['start_s']:g} s to {until}: {f['package']} ({escape(str(what))})")
    console.print(f"schedule {run_dir / 'shrink' / 'schedule.json'}; smallest failing run {out['minimal_run']}")
    console.print(f"replay: {escape(out['replay'])}")
    sys.exit(EXIT_SHRUNK)
