"""The bottom layer: what every part of picluster shares, importing nothing of ours.

- `base.history`: the history model (ops, pairs, reading and writing history.jsonl).
- `base.spec`: `TestSpec`, a test as plain data.
- `base.cluster`: the cluster contract a backend offers (kill, pause, partition, links,
  cable, power, switch, ...) and the capabilities a fault can ask for.
- `base.links`: `LinkFault` and the one decision of what a faulty link does to a frame,
  used by the simulated network and the real packet filter alike.
- `base.verdict`: checker results and how verdicts compose.

Everything else (systems.runtime, systems, workloads, nemesis, checkers, the harness)
sits on top; tests/test_layers.py checks the rules with import-linter.
"""
