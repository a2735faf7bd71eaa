"""Prune a single-objective trial from Lightning, epoch by epoch.

Why not ``optuna_integration.PyTorchLightningPruningCallback``: it would add a dependency for
twenty lines, and Lightning rejects a callback that subclasses the other Lightning package
(``pytorch_lightning`` vs ``lightning.pytorch``) than the Trainer's, which that integration has
switched between across releases. This one is built on the same ``lightning.pytorch`` as
:mod:`shipyard.train.fit`. It raises :class:`optuna.TrialPruned` straight away: trials run in one
process (no DDP ranks to keep in step), and the trial's work folder is thrown away anyway.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import optuna

__all__ = ["PruningCallback"]


class PruningCallback(L.Callback):
    """Report ``monitor`` to the trial after every validation epoch; stop if the pruner says so."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value: Any = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = int(trainer.current_epoch)
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {self.monitor}={float(value):.4g}")
