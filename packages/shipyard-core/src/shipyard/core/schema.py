"""Structured config schemas.

Values live in YAML under ``conf/``; these dataclasses give them their shape and types. They are
registered in Hydra's ConfigStore as ``shipyard_schema`` so that an unknown key or a wrong type
fails at compose time with its full key path. Component sections (``model``) are checked against
the schema their ``_target_`` registered (see :mod:`shipyard.core.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

__all__ = [
    "TASKS",
    "DataConf",
    "EarlyStoppingConf",
    "EnvConf",
    "EvaluateConf",
    "OptimConf",
    "PreprocessConf",
    "ProjectConf",
    "ShipyardConfig",
    "SourceConf",
    "SplitConf",
    "TrainerConf",
    "register_schemas",
]

# OmegaConf reads these annotations at runtime, so they use typing.Optional rather than PEP 604
# unions (OmegaConf 2.3 does not accept ``X | None`` in structured configs).

TASKS = ("binary", "multiclass", "regression")


@dataclass
class ProjectConf:
    name: str = MISSING
    team: str = MISSING
    task: str = MISSING
    description: str = ""


@dataclass
class SourceConf:
    kind: str = MISSING
    path: str | None = None
    name: str | None = None
    fetch: str | None = None


@dataclass
class DataConf:
    source: SourceConf = field(default_factory=SourceConf)
    target: str = MISSING
    key: str | None = None
    features: list[str] | None = None
    drop: list[str] = field(default_factory=list)
    shape: list[int] | None = None


@dataclass
class SplitConf:
    kind: str = "stratified"
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15


@dataclass
class PreprocessConf:
    numeric: str = "standard"


@dataclass
class EarlyStoppingConf:
    enabled: bool = True
    monitor: str = "val/loss"
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0


@dataclass
class TrainerConf:
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 30
    min_epochs: int = 1
    batch_size: int = 64
    gradient_clip_val: float | None = None
    deterministic: bool = True
    progress_bar: bool = True
    log_every_n_steps: int = 5
    early_stopping: EarlyStoppingConf = field(default_factory=EarlyStoppingConf)


@dataclass
class OptimConf:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class EvaluateConf:
    latency_batch_sizes: list[int] = field(default_factory=lambda: [1, 256])
    latency_repeats: int = 50
    latency_warmup: int = 5


@dataclass
class EnvConf:
    name: str = "local"
    dvc_remote: str | None = None


@dataclass
class ShipyardConfig:
    project: ProjectConf = field(default_factory=ProjectConf)
    seed: int = 42
    data: DataConf = field(default_factory=DataConf)
    split: SplitConf = field(default_factory=SplitConf)
    preprocess: PreprocessConf = field(default_factory=PreprocessConf)
    model: Any = MISSING
    optim: OptimConf = field(default_factory=OptimConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    evaluate: EvaluateConf = field(default_factory=EvaluateConf)
    env: EnvConf = field(default_factory=EnvConf)


def register_schemas() -> None:
    """Register the schemas in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="shipyard_schema", node=ShipyardConfig)
