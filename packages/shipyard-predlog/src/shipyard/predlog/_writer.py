"""The writer: a bounded queue in front of a background thread that commits whole files.

A caller (a request handler, a batch part) hands :meth:`PredictionLog.log` the rows it scored
and goes on: the rows join a queue, counted in rows. The writer thread takes everything waiting
once ``flush_rows`` rows are there or the oldest has waited ``flush_seconds``, builds one Arrow
table and commits it (:mod:`._sinks`). When the queue is full, a non-blocking log (the service)
drops the rows and counts them (``on_drop``); a blocking one (the batch job) waits for room.
:meth:`PredictionLog.close` writes what is left and stops the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shipyard.predlog._location import LogLocation

__all__ = [
    "KEY",
    "LOGGED_AT",
    "META_COLUMNS",
    "MODEL_VERSION",
    "PREDICTION",
    "SCORE",
    "SOURCE",
    "PredictionLog",
    "open_log",
]

# Columns every record carries besides the features (which keep their own names).
LOGGED_AT = "_logged_at"
MODEL_VERSION = "_model_version"
SOURCE = "_source"
KEY = "_key"
PREDICTION = "_prediction"
SCORE = "_score"
META_COLUMNS = (LOGGED_AT, MODEL_VERSION, SOURCE, KEY, PREDICTION, SCORE)

log = logging.getLogger("shipyard.predlog")


@dataclass
class _Entry:
    at: datetime
    rows: int
    inputs: Mapping[str, Any]
    predictions: Any
    scores: Any
    keys: Any
    extra: Mapping[str, Any] | None = None


class PredictionLog:
    """Records scored rows through a background writer; see the module's description."""

    def __init__(
        self,
        sink: Any,
        features: Sequence[tuple[str, str]],
        *,
        task: str,
        source: str,
        model_version: str,
        sample_rate: float = 1.0,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        queue_rows: int = 100_000,
        block: bool = False,
        seed: int | None = None,
        on_drop: Callable[[int], None] | None = None,
        on_write: Callable[[int], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        import numpy as np

        # Everything the writer thread uses is imported here, in the caller's thread: a module
        # imported half-way by the writer while a request thread inspects it (BentoML looks for
        # pandas.DataFrame on every batch) fails that request.
        import pandas  # noqa: F401
        import pyarrow
        import pyarrow.parquet  # noqa: F401

        self.sink = sink
        self.features = [(str(n), str(k)) for n, k in features]
        self.task, self.source, self.model_version = task, source, model_version
        self.sample_rate = float(sample_rate)
        self.flush_rows, self.flush_seconds, self.queue_rows = flush_rows, flush_seconds, queue_rows
        self.block = block
        self.on_drop, self.on_write = on_drop, on_write
        self.clock = clock or (lambda: datetime.now(UTC))
        self._rng = np.random.default_rng(seed)
        self._cond = threading.Condition()
        self._pending: list[_Entry] = []
        self._pending_rows = 0
        self._oldest = 0.0
        self._closing = False
        self._flush_wanted = 0
        self._flushed = 0
        self._writing = False  # the writer holds rows it took and has not yet committed
        self._thread: threading.Thread | None = None
        self.logged = 0  # rows handed to the sink
        self.dropped = 0  # rows dropped: queue full, or a write that failed
        self.failed_writes = 0

    # -- the caller's side -------------------------------------------------------------------
    def log(
        self,
        inputs: Mapping[str, Any],
        predictions: Sequence[Any],
        scores: Sequence[Any] | None = None,
        keys: Sequence[Any] | None = None,
        extra: Mapping[str, Sequence[Any]] | None = None,
    ) -> int:
        """Queue the sampled rows of one scored batch; returns how many were queued. Never
        raises for a full queue: the rows are dropped and counted (or, when ``block``, it waits).
        ``extra`` adds columns of the caller's own (one value per row: numbers, text or flags;
        e.g. a rollout's request id and latency), empty in the rows of batches without them."""
        rows = len(predictions)
        if rows == 0 or self.sample_rate <= 0:
            return 0
        if self.sample_rate < 1.0:
            inputs, predictions, scores, keys, rows, extra = self._sample(
                inputs, predictions, scores, keys, rows, extra
            )
            if rows == 0:
                return 0
        entry = _Entry(self.clock(), rows, inputs, predictions, scores, keys, extra)
        with self._cond:
            if self._closing:
                self._drop(rows)
                return 0
            while self._pending_rows + rows > self.queue_rows and self._pending_rows > 0:
                if not self.block:
                    self._drop(rows)
                    return 0
                self._cond.notify_all()
                self._cond.wait(1.0)
            first = not self._pending
            if first:
                self._oldest = time.monotonic()
            self._pending.append(entry)
            self._pending_rows += rows
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shipyard-prediction-log", daemon=True)
                self._thread.start()
            # The first rows into an empty queue wake the writer so that it starts their
            # flush_seconds clock: asleep with nothing pending, it would otherwise wait for a
            # full flush_rows however long that takes.
            if first or self._pending_rows >= self.flush_rows:
                self._cond.notify_all()
        return rows

    def _sample(
        self, inputs: Mapping[str, Any], predictions: Any, scores: Any, keys: Any, rows: int, extra: Any = None
    ) -> Any:
        import numpy as np

        keep = np.flatnonzero(self._rng.random(rows) < self.sample_rate)

        def pick(values: Any) -> Any:
            if values is None:
                return None
            return np.asarray(values, dtype=object if not hasattr(values, "dtype") else None)[keep]

        more = None if extra is None else {k: pick(v) for k, v in extra.items()}
        picked = {k: pick(v) for k, v in inputs.items()}
        return picked, pick(predictions), pick(scores), pick(keys), len(keep), more

    def _drop(self, rows: int) -> None:
        self.dropped += rows
        if self.on_drop is not None:
            self.on_drop(rows)

    def flush(self, timeout: float = 60.0) -> None:
        """Write everything queued so far; returns once it is written (or ``timeout`` passed)."""
        with self._cond:
            if not self._pending and not self._writing:
                return
            self._flush_wanted += 1
            wanted = self._flush_wanted
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while self._flushed < wanted and time.monotonic() < deadline:
                self._cond.wait(0.1)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued and stop the writer (a clean shutdown loses nothing)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()

    # -- the writer thread -------------------------------------------------------------------
    def _take(self) -> tuple[list[_Entry], int, bool]:
        with self._cond:
            while True:
                if self._closing or self._flush_wanted > self._flushed or self._pending_rows >= self.flush_rows:
                    break
                if self._pending:
                    left = self._oldest + self.flush_seconds - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                else:
                    self._cond.wait()
            taken, self._pending, self._pending_rows = self._pending, [], 0
            self._writing = bool(taken)
            wanted, closing = self._flush_wanted, self._closing
            self._cond.notify_all()  # producers waiting for room
            return taken, wanted, closing

    def _run(self) -> None:
        while True:
            taken, wanted, closing = self._take()
            if taken:
                self._write(taken)
            with self._cond:
                self._writing = False
                self._flushed = max(self._flushed, wanted)
                self._cond.notify_all()
                if closing and not self._pending:
                    return

    def _write(self, entries: list[_Entry]) -> None:
        rows = sum(e.rows for e in entries)
        try:
            self.sink.write(self.table(entries))
        except Exception as exc:  # noqa: BLE001 - logging must never take the caller down: count and go on
            self.failed_writes += 1
            log.warning("prediction log: could not write %d row(s) to %s: %s", rows, self.sink.display, exc)
            self._drop(rows)
            return
        self.logged += rows
        if self.on_write is not None:
            self.on_write(rows)

    def table(self, entries: list[_Entry]) -> Any:
        """The entries as one Arrow table: meta columns, then each feature."""
        import numpy as np
        import pyarrow as pa

        rows = sum(e.rows for e in entries)
        counts = [e.rows for e in entries]
        at = np.concatenate([np.full(e.rows, e.at.replace(tzinfo=None), dtype="datetime64[us]") for e in entries])
        columns: dict[str, Any] = {
            LOGGED_AT: pa.array(at, pa.timestamp("us", tz="UTC")),
            MODEL_VERSION: pa.repeat(pa.scalar(self.model_version, pa.string()), rows),
            SOURCE: pa.repeat(pa.scalar(self.source, pa.string()), rows),
            KEY: _text_column([e.keys for e in entries], counts),
        }
        if self.task == "regression":
            columns[PREDICTION] = pa.array(
                np.concatenate([np.asarray(e.predictions, dtype=np.float64) for e in entries])
            )
        else:
            columns[PREDICTION] = _text_column([e.predictions for e in entries], counts)
        scores = [
            np.full(e.rows, np.nan) if e.scores is None else np.asarray(e.scores, dtype=np.float64) for e in entries
        ]
        columns[SCORE] = pa.array(np.concatenate(scores), pa.float64(), from_pandas=True)
        for name, kind in self.features:
            values = [e.inputs.get(name) for e in entries]
            if kind == "category":
                columns[name] = _text_column(values, counts)
            else:
                parts = [
                    np.full(e.rows, np.nan) if part is None else np.asarray(part, dtype=np.float64)
                    for part, e in zip(values, entries, strict=True)
                ]
                columns[name] = pa.array(np.concatenate(parts), pa.float64())
        extras = sorted({name for e in entries for name in (e.extra or {})} - set(columns))
        for name in extras:
            columns[name] = pa.array([v for e in entries for v in _items((e.extra or {}).get(name), e.rows)])
        return pa.table(columns)


def _text_column(parts: list[Any], rows: list[int]) -> Any:
    """One string column from per-entry values (None: all empty). Integer and text arrays are
    cast by Arrow, in C; anything else goes value by value (``str``, empty for None and NaN)."""
    import numpy as np
    import pyarrow as pa

    arrays = []
    for values, n in zip(parts, rows, strict=True):
        if values is None:
            arrays.append(pa.nulls(n, pa.string()))
            continue
        array = np.asarray(values)
        if array.dtype.kind in "iuU" and array.ndim == 1:
            arrays.append(pa.array(array).cast(pa.string()))
        else:
            arrays.append(pa.array([_text(v) for v in _items(values, n)], pa.string()))
    return pa.concat_arrays(arrays) if arrays else pa.array([], pa.string())


def _items(values: Any, rows: int | None = None) -> list[Any]:
    if values is None:
        return [None] * int(rows or 0)
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def open_log(
    location: LogLocation,
    features: Sequence[tuple[str, str]],
    *,
    task: str,
    source: str,
    model_version: str,
    **options: Any,
) -> PredictionLog:
    """A :class:`PredictionLog` writing to ``location`` (see :class:`PredictionLog` for options)."""
    from shipyard.predlog._sinks import sink_for

    return PredictionLog(sink_for(location), features, task=task, source=source, model_version=model_version, **options)
