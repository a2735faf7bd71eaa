"""Quality metrics, one implementation (torchmetrics) for validation during training and for
the evaluate stage, so that a number means the same thing everywhere.

Imbalanced data gets metrics that tell the truth beside accuracy: balanced accuracy (the mean
recall over classes) and macro F1. A multiclass ROC-AUC averages the one-vs-rest AUC over the
classes present in the split only (a class absent from a split has no AUC, and counting it as
chance would drag the average towards 0.5); ``roc_auc_classes`` says over how many classes it
was taken. torchmetrics' own warnings about absent classes are not shown: the split report names
missing classes in words a user can act on.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from shipyard.core.rules import METRICS

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["METRICS", "compute_metrics"]


def compute_metrics(task: str, y_true: np.ndarray, scores: np.ndarray, n_classes: int) -> dict[str, float]:
    """``scores``: P(positive) for binary, class probabilities for multiclass, values for
    regression (in the target's own units)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="torchmetrics")
        return _compute(task, y_true, scores, n_classes)


def _compute(task: str, y_true: np.ndarray, scores: np.ndarray, n_classes: int) -> dict[str, float]:
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
        labels = (s >= 0.5).long()
        return {
            "accuracy": float(C.binary_accuracy(s, y)),
            "balanced_accuracy": _balanced_accuracy(labels, y, 2),
            "precision": float(C.binary_precision(s, y)),
            "recall": float(C.binary_recall(s, y)),
            "f1": float(C.binary_f1_score(s, y)),
            "f1_macro": float(C.multiclass_f1_score(labels, y, num_classes=2, average="macro")),
            "roc_auc": float(C.binary_auroc(s, y)) if 0 < int(y.sum()) < len(y) else float("nan"),
        }
    auc, present = _present_auroc(s, y, n_classes)
    return {
        "accuracy": float(C.multiclass_accuracy(s, y, num_classes=n_classes, average="micro")),
        "balanced_accuracy": _balanced_accuracy(s.argmax(dim=1), y, n_classes),
        "f1": float(C.multiclass_f1_score(s, y, num_classes=n_classes, average="macro")),
        "roc_auc": auc,
        "roc_auc_classes": float(present),
    }


def _balanced_accuracy(labels: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    """Mean recall over the classes present in ``y`` (scikit-learn's balanced_accuracy_score)."""
    import torch
    from torchmetrics.functional import classification as C

    recall = C.multiclass_recall(labels, y, num_classes=n_classes, average="none")
    present = torch.bincount(y, minlength=n_classes) > 0
    return float(recall[present].mean()) if bool(present.any()) else float("nan")


def _present_auroc(s: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[float, int]:
    """Macro one-vs-rest ROC-AUC over the classes with both positives and negatives in ``y``."""
    import torch
    from torchmetrics.functional import classification as C

    counts = torch.bincount(y, minlength=n_classes)
    present = [c for c in range(n_classes) if 0 < int(counts[c]) < len(y)]
    if not present:
        return float("nan"), 0
    aucs = [float(C.binary_auroc(s[:, c], (y == c).long())) for c in present]
    return sum(aucs) / len(aucs), len(present)
