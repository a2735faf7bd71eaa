"""The ``search`` section of a project's config: its schema and its static validation.

A search is declared in ``conf/search/<name>.yaml`` and chosen with ``search=<name>``. The
top-level schema types ``search`` as ``Any``; this module gives it its shape (dataclasses merged
with OmegaConf, so an unknown key or a wrong type names its full key) and checks everything
that can be checked without composing: directions, bounds, metric names, sampler and pruner
names. :mod:`shipyard.search._check` then composes the space's corners to catch unknown config
keys and bad values before any trial runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING
from shipyard.core.errors import ConfigError, did_you_mean

__all__ = [
    "DIRECTIONS",
    "PRUNERS",
    "SAMPLERS",
    "Constraint",
    "Objective",
    "Param",
    "SearchConf",
    "SearchSpec",
    "known_metrics",
    "parse_search",
]

SAMPLERS = ("tpe", "nsgaii", "gp", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("maximize", "minimize")
PARAM_TYPES = ("int", "float", "categorical")
# A trial trains in-process on the project's fitted split and preprocessing, so it may change
# the model, the optimiser and the trainer only (see the package docs).
SEARCHABLE = ("model", "optim", "trainer")
# Metrics the train stage reports beside the evaluate stage's.
TRAIN_METRICS = ("train_seconds", "epochs")
_CONSTRAINT = re.compile(r"^\s*(?P<metric>[A-Za-z_][\w/.\-]*)\s*(?P<op><=|>=|<|>|==|=)\s*(?P<bound>\S+)\s*$")


# -- schema (YAML shape) -----------------------------------------------------------------------


@dataclass
class ObjectiveConf:
    metric: str = MISSING
    direction: str = "maximize"  # maximize | minimize


@dataclass
class ParamConf:
    type: str = MISSING  # int | float | categorical
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] | None = None
    when: dict[str, Any] = field(default_factory=dict)  # {other space key: value or [values]}


@dataclass
class SamplerConf:
    name: str = "tpe"  # tpe | nsgaii | gp | random | grid
    seed: int | None = None  # null: the project's seed
    params: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the Optuna sampler


@dataclass
class PrunerConf:
    name: str = "none"  # none | median | hyperband (single-objective searches only)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SelectConf:
    metric: str | None = None  # null: the first objective
    direction: str | None = None  # null: that objective's direction
    among: str = "feasible"  # feasible (meets every constraint) | pareto (and on the Pareto front)


@dataclass
class SearchConf:
    name: str = "search"  # default: the option's file name (search=<name>)
    objectives: list[ObjectiveConf] = MISSING
    constraints: list[str] = field(default_factory=list)  # "latency_p95_ms <= 5", "val/recall >= 0.9"
    space: dict[str, ParamConf] = MISSING
    fixed: dict[str, Any] = field(default_factory=dict)  # overrides every trial gets, e.g. trainer.max_epochs
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerConf = field(default_factory=PrunerConf)
    n_trials: int | None = 20
    timeout: float | None = None  # seconds; no new trial starts after it
    storage: str = "auto"  # auto | memory | sqlite | journal | journal:<path> | a database URL
    study_name: str | None = None  # null: <team>/<name>/<search name>
    select: SelectConf = field(default_factory=SelectConf)


# -- parsed, validated spec ----------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # int | float | categorical | group
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def encoded(self) -> bool:
        """Lists and mappings are not valid Optuna categories: they travel as JSON strings."""
        return any(not isinstance(c, (str, int, float, bool, type(None))) for c in self.choices)

    @property
    def labels(self) -> tuple[Any, ...]:
        import json

        return tuple(json.dumps(c) for c in self.choices) if self.encoded else self.choices

    def decode(self, label: Any) -> Any:
        import json

        return json.loads(label) if self.encoded else label

    def active(self, values: dict[str, Any]) -> bool:
        return all(values.get(key, _ABSENT) in allowed for key, allowed in self.when)


_ABSENT = object()


@dataclass(frozen=True)
class SearchSpec:
    name: str
    where: str
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    params: tuple[Param, ...]
    fixed: dict[str, Any]
    sampler: str
    sampler_params: dict[str, Any]
    seed: int
    pruner: str
    pruner_params: dict[str, Any]
    n_trials: int | None
    timeout: float | None
    storage: str
    study_name: str
    select_metric: str
    select_direction: str
    select_among: str

    @property
    def metrics(self) -> list[str]:
        """Every metric the search reads, objectives first."""
        names = [o.metric for o in self.objectives] + [c.metric for c in self.constraints] + [self.select_metric]
        return list(dict.fromkeys(names))

    def feasible(self, metrics: dict[str, float]) -> bool:
        return all(c.violation(metrics) <= 0 for c in self.constraints)


# -- validation ----------------------------------------------------------------------------------


def known_metrics(config: dict[str, Any]) -> list[str]:
    """The metrics a trial produces: the evaluate stage's for the task, on validation only,
    plus latency, size and the train stage's report."""
    from shipyard.train.metrics import METRICS

    names = [f"val/{m}" for m in METRICS.get(config["project"]["task"], ())]
    for batch in config["evaluate"]["latency_batch_sizes"]:
        suffix = "" if int(batch) == 1 else f"_b{int(batch)}"
        names += [f"latency_p50_ms{suffix}", f"latency_p95_ms{suffix}"]
    return [*names, "model_size_bytes", "params", *TRAIN_METRICS]


