"""Shipyard data: sources, checks, splits and the fitting of preprocessing.

Node functions are pure: they take frames and the typed config sections
(:mod:`shipyard.core.schema`) and return frames and dicts; the engine wires them into a Kedro
pipeline and handles files. :func:`prepare` runs the data half of the pipeline in one call (for
tests, benchmarks and notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.data.preprocess import fit_preprocessor
from shipyard.data.sources import fetch_raw, ingest
from shipyard.data.split import split_frame

if TYPE_CHECKING:
    import pandas as pd
    from shipyard.core.schema import ShipyardConfig

__all__ = ["Prepared", "fetch_raw", "fit_preprocessor", "ingest", "prepare", "split_frame"]


@dataclass
class Prepared:
    frame: pd.DataFrame
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    manifest: dict[str, Any]
    state: dict[str, Any]  # the fitted preprocessing


def prepare(cfg: ShipyardConfig, root: Path) -> Prepared:
    """What the ingest, split and fit_preprocessing stages make of ``cfg``'s data (the raw file is
    fetched first when the source declares ``fetch``)."""
    aux = [c for c in (cfg.split.group_column, cfg.split.time_column) if c]
    fetch_raw(cfg.data.source, root)
    frame = ingest(cfg.data, root, aux)
    task = str(cfg.project.task)
    train, val, test, manifest = split_frame(frame, cfg.split, cfg.data.target, task, cfg.seed)
    state = fit_preprocessor(
        train, cfg.data.target, cfg.data.shape, cfg.preprocess, task, aux, [str(p) for p in cfg.data.datetime_parts]
    )
    return Prepared(frame, train, val, test, manifest, state)
