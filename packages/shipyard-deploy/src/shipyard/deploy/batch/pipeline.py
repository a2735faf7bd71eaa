"""The batch job as a Kedro pipeline: ``plan`` -> ``score`` -> ``finish``.

Catalog entries (all in memory; :func:`shipyard.deploy.batch.run_batch_job` provides them):
``job`` (the loaded job spec), ``run`` (input, output, resume, progress), and the outputs
``plan``, ``part_results`` and ``summary``. A job folder's ``pipeline.py`` is this pipeline,
written out by :func:`shipyard.deploy.batch.build_batch_job`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NODES", "create_pipeline"]

# (function, inputs, output, node name): the one definition both the runner and the job
# folder's pipeline.py are made from.
NODES = (
    ("plan_job", ("job", "run"), "plan", "plan"),
    ("score_parts", ("plan",), "part_results", "score"),
    ("finish_job", ("plan", "part_results"), "summary", "finish"),
)


def create_pipeline(**_: Any) -> Any:
    from kedro.pipeline import Pipeline, node
    from shipyard.deploy.batch import nodes

    return Pipeline([node(getattr(nodes, f), list(i), o, name=n) for f, i, o, n in NODES])
