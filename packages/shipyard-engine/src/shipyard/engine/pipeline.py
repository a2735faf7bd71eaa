"""A project's pipeline: Kedro nodes, the files behind their datasets, and their stages.

One table (:data:`NODES`, :data:`DATASETS`) describes the built-in pipeline; a project's own
pipeline (:func:`project_nodes`, :func:`project_datasets`) is that table plus, when it uses
shared features, the ``join_features`` node after ``check``, and its team's steps: data steps
before ``split`` (the last one's first output is the table the split reads), report steps after
``evaluate``. :func:`build_pipeline` turns it into a Kedro ``Pipeline``, :func:`build_catalog`
into a ``DataCatalog``, and :mod:`shipyard.engine.compiler` into ``dvc.yaml``. Each node is one
DVC stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig, StepConf, StepPlacement
from shipyard.engine import nodes

__all__ = [
    "DATASETS",
    "DATASET_TYPES",
    "NODES",
    "DatasetSpec",
    "NodeSpec",
    "build_catalog",
    "build_pipeline",
    "catalog_entries",
    "param_value",
    "project_datasets",
    "project_nodes",
]


@dataclass(frozen=True)
class DatasetSpec:
    """How the engine reads and declares one artifact; where it lives is
    :data:`shipyard.core.paths.ARTIFACTS` (by the same name)."""

    name: str
    kind: str  # parquet | csv | json | text | bundle
    role: str = "out"  # out | metrics | plot
    plot: dict[str, Any] = field(default_factory=dict)
    placement: str | None = None  # a team step's output: data | report (its file is paths.step_output)

    def path(self, paths: ProjectPaths) -> Path:
        if self.name == "feature_defs":
            return paths.feature_defs
        if self.placement is not None:
            return paths.step_output(self.name, self.kind, self.placement)
        return paths.artifact(self.name)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    func: Callable[..., Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    packages: tuple[str, ...]  # layer packages whose source the node runs


_SPECS = (
    DatasetSpec("dataset", "parquet"),
    DatasetSpec("ingest_report", "json"),
    DatasetSpec("check_report", "json"),
    DatasetSpec("check_summary", "text"),
    DatasetSpec("reference_contract", "json"),
    DatasetSpec("contract", "json"),
    DatasetSpec("reference_profile", "json"),
    DatasetSpec("train_split", "parquet"),
    DatasetSpec("val_split", "parquet"),
    DatasetSpec("test_split", "parquet"),
    DatasetSpec("split_manifest", "json"),
    DatasetSpec("preprocessor", "json"),
    DatasetSpec("model_bundle", "bundle"),
    DatasetSpec("train_report", "json"),
    DatasetSpec("learning_curve", "csv", "plot", {"x": "epoch", "y": "val/loss"}),
    DatasetSpec("metrics", "json", "metrics"),
    DatasetSpec("gate_report", "json"),
    DatasetSpec("confusion", "csv", "plot", {"template": "confusion", "x": "actual", "y": "predicted"}),
    DatasetSpec("report", "text"),
)
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}

# The Kedro dataset class (in shipyard.engine.datasets) of each DatasetSpec kind.
DATASET_TYPES = {
    "parquet": "ParquetFrame",
    "csv": "CsvFrame",
    "json": "JsonData",
    "text": "TextData",
    "bundle": "BundleDataset",
}

NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        "ingest",
        nodes.ingest,
        (
            "params:data",
            "params:split.group_column",
            "params:split.time_column",
            "params:preprocess.max_categories",
            "params:features",
            "runtime",
        ),
        ("dataset", "ingest_report"),
        ("data",),
    ),
    NodeSpec(
        "check",
        nodes.check,
        (
            "dataset",
            "ingest_report",
            "reference_contract",
            "params:checks",
            "params:data.target",
            "params:project.task",
            "params:split.group_column",
            "params:split.time_column",
            "runtime",
        ),
        ("check_report", "check_summary"),
        ("data",),
    ),
    NodeSpec(
        "split",
        nodes.split,
        (
            "dataset",
            "check_report",
            "params:split",
            "params:data.target",
            "params:data.shape",
            "params:project.task",
            "params:seed",
            "params:checks.split",
        ),
        ("train_split", "val_split", "test_split", "split_manifest", "contract"),
        ("data",),
    ),
    NodeSpec(
        "fit_preprocessing",
        nodes.fit_preprocessing,
        (
            "train_split",
            "params:data.target",
            "params:data.shape",
            "params:preprocess",
            "params:project.task",
            "params:split.group_column",
            "params:split.time_column",
            "params:data.datetime_parts",
        ),
        ("preprocessor",),
        ("data",),
    ),
    NodeSpec(
        "train",
        nodes.train,
        (
            "train_split",
            "val_split",
            "preprocessor",
            "params:model",
            "params:optim",
            "params:trainer",
            "params:seed",
            "params:project",
            "runtime",
        ),
        ("model_bundle", "learning_curve", "train_report"),
        ("train",),
    ),
    NodeSpec(
        "evaluate",
        nodes.evaluate,
        ("model_bundle", "train_split", "val_split", "test_split", "params:evaluate", "params:monitor.bins", "runtime"),
        ("metrics", "confusion", "reference_profile"),
        ("train", "data"),
    ),
    NodeSpec(
        "gate",
        nodes.gate,
        (
            "metrics",
            "train_split",
            "val_split",
            "test_split",
            "preprocessor",
            "params:gate",
            "params:model",
            "params:optim",
            "params:trainer",
            "params:seed",
            "params:project",
            "runtime",
        ),
        ("gate_report",),
        ("train",),
    ),
    NodeSpec(
        "report",
        nodes.report,
        (
            "check_report",
            "split_manifest",
            "learning_curve",
            "metrics",
            "confusion",
            "gate_report",
            "params:project",
            "params:model",
            "params:seed",
        ),
        ("report",),
        ("engine",),
    ),
)

# Shared features: the compiled definitions a project uses (pipelines/<team>/<name>/features.yaml,
# written by the compiler), the label rows with their features joined, and what was joined.
FEATURE_DATASETS = (
    DatasetSpec("feature_defs", "text", "dep"),
    DatasetSpec("training_frame", "parquet"),
    DatasetSpec("feature_manifest", "json"),
)
JOIN = NodeSpec(
    "join_features",
    nodes.join_features,
    ("dataset", "check_report", "feature_defs", "params:features.views", "params:features.event_time", "runtime"),
    ("training_frame", "feature_manifest"),
    ("features", "data"),
)


def _step_node(name: str, step: StepConf) -> NodeSpec:
    def run(*args: Any) -> Any:
        return nodes.run_step(step.function, *args)

    run.__name__ = run.__qualname__ = f"step_{name}"
    return NodeSpec(name, run, (*step.inputs, f"params:steps.{name}"), tuple(step.outputs), ())


def _replace_input(spec: NodeSpec, old: str, new: str) -> NodeSpec:
    return dataclasses.replace(spec, inputs=tuple(new if i == old else i for i in spec.inputs))


def project_nodes(config: ShipyardConfig | None) -> tuple[NodeSpec, ...]:
    """The nodes of ``config``'s pipeline, in order (the built-in ones when ``config`` is None)."""
    if config is None or (not config.features.views and not config.steps):
        return NODES
    out: list[NodeSpec] = []
    table = "training_frame" if config.features.views else "dataset"
    data_steps = [_step_node(n, s) for n, s in config.steps.items() if s.placement == StepPlacement.data]
    report_steps = [_step_node(n, s) for n, s in config.steps.items() if s.placement == StepPlacement.report]
    if data_steps:
        table = data_steps[-1].outputs[0]
    for spec in NODES:
        if spec.name == "split":
            if config.features.views:
                out.append(JOIN)
            out += data_steps
            spec = _replace_input(spec, "dataset", table)
        if config.features.views and spec.name in ("fit_preprocessing", "train"):
            # The entity keys and the label time stay in the frame (the service and batch job
            # look features up by them) but are no features of the model.
            func = nodes.fit_preprocessing_joined if spec.name == "fit_preprocessing" else nodes.train_joined
            spec = dataclasses.replace(spec, func=func, inputs=(*spec.inputs, "feature_manifest"))
        out.append(spec)
        if spec.name == "evaluate":
            out += report_steps
    return tuple(out)


