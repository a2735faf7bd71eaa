"""Train a model with Lightning: seeded, resumable after a kill, early-stopped.

Resuming: checkpoints live in a work folder beside the bundle, keyed by a fingerprint of every
input that shapes the result. A run killed mid-way resumes from ``last.ckpt`` when the
fingerprint still matches; a changed input starts clean. Shuffling is seeded per epoch and
dropout per batch, so a resumed run ends with the same weights as an uninterrupted one.
Checkpoints are written atomically; one that cannot be read anyway (damaged on disk) is treated as
absent, with a warning naming it, and training starts clean.

Several processes (DDP): only global rank 0 prepares the work folder, writes checkpoints and
loads the best weights; the other ranks train and leave no file behind. On one node the ranks
Lightning starts share rank 0's folder, so a killed run resumes as above. Across nodes
(``num_nodes > 1``) every node would have to find the same checkpoint, which needs a shared
filesystem, so a multi-node training always starts from its first epoch.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from shipyard.core.atomic import atomic_path, write_json
from shipyard.core.compose import dump
from shipyard.core.features import Preprocessor
from shipyard.core.hashing import json_sha256
from shipyard.core.schema import ModelConf, OptimConf, ProjectConf, TrainerConf
from shipyard.train.bundle import ModelBundle, build_network
from shipyard.train.data import make_loader
from shipyard.train.module import TaskModule

__all__ = ["TrainResult", "make_trainer", "train_model"]

# Lightning announces hardware and tips at INFO on every run; keep the output to the progress bar.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

FINGERPRINT = "fingerprint.json"


class BatchSeed(Callback):
    """Reseed torch before every training batch, so dropout depends on (seed, epoch, batch)
    only, whatever else drew random numbers before (a resumed run draws differently)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        seed = (self.seed * 1_000_003 + trainer.current_epoch * 10_007 + batch_idx) % (1 << 63)
        if pl_module.device.type == "cpu":
            # Dropout on the CPU draws from the default generator alone. torch.manual_seed also
            # queues a seed for every accelerator not yet started, recording a stack trace for
            # each (about 0.2 ms a batch), and that is most of what a small model's batch costs.
            torch.default_generator.manual_seed(seed)
        else:
            torch.manual_seed(seed)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside their target, then renamed into place: a
    kill mid-write leaves a stray ``.tmp-*`` file, never a truncated ``last.ckpt``. (Lightning's
    own save copies from the system's temp folder, which is no rename across filesystems.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            super().save_checkpoint(checkpoint, path, storage_options)  # raises: not supported
            return
        with atomic_path(Path(path)) as tmp:
            torch.save(checkpoint, tmp)


class TrainResult:
    def __init__(self, bundle: ModelBundle, curve: pd.DataFrame, report: dict[str, Any], is_global_zero: bool) -> None:
        self.bundle, self.curve, self.report, self.is_global_zero = bundle, curve, report, is_global_zero


def make_trainer(conf: TrainerConf, callbacks: list[Callback], logger: Any, root: Path) -> L.Trainer:
    return L.Trainer(
        accelerator=str(conf.accelerator),
        devices=conf.devices,
        num_nodes=conf.num_nodes,
        strategy=str(conf.strategy),
        precision=str(conf.precision),  # type: ignore[arg-type]
        max_epochs=conf.max_epochs,
        min_epochs=conf.min_epochs,
        deterministic=conf.deterministic,
        enable_progress_bar=conf.progress_bar,
        log_every_n_steps=conf.log_every_n_steps,
        gradient_clip_val=conf.gradient_clip_val,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(root),
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
    )


def _fingerprint(train: pd.DataFrame, val: pd.DataFrame, state: dict[str, Any], conf: dict[str, Any]) -> str:
    frames = [int(pd.util.hash_pandas_object(f, index=False).sum() % (1 << 61)) for f in (train, val)]
    trainer = {k: v for k, v in conf["trainer"].items() if k != "progress_bar"}
    return json_sha256({"frames": frames, "state": state, **conf, "trainer": trainer})


def _project(project: ProjectConf) -> dict[str, str]:
    """The keys of ``project`` that make a model what it is (its description does not)."""
    return {"name": project.name, "team": project.team, "task": str(project.task)}


def _unreadable(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (truncated, empty, not a checkpoint), or None."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises EOFError, OSError, RuntimeError, pickle errors
        return f"{type(exc).__name__}: {exc}".strip()
    return None if isinstance(state, dict) and "epoch" in state and "state_dict" in state else "not a checkpoint"


def _prepare_workdir(workdir: Path, fingerprint: str, *, resumable: bool = True) -> Path | None:
    """Return the checkpoint to resume from, wiping checkpoints of other inputs, any checkpoint
    that cannot be read (a damaged one would fail every later run), and every checkpoint when the
    run cannot resume."""
    marker = workdir / FINGERPRINT
    try:
        same = resumable and json.loads(marker.read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError, AttributeError):
        same = False
    if same:
        damaged = {ckpt: _unreadable(ckpt) for ckpt in sorted(workdir.glob("*.ckpt"))}
        damaged = {ckpt: why for ckpt, why in damaged.items() if why}
        if not damaged:
            last = workdir / "last.ckpt"
            return last if last.is_file() else None
        for ckpt, why in damaged.items():
            warnings.warn(
                f"checkpoint {ckpt} cannot be read ({why[:200]}); ignoring it and training from the start",
                stacklevel=2,
            )
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"fingerprint": fingerprint})
    return None


