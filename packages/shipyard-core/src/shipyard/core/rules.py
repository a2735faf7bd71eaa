"""The rules a typed config must meet beyond its types: every cross-field rule, in one place.

:func:`check` runs after the schema has accepted the shape, types and allowed values of every
key (:mod:`shipyard.core.compose`). It checks each field's declared bounds, then the rules that
tie fields together (split fractions, epochs, metric names per task, the search space, the
deployment settings). Every failure is one :class:`ConfigError` naming the key, the bad value,
what is allowed and, where it helps, the closest valid spelling.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.core.errors import ConfigError, did_you_mean
from shipyard.core.schema import (
    BoundsConf,
    ChecksConf,
    ColumnCheckConf,
    DataConf,
    EdgeConf,
    EdgeVariant,
    MonitorScheduleConf,
    ParamConf,
    ParamType,
    PredictionLogConf,
    Pruner,
    RolloutConf,
    RolloutMode,
    ScheduleConf,
    SearchConf,
    ServiceConf,
    ShipyardConfig,
    SourceConf,
    SourceKind,
    SplitConf,
    SplitKind,
    StepPlacement,
    TrainerConf,
    TriggerConf,
)

__all__ = [
    "BUILTIN_STAGES",
    "METRICS",
    "SEARCHABLE",
    "SPLIT_USUAL",
    "STEP_INPUTS",
    "Constraint",
    "check",
    "check_bounds",
    "known_metrics",
    "parse_constraint",
    "parse_duration",
    "split_kind",
    "split_warnings",
]

# The quality metrics the evaluate stage reports per task (computed by shipyard.train.metrics).
# Multiclass f1 is the macro average; roc_auc is the macro one-vs-rest average over the classes
# present in the split (roc_auc_classes says how many).
METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "f1_macro", "roc_auc"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1", "roc_auc", "roc_auc_classes"),
    "regression": ("rmse", "mae", "r2"),
}
# Metrics the train stage reports beside the evaluate stage's.
TRAIN_METRICS = ("train_seconds", "epochs")
# A search trial trains in-process on the project's fitted split and preprocessing, so it may
# change the model, the optimiser and the trainer only.
SEARCHABLE = ("model", "optim", "trainer")
# Outside these ranges a split fraction is legal but unusual: composing warns.
SPLIT_USUAL = {"train": (0.60, 0.95), "val": (0.03, 0.20), "test": (0.02, 0.20)}
# The built-in stages (shipyard.engine.pipeline.NODES; join_features only with features.views) and
# the pipeline datasets a team's step may read, by placement (a test keeps these and the engine's
# table the same).
BUILTIN_STAGES = ("ingest", "check", "join_features", "split", "fit_preprocessing", "train", "evaluate", "gate")
STEP_INPUTS: dict[str, tuple[str, ...]] = {
    "data": ("dataset", "check_report", "training_frame"),
    "report": (
        "dataset",
        "check_report",
        "training_frame",
        "train_split",
        "val_split",
        "test_split",
        "split_manifest",
        "preprocessor",
        "model_bundle",
        "train_report",
        "learning_curve",
        "metrics",
        "confusion",
        "gate_report",
    ),
}
_STEP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_NAME = re.compile(r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$")
_ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_VERSION = re.compile(r"^v?\d+(\.0\.0)?$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")
_CRON_ALIASES = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight")
_CONSTRAINT = re.compile(r"^\s*(?P<metric>[A-Za-z_][\w/.\-]*)\s*(?P<op><=|>=)\s*(?P<bound>\S+)\s*$")


def _err(key: str, message: str, value: Any, fix: str) -> ConfigError:
    return ConfigError(message, key=key, value=value, fix=fix)


# -- bounds and section rules: everything a section can check on its own ----------------------

_BOUNDS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "ge": (lambda v, b: v >= b, "at least"),
    "gt": (lambda v, b: v > b, "above"),
    "le": (lambda v, b: v <= b, "at most"),
    "lt": (lambda v, b: v < b, "below"),
}


def _sections(obj: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every dataclass in the tree with its key prefix (``"deploy.service."``)."""
    yield prefix, obj
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            yield from _sections(value, f"{key}.")
        elif isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, item in items:
                if dataclasses.is_dataclass(item):
                    yield from _sections(item, f"{key}.{name}." if isinstance(value, dict) else f"{key}[{name}].")


