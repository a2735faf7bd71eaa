"""A real (tiny) Lightning fit: seeded and deterministic, for each task."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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


def _conf(task: str, max_epochs: int = 4) -> dict[str, Any]:
    trainer = dataclasses.replace(TRAINER, max_epochs=max_epochs, early_stopping=EarlyStoppingConf(enabled=False))
    return {
        "model": ModelConf("shipyard.train.models.MLP", MLPConf(hidden=[8], dropout=0.2)),
        "optim": OptimConf(name=Optimizer.adam, lr=0.01),
        "trainer": trainer,
        "seed": 1,
        "project": ProjectConf(name="t", team="t", task=Task(task)),
    }


def _crash_after_epoch(epoch: int) -> object:
    from lightning.pytorch.callbacks import Callback

    class Crash(Callback):
        """Stops the run the hard way once the checkpoint of ``epoch`` is on disk."""

        def on_train_epoch_end(self, trainer: object, pl_module: object) -> None:
            if trainer.current_epoch == epoch:  # type: ignore[attr-defined]
                raise RuntimeError("killed")

    return Crash()


@pytest.mark.drill
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_checkpoint_is_ignored_with_a_warning(damage: str, tmp_path: Path) -> None:
    """Fault: a checkpoint damaged by a kill during its write (last.ckpt truncated or empty)
    wedged the project: every later run failed with OSError or EOFError, naming no file. Such a
    checkpoint is treated as absent, with a warning naming it, and training starts clean."""
    from shipyard.train.fit import train_model

    train, val, state = _data("binary")
    reference = train_model(train, val, state, **_conf("binary"), workdir=tmp_path / "ref")
    workdir = tmp_path / "work"
    with pytest.raises(RuntimeError, match="killed"):
        train_model(train, val, state, **_conf("binary"), workdir=workdir, callbacks=[_crash_after_epoch(1)])
    last = workdir / "last.ckpt"
    assert last.is_file() and not list(workdir.glob(".tmp-*")), "checkpoints are renamed into place"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")

    with pytest.warns(UserWarning, match=rf"checkpoint {last} cannot be read"):
        again = train_model(train, val, state, **_conf("binary"), workdir=workdir)
    assert again.report["resumed"] is False
    assert again.bundle.weights_sha256 == reference.bundle.weights_sha256, "a clean start ends where a whole run does"
    assert not workdir.exists()


@pytest.mark.drill
def test_an_intact_checkpoint_still_resumes(tmp_path: Path) -> None:
    """The other side of the fault above: an intact checkpoint is resumed, not discarded."""
    from shipyard.train.fit import train_model

    train, val, state = _data("binary")
    reference = train_model(train, val, state, **_conf("binary"), workdir=tmp_path / "ref")
    workdir = tmp_path / "work"
    with pytest.raises(RuntimeError, match="killed"):
        train_model(train, val, state, **_conf("binary"), workdir=workdir, callbacks=[_crash_after_epoch(1)])
    again = train_model(train, val, state, **_conf("binary"), workdir=workdir)
    assert again.report["resumed"] is True
    assert again.bundle.weights_sha256 == reference.bundle.weights_sha256


def test_a_default_fit_on_a_small_data_set_warns_about_nothing_a_user_can_act_on(tmp_path: Path) -> None:
    """Fewer batches than the default log_every_n_steps (90 rows, batch 32: 3 batches, 5 steps)
    and metrics on a multiclass split: no Lightning or torchmetrics warning reaches the user."""
    import warnings

    from shipyard.train.fit import train_model

    train, val, state = _data("multiclass")
    conf = _conf("multiclass", max_epochs=2)
    conf["trainer"] = dataclasses.replace(
        conf["trainer"], batch_size=32, log_every_n_steps=TrainerConf().log_every_n_steps
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_model(train, val, state, **conf, workdir=tmp_path / "w")
    shown = [str(w.message) for w in caught if "shipyard" not in w.filename]
    assert not [m for m in shown if "logging interval" in m or "torchmetrics" in m.lower()], shown


def test_each_training_batch_draws_from_its_own_seed_whatever_was_drawn_before() -> None:
    """Dropout in batch b of epoch e depends on (seed, e, b) only: draws made in between (a
    resumed run, another library) change nothing; another batch or epoch draws differently."""
    from types import SimpleNamespace

    import torch
    from shipyard.train.fit import BatchSeed

    callback, module = BatchSeed(seed=7), SimpleNamespace(device=torch.device("cpu"))

    def draw(epoch: int, batch: int) -> torch.Tensor:
        callback.on_train_batch_start(SimpleNamespace(current_epoch=epoch), module, None, batch)  # type: ignore[arg-type]
        return torch.rand(8)

    first = draw(2, 5)
    torch.rand(1000)  # whatever else drew random numbers
    assert torch.equal(draw(2, 5), first)
    assert not torch.equal(draw(2, 6), first) and not torch.equal(draw(3, 5), first)
