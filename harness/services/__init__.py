"""Systems run as services: `harness cluster up|status|down|logs|restart|fault|heal`.

A cluster brought up here outlives the command that started it: a detached
supervisor process (supervisor.py) runs the same process-cluster lifecycle
as `harness run` (harness/backends/lifecycle.py, with the local, netns or ssh
strategies), keeps every node running (restarting one that crashes unless it
was stopped on purpose), takes commands on a control socket (control.py),
inflicts faults by hand through the nemesis packages (hand_faults.py) and
keeps its record in the cluster directory (clusterdir.py), where the status
dashboard (probe.py, dashboard.py) and the systems' own command lines find it.
"""
