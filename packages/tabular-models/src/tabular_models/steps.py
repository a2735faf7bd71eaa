"""The tabular team's own pipeline steps, registered by entry point in ``shipyard.steps``.

A step receives the datasets a project lists as its ``inputs`` (pandas frames for parquet) and
its typed parameters (the dataclass its entry point names, in :mod:`tabular_models.schemas`),
and returns its outputs. No torch here: a step runs in its own DVC stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabular_models.schemas import RatiosConf

__all__ = ["add_ratios"]


def add_ratios(dataset: pd.DataFrame, *, params: RatiosConf) -> pd.DataFrame:
    """``dataset`` with one new column per ``params.ratios`` entry: ``name: [numerator,
    denominator]``; a zero denominator gives a missing value (imputed later like any other)."""
    out = dataset.copy()
    for name, (numerator, denominator) in params.ratios.items():
        missing = [c for c in (numerator, denominator) if c not in out.columns]
        if missing:
            raise KeyError(f"add_ratios: column(s) {missing} not in the dataset (ratio {name!r})")
        den = out[denominator].astype("float64").replace(0.0, np.nan)
        out[name] = out[numerator].astype("float64") / den
    return out
