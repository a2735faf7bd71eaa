"""Shipyard monitoring: logged predictions against a version's reference profile, and the trigger.

:func:`monitor_window` streams a window of prediction-log rows (or any Parquet/CSV of inputs)
through per-feature counts against the reference profile's bins (memory bounded by a batch),
tests every feature, the missing rates and the prediction with a Benjamini-Hochberg correction
AND an effect-size floor, joins labels that arrived later, and writes ``monitor.json`` and a
self-contained HTML report. :func:`decide` applies the ``monitor.trigger`` rule over windows.
This package reads logs through :mod:`shipyard.predlog` and never imports torch or training code.
"""

from __future__ import annotations

from shipyard.monitor._drift import Accumulator, FeatureDrift, judge
from shipyard.monitor._report import render_html, table
from shipyard.monitor._run import (
    EXIT_DRIFT,
    EXIT_HEALTHY,
    EXIT_STALE,
    exit_code,
    input_batches,
    monitor_window,
    write_reports,
)
from shipyard.monitor._trigger import Decision, TriggerState, decide
from shipyard.monitor._window import Labels, judge_window, read_labels

__all__ = [
    "EXIT_DRIFT",
    "EXIT_HEALTHY",
    "EXIT_STALE",
    "Accumulator",
    "Decision",
    "FeatureDrift",
    "Labels",
    "TriggerState",
    "decide",
    "exit_code",
    "input_batches",
    "judge",
    "judge_window",
    "monitor_window",
    "read_labels",
    "render_html",
    "table",
    "write_reports",
]
