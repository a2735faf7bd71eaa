"""Fit the preprocessing state on the training split only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataError
from shipyard.core.features import Preprocessor
from shipyard.core.schema import Imputation, PreprocessConf, Scaling

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["feature_columns", "fit_preprocessor"]


def feature_columns(frame: pd.DataFrame, target: str, aux: list[str]) -> list[str]:
    """The feature columns of an ingested frame: all but the key (first), target and aux."""
    return [c for c in frame.columns[1:] if c != target and c not in aux]


def is_datetime(column: pd.Series) -> bool:
    """A date/time feature: ingest parses every date/time column into datetime64."""
    import pandas as pd

    return bool(pd.api.types.is_datetime64_any_dtype(column))


def is_categorical(column: pd.Series) -> bool:
    import pandas as pd

    if is_datetime(column):
        return False
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def fit_preprocessor(
    train: pd.DataFrame,
    target: str,
    shape: list[int] | None,
    preprocess: PreprocessConf,
    task: str,
    aux: list[str] | None = None,
    datetime_parts: list[str] | None = None,
) -> dict[str, Any]:
    """Return the JSON state of a :class:`Preprocessor` fitted on ``train`` (and nothing else).
    Each date/time feature becomes ``datetime_parts`` numeric columns (never one-hot strings)."""
    import numpy as np

    method, impute, max_categories = preprocess.numeric, preprocess.impute, preprocess.max_categories
    features = feature_columns(train, target, list(aux or []))
    dates = [c for c in features if is_datetime(train[c])]
    categorical = [c for c in features if is_categorical(train[c])]
    numeric = [c for c in features if c not in categorical and c not in dates]
    parts = [str(p) for p in (datetime_parts or [])] or ["timestamp"]
    expansion = Preprocessor(
        task=task,
        features=[*numeric, *dates],
        target=target,
        mean=[],
        scale=[],
        fill=[],
        datetime={c: parts for c in dates},
    )
    x = expansion.raw_matrix(train) if (numeric or dates) else np.zeros((len(train), 0))
    numeric_inputs = expansion.numeric_inputs
    with np.errstate(all="ignore"):
        if impute == Imputation.median:
            fill = np.nanmedian(x, axis=0) if len(x) else np.zeros(len(numeric_inputs))
        elif impute == Imputation.mean:
            fill = np.nanmean(x, axis=0) if len(x) else np.zeros(len(numeric_inputs))
        else:
            fill = np.zeros(len(numeric_inputs))
    fill = np.where(np.isnan(fill), 0.0, fill)
    x = np.where(np.isnan(x), fill, x)
    if method == Scaling.standard:
        mean, scale = x.mean(axis=0), x.std(axis=0)
    elif method == Scaling.minmax:
        mean, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    else:
        mean, scale = np.zeros(len(numeric_inputs)), np.ones(len(numeric_inputs))
    scale = np.where(scale > 1e-12, scale, 1.0)

    vocabulary: dict[str, list[str]] = {}
    for column in categorical:
        counts = train[column].dropna().astype(str).value_counts()
        if len(counts) > max_categories:
            raise DataError(
                f"categorical feature {column!r} has {len(counts)} categories, more than {max_categories}",
                key=column,
                fix="raise preprocess.max_categories, drop the column with data.drop, or bucket it",
            )
        vocabulary[column] = sorted(counts.index.tolist())

    y = train[target]
    classes: list[Any] = []
    t_mean, t_scale = 0.0, 1.0
    if task == "regression":
        t_mean, t_scale = float(y.mean()), float(y.std(ddof=0)) or 1.0
    else:
        classes = sorted(v.item() if hasattr(v, "item") else v for v in y.unique())
        if task == "binary" and len(classes) != 2:
            raise DataError(
                f"a binary task needs 2 classes, the training split has {len(classes)}: {classes[:10]}",
                key="project.task",
                fix="set project.task=multiclass, or fix the target column",
            )
    ordered = numeric + dates + categorical
    return Preprocessor(
        task=task,
        features=ordered,
        target=target,
        mean=mean.tolist(),
        scale=scale.tolist(),
        fill=fill.tolist(),
        classes=classes,
        target_mean=t_mean,
        target_scale=t_scale,
        shape=list(shape) if shape else None,
        categorical=vocabulary,
        encoding=str(preprocess.categorical),
        datetime={c: parts for c in dates},
    ).state()
