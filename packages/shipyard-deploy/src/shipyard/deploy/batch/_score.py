"""Score one chunk: check rows, apply the bundle's preprocessing, run the network, and build the
output and rejects tables (Arrow, written by a sink).

Output columns: the row key, ``prediction`` (class label or value), ``score`` (binary: P of the
positive class; multiclass: the top probability) and ``proba_<class>`` per class (multiclass),
the passthrough columns, ``model_version`` and ``scored_at`` (the job run's start, UTC, kept
when a killed run resumes, so that a part scored later matches its siblings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    from shipyard.deploy.batch._job import Job
    from shipyard.deploy.batch._sources import Chunk

__all__ = ["Scored", "Scorer"]


@dataclass
class Scored:
    predictions: Any  # pyarrow.Table
    rejects: Any | None  # pyarrow.Table of the rejected rows (all text), None when none
    rows: int
    rejected: int


class Scorer:
    """Loads the job's bundle once (no pickle, no Lightning) and scores chunks with it."""

    def __init__(self, job: Job) -> None:
        import numpy as np
        from shipyard.deploy._bundles import rebuild_fix
        from shipyard.deploy.batch._validate import RowChecks
        from shipyard.train.bundle import ModelBundle

        self.job = job
        self.bundle = ModelBundle.load(job.bundle, fix=rebuild_fix(job.project, "batch"))
        if self.bundle.weights_sha256 != job.weights_sha256:
            raise DataError(
                "the job's bundle is not the model the job was built for (weights hash differs)",
                where=str(job.bundle),
                value=self.bundle.weights_sha256,
                fix=rebuild_fix(job.project, "batch"),
            )
        self.pre = self.bundle.preprocessor
        self.classes = np.asarray(self.pre.classes) if self.pre.classes else None
        self.checks = RowChecks(self.bundle.meta.get("feature_schema", []), self.pre, job.conf.rejects)
        self.plog = self._open_log()

    def _open_log(self) -> Any:
        from shipyard.deploy._predlog import feature_kinds, open_target_log

        return open_target_log(
            self.job.prediction_log,
            self.job.dir,
            feature_kinds(self.bundle.meta),
            task=self.pre.task,
            source="batch",
            model_version=self.job.version,
            block=True,  # a batch run waits for room rather than lose rows
        )

    def flush_log(self) -> None:
        """Write every row logged so far (the end of a task: nothing waits in memory after it)."""
        if self.plog is not None:
            self.plog.flush(timeout=600)

    def score(self, chunk: Chunk, offset: int | None, part: str, scored_at: datetime) -> Scored:
        import numpy as np

        columns, rows = chunk.columns, chunk.rows
        key = self.job.key
        if key not in columns:
            # The project numbers its rows: a row's key is its position in the input.
            columns = {**columns, key: np.arange(int(offset or 0), int(offset or 0) + rows, dtype=np.int64)}
        checked = self.checks.check(columns, rows, key)
        rejects = None
        numeric = checked.numeric
        if checked.bad is not None:
            rejects = self._rejects(columns, checked.bad, checked.reasons, part)
            keep = ~checked.bad
            columns = {name: values[keep] for name, values in columns.items()}
            numeric = {name: values[keep] for name, values in numeric.items()}
            rows = int(keep.sum())
        table = self._predictions(columns, numeric, rows, scored_at)
        return Scored(table, rejects, chunk.rows, len(checked.reasons))

    # -- tables ------------------------------------------------------------------------------
    def _predictions(
        self, columns: dict[str, np.ndarray], numeric: dict[str, np.ndarray], rows: int, at: datetime
    ) -> Any:
        import numpy as np
        import pyarrow as pa

        inputs = {name: columns[name] for name in self.pre.features if name in self.pre.categorical}
        inputs.update(numeric)  # the checked float64 values: text already converted
        task = self.pre.task
        if rows:
            scores = self.bundle.scores_from_input(self.pre.transform(inputs))
        else:
            scores = np.zeros((0, len(self.pre.classes)) if task == "multiclass" else 0)
        out: dict[str, Any] = {self.job.key: _key_array(columns[self.job.key])}
        if task == "binary" and self.classes is not None:
            out["prediction"] = self.classes[(scores >= 0.5).astype(np.intp)]
            out["score"] = scores.astype(np.float64)
        elif task == "multiclass" and self.classes is not None:
            out["prediction"] = self.classes[scores.argmax(axis=1)] if rows else self.classes[:0]
            out["score"] = scores.max(axis=1).astype(np.float64) if rows else np.zeros(0)
            for j, label in enumerate(self.pre.classes):
                out[f"proba_{label}"] = scores[:, j].astype(np.float64)
        else:
            out["prediction"] = np.asarray(scores, dtype=np.float64)
        if self.plog is not None and rows:
            logged = out.get("score") if task != "regression" else None
            self.plog.log(inputs, out["prediction"], logged, out[self.job.key])
        arrays = {name: pa.array(values, from_pandas=True) for name, values in out.items()}
        for name in self.job.conf.passthrough:
            arrays.setdefault(name, pa.array(columns[name], from_pandas=True))
        arrays["model_version"] = pa.repeat(pa.scalar(self.job.version, pa.string()), rows)
        arrays["scored_at"] = pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), rows)
        return pa.table(arrays)

    def _rejects(self, columns: dict[str, np.ndarray], bad: np.ndarray, reasons: list[str], part: str) -> Any:
        import numpy as np
        import pyarrow as pa

        rows = np.flatnonzero(bad)
        names = [self.job.key, *self.pre.features]
        data: dict[str, list[Any]] = {"part": [part] * len(rows), "reason": reasons}
        for name in names:
            values = columns[name]
            data.setdefault(name, [_text(values[i]) for i in rows])
        order = [self.job.key, "reason", "part", *(n for n in names if n != self.job.key)]
        return pa.table({name: pa.array(data[name], pa.string()) for name in order})


def _key_array(values: np.ndarray) -> np.ndarray:
    """Keys that pandas read as floats (a missing key in the chunk) go back to integers once
    the rows without a key are rejected, so every part has the same key type."""
    import numpy as np

    if values.dtype.kind == "f" and len(values) and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


def _text(value: Any) -> str | None:
    import pandas as pd

    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    return str(value.item() if hasattr(value, "item") else value)
