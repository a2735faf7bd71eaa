"""Parameters of the team's models, read by Shipyard at compose time (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ResidualMLPConf:
    width: int = 64
    blocks: int = 2
    dropout: float = 0.1
