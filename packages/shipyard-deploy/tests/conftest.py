"""Fixtures for deploy tests: real bundles trained (briefly) on the example data sets.

Each example is trained once per test session through the same functions the pipeline runs
(fetch, ingest, split, fit preprocessing, Lightning training), into a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

_BENTOML_HOME: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """BentoML's model and Bento stores of these tests live in a temporary folder, never in the
    user's ~/bentoml (BentoML fixes its home the first time a process uses it: set it first)."""
    _BENTOML_HOME.append(tempfile.mkdtemp(prefix="shipyard-tests-bentoml-"))
    os.environ["BENTOML_HOME"] = _BENTOML_HOME[-1]
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"


def pytest_unconfigure(config: pytest.Config) -> None:
    for home in _BENTOML_HOME:
        shutil.rmtree(home, ignore_errors=True)


EXAMPLES: dict[str, dict[str, Any]] = {
    "breast_cancer": {
        "data": {"source": {"kind": "csv", "path": "bc.csv", "fetch": "sklearn:breast_cancer"}, "target": "target"},
        "task": "binary",
        "model": {"_target_": "shipyard.train.models.MLP", "hidden": [32, 16], "dropout": 0.1, "activation": "relu"},
    },
    "digits": {
        "data": {
            "source": {"kind": "csv", "path": "digits.csv", "fetch": "sklearn:digits"},
            "target": "target",
            "shape": [1, 8, 8],
        },
        "task": "multiclass",
        "model": {
            "_target_": "shipyard.train.models.CNN",
            "channels": [8, 16],
            "kernel_size": 3,
            "hidden": 32,
            "dropout": 0.1,
        },
    },
    "churn": {
        "data": {
            "source": {"kind": "csv", "path": "churn.csv", "fetch": "synthetic:churn"},
            "target": "churned",
            "key": "customer_id",
        },
        "task": "binary",
        "model": {"_target_": "shipyard.train.models.MLP", "hidden": [16], "dropout": 0.0, "activation": "relu"},
    },
}


@dataclass
class Example:
    name: str
    bundle_dir: Path
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    key: str
    target: str


def _train_example(name: str, root: Path) -> Example:
    from shipyard.core.compose import section
    from shipyard.core.registry import component_schema
    from shipyard.core.schema import (
        DataConf,
        EarlyStoppingConf,
        ModelConf,
        OptimConf,
        PreprocessConf,
        ProjectConf,
        SplitConf,
        Task,
        TrainerConf,
    )
    from shipyard.data import fetch_raw, fit_preprocessor, ingest, split_frame
    from shipyard.train.fit import train_model

    spec = EXAMPLES[name]
    data = section(DataConf, spec["data"], "data")
    fetch_raw(data.source, root)
    frame = ingest(data, root)
    train, val, test, _ = split_frame(frame, SplitConf(), data.target, spec["task"], 42)
    state = fit_preprocessor(train, data.target, data.shape, PreprocessConf(), spec["task"])
    target = spec["model"]["_target_"]
    params = section(component_schema(target), {k: v for k, v in spec["model"].items() if k != "_target_"}, "model")
    result = train_model(
        train,
        val,
        state,
        model=ModelConf(target, params),
        optim=OptimConf(lr=0.003),
        trainer=TrainerConf(max_epochs=8, progress_bar=False, early_stopping=EarlyStoppingConf(enabled=False)),
        seed=42,
        project=ProjectConf(name=name, team="examples", task=Task(spec["task"])),
        workdir=root / f"{name}-work",
    )
    bundle_dir = root / f"{name}-bundle"
    result.bundle.save(bundle_dir)
    return Example(name, bundle_dir, train, val, test, str(frame.columns[0]), data.target)


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Example]:
    """``{"breast_cancer": Example, "digits": Example, "churn": Example}``, trained once."""
    root = tmp_path_factory.mktemp("examples")
    return {name: _train_example(name, root) for name in EXAMPLES}
