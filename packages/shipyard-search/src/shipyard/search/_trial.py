"""One trial: the same training and evaluation code as ``make train``, in this process.

All of a search's data access goes through :func:`load_search_data` (training and validation
splits, fitted preprocessing); the test split is read by :func:`load_test_split` only, once,
for the chosen model after the search.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.errors import DataError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
from shipyard.search._errors import TrialFailed

__all__ = ["SearchData", "TrialRun", "load_search_data", "load_test_split", "train_and_evaluate", "train_conf"]


@dataclass
class SearchData:
    train: Any  # pandas.DataFrame
    val: Any
    state: dict[str, Any]
    fingerprint: str  # content hash of the three files


@dataclass
class TrialRun:
    bundle: Any
    metrics: dict[str, float]
    seconds: dict[str, float]  # train, evaluate


def _inputs(paths: ProjectPaths) -> dict[str, Path]:
    return {
        "train": paths.artifact("train_split"),
        "val": paths.artifact("val_split"),
        "preprocessor": paths.artifact("preprocessor"),
    }


def load_search_data(paths: ProjectPaths) -> SearchData:
    """The training and validation splits and the preprocessing fitted on training: all a
    search reads. The split and preprocessing stages write them (``make train``)."""
    import json

    import pandas as pd
    from shipyard.core.hashing import file_sha256, json_sha256

    files = _inputs(paths)
    missing = [paths.rel(p) if p.is_relative_to(paths.root) else str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DataError(
            f"the search needs {', '.join(missing)}",
            where=missing[0],
            fix=f"run `make train PROJECT={paths.project}` first: a search reuses the project's split and "
            "fitted preprocessing",
        )
    return SearchData(
        train=pd.read_parquet(files["train"]),
        val=pd.read_parquet(files["val"]),
        state=json.loads(files["preprocessor"].read_text()),
        fingerprint=json_sha256({k: file_sha256(p) for k, p in files.items()}),
    )


def load_test_split(paths: ProjectPaths) -> Any:
    """The test split, for the one evaluation of the chosen model after the search."""
    import pandas as pd

    path = paths.artifact("test_split")
    if not path.is_file():
        raise DataError(
            f"{paths.rel(path)} is missing",
            where=paths.rel(path),
            fix=f"run `make train PROJECT={paths.project}` to write the splits",
        )
    return pd.read_parquet(path)


def train_conf(config: ShipyardConfig) -> dict[str, Any]:
    """What ``train_model`` takes, from a validated config (as the train stage passes it)."""
    return {
        "model": config.model,
        "optim": config.optim,
        "trainer": dataclasses.replace(config.trainer, progress_bar=False),  # one line per trial, not a bar
        "seed": config.seed,
        "project": config.project,
    }


def _train(data: SearchData, conf: dict[str, Any], workdir: Path, callbacks: Sequence[Any]) -> Any:
    from shipyard.train import fit

    return fit.train_model(data.train, data.val, data.state, **conf, workdir=workdir, callbacks=list(callbacks))


def _weights_size(bundle: Any) -> int:
    """Bytes of ``weights.safetensors`` as the bundle would write it (without writing it)."""
    from safetensors.torch import save
    from shipyard.train.bundle import BUNDLE_FORMAT

    tensors = {k: v.detach().cpu().contiguous() for k, v in bundle.net.state_dict().items()}
    return len(save(tensors, metadata={"format": BUNDLE_FORMAT}))


def train_and_evaluate(
    config: ShipyardConfig,
    data: SearchData,
    workdir: Path,
    *,
    callbacks: Sequence[Any] = (),
    test: Any = None,
) -> TrialRun:
    """Train ``config``'s model on the training split and evaluate it on validation (and on
    ``test`` when given: the chosen model only)."""
    import torch
    from shipyard.train.evaluate import evaluate_bundle

    started = time.perf_counter()
    with warnings.catch_warnings():
        # Small splits make fewer batches than the logging interval: harmless, and said per trial.
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        result = _train(data, train_conf(config), workdir, callbacks)
    trained = time.perf_counter()
    bundle = result.bundle
    if not all(bool(torch.isfinite(p).all()) for p in bundle.net.parameters()):
        raise TrialFailed("training diverged: the weights contain NaN or infinity")
    metrics = evaluate_bundle(bundle, data.val, test, config.evaluate, _weights_size(bundle))
    metrics["train_seconds"] = float(result.report["train_seconds"])
    metrics["epochs"] = float(result.report["epochs"])
    seconds = {"train": trained - started, "evaluate": time.perf_counter() - trained}
    return TrialRun(bundle, metrics, seconds)
