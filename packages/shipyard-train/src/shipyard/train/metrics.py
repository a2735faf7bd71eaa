"""Quality metrics, one implementation (torchmetrics) for validation during training and for
the evaluate stage, so that a number means the same thing everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.rules import METRICS

if TYPE_CHECKING:
    import numpy as np

__all__ = ["METRICS", "compute_metrics"]


def compute_metrics(task: str, y_true: np.ndarray, scores: np.ndarray, n_classes: int) -> dict[str, float]:
    """``scores``: P(positive) for binary, class probabilities for multiclass, values for
    regression (in the target's own units)."""
    import numpy as np
    import torch
    from torchmetrics.functional import classification as C
    from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

    s = torch.as_tensor(np.array(scores, dtype=np.float32))
    if task == "regression":
        y = torch.as_tensor(np.array(y_true, dtype=np.float32))
        s = s.reshape(-1)
        return {
            "rmse": float(mean_squared_error(s, y, squared=False)),
            "mae": float(mean_absolute_error(s, y)),
            "r2": float(r2_score(s, y)) if len(y) > 1 else float("nan"),
        }
    y = torch.as_tensor(np.array(y_true, dtype=np.int64))
    if task == "binary":
        s = s.reshape(-1)
        return {
            "accuracy": float(C.binary_accuracy(s, y)),
            "precision": float(C.binary_precision(s, y)),
            "recall": float(C.binary_recall(s, y)),
            "f1": float(C.binary_f1_score(s, y)),
            "roc_auc": float(C.binary_auroc(s, y)),
        }
    return {
        "accuracy": float(C.multiclass_accuracy(s, y, num_classes=n_classes, average="micro")),
        "f1": float(C.multiclass_f1_score(s, y, num_classes=n_classes, average="macro")),
        "roc_auc": float(C.multiclass_auroc(s, y, num_classes=n_classes, average="macro")),
    }
