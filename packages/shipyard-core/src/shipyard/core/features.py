"""The fitted preprocessing state and the one code path that applies it.

``shipyard.data`` fits a :class:`Preprocessor` on the training split; training, evaluation, the
service, batch scoring and edge export all apply it through :meth:`Preprocessor.transform`, so
every target computes the same model input for the same raw row (docs/architecture.md, invariant 2). The state
is plain JSON: no pickle.

Model input columns, in order: the numeric features (imputed with the training median or mean,
then scaled), then each categorical feature, one-hot (one column per training category; an
unseen or missing category is all zeros) or ordinal (its index in the training vocabulary,
``-1`` when unseen or missing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["STATE_VERSION", "Preprocessor"]

STATE_VERSION = 2


@dataclass(frozen=True)
class Preprocessor:
    """Imputation and scaling of numeric features, encoding of categorical ones, and the
    target's encoding."""

    task: str
    features: list[str]
    target: str
    mean: list[float]
    scale: list[float]
    fill: list[float]
    classes: list[Any] = field(default_factory=list)
    target_mean: float = 0.0
    target_scale: float = 1.0
    shape: list[int] | None = None
    categorical: dict[str, list[str]] = field(default_factory=dict)
    encoding: str = "onehot"

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "task": self.task,
            "features": list(self.features),
            "target": self.target,
            "numeric": {
                "features": self.numeric_features,
                "mean": list(self.mean),
                "scale": list(self.scale),
                "fill": list(self.fill),
            },
            "categorical": {"encoding": self.encoding, "vocabulary": {k: list(v) for k, v in self.categorical.items()}},
            "classes": list(self.classes),
            "target_scaling": {"mean": self.target_mean, "scale": self.target_scale},
            "shape": list(self.shape) if self.shape else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Preprocessor:
        if state.get("version") != STATE_VERSION:
            raise DataError(
                f"preprocessing state version {state.get('version')!r} is not supported",
                fix=f"retrain the model with this Shipyard (state version {STATE_VERSION})",
            )
        numeric = state["numeric"]
        scaling = state.get("target_scaling", {})
        categorical = state.get("categorical", {})
        return cls(
            task=state["task"],
            features=list(state["features"]),
            target=state["target"],
            mean=[float(v) for v in numeric["mean"]],
            scale=[float(v) for v in numeric["scale"]],
            fill=[float(v) for v in numeric["fill"]],
            classes=list(state.get("classes", [])),
            target_mean=float(scaling.get("mean", 0.0)),
            target_scale=float(scaling.get("scale", 1.0)),
            shape=list(state["shape"]) if state.get("shape") else None,
            categorical={k: list(v) for k, v in categorical.get("vocabulary", {}).items()},
            encoding=categorical.get("encoding", "onehot"),
        )

    # -- inputs ------------------------------------------------------------------------------
    @property
    def numeric_features(self) -> list[str]:
        return [f for f in self.features if f not in self.categorical]

    @property
    def n_features(self) -> int:
        """Width of the model input (after encoding)."""
        if self.encoding == "onehot":
            return len(self.numeric_features) + sum(len(v) for v in self.categorical.values())
        return len(self.features)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1

    def _check_columns(self, frame: Any) -> None:
        missing = [c for c in self.features if c not in frame]
        if missing:
            raise DataError(
                f"input lacks feature column(s) {', '.join(map(repr, missing[:5]))}",
                key=missing[0],
                fix="provide every feature the model was trained on: "
                + ", ".join(self.features[:10])
                + (" ..." if len(self.features) > 10 else ""),
            )

    def raw_matrix(self, frame: Any) -> np.ndarray:
        """The numeric feature columns of ``frame`` (any mapping of column to values), float64."""
        import numpy as np

        self._check_columns(frame)
        columns = []
        for name in self.numeric_features:
            try:
                columns.append(np.asarray(frame[name], dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"feature {name!r} is not numeric", key=name, fix="give numbers for this column"
                ) from exc
        n = len(frame[self.features[0]]) if self.features else 0
        return np.stack(columns, axis=1) if columns else np.zeros((n, 0))

    def transform_matrix(self, raw: np.ndarray) -> np.ndarray:
        """Impute and scale a raw numeric matrix (rows × numeric features) into float32."""
        import numpy as np

        x = np.array(raw, dtype=np.float64, copy=True)
        holes = np.isnan(x)
        if holes.any():
            x[holes] = np.broadcast_to(np.asarray(self.fill), x.shape)[holes]
        x = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        out: np.ndarray = x.astype(np.float32)
        return out

    def category_codes(self, frame: Any) -> np.ndarray:
        """Vocabulary index per categorical feature (rows × categoricals); -1 when unseen."""
        import numpy as np

        n = len(frame[self.features[0]]) if self.features else 0
        codes = np.full((n, len(self.categorical)), -1, dtype=np.int64)
        for j, (name, vocab) in enumerate(self.categorical.items()):
            # Keyed by str | None so a missing value (None from _category) looks up as unseen.
            index: dict[str | None, int] = {v: i for i, v in enumerate(vocab)}
            codes[:, j] = [index.get(_category(v), -1) for v in frame[name]]
        return codes

    def encode_categories(self, codes: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.encoding == "ordinal":
            return codes.astype(np.float32)
        blocks = []
        for j, vocab in enumerate(self.categorical.values()):
            block = np.zeros((codes.shape[0], len(vocab)), dtype=np.float32)
            rows = np.nonzero(codes[:, j] >= 0)[0]
            block[rows, codes[rows, j]] = 1.0
            blocks.append(block)
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((codes.shape[0], 0), dtype=np.float32)

    def transform(self, frame: Any) -> np.ndarray:
        """Raw rows to model input (float32, rows × :attr:`n_features`)."""
        import numpy as np

        numeric = self.transform_matrix(self.raw_matrix(frame))
        if not self.categorical:
            return numeric
        return np.concatenate([numeric, self.encode_categories(self.category_codes(frame))], axis=1)

    # -- target ------------------------------------------------------------------------------
    def encode_target(self, values: Sequence[Any] | Any) -> np.ndarray:
        import numpy as np

        if self.task == "regression":
            y = np.asarray(values, dtype=np.float64)
            return ((y - self.target_mean) / self.target_scale).astype(np.float32)
        index = {c: i for i, c in enumerate(self.classes)}
        try:
            return np.array([index[_plain(v)] for v in values], dtype=np.int64)
        except KeyError as exc:
            raise DataError(
                f"target value {exc.args[0]!r} was not seen in the training split",
                key=self.target,
                fix="make sure every class appears in the training split (use split.kind=stratified)",
            ) from exc

    def decode_regression(self, scores: np.ndarray) -> np.ndarray:
        return scores * self.target_scale + self.target_mean


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars, so that class lookup matches JSON-loaded classes."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _category(value: Any) -> str | None:
    """Categories are compared as strings; missing values (None, NaN) are no category."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = _plain(value)
    return str(value)