def _where(root: Path, name: str) -> str:
    path = root / "conf" / "search" / f"{name}.yaml"
    return path.relative_to(root).as_posix() if path.is_file() else "the search section"


def _flatten(space: Any, prefix: str = "") -> Any:
    """``{optim: {lr: {type: ...}}}`` as ``{"optim.lr": {type: ...}}``: the nested spelling is
    what ``search.space.optim.lr.low=...`` overrides on the command line reach."""
    if not isinstance(space, dict):
        return space
    flat: dict[str, Any] = {}
    for key, value in space.items():
        name = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and "type" not in value
            and all(isinstance(v, dict) for v in value.values())
        ):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _structured(section: Any, where: str) -> SearchConf:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(section, dict) and isinstance(section.get("space"), dict):
        section = {**section, "space": _flatten(section["space"])}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SearchConf), section)
        missing = sorted(OmegaConf.missing_keys(merged))
        conf = OmegaConf.to_object(merged) if not missing else None
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        raise ConfigError(
            f"bad search config: {getattr(exc, 'msg', exc)}".split("\n")[0],
            where=where,
            key=f"search.{key}" if key else "search",
            value=getattr(exc, "value", None),
            fix="search takes: " + ", ".join(f.name for f in SearchConf.__dataclass_fields__.values()),
        ) from exc
    if missing:
        raise ConfigError(
            f"search.{missing[0]} is not set",
            where=where,
            key=f"search.{missing[0]}",
            fix=f"declare search.{missing[0]} (see conf/search/*.yaml for examples)",
        )
    return conf  # type: ignore[return-value]


def _check_metric(metric: str, key: str, known: list[str], where: str) -> str:
    if metric in known:
        return metric
    if metric.startswith("test/"):
        raise ConfigError(
            f"{key} names {metric!r}: a search never reads the test split",
            where=where,
            key=key,
            value=metric,
            fix=f"use the validation metric {'val/' + metric.removeprefix('test/')!r}; the chosen model is "
            "evaluated once on test after the search",
        )
    raise ConfigError(
        f"{key} names {metric!r}, a metric no stage produces{did_you_mean(metric, known)}",
        where=where,
        key=key,
        value=metric,
        fix="use one of: " + ", ".join(known),
    )


def _direction(value: str, key: str, where: str) -> str:
    if value not in DIRECTIONS:
        raise ConfigError(
            f"unknown direction {value!r}{did_you_mean(value, DIRECTIONS)}",
            where=where,
            key=key,
            value=value,
            fix="use maximize or minimize",
        )
    return value


def _constraint(text: str, index: int, known: list[str], where: str) -> Constraint:
    key = f"search.constraints[{index}]"
    found = _CONSTRAINT.match(str(text))
    if not found:
        raise ConfigError(
            f"cannot read the constraint {text!r}",
            where=where,
            key=key,
            value=text,
            fix="write a constraint as '<metric> <= <number>' or '<metric> >= <number>', e.g. 'latency_p95_ms <= 5'",
        )
    metric, op, raw = found.group("metric"), found.group("op"), found.group("bound")
    if op not in ("<=", ">="):
        raise ConfigError(
            f"constraint {text!r} uses {op!r}",
            where=where,
            key=key,
            value=text,
            fix="use <= or >= (a threshold on a continuous metric)",
        )
    try:
        bound = float(raw)
    except ValueError:
        raise ConfigError(
            f"constraint {text!r}: {raw!r} is not a number",
            where=where,
            key=key,
            value=text,
            fix="put a number after the operator",
        ) from None
    return Constraint(_check_metric(metric, key, known, where), op, bound, f"{metric} {op} {raw}")


