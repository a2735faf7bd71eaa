"""Score one chunk: check rows, apply the bundle's preprocessing, run the network, and build the
output and rejects tables (Arrow, written by a sink).

Output columns: the row key, ``prediction`` (class label or value), ``score`` (binary: P of the
positive class; multiclass: the top probability) and ``proba_<class>`` per class (multiclass),
the passthrough columns, ``model_version`` and ``scored_at`` (the job run's start, UTC, kept
when a killed run resumes, so that a part scored later matches its siblings). A job with a
shadow candidate (``deploy.batch.shadow``) adds ``candidate_prediction``, ``candidate_score``
and ``candidate_model_version``: the candidate scored the same checked rows.
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
        from shipyard.features import open_lookup

        # Shared features: looked up by entity key and event time in the job's online store.
        self.lookup = open_lookup(job.dir, self.bundle.meta.get("features"))
        self.candidate = _candidate(job)
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
        found: list[str | None] = []
        if self.lookup is not None:
            columns, found = self._fill(columns)
        checked = self.checks.check(columns, rows, key)
        if any(found):
            checked = _merge(checked, found)
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

    def _fill(self, columns: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str | None]]:
        """The chunk with its shared features from the online store, and each row's lookup
        problem (None when found): the same lookup as the service's."""
        import numpy as np

        inputs = {name: [_lookup_value(v) for v in columns[name]] for name in self.lookup.inputs}
        values, reasons = self.lookup.lookup(inputs)
        filled = {
            name: np.asarray([np.nan if v is None else v for v in vals], dtype=object) for name, vals in values.items()
        }
        return {**columns, **filled}, reasons

    # -- tables ------------------------------------------------------------------------------
    def _predictions(
        self, columns: dict[str, np.ndarray], numeric: dict[str, np.ndarray], rows: int, at: datetime
    ) -> Any:
        import numpy as np
        import pyarrow as pa

        raw = {**self.pre.categorical, **self.pre.datetime}  # passed as read; numbers come checked
        inputs = {name: columns[name] for name in self.pre.features if name in raw}
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
        if self.candidate is not None:
            out.update(self._shadow(inputs, rows))
        if self.plog is not None and rows:
            logged = out.get("score") if task != "regression" else None
            self.plog.log(inputs, out["prediction"], logged, out[self.job.key])
        arrays = {name: pa.array(values, from_pandas=True) for name, values in out.items()}
        for name in self.job.conf.passthrough:
            arrays.setdefault(name, pa.array(columns[name], from_pandas=True))
        arrays["model_version"] = pa.repeat(pa.scalar(self.job.version, pa.string()), rows)
        if self.job.candidate is not None:
            arrays["candidate_model_version"] = pa.repeat(pa.scalar(self.job.candidate[0], pa.string()), rows)
        arrays["scored_at"] = pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), rows)
        return pa.table(arrays)

    def _shadow(self, inputs: dict[str, Any], rows: int) -> dict[str, Any]:
        """The candidate's prediction and score of the same rows (its own preprocessing)."""
        import numpy as np

        bundle = self.candidate
        if not rows:
            if bundle.task == "regression":
                return {"candidate_prediction": np.zeros(0)}
            return {"candidate_prediction": np.asarray(bundle.preprocessor.classes)[:0], "candidate_score": np.zeros(0)}
        scores = bundle.scores_from_input(bundle.preprocessor.transform(inputs))
        labels = np.asarray(bundle.labels(scores))
        if bundle.task == "regression":
            return {"candidate_prediction": labels.astype(np.float64)}
        score = scores.max(axis=1) if scores.ndim == 2 else scores
        return {"candidate_prediction": labels, "candidate_score": score.astype(np.float64)}

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


def _merge(checked: Any, found: list[str | None]) -> Any:
    """The row checks with the lookup's problems first: a row without its features is rejected
    for that, not for the missing values it then has."""
    import numpy as np
    from shipyard.deploy.batch._validate import Checked

    bad = np.asarray([r is not None for r in found])
    others = dict(zip(np.flatnonzero(checked.bad), checked.reasons, strict=True)) if checked.bad is not None else {}
    if checked.bad is not None:
        bad |= checked.bad
    reasons = [found[i] or others[i] for i in np.flatnonzero(bad)]
    return Checked(checked.numeric, bad, reasons)


def _lookup_value(value: Any) -> Any:
    """A key or time cell as the lookup takes it: None for missing, Python scalars otherwise."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if hasattr(value, "isoformat") or str(getattr(value, "dtype", "")).startswith("datetime64"):
        return value  # a time: to_micros reads it as it is
    return value.item() if hasattr(value, "item") else value


def _candidate(job: Job) -> Any:
    """The shadow candidate's bundle, checked against the hash the job recorded, or None."""
    if job.candidate is None:
        return None
    from shipyard.deploy._bundles import rebuild_fix
    from shipyard.train.bundle import ModelBundle

    bundle = ModelBundle.load(job.candidate_bundle, fix=rebuild_fix(job.project, "batch"))
    if bundle.weights_sha256 != job.candidate[1]:
        raise DataError(
            "the job's candidate bundle is not the model the job was built with (weights hash differs)",
            where=str(job.candidate_bundle),
            value=bundle.weights_sha256,
            fix=rebuild_fix(job.project, "batch"),
        )
    return bundle


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
