"""Parameter schemas of the built-in models (torch-free, read at compose time).

These dataclasses are the only place the models' defaults are written: ``conf/model/*.yaml``
names the ``_target_`` and a project sets only what it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shipyard.core.errors import ConfigError

__all__ = ["Activation", "CNNConf", "MLPConf"]


class Activation(StrEnum):
    relu = "relu"
    gelu = "gelu"
    tanh = "tanh"
    silu = "silu"


@dataclass
class MLPConf:
    hidden: list[int] = field(default_factory=lambda: [64, 32], metadata={"doc": "hidden layer widths", "ge": 1})
    dropout: float = field(default=0.1, metadata={"doc": "dropout after each hidden layer", "ge": 0, "lt": 1})
    activation: Activation = field(default=Activation.relu, metadata={"doc": "activation function"})


@dataclass
class CNNConf:
    channels: list[int] = field(default_factory=lambda: [16, 32], metadata={"doc": "channels per conv block", "ge": 1})
    kernel_size: int = field(default=3, metadata={"doc": "convolution kernel size", "ge": 1})
    hidden: int = field(default=64, metadata={"doc": "width of the dense layer", "ge": 1})
    dropout: float = field(default=0.1, metadata={"doc": "dropout before the output layer", "ge": 0, "lt": 1})

    def check(self, cfg: Any) -> None:
        """A component schema may check the rest of the config (``shipyard.core.rules``)."""
        shape = cfg.data.shape
        if not shape or len(shape) != 3:
            raise ConfigError(
                "the CNN needs data.shape [channels, height, width]",
                key="data.shape",
                value=shape,
                fix="set data.shape, e.g. [1, 8, 8] for 8x8 grey images, or use model=mlp",
            )
