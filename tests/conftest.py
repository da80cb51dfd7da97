"""Shared pytest setup: the hypothesis profile mutation testing runs under (tools/mutation.py).

The `mutation` profile drops shrinking (a mutant is judged by whether a test fails, not by the
smallest failing example, and shrinking is most of the cost of a kill) and the example database
(so one mutant's failures do not steer the next). Ordinary runs keep hypothesis's defaults.
"""

from hypothesis import Phase, settings

settings.register_profile("mutation", phases=[Phase.explicit, Phase.generate], database=None)
