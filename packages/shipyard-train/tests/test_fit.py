"""A real (tiny) Lightning fit: seeded and deterministic, for each task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shipyard.core.features import Preprocessor
from shipyard.core.schema import (
    EarlyStoppingConf,
    ModelConf,
    OptimConf,
    Optimizer,
    ProjectConf,
    Task,
    TrainerConf,
)
from shipyard.train.schemas import MLPConf

TRAINER = TrainerConf(
    max_epochs=3,
    batch_size=16,
    progress_bar=False,
    log_every_n_steps=1,
    early_stopping=EarlyStoppingConf(patience=2),
)


def _data(task: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = {
        "binary": (x[:, 0] > 0).astype(int),
        "multiclass": np.digitize(x[:, 0], [-0.5, 0.5]),
        "regression": x @ [1.0, 2.0, 0.5],
    }[task]
    frame = pd.DataFrame({"row_id": range(120), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})
    classes = [] if task == "regression" else sorted(set(y.tolist()))
    pre = Preprocessor(
        task=task,
        features=["a", "b", "c"],
        target="y",
        mean=[0.0] * 3,
        scale=[1.0] * 3,
        fill=[0.0] * 3,
        classes=classes,
    )
    return frame[:90], frame[90:], pre.state()


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_fit_is_deterministic(task: str, tmp_path: Path) -> None:
    from shipyard.train.fit import train_model

    train, val, state = _data(task)
    conf = {
        "model": ModelConf("shipyard.train.models.MLP", MLPConf(hidden=[8], dropout=0.2)),
        "optim": OptimConf(name=Optimizer.adam, lr=0.01),
        "trainer": TRAINER,
        "seed": 1,
        "project": ProjectConf(name="t", team="t", task=Task(task)),
    }
    runs = []
    for i in range(2):
        result = train_model(train, val, state, **conf, workdir=tmp_path / f"w{i}")
        result.bundle.save(tmp_path / f"b{i}")
        runs.append(result)
        assert not (tmp_path / f"w{i}").exists()
    assert runs[0].bundle.weights_sha256 == runs[1].bundle.weights_sha256
    assert list(runs[0].curve["epoch"]) == [0, 1, 2]
    assert "val/loss" in runs[0].curve.columns
    assert runs[0].report["epochs"] == 3
