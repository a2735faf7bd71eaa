"""The exported graph: the bundle's network with its preprocessing folded in.

The device sends one row of *raw* features, float32, in :func:`input_order`:

- numeric features as they are, ``NaN`` for a missing value (the graph imputes the training
  fill value, then standardises with the training mean and scale);
- then one number per categorical feature: the index of its value in the training vocabulary
  (``metadata.json``), ``-1`` for a missing or unseen value (the graph one-hot encodes it, or
  passes the index through for ordinal encoding).

The output needs no post-processing beyond a label lookup: P(positive class) for binary,
class probabilities for multiclass, values in the target's units for regression.

Only batch 1 is exported: it is what a device runs, and litert-torch 0.10 cannot broadcast the
imputation constants over a dynamic batch dimension (``torch.where`` with a symbolic batch fails
to lower), so the parity gate feeds the test split one row at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from shipyard.core.errors import DataError
from torch import nn

if TYPE_CHECKING:
    from shipyard.core.features import Preprocessor
    from shipyard.train.bundle import ModelBundle

__all__ = ["INPUT_NAME", "EdgeModule", "edge_inputs", "input_order", "reference_scores"]

INPUT_NAME = "features"
MISSING_CODE = -1.0


def input_order(pre: Preprocessor) -> list[str]:
    """Raw input columns in the order the exported graph takes them."""
    return [*pre.numeric_features, *pre.categorical]


class EdgeModule(nn.Module):
    """``features`` (1 × len(input_order), float32, raw) → scores (see the module docstring)."""

    fill: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    target_mean: torch.Tensor
    target_scale: torch.Tensor

    def __init__(self, net: nn.Module, pre: Preprocessor) -> None:
        super().__init__()
        self.net = net
        self.task = pre.task
        self.n_numeric = len(pre.numeric_features)
        self.onehot = pre.encoding == "onehot"
        fill = [*pre.fill, *([MISSING_CODE] * len(pre.categorical))]
        self.register_buffer("fill", torch.tensor(fill, dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(pre.scale, dtype=torch.float32))
        # One buffer of vocabulary indices per categorical: comparing the code against it is the
        # one-hot block (an unseen -1 matches nothing: all zeros, as Preprocessor does).
        self.vocab_names: list[str] = []
        for j, vocab in enumerate(pre.categorical.values()):
            name = f"vocab_{j}"
            self.register_buffer(name, torch.arange(len(vocab), dtype=torch.float32))
            self.vocab_names.append(name)
        self.register_buffer("target_mean", torch.tensor(pre.target_mean, dtype=torch.float32))
        self.register_buffer("target_scale", torch.tensor(pre.target_scale, dtype=torch.float32))

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(features), self.fill, features)
        parts = []
        if self.n_numeric:
            parts.append((x[:, : self.n_numeric] - self.mean) / self.scale)
        if self.vocab_names and not self.onehot:
            parts.append(x[:, self.n_numeric :])
        elif self.vocab_names:
            for j, name in enumerate(self.vocab_names):
                column = x[:, self.n_numeric + j : self.n_numeric + j + 1]
                parts.append((column == getattr(self, name)).to(torch.float32))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.net(self.encode(features))
        if self.task == "binary":
            return torch.sigmoid(out[:, :1])
        if self.task == "multiclass":
            return torch.softmax(out, dim=1)
        return out[:, :1] * self.target_scale + self.target_mean


def edge_inputs(pre: Preprocessor, frame: Any) -> np.ndarray:
    """What a device sends for each row of ``frame``: float32, rows × len(input_order).

    Built with the preprocessor's own column checks and vocabulary lookup, so the codes are the
    ones training used."""
    numeric = pre.raw_matrix(frame)
    if not pre.categorical:
        return numeric.astype(np.float32)
    codes = pre.category_codes(frame).astype(np.float64)
    return np.concatenate([numeric, codes], axis=1).astype(np.float32)


def reference_scores(bundle: ModelBundle, frame: Any) -> np.ndarray:
    """The torch bundle's scores through the training code path, as rows × outputs."""
    scores = np.asarray(bundle.predict_scores(frame), dtype=np.float64)
    return scores.reshape(len(scores), -1)


def truth(bundle: ModelBundle, frame: Any) -> np.ndarray:
    """The test split's target, encoded as the metrics expect."""
    pre = bundle.preprocessor
    if pre.target not in frame:
        raise DataError(
            f"the test split has no target column {pre.target!r}",
            key=pre.target,
            fix="pass the project's 05_model_input/test.parquet (key, features, target)",
        )
    if bundle.task == "regression":
        return np.asarray(frame[pre.target], dtype=np.float64)
    return pre.encode_target(list(frame[pre.target]))
