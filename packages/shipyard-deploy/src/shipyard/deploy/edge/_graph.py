"""The exported graph: the bundle's network with its preprocessing folded in.

The device sends one row of *raw* features, float32, in :func:`input_order`:

- numeric features as they are, ``NaN`` for a missing value (the graph imputes the training
  fill value, then standardises with the training mean and scale); a date/time feature arrives
  as its numeric parts (``<column>.<part>``, as ``shipyard.core.features.datetime_parts``
  computes them: ``metadata.json`` names each part);
- then one number per categorical feature: the index of its value in the training vocabulary
  (``metadata.json``), ``-1`` for a missing or unseen value (the graph one-hot encodes it, or
  passes the index through for ordinal encoding).

The output needs no post-processing beyond a label lookup: P(positive class) for binary,
class probabilities for multiclass, values in the target's units for regression.

The graph takes any number of rows: ``[N, len(input_order)]`` in, ``[N, outputs]`` out. It is
traced at batch 1 (litert-torch 0.10 cannot lower a symbolic batch dimension: every broadcast
against a constant fails), from ops that do not fix the batch size (splits along the feature
axis, no slicing of rows), and :func:`shipyard.deploy.edge._convert.batch_dynamic` then marks
the batch dimension dynamic, so ``Interpreter.resize_tensor_input(i, [N, F])`` works. The
parity gate checks batch 1 and the whole test split in one call.
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
    return [*pre.numeric_inputs, *pre.categorical]


class EdgeModule(nn.Module):
    """``features`` (N × len(input_order), float32, raw) → scores (see the module docstring)."""

    fill: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    target_mean: torch.Tensor
    target_scale: torch.Tensor

    def __init__(self, net: nn.Module, pre: Preprocessor) -> None:
        super().__init__()
        self.net = net
        self.task = pre.task
        self.n_numeric = len(pre.numeric_inputs)
        self.n_outputs = pre.n_outputs
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
        n_categorical = len(self.vocab_names)
        if not n_categorical:
            return (x - self.mean) / self.scale
        # Columns are split off along the feature axis (SPLIT_V), never sliced by row range.
        numeric, codes = torch.split(x, [self.n_numeric, n_categorical], dim=1) if self.n_numeric else (None, x)
        parts = [] if numeric is None else [(numeric - self.mean) / self.scale]
        if not self.onehot:
            parts.append(codes)
        else:
            columns = torch.split(codes, 1, dim=1)
            for column, name in zip(columns, self.vocab_names, strict=True):
                parts.append((column == getattr(self, name)).to(torch.float32))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.net(self.encode(features))
        if self.task == "multiclass":
            return torch.softmax(out, dim=1)
        if self.n_outputs != 1:  # one score per row; the slice is only needed when there are more
            out = torch.split(out, [1, self.n_outputs - 1], dim=1)[0]
        if self.task == "binary":
            return torch.sigmoid(out)
        return out * self.target_scale + self.target_mean


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