def parse_search(
    config: dict[str, Any], root: Path, *, choice: str | None = None, groups: tuple[str, ...] = ("model", "trainer")
) -> SearchSpec:
    """Validate ``config["search"]`` (a resolved project config) into a :class:`SearchSpec`.

    ``choice`` is the ``search=<name>`` option when known: it names the file in messages and
    is the search's name unless the file sets ``name``.

    Raises :class:`ConfigError` naming the key (``search.space.optim.lr``, ...) on any mistake
    that can be seen without composing; :func:`shipyard.search._check.check_space` does the rest.
    """
    section = config.get("search")
    if not section:
        options = sorted(p.stem for p in (root / "conf" / "search").glob("*.yaml"))
        raise ConfigError(
            "no search is declared for this project",
            key="search",
            fix="choose one with search=<name> (" + (", ".join(options) or "none yet under conf/search/") + ")"
            ", or add '- override /search: <name>' to the project's defaults",
        )
    declared = section.get("name") if isinstance(section, dict) else None
    where = _where(root, choice or str(declared or "search"))
    conf = _structured(section, where)
    name = str(declared or choice or conf.name)
    known = known_metrics(config)
    if not conf.objectives:
        raise ConfigError(
            "search.objectives is empty", where=where, key="search.objectives", fix="declare at least one objective"
        )
    objectives = tuple(
        Objective(
            _check_metric(o.metric, f"search.objectives[{i}].metric", known, where),
            _direction(o.direction, f"search.objectives[{i}].direction", where),
        )
        for i, o in enumerate(conf.objectives)
    )
    if len({o.metric for o in objectives}) < len(objectives):
        raise ConfigError(
            "an objective is listed twice", where=where, key="search.objectives", fix="list each metric once"
        )
    constraints = tuple(_constraint(t, i, known, where) for i, t in enumerate(conf.constraints))
    if not conf.space:
        raise ConfigError(
            "search.space is empty", where=where, key="search.space", fix="declare at least one parameter"
        )
    params = _params(conf.space, root, groups, where)
    _check_fixed(conf.fixed, params, where)
    sampler = _choice(conf.sampler.name, SAMPLERS, "search.sampler.name", where)
    pruner = _choice(conf.pruner.name, PRUNERS, "search.pruner.name", where)
    _check_pruner(pruner, objectives, known, where)
    select_metric, select_direction = _select(conf.select, objectives, known, where)
    _check_budget(conf.n_trials, conf.timeout, where)
    project = config["project"]
    return SearchSpec(
        name=name,
        where=where,
        objectives=objectives,
        constraints=constraints,
        params=params,
        fixed=dict(conf.fixed),
        sampler=sampler,
        sampler_params=dict(conf.sampler.params),
        seed=int(conf.sampler.seed if conf.sampler.seed is not None else config.get("seed", 0)),
        pruner=pruner,
        pruner_params=dict(conf.pruner.params),
        n_trials=conf.n_trials,
        timeout=conf.timeout,
        storage=str(conf.storage),
        study_name=conf.study_name or f"{project['team']}/{project['name']}/{name}",
        select_metric=select_metric,
        select_direction=select_direction,
        select_among=_choice(conf.select.among, ("feasible", "pareto"), "search.select.among", where),
    )


def _choice(value: str, allowed: tuple[str, ...], key: str, where: str) -> str:
    if value not in allowed:
        raise ConfigError(
            f"unknown {key.rsplit('.', 1)[-1]} {value!r}{did_you_mean(value, allowed)}",
            where=where,
            key=key,
            value=value,
            fix="use one of: " + ", ".join(allowed),
        )
    return value


