"""Parameters of the team's models, read by Shipyard at compose time (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ResidualMLPConf:
    width: int = 64
    blocks: int = 2
    dropout: float = 0.1


@dataclass
class RatiosConf:
    """Parameters of :func:`tabular_models.steps.add_ratios`: new column -> [numerator, denominator]."""

    ratios: dict[str, list[str]] = field(default_factory=dict)
