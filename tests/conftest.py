"""Shared pytest setup: the hypothesis profile mutation testing runs under (tools/mutation.py).

The `mutation` profile drops shrinking (a mutant is judged by whether a test fails, not by the
smallest failing example, and shrinking is most of the cost of a kill) and the example database
(so one mutant's failures do not steer the next), and runs 40 examples where a test does not set
its own count (each surviving mutant runs every test that reaches it). Ordinary runs keep
hypothesis's defaults.
"""

import pytest
from hypothesis import Phase, settings

settings.register_profile("mutation", phases=[Phase.explicit, Phase.generate], database=None, max_examples=40)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Root-tier tests share machine-wide things (the search for a free /24, the rehearsal's fixed
    sshd hosts, iptables chains): under pytest-xdist they run one at a time, in one group
    (`--dist loadgroup`), while the other worker takes everything else."""
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(pytest.mark.xdist_group("root"))
