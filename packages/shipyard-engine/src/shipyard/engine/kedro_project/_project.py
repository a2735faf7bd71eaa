"""The pieces Kedro's settings name: config loader, context, pipeline registry and a hook."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kedro.config import AbstractConfigLoader, MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from shipyard.core.errors import ConfigError
from shipyard.core.paths import ProjectPaths, find_root, parse_project

__all__ = [
    "DvcNotice",
    "ShipyardConfigLoader",
    "ShipyardContext",
    "compiled_projects",
    "pipeline_name",
    "project_of",
    "register_pipelines",
]

log = logging.getLogger(__name__)


def pipeline_name(project: str) -> str:
    """Kedro's name for a project: ``tabular/breast_cancer`` -> ``tabular.breast_cancer``.

    Kedro splits namespaces on dots and a project name holds none, so the mapping is one to one;
    the same string is the pipeline's namespace (``tabular.breast_cancer.train`` is a node).
    """
    team, name = parse_project(project)
    return f"{team}.{name}"


def project_of(pipeline: str) -> str:
    """The project of a Kedro pipeline name (the inverse of :func:`pipeline_name`)."""
    team, _, name = pipeline.partition(".")
    return "/".join(parse_project(f"{team}/{name}"))


def compiled_projects(root: Path) -> list[str]:
    """Projects with a compiled ``pipelines/<team>/<name>/params.yaml``, sorted."""
    found = []
    for params in sorted((root / "pipelines").glob("*/*/params.yaml")):
        project = f"{params.parent.parent.name}/{params.parent.name}"
        try:
            parse_project(project)
        except ConfigError:
            continue  # not a project folder (Shipyard never writes one)
        found.append(project)
    return found


def compiled_config(root: Path, project: str) -> Any:
    """The typed config a project's compiled ``params.yaml`` holds (its steps and features make
    its pipeline: :func:`shipyard.engine.pipeline.project_nodes`)."""
    import yaml
    from shipyard.core.compose import load

    return load(yaml.safe_load(ProjectPaths.of(root, project).params_yaml.read_text()), root)


def register_pipelines() -> dict[str, Any]:
    from kedro.pipeline import Pipeline, pipeline
    from shipyard.engine.pipeline import build_pipeline

    root = find_root()
    pipes: dict[str, Any] = {
        pipeline_name(p): pipeline(build_pipeline(config=compiled_config(root, p)), namespace=pipeline_name(p))
        for p in compiled_projects(root)
    }
    pipes["__default__"] = sum(pipes.values(), start=Pipeline([]))
    return pipes


class _Missing(MissingConfigException, KeyError):
    """Kedro catches the first, ``UserDict.get`` the second."""


class ShipyardConfigLoader(AbstractConfigLoader):
    """The catalog and parameters of every compiled project, as Kedro's config dictionaries.

    ``catalog``: each :data:`~shipyard.engine.pipeline.DATASETS` entry of each project, at the
    path ``dvc.yaml`` names, as ``<team>.<name>.<dataset>``, plus its ``runtime`` entry.
    ``parameters``: ``{team: {name: <params.yaml>}}`` with ``kedro run --params`` merged on
    top; :class:`ShipyardContext` types and validates them.
    """

    def __init__(
        self, conf_source: str | Path, env: str | None = None, runtime_params: dict[str, Any] | None = None, **_: Any
    ) -> None:
        super().__init__(conf_source=conf_source, env=env, runtime_params=runtime_params)
        # Kedro passes <project path>/<CONF_SOURCE>; conf/ is Hydra's, the project path the root.
        self.root = Path(conf_source).resolve().parent

    def __getitem__(self, key: str) -> Any:
        if key == "catalog":
            return self._catalog()
        if key == "parameters":
            return self._parameters()
        if key == "credentials":
            return {}
        raise _Missing(f"a Shipyard repository has no Kedro {key!r} config")

    def _catalog(self) -> dict[str, Any]:
        from shipyard.engine.pipeline import catalog_entries

        conf: dict[str, Any] = {}
        for project in compiled_projects(self.root):
            paths = ProjectPaths.of(self.root, project)
            for name, entry in catalog_entries(paths, compiled_config(self.root, project)).items():
                conf[f"{pipeline_name(project)}.{name}"] = entry
        return conf

    def _parameters(self) -> dict[str, Any]:
        import yaml
        from omegaconf import OmegaConf

        params: dict[str, Any] = {}
        for project in compiled_projects(self.root):
            paths = ProjectPaths.of(self.root, project)
            params.setdefault(paths.team, {})[paths.name] = yaml.safe_load(paths.params_yaml.read_text())
        if self.runtime_params:
            merged = OmegaConf.merge(OmegaConf.create(params), OmegaConf.create(self.runtime_params))
            params = OmegaConf.to_container(merged)  # type: ignore[assignment]
        return params


class ShipyardContext(KedroContext):
    """Parameters as the typed sections of :class:`~shipyard.core.schema.ShipyardConfig`.

    Each project's parameters go through the same schema and rules as ``dvc repro``'s stages
    (:func:`shipyard.core.compose.load`), so a node gets exactly what its stage would; Kedro's
    own dataclass instantiation (one level deep, no enums) is not used.
    """

    @property
    def params(self) -> dict[str, Any]:
        from shipyard.core.compose import load

        raw = self.config_loader["parameters"]
        typed: dict[str, Any] = {}
        for team, projects in raw.items():
            for name, data in projects.items():
                typed.setdefault(team, {})[name] = load(data, self.project_path)
        return typed


def _rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0) + int(os.environ.get("NODE_RANK", "0") or 0)


class DvcNotice:
    """``kedro run`` writes a project's outputs but not DVC's record of them: say so."""

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if _rank() > 0:
            return
        projects = sorted({project_of(n.namespace) for n in pipeline.nodes if n.namespace})
        for project in projects:
            log.warning(
                "kedro run wrote outputs of %s without DVC: dvc.lock is unchanged, so `dvc status` "
                "flags every output that differs from what it records, and `make train PROJECT=%s` "
                "(or `dvc repro pipelines/%s/dvc.yaml`) reruns those stages and records them",
                project,
                project,
                project,
            )
