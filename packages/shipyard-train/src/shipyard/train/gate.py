"""The quality gate: absolute thresholds, baselines trained on the same split, and (at
registration and promotion) no regression against the production version.

A metric's direction follows its name: errors, latency and size go down, the rest go up.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from shipyard.core.errors import DataError
from shipyard.core.features import Preprocessor
from shipyard.core.schema import GateConf
from shipyard.train.metrics import compute_metrics

__all__ = ["default_metric", "evaluate_gate", "lower_is_better", "regression_check"]

_LOWER = ("rmse", "mae", "latency", "model_size", "params", "loss")


def lower_is_better(metric: str) -> bool:
    return any(part in metric for part in _LOWER)


def default_metric(task: str, labels: pd.Series | None = None, imbalance: float = 0.5) -> str:
    """The gate's ``auto`` metric. With ``labels`` (the training split's target): balanced
    accuracy when the smallest class's share is below ``imbalance`` of an even share, since
    accuracy and F1 then reward a model that ignores that class."""
    if task != "regression" and labels is not None and len(labels):
        shares = labels.value_counts(normalize=True)
        if len(shares) > 1 and float(shares.min()) < imbalance / len(shares):
            return "test/balanced_accuracy"
    return {"binary": "test/f1", "multiclass": "test/accuracy", "regression": "test/rmse"}[task]


def _beats(value: float, other: float, metric: str, margin: float) -> bool:
    return value <= other - margin if lower_is_better(metric) else value >= other + margin


def _baseline(kind: str, task: str) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    if kind == "dummy":
        return DummyRegressor(strategy="mean") if task == "regression" else DummyClassifier(strategy="prior")
    return Ridge(alpha=1.0) if task == "regression" else LogisticRegression(max_iter=2000)


def _require_finite(x: np.ndarray, pre: Preprocessor, split: str) -> None:
    """scikit-learn refuses NaN and infinity with a traceback; name the feature instead.

    Ingest refuses infinite values, but a finite one can still overflow: a value beyond float32's
    range (about 3.4e38) with ``preprocess.numeric: none`` becomes infinity in the model input.
    """
    bad = ~np.isfinite(x).all(axis=0)
    if not bad.any():
        return
    # The model input holds the numeric features first, then the (always finite) encodings.
    names = [pre.numeric_inputs[j] for j in np.flatnonzero(bad) if j < len(pre.numeric_inputs)]
    rows = int((~np.isfinite(x)).any(axis=1).sum())
    raise DataError(
        f"feature(s) {', '.join(map(repr, names or ['?']))} of the {split} split are not finite numbers after "
        f"preprocessing ({rows} row(s)): values too large for float32, or infinite",
        key=names[0] if names else None,
        fix="fix or rescale the column in the data (|value| < 3.4e38), or set preprocess.numeric=standard",
    )


def baseline_metrics(train: pd.DataFrame, test: pd.DataFrame, pre: Preprocessor, kind: str) -> dict[str, float]:
    """Test metrics of a scikit-learn baseline fitted on the same training split and features."""
    x_train, x_test = pre.transform(train), pre.transform(test)
    _require_finite(x_train, pre, "training")
    _require_finite(x_test, pre, "test")
    y_train = pre.encode_target(train[pre.target].tolist())
    model = _baseline(kind, pre.task).fit(x_train, y_train)
    if pre.task == "regression":
        scores = pre.decode_regression(model.predict(x_test))
        truth = test[pre.target].to_numpy(dtype=float)
    else:
        proba = np.zeros((len(test), len(pre.classes)))
        proba[:, model.classes_] = model.predict_proba(x_test)
        scores = proba[:, 1] if pre.task == "binary" else proba
        truth = pre.encode_target(test[pre.target].tolist())
    return {f"test/{k}": v for k, v in compute_metrics(pre.task, truth, scores, len(pre.classes)).items()}


def _check(name: str, passed: bool, observed: Any, expected: str, detail: str = "") -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "observed": observed, "expected": expected, "detail": detail}


def evaluate_gate(
    metrics: dict[str, float], train: pd.DataFrame, test: pd.DataFrame, pre: Preprocessor, gate: GateConf
) -> dict[str, Any]:
    """Thresholds and baselines. Returns the report: every check with its numbers."""
    if not gate.enabled:
        return {"metric": None, "passed": True, "skipped": True, "checks": []}
    checks = []
    for metric, bounds in gate.thresholds.items():
        value = float(metrics[metric])
        for side, limit in (("min", bounds.min), ("max", bounds.max)):
            if limit is None:
                continue
            ok = value >= limit if side == "min" else value <= limit
            checks.append(
                _check(f"threshold {metric}", ok, round(value, 6), f"{'>=' if side == 'min' else '<='} {limit:g}")
            )
    metric = default_metric(pre.task, train[pre.target], gate.imbalance) if gate.metric == "auto" else gate.metric
    margin = gate.baseline.margin
    for kind in gate.baseline.models:
        reference = baseline_metrics(train, test, pre, str(kind))[metric]
        value = float(metrics[metric])
        relation = "<=" if lower_is_better(metric) else ">="
        sign = "-" if lower_is_better(metric) else "+"
        checks.append(
            _check(
                f"beats {kind} baseline on {metric}",
                _beats(value, reference, metric, margin),
                round(value, 6),
                f"{relation} {reference:.6g} {sign} {margin:g}",
                f"{kind} baseline: {reference:.6g}",
            )
        )
    report: dict[str, Any] = {"metric": metric, "passed": all(c["passed"] for c in checks), "checks": checks}
    if gate.metric == "auto" and metric == "test/balanced_accuracy":
        shares = train[pre.target].value_counts(normalize=True)
        report["metric_reason"] = (
            f"the smallest class ({str(shares.idxmin())!r}) is {shares.min():.1%} of the training split, below "
            f"{gate.imbalance:g} of an even share ({1 / len(shares):.1%}): balanced accuracy instead of "
            f"{default_metric(pre.task)}"
        )
    return report


def regression_check(
    metrics: dict[str, float], production: dict[str, float], metric: str, tolerance: float
) -> dict[str, Any]:
    """No worse than the production version's metric beyond ``tolerance``."""
    value, reference = float(metrics[metric]), float(production[metric])
    ok = _beats(value, reference, metric, -tolerance)
    relation = "<=" if lower_is_better(metric) else ">="
    sign = "+" if lower_is_better(metric) else "-"
    return _check(
        f"no regression vs production on {metric}",
        ok,
        round(value, 6),
        f"{relation} {reference:.6g} {sign} {tolerance:g}",
        f"production: {reference:.6g}",
    )
