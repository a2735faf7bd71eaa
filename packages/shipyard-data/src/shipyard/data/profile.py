"""The reference profile: what monitoring compares production inputs and predictions against.

Written at training time and stored with the version, so a monitoring run reads only the new
data. Per numeric feature: interior quantile edges of the training split and the training counts
in the bins they make (the first bin is open to the left, the last to the right), with mean and
standard deviation; per categorical feature: value counts; per feature the empty share. The
prediction (classes, or binned values for regression) comes from the validation split, with the
validation metrics. :func:`bin_counts` is the one binning rule, shared by the monitor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["PROFILE_FORMAT", "bin_counts", "numeric_profile", "profile_frame", "reference_profile"]

PROFILE_FORMAT = 1


def bin_counts(values: np.ndarray, edges: list[float] | np.ndarray) -> np.ndarray:
    """Counts of finite ``values`` in the bins that interior ``edges`` make (len(edges) + 1 bins);
    a value equal to an edge falls in the bin to its right."""
    import numpy as np

    finite = values[np.isfinite(values)]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="right")
    return np.bincount(index, minlength=len(edges) + 1)


def numeric_profile(values: np.ndarray, bins: int) -> dict[str, Any]:
    import numpy as np

    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"kind": "numeric", "edges": [], "counts": [0], "mean": 0.0, "std": 0.0, "min": None, "max": None}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "counts": bin_counts(finite, edges).tolist(),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "min": float(finite.min()),
        "max": float(finite.max()),
    }


def categorical_profile(series: pd.Series) -> dict[str, Any]:
    counts = series.dropna().astype(str).value_counts()
    return {"kind": "categorical", "counts": {str(k): int(v) for k, v in counts.items()}}


def profile_frame(frame: pd.DataFrame, columns: list[str], categorical: set[str], bins: int) -> dict[str, Any]:
    """The profile of ``columns`` of ``frame``; ``categorical`` names the non-numeric ones."""
    import numpy as np

    out: dict[str, Any] = {}
    for name in columns:
        series = frame[name]
        if name in categorical:
            entry = categorical_profile(series)
        else:
            entry = numeric_profile(series.to_numpy(dtype=np.float64, na_value=np.nan), bins)
        entry["rows"] = len(series)
        entry["null_rate"] = float(series.isna().mean()) if len(series) else 0.0
        out[name] = entry
    return out


def reference_profile(
    train: pd.DataFrame,
    features: list[str],
    categorical: set[str],
    predictions: list[Any],
    task: str,
    metrics: dict[str, float],
    bins: int,
    classes: list[Any] | None = None,
) -> dict[str, Any]:
    """The reference profile of a version: its features on the training split, its predictions
    on the validation split, and its validation metrics."""
    import numpy as np
    import pandas as pd

    series = pd.Series(predictions, name="prediction")
    prediction = (
        numeric_profile(series.to_numpy(dtype=np.float64), bins)
        if task == "regression"
        else categorical_profile(series)
    )
    prediction["rows"] = len(series)
    prediction["null_rate"] = 0.0
    return {
        "format": PROFILE_FORMAT,
        "task": task,
        "classes": [str(c) for c in classes or []],  # the positive class of a binary task last
        "bins": bins,
        "rows": len(train),
        "features": profile_frame(train, features, categorical, bins),
        "prediction": prediction,
        "metrics": {k: v for k, v in metrics.items() if k.startswith("val/")},
    }
