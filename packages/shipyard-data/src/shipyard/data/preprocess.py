"""Fit the preprocessing state on the training split only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, DataError
from shipyard.core.features import Preprocessor

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NUMERIC_METHODS", "fit_preprocessor"]

NUMERIC_METHODS = ("standard", "none")


def fit_preprocessor(
    train: pd.DataFrame, data: dict[str, Any], preprocess: dict[str, Any], task: str
) -> dict[str, Any]:
    """Return the JSON state of a :class:`Preprocessor` fitted on ``train``."""
    import numpy as np

    method = preprocess["numeric"]
    if method not in NUMERIC_METHODS:
        raise ConfigError(
            f"unknown numeric preprocessing {method!r}",
            key="preprocess.numeric",
            value=method,
            fix="use one of: " + ", ".join(NUMERIC_METHODS),
        )
    target = data["target"]
    features = [c for c in train.columns[1:] if c != target]
    x = train[features].to_numpy(dtype=np.float64)
    fill = np.nanmedian(x, axis=0) if len(x) else np.zeros(len(features))
    fill = np.where(np.isnan(fill), 0.0, fill)
    x = np.where(np.isnan(x), fill, x)
    if method == "standard":
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
    else:
        mean, scale = np.zeros(len(features)), np.ones(len(features))
    y = train[target]
    classes: list[Any] = []
    t_mean, t_scale = 0.0, 1.0
    if task == "regression":
        t_mean, t_scale = float(y.mean()), float(y.std(ddof=0)) or 1.0
    else:
        classes = sorted(v.item() if hasattr(v, "item") else v for v in y.unique())
        expected = 2 if task == "binary" else None
        if expected and len(classes) != expected:
            raise DataError(
                f"a binary task needs 2 classes, the training split has {len(classes)}: {classes[:10]}",
                key="project.task",
                fix="set project.task=multiclass, or fix the target column",
            )
    return Preprocessor(
        task=task,
        features=features,
        target=target,
        mean=mean.tolist(),
        scale=scale.tolist(),
        fill=fill.tolist(),
        classes=classes,
        target_mean=t_mean,
        target_scale=t_scale,
        shape=list(data["shape"]) if data.get("shape") else None,
    ).state()
