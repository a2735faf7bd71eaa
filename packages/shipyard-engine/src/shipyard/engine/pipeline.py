"""A project's pipeline: Kedro nodes, the files behind their datasets, and their stages.

One table (:data:`NODES`, :data:`DATASETS`) describes the pipeline; :func:`build_pipeline`
turns it into a Kedro ``Pipeline``, :func:`build_catalog` into a ``DataCatalog``, and
:mod:`shipyard.engine.compiler` into ``dvc.yaml``. Each node is one DVC stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
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
]


@dataclass(frozen=True)
class DatasetSpec:
    """How the engine reads and declares one artifact; where it lives is
    :data:`shipyard.core.paths.ARTIFACTS` (by the same name)."""

    name: str
    kind: str  # parquet | csv | json | text | bundle
    role: str = "out"  # out | metrics | plot
    plot: dict[str, Any] = field(default_factory=dict)

    def path(self, paths: ProjectPaths) -> Path:
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
        ("params:data", "params:split.group_column", "params:split.time_column", "runtime"),
        ("dataset",),
        ("data",),
    ),
    NodeSpec(
        "check",
        nodes.check,
        (
            "dataset",
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
)

# The keys of ``project`` that change what a model is (its description does not).
_PROJECT_KEYS = ("name", "team", "task")


def param_value(config: ShipyardConfig, name: str) -> Any:
    """The typed value of ``params:<dotted.key>`` in a validated config."""
    node: Any = config
    for part in name.removeprefix("params:").split("."):
        node = getattr(node, part)
    return node


def param_keys(spec: NodeSpec) -> list[str]:
    keys = []
    for name in spec.inputs:
        if name == "params:project":
            keys += [f"project.{k}" for k in _PROJECT_KEYS]
        elif name.startswith("params:"):
            keys.append(name.removeprefix("params:"))
    return keys


def build_pipeline(only: str | None = None) -> Any:
    from kedro.pipeline import Pipeline, node

    specs = [s for s in NODES if only is None or s.name == only]
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
    for name, spec in DATASETS.items():
        kind = getattr(classes, DATASET_TYPES[spec.kind])
        datasets[name] = MemoryDataset() if name in memory_outputs else kind(spec.path(paths))
    for spec in NODES:
        for name in spec.inputs:
            if name.startswith("params:"):
                datasets[name] = MemoryDataset(param_value(config, name), copy_mode="assign")
    datasets["runtime"] = MemoryDataset(runtime(paths), copy_mode="assign")
    return DataCatalog(datasets=datasets)


def catalog_entries(paths: ProjectPaths) -> dict[str, dict[str, Any]]:
    """The catalog of one project as Kedro config (``kedro run``/``kedro viz``): its files at the
    paths ``dvc.yaml`` names (repository-relative), and the ``runtime`` entry."""
    entries: dict[str, dict[str, Any]] = {
        name: {"type": f"shipyard.engine.datasets.{DATASET_TYPES[spec.kind]}", "filepath": paths.rel(spec.path(paths))}
        for name, spec in DATASETS.items()
    }
    entries["runtime"] = {"type": "kedro.io.MemoryDataset", "data": runtime(paths), "copy_mode": "assign"}
    return entries
