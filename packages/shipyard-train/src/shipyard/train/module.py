"""The Lightning task module: one class for binary, multiclass and regression."""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from shipyard.core.features import Preprocessor
from shipyard.core.schema import OptimConf
from shipyard.train.metrics import compute_metrics

__all__ = ["OPTIMIZERS", "TaskModule"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class TaskModule(L.LightningModule):
    def __init__(self, net: torch.nn.Module, pre: Preprocessor, optim: OptimConf) -> None:
        super().__init__()
        self.net, self.pre, self.optim = net, pre, optim
        self._val_scores: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        task = self.pre.task
        if task == "binary":
            return F.binary_cross_entropy_with_logits(out[:, 0].float(), y.float())
        if task == "multiclass":
            return F.cross_entropy(out.float(), y)
        return F.mse_loss(out[:, 0].float(), y.float())

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self._loss(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        out = self(x)
        self.log("val/loss", self._loss(out, y), on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self._val_scores.append(out.detach().float().cpu())
        self._val_targets.append(y.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_scores:
            return
        out, y = torch.cat(self._val_scores), torch.cat(self._val_targets)
        self._val_scores.clear()
        self._val_targets.clear()
        task = self.pre.task
        if task == "binary":
            scores, truth = torch.sigmoid(out[:, 0]), y
        elif task == "multiclass":
            scores, truth = torch.softmax(out, dim=1), y
        else:
            scale, shift = self.pre.target_scale, self.pre.target_mean
            scores, truth = out[:, 0] * scale + shift, y * scale + shift
        metrics = compute_metrics(task, truth.numpy(), scores.numpy(), len(self.pre.classes))
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, prog_bar=False, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cls = OPTIMIZERS[str(self.optim.name)]
        return cls(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
