"""Evaluation: every task the model is used for, base and tuned side by side.

- ``suite``: the cached evaluation core (``evaluate_embedder``, ``spot_check``) over
  sentence-transformers evaluators; every metric key is ``{task}-{split}_{metric}``.
- ``report``: the grouped table, the do-no-harm verdict, plots and report files (``run_suite``).
- ``mteb``: the ``mteb`` package on local tasks built from anlam's data, offline (imported on its own:
  ``from anlam.evaluate.mteb import run_mteb``, so the suite does not load mteb).
"""

from __future__ import annotations

from anlam.evaluate.report import (
    GROUPS,
    GUARDED_GROUPS,
    HARM_TOLERANCE,
    guarded_metrics,
    harm,
    metric_names,
    render_markdown,
    run_suite,
)
from anlam.evaluate.suite import (
    EVAL_SPLITS,
    SPOT_CHECK,
    TASKS,
    CachedEncoder,
    ModelResult,
    UserData,
    evaluate_embedder,
    metric_key,
    spot_check,
    task_name,
    tqp_retrieval,
)

__all__ = [
    "GROUPS",
    "GUARDED_GROUPS",
    "HARM_TOLERANCE",
    "EVAL_SPLITS",
    "SPOT_CHECK",
    "TASKS",
    "CachedEncoder",
    "ModelResult",
    "UserData",
    "evaluate_embedder",
    "guarded_metrics",
    "harm",
    "metric_key",
    "metric_names",
    "render_markdown",
    "run_suite",
    "spot_check",
    "task_name",
    "tqp_retrieval",
]
