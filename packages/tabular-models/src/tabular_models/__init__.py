"""The tabular team's models. ``ResidualMLP``: an MLP with residual blocks and layer norm."""

from __future__ import annotations

from tabular_models.models import ResidualMLP

__all__ = ["ResidualMLP"]