def _check_budget(n_trials: int | None, timeout: float | None, where: str) -> None:
    if n_trials is None and timeout is None:
        raise ConfigError(
            "the search has neither n_trials nor timeout",
            where=where,
            key="search.n_trials",
            fix="set search.n_trials, search.timeout (seconds) or both",
        )
    if n_trials is not None and n_trials < 1:
        raise ConfigError(
            "search.n_trials must be at least 1",
            where=where,
            key="search.n_trials",
            value=n_trials,
            fix="set a positive number",
        )
    if timeout is not None and timeout <= 0:
        raise ConfigError(
            "search.timeout must be positive",
            where=where,
            key="search.timeout",
            value=timeout,
            fix="give seconds > 0 or null",
        )


def _check_pruner(pruner: str, objectives: tuple[Objective, ...], known: list[str], where: str) -> None:
    if pruner == "none":
        return
    if len(objectives) > 1:
        raise ConfigError(
            f"pruner {pruner!r} with {len(objectives)} objectives: Optuna cannot prune a multi-objective study",
            where=where,
            key="search.pruner.name",
            value=pruner,
            fix="set search.pruner.name=none, or keep a single objective",
        )
    metric = objectives[0].metric
    per_epoch = [m for m in known if m.startswith("val/")]
    if metric not in per_epoch:
        raise ConfigError(
            f"pruning needs a metric measured every epoch, and {metric!r} is measured once after training",
            where=where,
            key="search.pruner.name",
            value=pruner,
            fix="prune on a validation metric (" + ", ".join(per_epoch) + ") or set search.pruner.name=none",
        )


def _select(select: SelectConf, objectives: tuple[Objective, ...], known: list[str], where: str) -> tuple[str, str]:
    metric = (
        _check_metric(select.metric, "search.select.metric", known, where) if select.metric else objectives[0].metric
    )
    direction = select.direction or next((o.direction for o in objectives if o.metric == metric), None)
    if direction is None:
        raise ConfigError(
            f"search.select.metric {metric!r} is not an objective, so its direction is unknown",
            where=where,
            key="search.select.direction",
            fix="set search.select.direction to maximize or minimize",
        )
    return metric, _direction(direction, "search.select.direction", where)


def _check_fixed(fixed: dict[str, Any], params: tuple[Param, ...], where: str) -> None:
    keys = {p.key for p in params}
    for key in fixed:
        _check_key(key, f"search.fixed.{key}", where)
        if key in keys:
            raise ConfigError(
                f"{key} is both searched and fixed",
                where=where,
                key=f"search.fixed.{key}",
                fix="remove it from search.fixed or from search.space",
            )


def _check_key(key: str, full: str, where: str) -> None:
    section = key.split(".", 1)[0]
    if section not in SEARCHABLE or "." not in key:
        raise ConfigError(
            f"a search cannot vary {key!r}: trials reuse the project's split and fitted preprocessing "
            "and train in one process",
            where=where,
            key=full,
            value=key,
            fix="search keys under " + ", ".join(f"{s}." for s in SEARCHABLE) + " or a model/trainer option "
            "(model: {type: categorical, choices: [mlp, cnn]}); change data, split, preprocess or seed in the "
            "project and run `make train` first",
        )


# -- the space -----------------------------------------------------------------------------------


def _params(space: dict[str, ParamConf], root: Path, groups: tuple[str, ...], where: str) -> tuple[Param, ...]:
    params: list[Param] = []
    for key, conf in space.items():
        full = f"search.space.{key}"
        is_group = "." not in key and key in groups and (root / "conf" / key).is_dir()
        if not is_group:
            _check_key(key, full, where)
        when = _when(conf.when, [p.key for p in params], full, where)
        if is_group:
            params.append(_group_param(key, conf, root, full, where, when))
            continue
        kind = _choice(conf.type, PARAM_TYPES, f"{full}.type", where)
        params.append(
            _categorical(key, conf, full, where, when)
            if kind == "categorical"
            else _numeric(key, kind, conf, full, where, when)
        )
    return tuple(params)


