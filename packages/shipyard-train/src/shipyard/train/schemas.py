"""Parameter schemas of the built-in models (torch-free, read at compose time)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CNNConf", "MLPConf"]


@dataclass
class MLPConf:
    hidden: list[int] = field(default_factory=lambda: [64, 32])
    dropout: float = 0.1
    activation: str = "relu"


@dataclass
class CNNConf:
    channels: list[int] = field(default_factory=lambda: [16, 32])
    kernel_size: int = 3
    hidden: int = 64
    dropout: float = 0.1
