"""Linearizability checking (Porcupine-class): P-compositional Wing & Gong / Lowe search.

Public API:

- `check_history(history, model="cas-register", *, time_limit_s=60.0, memory_limit_mb=1024) -> dict`
  for a picluster history; the result has "valid" (True / False / "unknown"),
  "summary" (prose), "keys" (per-key results) and, for a key that is not
  linearizable, the evidence: the longest linearizable prefix, the model
  state after it and the ops that cannot come next.
- `check_operations(ops, model, ...)` for already-parsed operations (the
  Porcupine formats go through `parse`), with `stop_on_failure`.
- `render_html(result) -> str`: a self-contained HTML fragment with inline SVG.

Models: "register", "cas-register", "kv" (see models.py to add more).
"""

from checkers.linearizable.check import check_history, check_operations
from checkers.linearizable.explain import render_html
from checkers.linearizable.models import MODELS, Model, Operation, make_model

__all__ = ["MODELS", "Model", "Operation", "check_history", "check_operations", "make_model", "render_html"]
