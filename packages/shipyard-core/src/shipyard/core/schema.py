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
    "ChecksConf",
    "ColumnCheckConf",
    "DataConf",
    "DeployConf",
    "EarlyStoppingConf",
    "EnvConf",
    "EvaluateConf",
    "GateConf",
    "OptimConf",
    "PreprocessConf",
    "ProjectConf",
    "ShipyardConfig",
    "SourceConf",
    "SplitConf",
    "ThresholdCheckConf",
    "TrainerConf",
    "register_schemas",
]

TASKS = ("binary", "multiclass", "regression")


@dataclass
class ProjectConf:
    name: str = MISSING
    team: str = MISSING
    task: str = MISSING
    description: str = ""
    max_age: str | None = None  # retrain at least this often, e.g. 30d, 12h, 2w; `status` flags older models


@dataclass
class SourceConf:
    kind: str = MISSING  # csv | parquet | sql | images | sklearn
    path: str | None = None  # csv, parquet, images (a folder with one sub-folder per class)
    name: str | None = None  # sklearn: the bundled data set
    url: str | None = None  # sql: a SQLAlchemy URL (sqlite:///relative/path.db is repo-relative)
    query: str | None = None  # sql: SELECT ...
    table: str | None = None  # sql: a whole table
    fetch: str | None = None  # sklearn:<set> or synthetic:<generator>: writes `path` when missing


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
    kind: str = "stratified"  # random | stratified | group | time | kfold
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    group_column: str | None = None
    time_column: str | None = None
    folds: int = 5
    fold: int = 0


@dataclass
class PreprocessConf:
    numeric: str = "standard"  # standard | minmax | none
    impute: str = "median"  # median | mean | zero (numeric features)
    categorical: str = "onehot"  # onehot | ordinal
    max_categories: int = 50


@dataclass
class ColumnCheckConf:
    dtype: str | None = None  # int | float | number | str | bool | category
    required: bool = True
    allowed: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    unique: bool = False
    max_null_fraction: float | None = None
    mean: list[float] | None = None  # [low, high]
    quantiles: dict[str, list[float]] = field(default_factory=dict)  # {"0.5": [low, high]}
    most_frequent: Any | None = None


@dataclass
class ThresholdCheckConf:
    threshold: float | None = None  # null turns the check off
    action: str = "warn"  # warn | fail


@dataclass
class ChecksConf:
    enabled: bool = True
    columns: dict[str, ColumnCheckConf] = field(default_factory=dict)
    max_null_fraction: float = 1.0
    max_duplicate_fraction: float = 0.0
    class_balance: list[float] | None = None  # [min share, max share] of every class
    correlation: ThresholdCheckConf = field(default_factory=lambda: ThresholdCheckConf(0.98, "warn"))
    leakage: ThresholdCheckConf = field(default_factory=lambda: ThresholdCheckConf(0.99, "fail"))


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
class BaselineConf:
    models: list[str] = field(default_factory=lambda: ["dummy", "linear"])  # dummy | linear
    margin: float = 0.0  # how much better than the best baseline the model must be


@dataclass
class GateConf:
    enabled: bool = True  # false: the gate records "skipped" and every model passes (experiments only)
    metric: str = "auto"  # compared with baselines and production; auto: test/f1, test/accuracy, test/rmse
    thresholds: dict[str, Any] = field(default_factory=dict)  # {metric: {min: x, max: y}}, checked by the gate
    baseline: BaselineConf = field(default_factory=BaselineConf)
    regression_tolerance: float = 0.01  # how much worse than production a new version may be
    reproducibility: bool = False  # retrain with the same seed and require identical metrics


@dataclass
class DeployConf:
    """``targets`` lists what `make deploy` builds; each target's settings live in its own
    section (conf/deploy/<target>/default.yaml), validated by the target's builder."""

    targets: list[str] = field(default_factory=list)
    service: Any = field(default_factory=dict)
    batch: Any = field(default_factory=dict)
    edge: Any = field(default_factory=dict)


@dataclass
class EnvConf:
    name: str = "local"
    dvc_remote: str | None = None


@dataclass
class ShipyardConfig:
    project: ProjectConf = field(default_factory=ProjectConf)
    seed: int = 42
    data: DataConf = field(default_factory=DataConf)
    checks: ChecksConf = field(default_factory=ChecksConf)
    split: SplitConf = field(default_factory=SplitConf)
    preprocess: PreprocessConf = field(default_factory=PreprocessConf)
    model: Any = MISSING
    optim: OptimConf = field(default_factory=OptimConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    evaluate: EvaluateConf = field(default_factory=EvaluateConf)
    gate: GateConf = field(default_factory=GateConf)
    search: Any = None  # conf/search/<name>.yaml, chosen with search=<name>; validated by shipyard.search
    deploy: DeployConf = field(default_factory=DeployConf)
    env: EnvConf = field(default_factory=EnvConf)


def register_schemas() -> None:
    """Register the schemas in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="shipyard_schema", node=ShipyardConfig)
