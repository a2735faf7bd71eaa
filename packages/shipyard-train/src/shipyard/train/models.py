"""Built-in networks. Plain ``torch.nn`` modules: no Lightning, so they load for inference
anywhere. Every network takes a 2-D float matrix (rows × features) and returns
``n_outputs`` values per row; image models reshape to ``shape`` themselves."""

from __future__ import annotations

import math

import torch
from shipyard.core.errors import ConfigError
from torch import nn

__all__ = ["CNN", "MLP"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def _activation(name: str) -> nn.Module:
    return _ACTIVATIONS[str(name)]()


class MLP(nn.Module):
    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        shape: list[int] | None = None,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, int(size)), _activation(activation), nn.Dropout(dropout)]
            width = int(size)
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        shape: list[int] | None = None,
        channels: list[int] | tuple[int, ...] = (16, 32),
        kernel_size: int = 3,
        hidden: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not shape or len(shape) != 3 or math.prod(shape) != n_features:
            raise ConfigError(
                f"the CNN needs data.shape [channels, height, width] covering {n_features} features",
                key="data.shape",
                value=shape,
                fix="set data.shape, e.g. [1, 8, 8] for 8x8 grey images",
            )
        self.shape = tuple(int(s) for s in shape)
        blocks: list[nn.Module] = []
        c_in, h, w = self.shape
        for c_out in channels:
            blocks += [nn.Conv2d(c_in, int(c_out), kernel_size, padding=kernel_size // 2), nn.ReLU()]
            if min(h, w) >= 2:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c_in = int(c_out)
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * h * w, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(x.shape[0], *self.shape)))