def _resume_point(workdir: Path, fingerprint: str, trainer: TrainerConf, global_zero: bool) -> Path | None:
    """The checkpoint this process resumes from. Rank 0 decides and prepares the folder before
    Lightning starts the other local ranks, which then find the same checkpoint (or none); ranks
    on other nodes never touch the folder and never resume (see the module docs)."""
    if trainer.num_nodes > 1:
        if global_zero:
            _prepare_workdir(workdir, fingerprint, resumable=False)
        return None
    if global_zero:
        return _prepare_workdir(workdir, fingerprint)
    marker, last = workdir / FINGERPRINT, workdir / "last.ckpt"
    same = marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fingerprint
    return last if same and last.is_file() else None


def _curve(log_dir: Path) -> pd.DataFrame:
    """One row per epoch from the CSV logger's metrics file (empty when there is none)."""
    path = log_dir / "metrics.csv"
    if not path.is_file():
        return pd.DataFrame({"epoch": []})
    raw = pd.read_csv(path)
    curve = raw.drop(columns=[c for c in ("step",) if c in raw.columns]).groupby("epoch").last()
    return curve.reset_index().sort_values("epoch")


def train_model(
    train: pd.DataFrame,
    val: pd.DataFrame,
    state: dict[str, Any],
    *,
    model: ModelConf,
    optim: OptimConf,
    trainer: TrainerConf,
    seed: int,
    project: ProjectConf,
    workdir: Path,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Fit ``model`` with ``optim`` and ``trainer`` on ``train``, validating on ``val``.

    ``callbacks`` join the Trainer's own (a search's pruning callback): they may stop a run,
    never change the result of one they let finish."""
    pre = Preprocessor.from_state(state)
    tconf, es = trainer, trainer.early_stopping
    conf = {"model": model.as_dict(), "optim": dump(optim), "trainer": dump(trainer), "seed": seed}
    fingerprint = _fingerprint(train, val, state, {**conf, "project": _project(project)})
    L.seed_everything(seed, workers=True, verbose=False)
    torch.use_deterministic_algorithms(tconf.deterministic, warn_only=True)
    net = build_network(model.as_dict(), pre)
    module = TaskModule(net, pre, optim)
    monitor = es.monitor
    checkpoint = ModelCheckpoint(
        dirpath=str(workdir),
        filename="best",
        monitor=monitor,
        mode=str(es.mode),
        save_top_k=1,
        save_last=True,
        save_on_train_epoch_end=True,
    )
    own: list[Callback] = [checkpoint, BatchSeed(seed)]
    if es.enabled:
        own.append(EarlyStopping(monitor=monitor, mode=str(es.mode), patience=es.patience, min_delta=es.min_delta))
    own.extend(callbacks)
    logger = CSVLogger(save_dir=str(workdir), name="logs", version="")
    fitter = make_trainer(tconf, own, logger, workdir)  # knows its global rank from here on
    resume = _resume_point(workdir, fingerprint, tconf, fitter.is_global_zero)
    # The CSV logger starts a fresh file on resume: keep the epochs logged before the kill.
    before = _curve(workdir / "logs") if resume else pd.DataFrame({"epoch": []})
    batch = tconf.batch_size
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*logs directory.*exists and is not empty.*")
        # Losses are logged per epoch (the learning curve); a small data set with fewer batches
        # than log_every_n_steps loses nothing, and Lightning's advice has nothing to act on.
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        fitter.fit(
            module,
            make_loader(train, pre, batch, seed),
            make_loader(val, pre, max(batch, 256), None),
            ckpt_path=str(resume) if resume else None,
        )
    seconds = time.perf_counter() - started
    best = checkpoint.best_model_path
    # Only rank 0 wrote checkpoints, and only its result is kept; another rank's folder (on
    # another node) holds none, or rank 0 may be deleting it right now.
    if fitter.is_global_zero and best and Path(best).is_file():
        weights = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(weights)
    module.net.cpu().eval()
    epochs = int(fitter.current_epoch)
    trained_epochs = epochs - (
        int(torch.load(resume, map_location="cpu", weights_only=True)["epoch"]) + 1 if resume else 0
    )
    score = checkpoint.best_model_score
    report = {
        "epochs": epochs,
        "resumed": bool(resume),
        "stopped_early": bool(es.enabled and fitter.should_stop and epochs < tconf.max_epochs),
        "best_score": float(score) if score is not None else None,
        "monitor": monitor,
        "train_seconds": round(seconds, 3),
        "samples_per_second": round(len(train) * max(trained_epochs, 0) / seconds, 1) if seconds > 0 else None,
        "hardware": {
            "accelerator": str(tconf.accelerator),
            "devices": tconf.devices,
            "num_nodes": tconf.num_nodes,
            "world_size": fitter.world_size,
            "strategy": str(tconf.strategy),
            "precision": str(tconf.precision),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "torch": torch.__version__,
        "lightning": L.__version__,
    }
    meta = {
        "project": _project(project),
        "task": pre.task,
        "model": conf["model"],
        "seed": seed,
        "feature_schema": _feature_schema(train, pre),
        "target": pre.target,
        "classes": pre.classes,
    }
    after = _curve(workdir / "logs") if fitter.is_global_zero else pd.DataFrame({"epoch": []})
    before = before[before["epoch"] < (after["epoch"].min() if len(after) else float("inf"))]
    curve = pd.concat([before, after], ignore_index=True) if len(before) else after
    result = TrainResult(ModelBundle(meta=meta, preprocessor=pre, net=module.net), curve, report, fitter.is_global_zero)
    if fitter.is_global_zero:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _feature_schema(train: pd.DataFrame, pre: Preprocessor) -> list[dict[str, Any]]:
    """Name, type and the range seen in training, per feature (used to check requests)."""
    schema: list[dict[str, Any]] = []
    for name in pre.features:
        column = train[name]
        if name in pre.categorical:
            schema.append({"name": name, "dtype": "category", "categories": pre.categorical[name], "nullable": True})
            continue
        if name in pre.datetime:
            present = column.dropna()
            schema.append(
                {
                    "name": name,
                    "dtype": "datetime",
                    "min": present.min().isoformat() if len(present) else None,
                    "max": present.max().isoformat() if len(present) else None,
                    "parts": list(pre.datetime[name]),
                    "nullable": bool(column.isna().any()),
                }
            )
            continue
        schema.append(
            {
                "name": name,
                "dtype": "float",
                "min": float(column.min()),
                "max": float(column.max()),
                "nullable": bool(column.isna().any()),
            }
        )
    return schema
