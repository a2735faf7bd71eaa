"""The fitted preprocessing state and the one code path that applies it.

``shipyard.data`` fits a :class:`Preprocessor` on the training split; training, evaluation, the
service, batch scoring and edge export all apply it through :meth:`Preprocessor.transform`, so
every target computes the same model input for the same raw row (docs/architecture.md, invariant 2). The state
is plain JSON: no pickle.

Model input columns, in order: the numeric features, then the numeric parts of each date/time
feature (:func:`datetime_parts`: calendar parts, cyclical sin/cos encodings, days since 1970),
all imputed with the training median or mean and scaled; then each categorical feature, one-hot
(one column per training category; an unseen or missing category is all zeros) or ordinal (its
index in the training vocabulary, ``-1`` when unseen or missing).

A date/time arrives as an ISO 8601 string (``2024-03-05``, ``2024-03-05T14:30:00+01:00``; an
offset is converted to UTC), a ``datetime``/``numpy.datetime64`` value, or null (missing: its
parts are imputed like any missing number).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DATETIME_PARTS", "STATE_VERSION", "Preprocessor", "datetime_parts", "parse_datetimes"]

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
    datetime: dict[str, list[str]] = field(default_factory=dict)

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
            "datetime": {"parts": {k: list(v) for k, v in self.datetime.items()}},
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
            datetime={k: list(v) for k, v in state.get("datetime", {}).get("parts", {}).items()},
        )

    # -- inputs ------------------------------------------------------------------------------
    @property
    def numeric_features(self) -> list[str]:
        """The raw numeric input columns (not categorical, not date/time)."""
        return [f for f in self.features if f not in self.categorical and f not in self.datetime]

    @property
    def numeric_inputs(self) -> list[str]:
        """The columns of the numeric matrix: the numeric features, then ``<column>.<part>`` for
        each part of each date/time feature. ``mean``, ``scale`` and ``fill`` follow this order."""
        return [*self.numeric_features, *(f"{c}.{p}" for c, parts in self.datetime.items() for p in parts)]

    @property
    def n_features(self) -> int:
        """Width of the model input (after encoding)."""
        categorical = (
            sum(len(v) for v in self.categorical.values()) if self.encoding == "onehot" else len(self.categorical)
        )
        return len(self.numeric_inputs) + categorical

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
        """The numeric matrix of ``frame`` (any mapping of column to values), float64, before
        imputation and scaling: :attr:`numeric_inputs`, with the date/time parts computed."""
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
        for name, parts in self.datetime.items():
            stamps = parse_datetimes(frame[name], name)
            columns.extend(datetime_parts(stamps, parts).T)
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


# Each part of a date/time, and the period of the cyclical ones (sin/cos of 2*pi*value/period).
DATETIME_PARTS = (
    "year",
    "month",
    "day",
    "dayofweek",
    "dayofyear",
    "hour",
    "minute",
    "timestamp",
    "month_sin",
    "month_cos",
    "dayofweek_sin",
    "dayofweek_cos",
    "dayofyear_sin",
    "dayofyear_cos",
    "hour_sin",
    "hour_cos",
)
_PERIODS = {"month": 12.0, "dayofweek": 7.0, "dayofyear": 365.25, "hour": 24.0}


def parse_datetimes(values: Any, name: str = "value") -> np.ndarray:
    """Date/time values as ``datetime64[s]`` in UTC (``NaT`` where missing). Accepts a
    datetime64 array or Series, or any sequence of ISO 8601 strings, ``datetime``/``date``
    objects and nulls; anything else is a :class:`DataError` naming the value."""
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind == "M":
        return array.astype("datetime64[s]")
    out = np.empty(len(array), dtype="datetime64[s]")
    for i, value in enumerate(array):
        out[i] = _one_datetime(value, name)
    return out


def _one_datetime(value: Any, name: str) -> Any:
    import numpy as np

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return np.datetime64("NaT")
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[s]")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return np.datetime64("NaT")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise DataError(
                f"feature {name!r}: {value[:40]!r} is not an ISO 8601 date/time",
                key=name,
                fix="write dates as YYYY-MM-DD, times as YYYY-MM-DDTHH:MM:SS (an offset like +01:00 is allowed)",
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return np.datetime64(value.replace(microsecond=0), "s")
    if isinstance(value, date):
        return np.datetime64(value, "s")
    raise DataError(
        f"feature {name!r}: {value!r} is not a date/time",
        key=name,
        fix="give an ISO 8601 date/time string such as 2024-03-05 or 2024-03-05T14:30:00",
    )


def datetime_parts(stamps: np.ndarray, parts: Sequence[str]) -> np.ndarray:
    """The numeric ``parts`` of ``datetime64`` values: rows x parts, float64, NaN where the time
    is missing. ``dayofweek`` counts from Monday = 0; ``timestamp`` is days since 1970-01-01."""
    import numpy as np

    seconds = stamps.astype("datetime64[s]")
    missing = np.isnat(seconds)
    seconds = np.where(missing, np.datetime64(0, "s"), seconds)
    days = seconds.astype("datetime64[D]")
    months = seconds.astype("datetime64[M]")
    years = seconds.astype("datetime64[Y]")
    base = {
        "year": years.astype(np.int64) + 1970,
        "month": months.astype(np.int64) % 12 + 1,
        "day": (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
        "dayofweek": (days.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday
        "dayofyear": (days - years.astype("datetime64[D]")).astype(np.int64) + 1,
        "hour": (seconds - days.astype("datetime64[s]")).astype(np.int64) // 3600,
        "minute": (seconds - days.astype("datetime64[s]")).astype(np.int64) % 3600 // 60,
        "timestamp": seconds.astype(np.int64) / 86400.0,
    }
    columns = []
    for part in parts:
        stem, _, fn = part.rpartition("_") if part.endswith(("_sin", "_cos")) else (part, "", "")
        if fn:
            offset = 1.0 if stem in ("month", "dayofyear") else 0.0  # month 1..12 -> 0..11
            angle = 2.0 * np.pi * (base[stem].astype(np.float64) - offset) / _PERIODS[stem]
            value = np.sin(angle) if fn == "sin" else np.cos(angle)
        else:
            value = base[part].astype(np.float64)
        columns.append(np.where(missing, np.nan, value))
    return np.stack(columns, axis=1) if columns else np.zeros((len(stamps), 0))


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
