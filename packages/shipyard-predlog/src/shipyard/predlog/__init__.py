"""Shipyard prediction logs: what every deployment target scored, and reading it back.

The service and the batch job record each sampled row they score (its inputs, the prediction,
the score, the model version, a key and the time) through a :class:`PredictionLog`: a bounded
queue in front of a background writer that commits one Parquet file per flush (temporary file,
then rename), or one transaction into a SQL table. A request never waits for the writer and
never fails because of it: rows that do not fit the queue are dropped and counted. A killed
process loses at most what was not yet flushed; every file on disk is complete.

:func:`read_batches` reads a window of records back, in bounded memory, for the monitor. This
package sits below both the deployment targets and the monitor, so neither imports the other.
"""

from __future__ import annotations

from shipyard.predlog._location import ENV_VAR, LogLocation, resolve_location
from shipyard.predlog._read import read_batches, read_frame
from shipyard.predlog._writer import (
    KEY,
    LOGGED_AT,
    META_COLUMNS,
    MODEL_VERSION,
    PREDICTION,
    SCORE,
    SOURCE,
    PredictionLog,
    open_log,
)

__all__ = [
    "ENV_VAR",
    "KEY",
    "LOGGED_AT",
    "META_COLUMNS",
    "MODEL_VERSION",
    "PREDICTION",
    "SCORE",
    "SOURCE",
    "LogLocation",
    "PredictionLog",
    "open_log",
    "read_batches",
    "read_frame",
    "resolve_location",
]