def _when(when: dict[str, Any], earlier: list[str], full: str, where: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    out = []
    for key, value in when.items():
        if key not in earlier:
            raise ConfigError(
                f"{full}.when refers to {key!r}, which is not an earlier key of search.space"
                f"{did_you_mean(key, earlier)}",
                where=where,
                key=f"{full}.when.{key}",
                fix="a condition names a parameter declared above it in search.space",
            )
        out.append((key, tuple(value) if isinstance(value, (list, tuple)) else (value,)))
    return tuple(out)


def _group_param(key: str, conf: ParamConf, root: Path, full: str, where: str, when: Any) -> Param:
    options = sorted(
        p.relative_to(root / "conf" / key).with_suffix("").as_posix() for p in (root / "conf" / key).rglob("*.yaml")
    )
    if conf.type != "categorical" or not conf.choices:
        raise ConfigError(
            f"{full} chooses a {key} option: it needs type categorical and choices",
            where=where,
            key=full,
            fix=f"write {key}: {{type: categorical, choices: [{', '.join(options[:3])}]}}",
        )
    for choice in conf.choices:
        if choice not in options:
            raise ConfigError(
                f"unknown option {choice!r} for config group {key!r}{did_you_mean(str(choice), options)}",
                where=where,
                key=full,
                value=choice,
                fix=f"choose among conf/{key}/: " + ", ".join(options),
            )
    _unique(conf.choices, full, where)
    return Param(key, "group", choices=tuple(conf.choices), when=when)


def _unique(choices: list[Any], full: str, where: str) -> None:
    import json

    seen = [json.dumps(c, sort_keys=True) for c in choices]
    if len(set(seen)) < len(seen):
        raise ConfigError(
            f"{full}.choices lists a value twice",
            where=where,
            key=f"{full}.choices",
            value=choices,
            fix="list each choice once",
        )


def _categorical(key: str, conf: ParamConf, full: str, where: str, when: Any) -> Param:
    if not conf.choices:
        raise ConfigError(
            f"{full} is categorical but has no choices",
            where=where,
            key=f"{full}.choices",
            fix="give choices: [a, b, ...]",
        )
    extra = [n for n in ("low", "high", "step") if getattr(conf, n) is not None] + (["log"] if conf.log else [])
    if extra:
        raise ConfigError(
            f"{full} is categorical but sets {', '.join(extra)}",
            where=where,
            key=f"{full}.{extra[0]}",
            fix="a categorical parameter takes choices only; use type int or float for a range",
        )
    _unique(conf.choices, full, where)
    return Param(key, "categorical", choices=tuple(conf.choices), when=when)


def _numeric(key: str, kind: str, conf: ParamConf, full: str, where: str, when: Any) -> Param:
    def bad(what: str, sub: str, fix: str, value: Any = None) -> ConfigError:
        return ConfigError(f"{full}: {what}", where=where, key=f"{full}.{sub}", value=value, fix=fix)

    if conf.choices is not None:
        raise bad("a range takes low and high, not choices", "choices", "use type categorical for a list of values")
    if conf.low is None or conf.high is None:
        raise bad(f"a {kind} parameter needs low and high", "low" if conf.low is None else "high", "set both bounds")
    low, high, step = conf.low, conf.high, conf.step
    if not (math.isfinite(low) and math.isfinite(high)):
        raise bad("bounds must be finite numbers", "low", "give finite low and high", [low, high])
    if low > high:
        raise bad(f"low ({low:g}) is above high ({high:g})", "low", "swap the bounds", low)
    if conf.log and low <= 0:
        raise bad(f"a log scale needs low > 0, got {low:g}", "low", "raise low above zero or drop log: true", low)
    if conf.log and step is not None:
        raise bad("log scale and step cannot be combined", "step", "drop step, or drop log: true", step)
    if step is not None and step <= 0:
        raise bad(f"step must be positive, got {step:g}", "step", "give a positive step", step)
    if kind == "int":
        for name, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and float(value) != int(value):
                raise bad(
                    f"{name} of an int parameter must be whole, got {value:g}",
                    name,
                    "use whole numbers or type float",
                    value,
                )
    if step is not None:
        span = (high - low) / step
        if abs(span - round(span)) > 1e-9:
            top = low + math.floor(span) * step
            raise bad(
                f"high ({high:g}) is not low plus a whole number of steps ({step:g})",
                "high",
                f"set high to {top:g} or {top + step:g}",
                high,
            )
    if kind == "int":
        return Param(key, kind, int(low), int(high), int(step) if step is not None else None, conf.log, when=when)
    return Param(key, kind, float(low), float(high), float(step) if step is not None else None, conf.log, when=when)
