"""Shared pytest setup: the hypothesis profile mutation testing runs under (tools/mutation.py).

The `mutation` profile drops shrinking (a mutant is judged by whether a test fails, not by the
smallest failing example, and shrinking is most of the cost of a kill) and the example database
(so one mutant's failures do not steer the next), and runs 40 examples where a test does not set
its own count (each surviving mutant runs every test that reaches it). Ordinary runs keep
hypothesis's defaults.
"""

from hypothesis import Phase, settings

settings.register_profile("mutation", phases=[Phase.explicit, Phase.generate], database=None, max_examples=40)
