"""Shipyard core: config schemas, composition, errors, paths and the component registry.

Imports nothing heavy at module level (no torch, lightning, kedro, bentoml or optuna).
"""

from __future__ import annotations

from shipyard.core.errors import ConfigError, DataError, ShipyardError, StageError
from shipyard.core.paths import ProjectPaths, find_root

__all__ = [
    "ConfigError",
    "DataError",
    "ProjectPaths",
    "ShipyardError",
    "StageError",
    "find_root",
]
