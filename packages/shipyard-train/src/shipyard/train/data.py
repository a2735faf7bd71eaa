"""Tensors and loaders for training: deterministic per-epoch shuffling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from shipyard.core.features import Preprocessor
from torch.utils.data import DataLoader, Sampler, TensorDataset

__all__ = ["EpochShuffle", "make_loader", "tensors"]


class EpochShuffle(Sampler[int]):
    """A shuffle that depends only on (seed, epoch), so a resumed run sees the same order.

    Lightning calls :meth:`set_epoch` at the start of every epoch."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


def tensors(frame: Any, pre: Preprocessor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(pre.transform(frame))
    y = torch.from_numpy(np.asarray(pre.encode_target(frame[pre.target].tolist())))
    return x, y


def make_loader(frame: Any, pre: Preprocessor, batch_size: int, seed: int | None) -> DataLoader[Any]:
    x, y = tensors(frame, pre)
    dataset = TensorDataset(x, y)
    sampler = EpochShuffle(len(dataset), seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0)