def _bounds(obj: Any, prefix: str) -> None:
    for field in dataclasses.fields(obj):
        rules = [(name, field.metadata[name]) for name in _BOUNDS if name in field.metadata]
        value, key = getattr(obj, field.name), f"{prefix}{field.name}"
        if not rules or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            for name, bound in rules:
                if not (math.isfinite(item) and _BOUNDS[name][0](item, bound)):
                    allowed = " and ".join(f"{_BOUNDS[n][1]} {b:g}" for n, b in rules)
                    raise _err(key, f"{key} must be {allowed}", value, f"set {key} to a number {allowed}")


def check_bounds(obj: Any, prefix: str = "") -> None:
    """Every field's declared bounds (``ge``/``gt``/``le``/``lt`` in its metadata) and every
    section's own rules (:data:`SECTION_RULES`), for a whole config or one section of it."""
    for key, section in _sections(obj, prefix):
        _bounds(section, key)
        rule = SECTION_RULES.get(type(section))
        if rule is not None:
            rule(section, key)


# -- metrics -------------------------------------------------------------------------------------


def known_metrics(cfg: ShipyardConfig, prefixes: tuple[str, ...] = ("val/", "test/")) -> list[str]:
    """Every metric a training of ``cfg`` reports: quality per split, latency, size, train time."""
    names = [f"{p}{m}" for p in prefixes for m in METRICS[str(cfg.project.task)]]
    for batch in cfg.evaluate.latency_batch_sizes:
        suffix = "" if int(batch) == 1 else f"_b{int(batch)}"
        names += [f"latency_p50_ms{suffix}", f"latency_p95_ms{suffix}"]
    return [*names, "model_size_bytes", "params", *TRAIN_METRICS]


def _metric(key: str, name: str, known: list[str], what: str = "a metric the pipeline reports") -> None:
    if name not in known:
        raise _err(
            key,
            f"{key} names {name!r}, which is not {what}{did_you_mean(name, known)}",
            name,
            "use one of: " + ", ".join(known),
        )


# -- section rules (run by check_bounds wherever a section is checked) ------------------------


def split_kind(split: SplitConf, task: str) -> SplitKind:
    """The split that runs: ``auto`` keeps class proportions for classification and draws at
    random for regression (which has no classes to keep)."""
    if split.kind != SplitKind.auto:
        return split.kind
    return SplitKind.random if str(task) == "regression" else SplitKind.stratified


def split_warnings(cfg: ShipyardConfig) -> list[str]:
    split = cfg.split
    if split.kind == SplitKind.kfold:
        return []
    out = []
    for name, (low, high) in SPLIT_USUAL.items():
        value = float(getattr(split, name))
        if not low <= value <= high:
            out.append(f"split.{name}={value:g} is outside the usual {low:.0%}-{high:.0%}")
    return out


def _split(split: SplitConf, p: str) -> None:
    if split.kind == SplitKind.kfold:
        for name in ("train", "val"):
            if getattr(split, name) is not None:
                raise _err(
                    f"{p}{name}",
                    f"a kfold split takes no {name} fraction: validation is fold `fold` of `folds` of the "
                    "non-test rows",
                    getattr(split, name),
                    f"remove {p}{name} (or set it to null) and choose {p}folds and {p}test",
                )
        if split.fold >= split.folds:
            raise _err(f"{p}fold", f"{p}fold must be below {p}folds ({split.folds})", split.fold, "use 0 .. folds-1")
    else:
        missing = [n for n in ("train", "val") if getattr(split, n) is None]
        if missing:
            raise _err(
                f"{p}{missing[0]}",
                f"a {split.kind} split needs {p}{missing[0]}",
                None,
                f"set {p}train, {p}val and {p}test so they add up to 1",
            )
        total = float(split.train or 0) + float(split.val or 0) + split.test
        if abs(total - 1.0) > 1e-6:
            raise _err(
                p.rstrip("."),
                f"split fractions add up to {total:g}, not 1",
                {"train": split.train, "val": split.val, "test": split.test},
                f"make {p}train + {p}val + {p}test equal 1",
            )
    for kind, column in ((SplitKind.group, "group_column"), (SplitKind.time, "time_column")):
        if split.kind == kind and not getattr(split, column):
            raise _err(f"{p}{column}", f"a {kind} split needs {p}{column}", None, f"set {p}{column}")


