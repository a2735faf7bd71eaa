"""The structured config: every section of a project's configuration, typed once.

These dataclasses are Hydra structured configs (registered in the ConfigStore as
``shipyard_schema``); the YAML under ``conf/`` only holds what differs from the defaults written
here. Each field carries one line of meaning (``doc``) and, for numbers, its bounds; every closed
set of values is an :class:`~enum.Enum`. :mod:`shipyard.core.compose` validates a composed config
against this schema once (unknown keys, types, allowed values, bounds, then the cross-field rules
in :mod:`shipyard.core.rules`) and hands the typed :class:`ShipyardConfig` to every layer;
``docs/configuration.md`` is generated from it (``make docs``).

Extension point: ``model`` is checked against the parameter dataclass its ``_target_`` registered
by entry point (:mod:`shipyard.core.registry`), so team models bring their own schema.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

__all__ = [
    "Accelerator",
    "BatchConf",
    "ChecksConf",
    "ColumnCheckConf",
    "DataConf",
    "DatasetKind",
    "DatetimePart",
    "DeployConf",
    "DeployTarget",
    "EdgeConf",
    "FeatureRefConf",
    "FeaturesConf",
    "ModelConf",
    "MonitorConf",
    "OptimConf",
    "PredictionLogConf",
    "PreprocessConf",
    "ProjectConf",
    "RolloutConf",
    "RolloutMode",
    "RolloutRulesConf",
    "SearchConf",
    "ServiceConf",
    "ShipyardConfig",
    "SourceConf",
    "SplitConf",
    "SplitKind",
    "StepConf",
    "StepPlacement",
    "Task",
    "TrainerConf",
    "TriggerConf",
    "doc_of",
    "register_schemas",
]


def opt(default: Any = MISSING, doc: str = "", **bounds: float) -> Any:
    """A field with its default (written here once), one line of meaning and numeric bounds
    (``ge``, ``gt``, ``le``, ``lt``; for a list they bound every item)."""
    meta = {"doc": doc, **bounds}
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=default, metadata=meta)
    if isinstance(default, list | dict) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def doc_of(field: dataclasses.Field[Any]) -> str:
    return str(field.metadata.get("doc", ""))


# -- closed sets -------------------------------------------------------------------------------


class Task(StrEnum):
    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"


class SourceKind(StrEnum):
    csv = "csv"
    parquet = "parquet"
    sql = "sql"
    images = "images"
    sklearn = "sklearn"


class SklearnSet(StrEnum):
    breast_cancer = "breast_cancer"
    digits = "digits"
    iris = "iris"
    wine = "wine"
    diabetes = "diabetes"


class SplitKind(StrEnum):
    auto = "auto"
    random = "random"
    stratified = "stratified"
    group = "group"
    time = "time"
    kfold = "kfold"


class DatetimePart(StrEnum):
    """What a date/time column becomes: calendar parts, their cyclical (sin/cos) encodings, or
    the time itself as days since 1970-01-01."""

    year = "year"
    month = "month"
    day = "day"
    dayofweek = "dayofweek"
    dayofyear = "dayofyear"
    hour = "hour"
    minute = "minute"
    timestamp = "timestamp"
    month_sin = "month_sin"
    month_cos = "month_cos"
    dayofweek_sin = "dayofweek_sin"
    dayofweek_cos = "dayofweek_cos"
    dayofyear_sin = "dayofyear_sin"
    dayofyear_cos = "dayofyear_cos"
    hour_sin = "hour_sin"
    hour_cos = "hour_cos"


class Scaling(StrEnum):
    standard = "standard"
    minmax = "minmax"
    none = "none"


class Imputation(StrEnum):
    median = "median"
    mean = "mean"
    zero = "zero"


class Encoding(StrEnum):
    onehot = "onehot"
    ordinal = "ordinal"


class ColumnDtype(StrEnum):
    int = "int"
    float = "float"
    number = "number"
    str = "str"
    bool = "bool"
    category = "category"


class Action(StrEnum):
    warn = "warn"
    fail = "fail"


class ContractAction(StrEnum):
    fail = "fail"
    warn = "warn"
    off = "off"


class TriggerAction(StrEnum):
    alert = "alert"
    retrain = "retrain"


class Mode(StrEnum):
    min = "min"
    max = "max"


class Accelerator(StrEnum):
    cpu = "cpu"
    gpu = "gpu"
    cuda = "cuda"
    auto = "auto"


class Strategy(StrEnum):
    auto = "auto"
    ddp = "ddp"
    ddp_spawn = "ddp_spawn"
    fsdp = "fsdp"


# Lightning's precision names are not identifiers, hence the functional form.
Precision = StrEnum(  # type: ignore[misc]
    "Precision", [(p, p) for p in ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")]
)


class Optimizer(StrEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Baseline(StrEnum):
    dummy = "dummy"
    linear = "linear"


class DeployTarget(StrEnum):
    service = "service"
    batch = "batch"
    edge = "edge"


class Inference(StrEnum):
    auto = "auto"
    inline = "inline"
    thread = "thread"


class RolloutMode(StrEnum):
    shadow = "shadow"
    canary = "canary"


class ExtraFields(StrEnum):
    forbid = "forbid"
    ignore = "ignore"


class BatchEngine(StrEnum):
    local = "local"
    dask = "dask"


class UnknownCategory(StrEnum):
    accept = "accept"
    reject = "reject"


class EdgeVariant(StrEnum):
    fp32 = "fp32"
    int8 = "int8"
    fp16 = "fp16"


class Direction(StrEnum):
    maximize = "maximize"
    minimize = "minimize"


class ParamType(StrEnum):
    int = "int"
    float = "float"
    categorical = "categorical"


class Sampler(StrEnum):
    tpe = "tpe"
    nsgaii = "nsgaii"
    gp = "gp"
    random = "random"
    grid = "grid"


class Pruner(StrEnum):
    none = "none"
    median = "median"
    hyperband = "hyperband"


class StepPlacement(StrEnum):
    data = "data"
    report = "report"


class DatasetKind(StrEnum):
    parquet = "parquet"
    csv = "csv"
    json = "json"
    text = "text"


class Among(StrEnum):
    feasible = "feasible"
    pareto = "pareto"


# -- project and data --------------------------------------------------------------------------


@dataclass
class ProjectConf:
    name: str = opt(MISSING, "the project's name (the file name under conf/project/<team>/; set by Shipyard)")
    team: str = opt(MISSING, "the owning team (the folder under conf/project/; set by Shipyard)")
    task: Task = opt(MISSING, "what the model predicts")
    description: str = opt("", "one line for people: shown in the model card and `make list`")
    max_age: str | None = opt(None, "retrain at least this often, e.g. 30d, 12h, 2w; `status` flags older models")


@dataclass
class SourceConf:
    kind: SourceKind = opt(MISSING, "where the raw data comes from")
    path: str | None = opt(None, "csv, parquet, images: a file (or folder of class sub-folders) inside the repository")
    name: SklearnSet | None = opt(None, "sklearn: a data set bundled with scikit-learn")
    url: str | None = opt(None, "sql: a SQLAlchemy URL (sqlite:///relative/path.db is relative to the repository)")
    query: str | None = opt(None, "sql: a SELECT statement")
    table: str | None = opt(None, "sql: a whole table")
    fetch: str | None = opt(None, "sklearn:<set> or synthetic:<generator>: writes `path` when it is missing")


@dataclass
class DataConf:
    source: SourceConf = opt(SourceConf, "the raw data source")
    target: str = opt(MISSING, "the label column")
    key: str | None = opt(None, "a unique row key column (kept out of the features; generated when null)")
    features: list[str] | None = opt(None, "the feature columns; null: every column but target, key and drop")
    drop: list[str] = opt([], "columns never used as features")
    drop_unlabeled: bool = opt(False, "drop rows without a label and report how many; false: such rows stop the run")
    datetime: list[str] = opt(
        [], "date/time columns (ISO 8601): expanded into datetime_parts; found ones are expanded with a note"
    )
    datetime_parts: list[DatetimePart] = opt(
        [
            DatetimePart.year,
            DatetimePart.month,
            DatetimePart.dayofweek,
            DatetimePart.month_sin,
            DatetimePart.month_cos,
            DatetimePart.dayofweek_sin,
            DatetimePart.dayofweek_cos,
        ],
        "the numeric features each date/time column becomes (never one-hot date strings)",
    )
    text: list[str] = opt(
        [], "free-text columns: left out of the features quietly (found ones are left out with a warning)"
    )
    shape: list[int] | None = opt(None, "image data: [channels, height, width] of one example", ge=1)


@dataclass
class ColumnCheckConf:
    dtype: ColumnDtype | None = opt(None, "the column's type")
    required: bool = opt(True, "the column must exist")
    allowed: list[Any] | None = opt(None, "the only values allowed")
    min: float | None = opt(None, "smallest value allowed")
    max: float | None = opt(None, "largest value allowed")
    unique: bool = opt(False, "no value twice")
    max_null_fraction: float | None = opt(None, "largest share of empty cells", ge=0, le=1)
    mean: list[float] | None = opt(None, "[low, high] bounds of the column's mean")
    # list[Any]: OmegaConf cannot type the items of a list inside a dict (ints are refused as
    # floats there); the rules check that each bound pair holds two numbers.
    quantiles: dict[str, list[Any]] = opt({}, 'bounds of quantiles, e.g. {"0.5": [low, high]}')
    most_frequent: Any = opt(None, "the value that must be the most frequent")


@dataclass
class ThresholdCheckConf:
    threshold: float | None = opt(None, "the threshold; null turns the check off", ge=0, le=1)
    action: Action = opt(Action.warn, "what crossing it does")


@dataclass
class ContractLimitsConf:
    new_categories: float = opt(
        0.2,
        "a categorical's values unseen in training, as a share of its training vocabulary, beyond which it breaks",
        ge=0,
    )
    range_margin: float = opt(
        1.0, "a number beyond the training range widened by this many range widths on either side breaks it", ge=0
    )


@dataclass
class ChecksConf:
    enabled: bool = opt(True, "false skips every data check (the report says so)")
    contract: ContractAction = opt(
        ContractAction.fail, "new data against the production (else latest) version's data contract, before training"
    )
    contract_columns: dict[str, ContractAction] = opt({}, "per-column overrides of checks.contract")
    contract_limits: ContractLimitsConf = opt(
        ContractLimitsConf, "how far a column may move before it breaks the contract"
    )
    columns: dict[str, ColumnCheckConf] = opt({}, "rules per column")
    max_null_fraction: float = opt(0.5, "any column more empty than this fails", ge=0, le=1)
    max_duplicate_fraction: float = opt(0.01, "largest share of identical rows (the key excluded)", ge=0, le=1)
    class_balance: list[float] | None = opt(
        [0.01, 0.99], "[min share, max share] every class must have (classification)", ge=0, le=1
    )
    correlation: ThresholdCheckConf = opt(
        ThresholdCheckConf(0.98, Action.warn), "near-duplicate feature pairs (|Pearson r| above threshold)"
    )
    leakage: ThresholdCheckConf = opt(
        ThresholdCheckConf(0.99, Action.fail), "one feature that alone predicts the label (cross-validated score)"
    )
    split: ThresholdCheckConf = opt(
        ThresholdCheckConf(0.15, Action.warn),
        "label mix across splits: a class missing from validation or test, or a class share that differs from "
        "the training split's by more than threshold",
    )


@dataclass
class SplitConf:
    kind: SplitKind = opt(
        SplitKind.auto, "how rows are assigned to train, validation and test; auto: stratified, random for regression"
    )
    train: float | None = opt(0.7, "training fraction (holdout kinds; null for kfold)", gt=0, lt=1)
    val: float | None = opt(0.15, "validation fraction (holdout kinds; null for kfold)", gt=0, lt=1)
    test: float = opt(0.15, "test fraction, held out first", gt=0, lt=1)
    group_column: str | None = opt(None, "group: rows sharing its value stay in one split")
    time_column: str | None = opt(None, "time: the column ordering train before validation before test")
    folds: int = opt(5, "kfold: the number of folds k of the non-test rows", ge=2)
    fold: int = opt(0, "kfold: which fold (0..k-1) is validation", ge=0)


@dataclass
class PreprocessConf:
    numeric: Scaling = opt(Scaling.standard, "scaling of numeric features, fitted on the training split")
    impute: Imputation = opt(Imputation.median, "what fills a missing number")
    categorical: Encoding = opt(Encoding.onehot, "encoding of categorical features")
    max_categories: int = opt(50, "a text column with more distinct values is refused as a categorical", ge=1)


# -- model and training ------------------------------------------------------------------------


@dataclass
class ModelConf:
    """The model after validation: its registered ``_target_`` and its typed parameters."""

    target: str
    params: Any  # an instance of the parameter dataclass the target registered

    def as_dict(self) -> dict[str, Any]:
        return {"_target_": self.target, **dataclasses.asdict(self.params)}


@dataclass
class EarlyStoppingConf:
    enabled: bool = opt(True, "stop when the monitored metric stops improving")
    monitor: str = opt("val/loss", "the metric watched")
    mode: Mode = opt(Mode.min, "min: lower is better; max: higher is better")
    patience: int = opt(5, "epochs without improvement before stopping", ge=0)
    min_delta: float = opt(0.0, "the smallest change that counts as an improvement", ge=0)


@dataclass
class TrainerConf:
    accelerator: Accelerator = opt(Accelerator.cpu, "cpu, or gpu/cuda (refused up front without CUDA)")
    devices: Any = opt(1, "devices per node: a number, a list of GPU ids, or auto")
    num_nodes: int = opt(1, "machines taking part (DDP)", ge=1)
    strategy: Strategy = opt(Strategy.auto, "Lightning's distribution strategy")
    precision: Precision = opt(Precision["32-true"], "numeric precision")
    max_epochs: int = opt(30, "at most this many epochs", ge=1)
    min_epochs: int = opt(1, "at least this many epochs, early stopping or not", ge=1)
    batch_size: int = opt(64, "rows per training step", ge=1)
    gradient_clip_val: float | None = opt(None, "clip gradients to this norm; null: no clipping", gt=0)
    deterministic: bool = opt(True, "deterministic algorithms: same seed, same weights")
    progress_bar: bool = opt(True, "Lightning's progress bar")
    log_every_n_steps: int = opt(5, "training steps between logged losses", ge=1)
    early_stopping: EarlyStoppingConf = opt(EarlyStoppingConf, "early stopping")


@dataclass
class OptimConf:
    name: Optimizer = opt(Optimizer.adamw, "the optimiser")
    lr: float = opt(1e-3, "learning rate", gt=0)
    weight_decay: float = opt(0.0, "weight decay", ge=0)


@dataclass
class EvaluateConf:
    latency_batch_sizes: list[int] = opt([1, 256], "batch sizes whose per-row latency is measured", ge=1)
    latency_repeats: int = opt(50, "timed repeats per batch size", ge=1)
    latency_warmup: int = opt(5, "untimed repeats first", ge=0)


@dataclass
class BoundsConf:
    min: float | None = opt(None, "the metric must be at least this")
    max: float | None = opt(None, "the metric must be at most this")


@dataclass
class BaselineConf:
    models: list[Baseline] = opt([Baseline.dummy, Baseline.linear], "scikit-learn baselines trained on the same split")
    margin: float = opt(0.0, "how much better than the best baseline the model must be (negative: may trail it)")


@dataclass
class GateConf:
    enabled: bool = opt(True, "false: the gate records skipped and nothing can be promoted (experiments only)")
    metric: str = opt(
        "auto",
        "compared with baselines and production; auto: test/f1 (binary), test/accuracy (multiclass), test/rmse, "
        "or test/balanced_accuracy when the smallest class is rare (see imbalance)",
    )
    imbalance: float = opt(
        0.5,
        "auto picks test/balanced_accuracy when the smallest class's share of the training split is below this "
        "fraction of an even share (1 / classes)",
        ge=0,
        le=1,
    )
    thresholds: dict[str, BoundsConf] = opt({}, "bounds on any metric the evaluate stage produces")
    baseline: BaselineConf = opt(BaselineConf, "baselines the model must beat")
    regression_tolerance: float = opt(0.01, "how much worse than production a new version may be", ge=0)
    reproducibility: bool = opt(False, "retrain with the same seed and require identical metrics")


# -- search ------------------------------------------------------------------------------------


@dataclass
class ObjectiveConf:
    metric: str = opt(MISSING, "a validation metric, latency, size, or train time")
    direction: Direction = opt(Direction.maximize, "")


@dataclass
class ParamConf:
    type: ParamType = opt(MISSING, "int, float or categorical")
    low: float | None = opt(None, "lower bound (int, float)")
    high: float | None = opt(None, "upper bound (int, float)")
    step: float | None = opt(None, "grid step (int, float)", gt=0)
    log: bool = opt(False, "sample on a log scale (int, float)")
    choices: list[Any] | None = opt(None, "the values (categorical); for model or trainer: config group options")
    when: dict[str, Any] = opt({}, "sample only when earlier keys have these values")


@dataclass
class SamplerConf:
    name: Sampler = opt(Sampler.tpe, "Optuna sampler")
    seed: int | None = opt(None, "null: the project's seed")
    params: dict[str, Any] = opt({}, "keyword arguments of the Optuna sampler")


@dataclass
class PrunerConf:
    name: Pruner = opt(Pruner.none, "Optuna pruner (single-objective searches only)")
    params: dict[str, Any] = opt({}, "keyword arguments of the Optuna pruner")


@dataclass
class HeartbeatConf:
    interval: int = opt(60, "seconds between the heartbeats a running trial writes to a database storage", ge=1)
    grace_period: int = opt(
        180, "a trial silent this long lost its worker: it is failed and its parameters run again", ge=1
    )


@dataclass
class SelectConf:
    metric: str | None = opt(None, "null: the first objective")
    direction: Direction | None = opt(None, "null: that objective's direction")
    among: Among = opt(Among.feasible, "feasible: meets every constraint; pareto: and on the Pareto front")


@dataclass
class SearchConf:
    name: str = opt("search", "the search's name (default: its file under conf/search/)")
    objectives: list[ObjectiveConf] = opt(MISSING, "what the search optimises, one or more")
    constraints: list[str] = opt([], 'hard limits such as "latency_p95_ms <= 5" or "val/recall >= 0.9"')
    space: dict[str, Any] = opt(MISSING, "{config key: parameter}, keys under model., optim., trainer.")
    fixed: dict[str, Any] = opt({}, "overrides every trial gets, e.g. trainer.max_epochs")
    sampler: SamplerConf = opt(SamplerConf, "")
    pruner: PrunerConf = opt(PrunerConf, "")
    n_trials: int | None = opt(20, "trials in total, over every worker", ge=1)
    timeout: float | None = opt(None, "seconds; no trial starts after it", gt=0)
    storage: str = opt("auto", "auto | memory | sqlite | journal | journal:<path> | a database URL")
    heartbeat: HeartbeatConf = opt(HeartbeatConf, "database URL storages: how a dead worker's trial is found")
    study_name: str | None = opt(None, "null: <team>/<name>/<search name>")
    select: SelectConf = opt(SelectConf, "which trial becomes the result")


# -- a team's own steps and shared features -------------------------------------------------------


@dataclass
class StepConf:
    function: str = opt(MISSING, "a registered step function (entry point group shipyard.steps)")
    placement: StepPlacement = opt(
        StepPlacement.data,
        "data: after check (and the feature join), before split; its first output is the table split reads. "
        "report: after evaluate",
    )
    inputs: list[str] = opt([], "datasets it reads: the pipeline's (dataset, metrics, ...) or an earlier step's")
    outputs: dict[str, DatasetKind] = opt(MISSING, "its new datasets and kinds; a data step's first is a parquet table")
    params: Any = opt({}, "its parameters, checked against the dataclass its function registered")


@dataclass
class FeatureRefConf:
    view: str = opt(MISSING, "a feature view declared under conf/features/ (`shipyard features list`)")
    version: int = opt(MISSING, "the view's version", ge=1)
    features: list[str] | None = opt(None, "the view's features to join; null: all of them")


@dataclass
class FeaturesConf:
    views: list[FeatureRefConf] = opt([], "shared feature views joined onto the label rows, point in time")
    event_time: str | None = opt(None, "the label rows' time column: a feature value comes from at or before it")
    online_store: str | None = opt(
        None,
        "the online store the service and batch job look features up in: a SQLAlchemy URL; null: an embedded "
        "SQLite file (features.db) inside each target. Materialised by `make deploy` and "
        "`shipyard features materialize`",
    )


# -- deployment --------------------------------------------------------------------------------


@dataclass
class BatchingConf:
    enabled: bool = opt(True, "adaptive batching of concurrent requests (BentoML's dispatcher)")
    max_batch_size: int = opt(64, "rows per forward pass", ge=2)
    max_latency_ms: int = opt(1000, "queueing budget; a request that cannot be answered within it gets 503", ge=1)


@dataclass
class RangeCheckConf:
    enabled: bool = opt(True, "numbers must lie in the training range widened by margin")
    margin: float = opt(1.0, "fraction of the training range added on each side", ge=0, le=100)


@dataclass
class AuthConf:
    enabled: bool = opt(False, "an API key is required on every endpoint but probes, metrics and docs")
    env_var: str = opt("SHIPYARD_API_KEY", "the environment variable holding the key (never a file)")
    min_length: int = opt(16, "shortest key accepted", ge=1)


@dataclass
class BentoConf:
    build: bool = opt(True, "build the Bento into the local BentoML store (for `bentoml containerize`)")


@dataclass
class KubernetesConf:
    replicas: int = opt(2, "pods", ge=1)
    cpu: str = opt("1", "CPU requested per pod")
    memory: str = opt("1Gi", "memory requested and limit per pod")
    secret: str | None = opt(None, "Secret holding the API key (key api-key); null: <name>-api-key")


@dataclass
class RolloutRulesConf:
    min_agreement: float = opt(0.95, "share of rows on which candidate and production must agree", ge=0, le=1)
    max_metric_drop: float | None = opt(
        None, "how far the candidate's live metric may trail production's; null: gate.regression_tolerance", ge=0
    )
    min_rows: int = opt(100, "fewer compared rows: the verdict is 'too little traffic', not a pass", ge=1)


@dataclass
class RolloutConf:
    mode: RolloutMode | None = opt(None, "shadow or canary: the service carries production and one candidate")
    candidate: str | None = opt(None, "the candidate version (e.g. v3); it must have passed its gate")
    share: float = opt(0.1, "canary: the share of keys the candidate answers", gt=0, lt=1)
    sticky_key: str | None = opt(None, "canary: the row field whose hash picks the model; null: data.key")
    sticky_header: str | None = opt(None, "canary: a request header (e.g. X-Client-Id) instead of the row key")
    shadow_queue: int = opt(64, "shadow: batches waiting for the candidate; beyond it they are dropped", ge=1)
    compare: RolloutRulesConf = opt(RolloutRulesConf, "the verdict of `shipyard compare`")


@dataclass
class ServiceConf:
    name: str | None = opt(None, "service and Bento name; null: <team>-<name>")
    host: str = opt("127.0.0.1", "where `make serve` listens (the container listens on 0.0.0.0:3000)")
    port: int = opt(3000, "", ge=1, le=65535)
    workers: Any = opt(1, "API worker processes: a number or cpu_count")
    torch_threads: int | None = opt(1, "intra-op threads per worker; null: torch's default", ge=1)
    inference: Inference = opt(Inference.auto, "run each batch on the event loop or in a thread (auto: by its cost)")
    timeout_s: float = opt(30.0, "a request running longer is answered 504", gt=0)
    max_concurrency: int | None = opt(None, "requests in flight before 429; null: no limit", ge=1)
    batching: BatchingConf = opt(BatchingConf, "")
    max_rows_per_request: int = opt(1000, "more rows: 400 naming `rows`", ge=1)
    max_request_bytes: int = opt(1048576, "larger bodies: 413, before any parsing", ge=1024)
    range_check: RangeCheckConf = opt(RangeCheckConf, "")
    unknown_categories: bool = opt(False, "true: an unseen category is accepted and encoded as unseen")
    extra_fields: ExtraFields = opt(ExtraFields.forbid, "fields in a row that are not features")
    auth: AuthConf = opt(AuthConf, "")
    metrics: bool = opt(True, "BentoML's Prometheus metrics at /metrics")
    tracing: bool = opt(False, "BentoML's OpenTelemetry spans per request")
    access_log: bool = opt(False, "")
    bento: BentoConf = opt(BentoConf, "")
    kubernetes: KubernetesConf = opt(KubernetesConf, "")
    rollout: RolloutConf = opt(RolloutConf, "a shadow or canary rollout of a candidate beside production")


@dataclass
class DaskConf:
    scheduler: str | None = opt(None, "address of a running scheduler (tcp://host:8786); null: a LocalCluster here")
    n_workers: int = opt(2, "LocalCluster worker processes, one thread each", ge=1)
    parts_per_task: int = opt(4, "parts one Dask task scores in sequence", ge=1)


@dataclass
class RejectConf:
    max_fraction: float = opt(0.01, "the job fails when more rows than this break the feature schema", ge=0, le=1)
    range_margin: float | None = opt(1.0, "reject numbers beyond the training range widened by this many widths", ge=0)
    unknown_category: UnknownCategory = opt(
        UnknownCategory.reject, "an unseen category: reject the row (as the service does) or encode it as all zeros"
    )


@dataclass
class ScheduleConf:
    cron: str = opt("0 2 * * *", "the job's cron line and Airflow schedule (five fields or @daily)")
    airflow: bool = opt(True, "write airflow_dag.py beside the job")


@dataclass
class BatchConf:
    chunk_size: int = opt(10000, "rows per part: memory is bounded by this, not by the input size", ge=1)
    engine: BatchEngine = opt(BatchEngine.local, "local, or dask (partitions scored by Dask workers)")
    dask: DaskConf = opt(DaskConf, "")
    key: str | None = opt(None, "row key column; null: the project's data.key (or generated row numbers)")
    passthrough: list[str] = opt([], "input columns copied unchanged into the output")
    rejects: RejectConf = opt(RejectConf, "")
    input: str | None = opt(None, "default INPUT; null: the project's data source")
    output: str | None = opt(None, "default OUTPUT; null: data/<team>/<name>/07_model_output/batch/{date}")
    shadow: str | None = opt(
        None, "a candidate version (e.g. v3, gate passed) scored beside production on every row: candidate_* columns"
    )
    schedule: ScheduleConf = opt(ScheduleConf, "")


@dataclass
class ToleranceConf:
    max_abs_diff: float | None = opt(None, "largest |LiteRT - torch| on the model's output over the test split", ge=0)
    max_metric_delta: float | None = opt(None, "largest |metric(LiteRT) - metric(torch)|", ge=0)


@dataclass
class EdgeLatencyConf:
    warmup: int = opt(20, "", ge=0)
    repeats: int = opt(200, "", ge=1)
    max_seconds: float = opt(2.0, "per side and variant: stops early on a slow machine", gt=0)
    threads: int = opt(1, "LiteRT interpreter threads", ge=1)


@dataclass
class EdgeConf:
    variants: list[EdgeVariant] = opt(
        [EdgeVariant.fp32, EdgeVariant.int8, EdgeVariant.fp16], "variants to build (fp32 is always built)"
    )
    metric: str = opt("auto", "the metric compared, torch against each variant; auto: accuracy or r2")
    tolerance: dict[str, ToleranceConf] = opt(
        {
            "fp32": ToleranceConf(max_abs_diff=1e-4),
            "int8": ToleranceConf(max_metric_delta=0.02),
            "fp16": ToleranceConf(max_metric_delta=0.01),
        },
        "the parity gate per variant; null switches a check off",
    )
    keep_tensor_names: bool = opt(False, "keep litert-torch's tensor names (debug information) in the file")
    latency: EdgeLatencyConf = opt(EdgeLatencyConf, "LiteRT against torch at batch 1 (reported, not gated)")


@dataclass
class DeployConf:
    targets: list[DeployTarget] = opt([], "what `make deploy` builds")
    service: ServiceConf = opt(ServiceConf, "the BentoML service")
    batch: BatchConf = opt(BatchConf, "the batch job")
    edge: EdgeConf = opt(EdgeConf, "the LiteRT edge models")


# -- monitoring --------------------------------------------------------------------------------


@dataclass
class PredictionLogConf:
    enabled: bool = opt(True, "the service and the batch job record every scored row they sample")
    sample_rate: float = opt(1.0, "share of scored rows recorded (a seeded draw per row)", ge=0, le=1)
    path: str | None = opt(
        None, "folder of Parquet files, repository-relative; null: data/<team>/<name>/09_monitoring/predictions"
    )
    url: str | None = opt(None, "<SQLAlchemy URL>?table=NAME: record into a SQL table instead of files")
    flush_rows: int = opt(5000, "rows per written file (or transaction)", ge=1)
    flush_seconds: float = opt(5.0, "rows never wait longer than this for the writer", gt=0)
    queue_rows: int = opt(100000, "rows the service holds for its writer; beyond it rows are dropped and counted", ge=1)


@dataclass
class DriftConf:
    alpha: float = opt(0.05, "false-discovery rate over every test of a window (Benjamini-Hochberg)", gt=0, lt=1)
    wasserstein: float = opt(0.05, "effect floor of a number: Wasserstein distance in training std devs", ge=0)
    jensenshannon: float = opt(0.05, "effect floor of a category or class: Jensen-Shannon distance", ge=0, le=1)
    missing: float = opt(0.05, "effect floor of a missing rate: absolute change of the empty share", ge=0, le=1)
    min_rows: int = opt(100, "a window with fewer rows is reported as too small to judge", ge=1)


@dataclass
class TriggerConf:
    drift_share: float | None = opt(0.3, "fire when at least this share of features drifted ...", gt=0, le=1)
    windows: int = opt(2, "... in this many consecutive windows", ge=1)
    metric: str | None = opt(None, "a live metric (labels joined by key), e.g. accuracy; null: none")
    max_drop: float | None = opt(None, "fire when the live metric is this far below validation", gt=0)
    max_age: str | None = opt(None, "fire when production is older than this (e.g. 30d); null: project.max_age")
    cooldown: str = opt("1d", "after firing, wait this long before firing again (h, d or w)")
    action: TriggerAction = opt(TriggerAction.alert, "alert: report only; retrain: refresh the data and train")
    auto_promote: bool = opt(False, "promote the retrained candidate if it passes its gate and the no-regression check")


@dataclass
class RetrainConf:
    refresh: str | None = opt(
        None, "a shell command, run from the repository root, that refreshes the raw data source before retraining"
    )


@dataclass
class MonitorScheduleConf:
    cron: str = opt("0 3 * * *", "the monitoring run's cron line and Airflow schedule")
    window: str = opt("1d", "each scheduled run judges the rows logged in this span before it (h, d or w)")
    airflow: bool = opt(True, "write airflow_dag.py beside the cron line")


@dataclass
class MonitorConf:
    bins: int = opt(20, "quantile bins per numeric feature in the reference profile", ge=2, le=1000)
    log: PredictionLogConf = opt(PredictionLogConf, "prediction logs of the service and the batch job")
    drift: DriftConf = opt(DriftConf, "when a feature, the prediction or the missing rate has drifted")
    trigger: TriggerConf = opt(TriggerConf, "the rule that alerts or retrains")
    retrain: RetrainConf = opt(RetrainConf, "what a retrain does before training")
    schedule: MonitorScheduleConf = opt(MonitorScheduleConf, "the scheduled monitoring run")


@dataclass
class EnvConf:
    name: str = opt("local", "the environment (conf/env/<name>.yaml)")
    dvc_remote: str | None = opt(None, "the DVC remote to push and pull data")


@dataclass
class ShipyardConfig:
    project: ProjectConf = opt(ProjectConf, "")
    seed: int = opt(42, "one seed for splits, initialisation, shuffling and dropout", ge=0)
    data: DataConf = opt(DataConf, "")
    checks: ChecksConf = opt(ChecksConf, "")
    split: SplitConf = opt(SplitConf, "")
    preprocess: PreprocessConf = opt(PreprocessConf, "")
    features: FeaturesConf = opt(FeaturesConf, "shared feature views (conf/features/) joined before the split")
    steps: dict[str, StepConf] = opt({}, "a team's own pipeline steps by name, in order: data steps, then report steps")
    model: Any = opt(MISSING, "a registered model: _target_ plus its parameters (model=mlp, model=cnn)")
    optim: OptimConf = opt(OptimConf, "")
    trainer: TrainerConf = opt(TrainerConf, "")
    evaluate: EvaluateConf = opt(EvaluateConf, "")
    gate: GateConf = opt(GateConf, "")
    search: SearchConf | None = opt(None, "an Optuna search, chosen with search=<name>")
    deploy: DeployConf = opt(DeployConf, "")
    monitor: MonitorConf = opt(MonitorConf, "prediction logs, drift monitoring and the retraining trigger")
    env: EnvConf = opt(EnvConf, "")


def register_schemas() -> None:
    """Register the schema in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="shipyard_schema", node=ShipyardConfig)