def project_datasets(config: ShipyardConfig | None) -> dict[str, DatasetSpec]:
    """The datasets of ``config``'s pipeline: the built-in ones, the feature join's, its steps' outputs."""
    if config is None:
        return DATASETS
    found = dict(DATASETS)
    if config.features.views:
        found.update({spec.name: spec for spec in FEATURE_DATASETS})
    for step in config.steps.values():
        for name, kind in step.outputs.items():
            found[name] = DatasetSpec(name, str(kind), placement=str(step.placement))
    return found


# The keys of ``project`` that change what a model is (its description does not).
_PROJECT_KEYS = ("name", "team", "task")


def param_value(config: ShipyardConfig, name: str) -> Any:
    """The typed value of ``params:<dotted.key>`` in a validated config."""
    node: Any = config
    for part in name.removeprefix("params:").split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def param_keys(spec: NodeSpec) -> list[str]:
    keys = []
    for name in spec.inputs:
        if name == "params:project":
            keys += [f"project.{k}" for k in _PROJECT_KEYS]
        elif name.startswith("params:"):
            keys.append(name.removeprefix("params:"))
    return keys


def build_pipeline(only: str | None = None, config: ShipyardConfig | None = None) -> Any:
    from kedro.pipeline import Pipeline, node

    specs = [s for s in project_nodes(config) if only is None or s.name == only]
    return Pipeline(
        [
            node(s.func, list(s.inputs), s.outputs[0] if len(s.outputs) == 1 else list(s.outputs), name=s.name)
            for s in specs
        ]
    )