_SOURCE_NEEDS = {
    SourceKind.csv: "path",
    SourceKind.parquet: "path",
    SourceKind.images: "path",
    SourceKind.sklearn: "name",
    SourceKind.sql: "url",
}


def _source(source: SourceConf, p: str) -> None:
    name = _SOURCE_NEEDS[source.kind]
    if not getattr(source, name):
        raise _err(f"{p}{name}", f"a {source.kind} source needs {p}{name}", None, f"set {p}{name}")
    if source.kind == SourceKind.sql and bool(source.query) == bool(source.table):
        raise _err(
            f"{p}query",
            "a sql source takes exactly one of query and table",
            {"query": source.query, "table": source.table},
            f"set {p}table to read a whole table, or {p}query for a SELECT",
        )
    if source.path:
        path = PurePosixPath(source.path.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts:
            raise _err(
                f"{p}path",
                f"{p}path must be a path inside the repository",
                source.path,
                "copy or link the data under data/<team>/<name>/01_raw/ and give the repository-relative path "
                "(track it with `dvc add`)",
            )


def _data(data: DataConf, p: str) -> None:
    shape = data.shape
    if data.source.kind == SourceKind.images and (not shape or len(shape) != 3 or shape[0] not in (1, 3)):
        raise _err(
            f"{p}shape",
            "an image folder needs data.shape [channels (1 or 3), height, width]",
            shape,
            f"set {p}shape, e.g. [1, 28, 28] for grey or [3, 32, 32] for colour images",
        )


def _trainer(trainer: TrainerConf, p: str) -> None:
    if trainer.min_epochs > trainer.max_epochs:
        raise _err(
            f"{p}min_epochs",
            f"{p}min_epochs ({trainer.min_epochs}) is above {p}max_epochs ({trainer.max_epochs})",
            trainer.min_epochs,
            f"lower {p}min_epochs or raise {p}max_epochs",
        )
    devices = trainer.devices
    ok = (
        devices == "auto"
        or devices == -1
        or (isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1)
        or (isinstance(devices, list) and devices and all(isinstance(d, int) and d >= 0 for d in devices))
    )
    if not ok:
        raise _err(
            f"{p}devices",
            f"{p}devices must be a count >= 1, -1, auto, or a list of GPU ids",
            devices,
            f"set {p}devices to e.g. 1 (trainer=ddp runs 2 CPU processes)",
        )


def _metric_bounds(bounds: BoundsConf, p: str) -> None:
    key = p.rstrip(".")
    if bounds.min is None and bounds.max is None:
        raise _err(key, f"{key} sets neither min nor max", None, f"write {key.rsplit('.', 1)[-1]}: {{min: 0.9}}")
    if bounds.min is not None and bounds.max is not None and bounds.min > bounds.max:
        raise _err(key, f"{key}: min is above max", {"min": bounds.min, "max": bounds.max}, "swap min and max")


def _pair(key: str, pair: list[Any] | None) -> None:
    numbers = pair is None or all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
    if pair is not None and (not numbers or len(pair) != 2 or pair[0] > pair[1]):
        raise _err(key, f"{key} must be [low, high] with low <= high", pair, "write two numbers, e.g. [0.1, 0.9]")


def _checks(checks: ChecksConf, p: str) -> None:
    _pair(f"{p}class_balance", checks.class_balance)


def _column(rule: ColumnCheckConf, p: str) -> None:
    key = p.rstrip(".")
    if rule.min is not None and rule.max is not None and rule.min > rule.max:
        raise _err(f"{p}min", f"{key}: min is above max", {"min": rule.min, "max": rule.max}, "swap min and max")
    _pair(f"{p}mean", rule.mean)
    for q, bounds in rule.quantiles.items():
        try:
            ok = 0.0 <= float(q) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            raise _err(f"{p}quantiles", f"{p}quantiles: {q!r} is not a quantile", q, 'use "0.5" style keys')
        _pair(f"{p}quantiles.{q}", bounds)


def _service(service: ServiceConf, p: str) -> None:
    if service.name is not None and not _NAME.match(service.name):
        raise _err(
            f"{p}name",
            f"{service.name!r} is not a valid Bento name",
            service.name,
            "use lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        )
    try:
        ipaddress.ip_address(service.host)
    except ValueError:
        raise _err(
            f"{p}host",
            f"{p}host must be an IP address",
            service.host,
            "use 127.0.0.1 to serve on this machine only (0.0.0.0 inside a container)",
        ) from None
    workers = service.workers
    if workers != "cpu_count" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise _err(
            f"{p}workers", f"{p}workers must be a number >= 1 or cpu_count", workers, "set it to e.g. 2, or cpu_count"
        )
    if not _ENV_VAR.match(service.auth.env_var):
        raise _err(
            f"{p}auth.env_var",
            f"{p}auth.env_var must name an environment variable",
            service.auth.env_var,
            "use an upper-case name such as SHIPYARD_API_KEY; the key itself is never stored in config",
        )


def _rollout(rollout: RolloutConf, p: str) -> None:
    if (rollout.mode is None) != (rollout.candidate is None):
        missing = "candidate" if rollout.candidate is None else "mode"
        raise _err(
            f"{p}{missing}",
            f"{p}mode and {p}candidate go together: {p}{missing} is not set",
            rollout.mode if rollout.candidate is None else rollout.candidate,
            "set both (mode: shadow or canary, candidate: a version such as v3), or neither; "
            "`shipyard rollout PROJECT VERSION --mode shadow` sets them for you",
        )
    if rollout.candidate is not None and not _VERSION.match(str(rollout.candidate)):
        raise _err(f"{p}candidate", f"{p}candidate is not a version", rollout.candidate, "name it as v3 or v3.0.0")
    if rollout.sticky_header is not None and not _HEADER.match(rollout.sticky_header):
        raise _err(
            f"{p}sticky_header",
            f"{p}sticky_header is not an HTTP header name",
            rollout.sticky_header,
            "use letters, digits and '-', e.g. X-Client-Id",
        )


_UNITS = {"h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str, key: str) -> float:
    """Seconds of a span written as a whole number and h, d or w (``30d``, ``12h``, ``2w``)."""
    value = str(text).strip()
    if len(value) < 2 or value[-1] not in _UNITS or not value[:-1].isdigit():
        raise _err(key, f"{key} is not a span of time", text, "write a whole number and h, d or w, e.g. 30d, 12h, 2w")
    return int(value[:-1]) * _UNITS[value[-1]]


def _cron(cron: str, key: str) -> None:
    fields = cron.split()
    if cron not in _CRON_ALIASES and not (len(fields) == 5 and all(_CRON_FIELD.match(x) for x in fields)):
        raise _err(
            key,
            f"{key} is not a cron schedule",
            cron,
            'use five cron fields ("0 2 * * *" is daily at 02:00) or an alias like @daily',
        )


def _monitor_schedule(schedule: MonitorScheduleConf, p: str) -> None:
    _cron(schedule.cron.strip(), f"{p}cron")
    parse_duration(schedule.window, f"{p}window")


def _trigger(trigger: TriggerConf, p: str) -> None:
    parse_duration(trigger.cooldown, f"{p}cooldown")
    if trigger.max_age is not None:
        parse_duration(trigger.max_age, f"{p}max_age")
    if (trigger.metric is None) != (trigger.max_drop is None):
        raise _err(
            f"{p}metric",
            f"{p}metric and {p}max_drop go together: the rule is 'the live metric dropped by more than max_drop'",
            {"metric": trigger.metric, "max_drop": trigger.max_drop},
            f"set both (e.g. {p}metric: accuracy, {p}max_drop: 0.05) or neither",
        )


def _prediction_log(log: PredictionLogConf, p: str) -> None:
    if log.url is not None and "?table=" not in log.url:
        raise _err(
            f"{p}url",
            f"{p}url must name the table: <SQLAlchemy URL>?table=NAME",
            log.url,
            "e.g. sqlite:///data/team/name/09_monitoring/predictions.db?table=predictions",
        )
    if log.path:
        path = PurePosixPath(log.path.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts:
            raise _err(
                f"{p}path",
                f"{p}path must be a folder inside the repository",
                log.path,
                "give a repository-relative folder (or set $SHIPYARD_PREDICTION_LOG where the service runs)",
            )


def _schedule(schedule: ScheduleConf, p: str) -> None:
    cron = schedule.cron.strip()
    fields = cron.split()
    if cron not in _CRON_ALIASES and not (len(fields) == 5 and all(_CRON_FIELD.match(x) for x in fields)):
        raise _err(
            f"{p}cron",
            f"{p}cron is not a cron schedule",
            cron,
            'use five cron fields ("0 2 * * *" is daily at 02:00) or an alias like @daily',
        )


def _edge(edge: EdgeConf, p: str) -> None:
    variants = [str(v) for v in edge.variants]
    if len(set(variants)) < len(variants):
        raise _err(f"{p}variants", f"{p}variants lists a variant twice", variants, "list each once")
    names = [str(v) for v in EdgeVariant]
    for name in edge.tolerance:
        if name not in names:
            raise _err(
                f"{p}tolerance.{name}",
                f"unknown edge variant {name!r}{did_you_mean(name, names)}",
                name,
                "tolerances are keyed by variant: " + ", ".join(names),
            )


SECTION_RULES: dict[type, Callable[[Any, str], None]] = {
    SplitConf: _split,
    SourceConf: _source,
    DataConf: _data,
    TrainerConf: _trainer,
    BoundsConf: _metric_bounds,
    ChecksConf: _checks,
    ColumnCheckConf: _column,
    ServiceConf: _service,
    RolloutConf: _rollout,
    ScheduleConf: _schedule,
    MonitorScheduleConf: _monitor_schedule,
    TriggerConf: _trigger,
    PredictionLogConf: _prediction_log,
    EdgeConf: _edge,
}


# -- rules across sections ---------------------------------------------------------------------


def _across(cfg: ShipyardConfig) -> None:
    """Rules that tie sections together: what the task allows."""
    task = str(cfg.project.task)
    if cfg.split.kind == SplitKind.stratified and task == "regression":
        raise _err(
            "split.kind",
            "a stratified split keeps class proportions, and a regression task has no classes",
            str(cfg.split.kind),
            "use split=random (or time, group, kfold) for a regression project",
        )
    per_epoch = ["val/loss", *(f"val/{m}" for m in METRICS[task])]
    _metric("trainer.early_stopping.monitor", cfg.trainer.early_stopping.monitor, per_epoch, "measured every epoch")
    known = known_metrics(cfg)
    if cfg.gate.metric != "auto":
        _metric("gate.metric", cfg.gate.metric, known)
    for name in cfg.gate.thresholds:
        _metric(f"gate.thresholds.{name}", name, known)
    if cfg.deploy.edge.metric != "auto":
        _metric("deploy.edge.metric", cfg.deploy.edge.metric, list(METRICS[task]), "a metric of this task")
    if cfg.monitor.trigger.metric is not None:
        _metric("monitor.trigger.metric", cfg.monitor.trigger.metric, list(METRICS[task]), "a metric of this task")
    rollout = cfg.deploy.service.rollout
    if rollout.mode == RolloutMode.canary and not (rollout.sticky_header or rollout.sticky_key or cfg.data.key):
        raise _err(
            "deploy.service.rollout.sticky_key",
            "a canary needs a key to keep each caller on one model, and the project has no data.key",
            None,
            "set deploy.service.rollout.sticky_header (e.g. X-Client-Id), sticky_key, or data.key",
        )
    _features(cfg)
    _steps(cfg)


def _features(cfg: ShipyardConfig) -> None:
    features = cfg.features
    if not features.views:
        return
    if not features.event_time:
        raise _err(
            "features.event_time",
            "features.views joins features point in time, so it needs the label rows' time column",
            None,
            "set features.event_time to the column holding each row's time (features come from at or before it)",
        )
    if features.event_time in cfg.data.drop or features.event_time in (cfg.data.target, cfg.data.key):
        raise _err(
            "features.event_time",
            f"features.event_time {features.event_time!r} is the key, the target or in data.drop, so the join "
            "never sees it",
            features.event_time,
            "keep it out of data.drop: the feature join uses it and then leaves it out of the model's features",
        )
    seen: set[tuple[str, int]] = set()
    for i, ref in enumerate(features.views):
        if (ref.view, ref.version) in seen:
            raise _err(f"features.views[{i}]", f"{ref.view}@{ref.version} is listed twice", ref.view, "list it once")
        seen.add((ref.view, ref.version))
        if ref.features is not None and not ref.features:
            raise _err(
                f"features.views[{i}].features", "an empty list of features joins nothing", [], "name some, or null"
            )


def _steps(cfg: ShipyardConfig) -> None:
    """A team step's name, placement, inputs and outputs against the pipeline's datasets."""
    produced: dict[str, str] = {}  # an earlier step's output -> that step's placement
    seen_report = False
    builtin = set(STEP_INPUTS["report"]) | set(BUILTIN_STAGES)
    for name, step in cfg.steps.items():
        key = f"steps.{name}"
        placement = str(step.placement)
        if not _STEP_NAME.match(name) or name in BUILTIN_STAGES:
            raise _err(
                key,
                f"{name!r} cannot name a step" + (": it is a built-in stage" if name in BUILTIN_STAGES else ""),
                name,
                "use lower-case letters, digits and '_' (starting with a letter), not a built-in stage's name: "
                + ", ".join(BUILTIN_STAGES),
            )
        if step.placement == StepPlacement.data and seen_report:
            raise _err(
                f"{key}.placement",
                f"data step {name!r} comes after a report step",
                placement,
                "list the data steps first, then the report steps (steps run in the order written)",
            )
        seen_report = seen_report or step.placement == StepPlacement.report
        allowed = [i for i in STEP_INPUTS[placement] if i != "training_frame" or cfg.features.views]
        allowed += [o for o, where in produced.items() if where == "data" or placement == "report"]
        for j, item in enumerate(step.inputs):
            if item not in allowed:
                raise _err(
                    f"{key}.inputs[{j}]",
                    f"a {placement} step cannot read {item!r}{did_you_mean(item, allowed)}",
                    item,
                    "read one of: " + ", ".join(allowed),
                )
        if not step.outputs:
            raise _err(f"{key}.outputs", f"step {name!r} declares no outputs", None, "declare {name: kind} outputs")
        for output in step.outputs:
            if not _STEP_NAME.match(output) or output in builtin or output in produced or output in cfg.steps:
                raise _err(
                    f"{key}.outputs.{output}",
                    f"step output {output!r} is not a new dataset name",
                    output,
                    "name each output once, in lower case, apart from the pipeline's datasets and stages",
                )
            produced[output] = placement
        first_kind = str(next(iter(step.outputs.values())))
        if step.placement == StepPlacement.data and first_kind != "parquet":
            raise _err(
                f"{key}.outputs",
                f"data step {name!r}: its first output is the table the split reads, so parquet, not {first_kind}",
                first_kind,
                "list the output table first, as `<name>: parquet`",
            )


# -- search --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # "<=" | ">="
    bound: float
    text: str

    def violation(self, metrics: dict[str, float]) -> float:
        """Optuna's convention: <= 0 when met, the distance to the bound when not."""
        value = metrics.get(self.metric)
        if value is None or math.isnan(value):
            return 1.0
        return value - self.bound if self.op == "<=" else self.bound - value


def parse_constraint(text: str, key: str, known: list[str]) -> Constraint:
    found = _CONSTRAINT.match(str(text))
    bound = _number(found.group("bound")) if found else None
    if not found or bound is None:
        raise _err(
            key,
            f"cannot read the constraint {text!r}",
            text,
            "write '<metric> <= <number>' or '<metric> >= <number>', e.g. 'latency_p95_ms <= 5'",
        )
    _search_metric(key, found.group("metric"), known)
    return Constraint(found.group("metric"), found.group("op"), bound, str(text).strip())


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _search_metric(key: str, name: str, known: list[str]) -> None:
    if name.startswith("test/"):
        raise _err(
            key,
            f"{key} names {name!r}: a search never reads the test split",
            name,
            f"use the validation metric {'val/' + name.removeprefix('test/')!r}; the chosen model is evaluated "
            "once on test after the search",
        )
    _metric(key, name, known, "a metric a trial reports")


def flatten_space(space: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{optim: {lr: {type: ...}}}`` as ``{"optim.lr": {type: ...}}``: the nested spelling is
    what ``search.space.optim.lr.low=...`` overrides on the command line reach."""
    flat: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        both = isinstance(flat.get(name), dict) and isinstance(value, dict)
        flat[name] = {**flat[name], **value} if both else value

    for key, value in space.items():
        name = f"{prefix}{key}"
        nested = isinstance(value, dict) and value and "type" not in value
        if nested and all(isinstance(v, dict) for v in value.values()):
            for inner, item in flatten_space(value, f"{name}.").items():
                put(inner, item)
        else:
            put(name, value)
    return flat


def _search(cfg: ShipyardConfig, root: Path, value_check: Callable[..., None]) -> None:
    search = cfg.search
    if search is None:
        return
    known = known_metrics(cfg, prefixes=("val/",))
    if not search.objectives:
        raise _err("search.objectives", "search.objectives is empty", None, "declare at least one objective")
    for i, objective in enumerate(search.objectives):
        _search_metric(f"search.objectives[{i}].metric", objective.metric, known)
    if len({o.metric for o in search.objectives}) < len(search.objectives):
        raise _err("search.objectives", "an objective is listed twice", None, "list each metric once")
    for i, text in enumerate(search.constraints):
        parse_constraint(text, f"search.constraints[{i}]", known)
    if not search.space:
        raise _err("search.space", "search.space is empty", None, "declare at least one parameter")
    _space(search, root, value_check)
    for key in search.fixed:
        _searchable(key, f"search.fixed.{key}")
        if key in search.space:
            raise _err(f"search.fixed.{key}", f"{key} is both searched and fixed", None, "remove one of them")
        value_check(f"search.fixed.{key}", key, search.fixed[key])
    if search.pruner.name != Pruner.none:
        if len(search.objectives) > 1:
            raise _err(
                "search.pruner.name",
                f"pruner {str(search.pruner.name)!r} with {len(search.objectives)} objectives: Optuna cannot "
                "prune a multi-objective study",
                str(search.pruner.name),
                "set search.pruner.name=none, or keep a single objective",
            )
        per_epoch = [m for m in known if m.startswith("val/")]
        if search.objectives[0].metric not in per_epoch:
            raise _err(
                "search.pruner.name",
                f"pruning needs a metric measured every epoch, and {search.objectives[0].metric!r} is measured "
                "once after training",
                str(search.pruner.name),
                "prune on a validation metric (" + ", ".join(per_epoch) + ") or set search.pruner.name=none",
            )
    select = search.select
    if select.metric:
        _search_metric("search.select.metric", select.metric, known)
        if select.direction is None and select.metric not in {o.metric for o in search.objectives}:
            raise _err(
                "search.select.direction",
                f"search.select.metric {select.metric!r} is not an objective, so its direction is unknown",
                None,
                "set search.select.direction to maximize or minimize",
            )
    beat = search.heartbeat
    if beat.grace_period <= beat.interval:
        raise _err(
            "search.heartbeat.grace_period",
            f"search.heartbeat.grace_period ({beat.grace_period} s) must be longer than the interval "
            f"({beat.interval} s), or a live trial would be failed between two heartbeats",
            beat.grace_period,
            "set grace_period to a few intervals (default: 60 s interval, 180 s grace period)",
        )
    if search.n_trials is None and search.timeout is None:
        raise _err("search.n_trials", "the search has neither n_trials nor timeout", None, "set one or both")


def _searchable(key: str, full: str) -> None:
    if key.split(".", 1)[0] not in SEARCHABLE or "." not in key:
        raise _err(
            full,
            f"a search cannot vary {key!r}: trials reuse the project's split and fitted preprocessing and train "
            "in one process",
            key,
            "search keys under " + ", ".join(f"{s}." for s in SEARCHABLE) + " or a model/trainer option "
            "(model: {type: categorical, choices: [mlp, cnn]}); change data, split, preprocess or seed in the "
            "project and run `make train` first",
        )


def _group_options(root: Path, group: str) -> list[str]:
    base = root / "conf" / group
    return sorted(p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.yaml"))


def _space(search: SearchConf, root: Path, value_check: Callable[..., None]) -> None:
    earlier: list[str] = []
    for key, entry in search.space.items():
        full = f"search.space.{key}"
        param: ParamConf = entry
        for name in param.when:
            if name not in earlier:
                raise _err(
                    f"{full}.when.{name}",
                    f"{full}.when refers to {name!r}, which is not an earlier key of search.space"
                    f"{did_you_mean(name, earlier)}",
                    name,
                    "a condition names a parameter declared above it in search.space",
                )
        earlier.append(key)
        group = "." not in key and key in ("model", "trainer") and (root / "conf" / key).is_dir()
        if group:
            options = _group_options(root, key)
            if param.type != ParamType.categorical or not param.choices:
                raise _err(
                    full,
                    f"{full} chooses a {key} option: it needs type categorical and choices",
                    None,
                    f"write {key}: {{type: categorical, choices: [{', '.join(options[:3])}]}}",
                )
            for choice in param.choices:
                if choice not in options:
                    raise _err(
                        full,
                        f"unknown option {choice!r} for config group {key!r}{did_you_mean(str(choice), options)}",
                        choice,
                        f"choose among conf/{key}/: " + ", ".join(options),
                    )
            _unique(param.choices, full)
            value_check(full, key, list(param.choices))
            continue
        _searchable(key, full)
        value_check(full, key)
        if param.type == ParamType.categorical:
            extra = [n for n in ("low", "high", "step") if getattr(param, n) is not None]
            if not param.choices or extra or param.log:
                raise _err(
                    f"{full}.{(extra or ['choices'])[0]}",
                    f"{full} is categorical: it takes choices only",
                    None,
                    "give choices: [a, b, ...]; use type int or float for a range",
                )
            _unique(param.choices, full)
            for choice in param.choices:
                value_check(full, key, choice)
            continue
        _range(param, full)
        value_check(full, key, param.low)
        value_check(full, key, param.high)


def _unique(choices: list[Any], full: str) -> None:
    seen = [json.dumps(c, sort_keys=True, default=str) for c in choices]
    if len(set(seen)) < len(seen):
        raise _err(f"{full}.choices", f"{full}.choices lists a value twice", choices, "list each choice once")


def _range(param: ParamConf, full: str) -> None:
    kind = str(param.type)
    if param.choices is not None:
        raise _err(f"{full}.choices", f"{full}: a range takes low and high, not choices", None, "use type categorical")
    if param.low is None or param.high is None:
        missing = "low" if param.low is None else "high"
        raise _err(f"{full}.{missing}", f"{full}: an {kind} parameter needs low and high", None, "set both bounds")
    low, high, step = param.low, param.high, param.step
    if not (math.isfinite(low) and math.isfinite(high)):
        raise _err(f"{full}.low", f"{full}: bounds must be finite numbers", [low, high], "give finite low and high")
    if low > high:
        raise _err(f"{full}.low", f"{full}: low ({low:g}) is above high ({high:g})", low, "swap the bounds")
    if param.log and low <= 0:
        raise _err(f"{full}.low", f"{full}: a log scale needs low > 0, got {low:g}", low, "raise low or drop log")
    if param.log and step is not None:
        raise _err(f"{full}.step", f"{full}: log scale and step cannot be combined", step, "drop one")
    if kind == "int":
        for name, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and float(value) != int(value):
                raise _err(
                    f"{full}.{name}", f"{full}: {name} of an int parameter must be whole", value, "use type float"
                )
    if step is not None:
        span = (high - low) / step
        if abs(span - round(span)) > 1e-9:
            top = low + math.floor(span) * step
            raise _err(
                f"{full}.high",
                f"{full}: high ({high:g}) is not low plus a whole number of steps ({step:g})",
                high,
                f"set high to {top:g} or {top + step:g}",
            )


def _component(params: Any, cfg: ShipyardConfig) -> None:
    """A component's parameter schema may check the rest of the config (a CNN needs
    ``data.shape``): the extension point for rules that only the component knows."""
    hook = getattr(params, "check", None)
    if callable(hook):
        hook(cfg)


# -- all of it -----------------------------------------------------------------------------------


def check(cfg: ShipyardConfig, root: Path, value_check: Callable[..., None]) -> None:
    """Every rule, in order; ``value_check(report_key, config_key, value)`` checks a value the
    search would put at ``config_key`` against the schema (compose supplies it)."""
    check_bounds(cfg)
    _component(cfg.model.params, cfg)
    _across(cfg)
    _search(cfg, root, value_check)
    for message in split_warnings(cfg):
        warnings.warn(message, UserWarning, stacklevel=4)
