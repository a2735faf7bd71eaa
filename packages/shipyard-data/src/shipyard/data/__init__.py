"""Shipyard data: sources, splits and the fitting of preprocessing.

Node functions are pure: they take frames and plain config dicts and return frames and dicts;
the engine wires them into a Kedro pipeline and handles files.
"""

from __future__ import annotations

from shipyard.data.preprocess import fit_preprocessor
from shipyard.data.sources import fetch_raw, ingest
from shipyard.data.split import split_frame

__all__ = ["fetch_raw", "fit_preprocessor", "ingest", "split_frame"]