def runtime(paths: ProjectPaths) -> dict[str, Any]:
    return {
        "root": str(paths.root),
        "project": paths.project,
        "check_report": str(DATASETS["check_report"].path(paths)),
        "check_summary": str(DATASETS["check_summary"].path(paths)),
        "check_summary_rel": paths.rel(DATASETS["check_summary"].path(paths)),
        "train_workdir": str(paths.artifact("train_workdir")),
        "bundle_dir": str(DATASETS["model_bundle"].path(paths)),
    }


def build_catalog(config: ShipyardConfig, paths: ProjectPaths, *, memory_outputs: tuple[str, ...] = ()) -> Any:
    """A Kedro catalog for ``config``: file datasets, params, and the runtime entry.

    ``memory_outputs`` keeps those datasets in memory (non-zero DDP ranks must not write).
    """
    from kedro.io import DataCatalog, MemoryDataset
    from shipyard.engine import datasets as classes

    datasets: dict[str, Any] = {}
    for name, spec in project_datasets(config).items():
        kind = getattr(classes, DATASET_TYPES[spec.kind])
        datasets[name] = MemoryDataset() if name in memory_outputs else kind(spec.path(paths))
    for spec in project_nodes(config):
        for name in spec.inputs:
            if name.startswith("params:"):
                datasets[name] = MemoryDataset(param_value(config, name), copy_mode="assign")
    datasets["runtime"] = MemoryDataset(runtime(paths), copy_mode="assign")
    return DataCatalog(datasets=datasets)


def catalog_entries(paths: ProjectPaths, config: ShipyardConfig | None = None) -> dict[str, dict[str, Any]]:
    """The catalog of one project as Kedro config (``kedro run``/``kedro viz``): its files at the
    paths ``dvc.yaml`` names (repository-relative), and the ``runtime`` entry."""
    entries: dict[str, dict[str, Any]] = {
        name: {"type": f"shipyard.engine.datasets.{DATASET_TYPES[spec.kind]}", "filepath": paths.rel(spec.path(paths))}
        for name, spec in project_datasets(config).items()
    }
    entries["runtime"] = {"type": "kedro.io.MemoryDataset", "data": runtime(paths), "copy_mode": "assign"}
    return entries
