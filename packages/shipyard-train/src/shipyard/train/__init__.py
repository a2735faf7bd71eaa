"""Shipyard train: models, the Lightning task module, training, metrics and model bundles.

Importing this package is cheap; torch is imported by the submodules that need it and
Lightning only by :mod:`shipyard.train.fit` and :mod:`shipyard.train.module`, so inference
paths (bundle, evaluate) never pay for it.
"""

from __future__ import annotations

__all__: list[str] = []
