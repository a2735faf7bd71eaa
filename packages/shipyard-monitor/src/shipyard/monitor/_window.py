"""One monitoring window: stream its rows through the accumulator, join labels, judge, report."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from shipyard.core.errors import DataError
from shipyard.core.schema import DriftConf
from shipyard.monitor._drift import PREDICTION_FEATURE, Accumulator, judge

__all__ = ["LOWER_IS_BETTER", "Labels", "judge_window", "read_labels"]

LOWER_IS_BETTER = frozenset({"rmse", "mae"})


class Labels:
    """Labels that arrived later, by row key; collects (truth, prediction, score) of the logged
    rows that have one, batch by batch."""

    def __init__(self, frame: Any, key: str, target: str) -> None:
        self.truth = dict(zip(frame[key].astype(str), frame[target], strict=True))
        self.pairs: list[tuple[Any, Any, Any]] = []

    def add(self, batch: Any, key_column: str, prediction: str, score: str) -> None:
        names = batch.schema.names
        if key_column not in names:
            return
        keys = batch.column(names.index(key_column)).to_pylist()
        preds = batch.column(names.index(prediction)).to_pylist() if prediction in names else [None] * len(keys)
        scores = batch.column(names.index(score)).to_pylist() if score in names else [None] * len(keys)
        for k, p, s in zip(keys, preds, scores, strict=True):
            if k is not None and k in self.truth:
                self.pairs.append((self.truth[k], p, s))


def read_labels(path: Path, key: str, target: str) -> Labels:
    """A CSV or Parquet file of ``key`` and ``target`` columns."""
    import pandas as pd

    if not path.is_file():
        raise DataError(
            f"labels file {path} does not exist", where=str(path), fix="pass an existing CSV or Parquet file"
        )
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read labels file {path}: {exc}", where=str(path), fix="pass CSV or Parquet") from exc
    missing = [c for c in (key, target) if c not in frame.columns]
    if missing:
        raise DataError(
            f"labels file {path} lacks column(s) {', '.join(map(repr, missing))}",
            where=str(path),
            fix=f"write the row key as {key!r} and the label as {target!r} (the project's data.key and data.target)",
        )
    return Labels(frame, key, target)


def live_metrics(labels: Labels, task: str, classes: list[str]) -> dict[str, float]:
    """Metrics of the labelled logged rows (scikit-learn: no torch on the monitoring path)."""
    from sklearn import metrics as m

    if not labels.pairs:
        return {}
    truth = [t for t, _, _ in labels.pairs]
    pred = [p for _, p, _ in labels.pairs]
    if task == "regression":
        y, yhat = np.asarray(truth, dtype=np.float64), np.asarray(pred, dtype=np.float64)
        return {
            "rmse": float(np.sqrt(m.mean_squared_error(y, yhat))),
            "mae": float(m.mean_absolute_error(y, yhat)),
            "r2": float(m.r2_score(y, yhat)) if len(y) > 1 else 0.0,
        }
    y_text, p_text = [str(t) for t in truth], [str(p) for p in pred]
    out = {"accuracy": float(m.accuracy_score(y_text, p_text))}
    if task == "binary" and len(classes) == 2:
        positive = classes[1]
        # As booleans: a label the model never saw counts as the negative class, not as an error.
        y_pos, p_pos = [t == positive for t in y_text], [p == positive for p in p_text]
        out["precision"] = float(m.precision_score(y_pos, p_pos, zero_division=0))
        out["recall"] = float(m.recall_score(y_pos, p_pos, zero_division=0))
        out["f1"] = float(m.f1_score(y_pos, p_pos, zero_division=0))
        scores = [s for _, _, s in labels.pairs]
        if all(s is not None for s in scores) and len(set(y_text)) == 2:
            out["roc_auc"] = float(m.roc_auc_score([t == positive for t in y_text], scores))
    else:
        out["f1"] = float(m.f1_score(y_text, p_text, average="macro", zero_division=0))
    return out


def judge_window(
    batches: Iterable[Any],
    profile: dict[str, Any],
    conf: DriftConf,
    *,
    prediction_column: str | None,
    labels: Labels | None = None,
    label_columns: tuple[str, str, str] = ("_key", "_prediction", "_score"),
    classes: list[str] | None = None,
) -> dict[str, Any]:
    """Stream ``batches`` (Arrow) against ``profile``; the window's verdict as plain data."""
    acc = Accumulator(profile, prediction_column)
    for batch in batches:
        acc.add(batch)
        if labels is not None:
            labels.add(batch, *label_columns)
    rows = acc.rows
    result: dict[str, Any] = {"rows": rows, "min_rows": conf.min_rows}
    if rows < conf.min_rows:
        result.update(judged=False, features=[], drifted=[], drift_share=0.0, prediction_drift=False)
        result["note"] = f"{rows} row(s) in the window, fewer than drift.min_rows={conf.min_rows}: not judged"
    else:
        tests = judge(acc, conf)
        features = sorted({t.feature for t in tests if t.feature != PREDICTION_FEATURE})
        drifted = sorted({t.feature for t in tests if t.drifted and t.feature != PREDICTION_FEATURE})
        result.update(
            judged=True,
            features=[t.as_dict() for t in tests],
            drifted=drifted,
            drift_share=len(drifted) / len(features) if features else 0.0,
            prediction_drift=any(t.drifted for t in tests if t.feature == PREDICTION_FEATURE),
        )
    if labels is not None:
        live = live_metrics(labels, str(profile.get("task")), classes or [])
        reference = {k.removeprefix("val/"): v for k, v in profile.get("metrics", {}).items()}
        result["labels"] = {
            "joined": len(labels.pairs),
            "metrics": live,
            "reference": {k: reference[k] for k in live if k in reference},
            "drops": {
                k: (v - reference[k]) if k in LOWER_IS_BETTER else (reference[k] - v)
                for k, v in live.items()
                if k in reference
            },
        }
    return result
