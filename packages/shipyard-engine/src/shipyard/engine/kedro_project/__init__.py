"""The repository as a Kedro project: ``kedro run``, ``kedro viz`` and ``kedro registry`` know it.

The root ``pyproject.toml`` names this package in ``[tool.kedro]``; Kedro then reads
:mod:`.settings` and :mod:`.pipeline_registry` here. Every compiled project
(``pipelines/<team>/<name>/params.yaml``) is one registered pipeline named ``<team>.<name>``:
the nodes of :data:`shipyard.engine.pipeline.NODES` under the namespace ``<team>.<name>``, so
its datasets are ``<team>.<name>.<dataset>`` and its parameters
``params:<team>.<name>.<key>``. The catalog comes from the same
:data:`~shipyard.engine.pipeline.DATASETS` table as ``dvc.yaml``, and the parameters from the
compiled ``params.yaml``, read back through the schema like ``dvc repro`` does.
"""

from __future__ import annotations

from shipyard.engine.kedro_project._project import pipeline_name, project_of

__all__ = ["pipeline_name", "project_of"]
