"""Shared pytest setup: the hypothesis profile mutation testing runs under (tools/mutation.py), the root
tier's xdist group, and Ctrl-C as a terminal delivers it.

The `mutation` profile drops shrinking (a mutant is judged by whether a test fails, not by the
smallest failing example, and shrinking is most of the cost of a kill) and the example database
(so one mutant's failures do not steer the next), and runs 40 examples where a test does not set
its own count (each surviving mutant runs every test that reaches it). Ordinary runs keep
hypothesis's defaults.
"""

import signal

import pytest
from hypothesis import Phase, settings

settings.register_profile("mutation", phases=[Phase.explicit, Phase.generate], database=None, max_examples=40)


def pytest_configure(config: pytest.Config) -> None:
    """The Ctrl-C tests send SIGINT to a harness they started, as a terminal does to its foreground job. A
    suite started as a background job of a non-interactive shell (`pytest &` in a script, some CI runners)
    inherits SIGINT *ignored*, and so would every harness it starts, which then runs on through the signal.
    A foreground job never has SIGINT ignored, so the suite restores Python's handler before any test
    starts a process (the children inherit "not ignored"; exec turns the handler into the default)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Root-tier tests share machine-wide things (the search for a free /24, the rehearsal's fixed
    sshd hosts, iptables chains): under pytest-xdist they run one at a time, in one group
    (`--dist loadgroup`), while the other worker takes everything else."""
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(pytest.mark.xdist_group("root"))
