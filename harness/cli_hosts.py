"""`harness doctor` and `harness cleanup`: the commands around real hosts (registered into harness.cli).

Rules this module keeps:

- `doctor [--cluster FILE] [--nodes N] [--system etcd]` prints one table
  row per check (node, check, ok, detail, what to fix) and exits 0 when
  every required check passed, 1 when one failed, 64 for a broken cluster
  file or when neither a cluster file nor a system is given. With
  `--system`, an external system's installation is checked too: on this
  machine, and on every host of the cluster file if one is given.
- `cleanup [RUN_DIR ...] [--force]` removes what crashed runs of any
  process backend (local, netns, ssh) left: node processes (continued, then
  killed, each only while its command line still shows the run's marker),
  namespaces, links, iptables chains. With run directories, the states
  recorded in them; without, every state in the well-known directory
  (harness.hosts_state.state_dir()). A state whose harness is still running
  is skipped unless --force. Only what a record names is touched. Exit 0
  when everything recorded is gone, 1 when something could not be removed
  (it stays recorded for the next try).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from harness import hosts_state
from harness.backends import ssh_config
from harness.doctor import host_system_checks, ready, run_doctor, system_checks, system_ready

EXIT_USAGE = 64
console = Console(highlight=False)


@click.command("doctor")
@click.option("--cluster", "cluster_file", default=None, type=click.Path(dir_okay=False),
              help="The cluster file (TOML) describing the hosts.")
@click.option("--nodes", "node_count", default=None, type=click.IntRange(1, 64),
              help="Check only n1..nN (default: every node in the file).")
@click.option("--system", default=None, type=click.Choice(["etcd"]),
              help="Also check an external system's installation (here, and on the hosts of --cluster).")
def doctor_cmd(cluster_file: str | None, node_count: int | None, system: str | None) -> None:
    """Check that this machine (--system) and every host in the cluster file are ready for a run."""
    if cluster_file is None and system is None:
        console.print("[red]error[/red]: give --cluster FILE (real hosts), --system etcd (an external system), or both")
        sys.exit(EXIT_USAGE)
    checks = []
    ok = True
    if cluster_file is not None:
        try:
            config = ssh_config.load(cluster_file)
            nodes = ([h.node for h in config.select([f"n{i}" for i in range(1, node_count + 1)])]
                     if node_count else None)
        except ssh_config.ClusterConfigError as e:
            console.print(f"[red]error[/red]: {e}")
            sys.exit(EXIT_USAGE)
        host_checks = run_doctor(config, nodes)
        if system is not None:
            host_checks += host_system_checks(system, config, nodes)
        ok = ready(host_checks) and system_ready(host_checks)
        checks += host_checks
    if system is not None:
        here = system_checks(system)
        ok = ok and system_ready(here)
        checks = here + checks
    table = Table(title=f"doctor: {', '.join(x for x in (system, cluster_file) if x)}")
    for col in ("node", "check", "", "detail", "to fix"):
        table.add_column(col)
    for c in checks:
        mark = "[green]ok[/green]" if c.ok else "[red]FAIL[/red]"
        table.add_row(c.node, c.name, mark, c.detail, c.fix)
    console.print(table)
    if ok:
        what = "every host can run a test" if cluster_file else f"{system} can run here"
        console.print(f"[green]ready[/green]: {what}")
        sys.exit(0)
    console.print("[red]not ready[/red]: fix the rows marked FAIL")
    sys.exit(1)


@click.command("cleanup")
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Also clean states whose harness still seems to be running.")
def cleanup_cmd(run_dirs: tuple[Path, ...], force: bool) -> None:
    """Remove node processes, namespaces, links and iptables chains that killed runs left behind."""
    found: list[hosts_state.HostsState] = []
    if run_dirs:
        for d in run_dirs:
            state = hosts_state.load_run_dir(d)
            if state is not None:
                found.append(state)
            else:
                console.print(f"{d}: no {hosts_state.STATE_NAME} (not a run of the local, netns or ssh backend?)")
    else:
        found = [state for _path, state in hosts_state.recorded_states()]
    failed = False
    cleaned = 0
    for state in found:
        if state.is_empty():
            continue
        if not force and hosts_state.harness_alive(state.harness_pid, state.harness_started):
            console.print(f"{state.run_id}: its harness (pid {state.harness_pid}) is still running; "
                          f"skipped (use --force)")
            continue
        lines = hosts_state.cleanup_state(state)
        cleaned += 1
        for line in lines:
            console.print(f"{state.run_id}: {line}")
            failed = failed or line.startswith("FAILED")
        if not state.is_empty():
            failed = True
    console.print(f"cleaned {cleaned} run(s)" if cleaned else "nothing to clean")
    sys.exit(1 if failed else 0)


def main() -> None:  # `python -m harness.cli_hosts doctor|cleanup ...` until harness.cli registers these
    group = click.Group(commands={"doctor": doctor_cmd, "cleanup": cleanup_cmd})
    group.main(prog_name="harness")


if __name__ == "__main__":
    main()
