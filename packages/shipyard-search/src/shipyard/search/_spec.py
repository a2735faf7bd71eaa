"""A search as the runner uses it, derived from the typed ``search`` section.

The section is declared in ``conf/search/<name>.yaml``, chosen with ``search=<name>``, and typed
and checked when the project's config is composed (:class:`shipyard.core.schema.SearchConf`,
:mod:`shipyard.core.rules`): metric names, directions, bounds, constraints, the space's keys and
values against the schema, the pruner and the budget. This module only reshapes it: constraints
parsed, space entries as :class:`Param`, defaults resolved (the sampler's seed, the selection
metric, the study name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.compose import dump
from shipyard.core.errors import ConfigError
from shipyard.core.rules import Constraint, known_metrics, parse_constraint
from shipyard.core.schema import ShipyardConfig

__all__ = ["Constraint", "Objective", "Param", "SearchSpec", "known_metrics", "search_spec"]

# Space keys that choose a config group option rather than set a value.
GROUPS = ("model", "trainer")


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str


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
    heartbeat: tuple[int, int]  # (interval, grace period) in seconds, for a database storage
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


def _param(key: str, entry: Any) -> Param:
    kind = "group" if key in GROUPS else str(entry.type)
    when = tuple((k, tuple(v) if isinstance(v, list | tuple) else (v,)) for k, v in dump(entry.when).items())
    choices = tuple(dump(entry.choices or []))
    if kind in ("int", "float"):
        cast = int if kind == "int" else float
        step = cast(entry.step) if entry.step is not None else None
        return Param(key, kind, cast(entry.low), cast(entry.high), step, entry.log, when=when)
    return Param(key, kind, choices=choices, when=when)


def search_spec(cfg: ShipyardConfig, root: Path, *, choice: str | None = None) -> SearchSpec:
    """The search of a validated config. ``choice`` is the ``search=<name>`` option when known: it
    names the file in messages and is the search's name unless the file sets ``name``."""
    conf = cfg.search
    if conf is None:
        options = sorted(p.stem for p in (root / "conf" / "search").glob("*.yaml"))
        raise ConfigError(
            "no search is declared for this project",
            key="search",
            fix="choose one with search=<name> (" + (", ".join(options) or "none yet under conf/search/") + ")"
            ", or add '- override /search: <name>' to the project's defaults",
        )
    name = conf.name if conf.name != "search" or not choice else choice
    path = root / "conf" / "search" / f"{choice or name}.yaml"
    known = known_metrics(cfg, prefixes=("val/",))
    objectives = tuple(Objective(o.metric, str(o.direction)) for o in conf.objectives)
    select_metric = conf.select.metric or objectives[0].metric
    direction = conf.select.direction or next(o.direction for o in objectives if o.metric == select_metric)
    return SearchSpec(
        name=name,
        where=path.relative_to(root).as_posix() if path.is_file() else "the search section",
        objectives=objectives,
        constraints=tuple(
            parse_constraint(text, f"search.constraints[{i}]", known) for i, text in enumerate(conf.constraints)
        ),
        params=tuple(_param(k, v) for k, v in conf.space.items()),
        fixed=dump(conf.fixed),
        sampler=str(conf.sampler.name),
        sampler_params=dump(conf.sampler.params),
        seed=conf.sampler.seed if conf.sampler.seed is not None else cfg.seed,
        pruner=str(conf.pruner.name),
        pruner_params=dump(conf.pruner.params),
        n_trials=conf.n_trials,
        timeout=conf.timeout,
        storage=conf.storage,
        heartbeat=(conf.heartbeat.interval, conf.heartbeat.grace_period),
        study_name=conf.study_name or f"{cfg.project.team}/{cfg.project.name}/{name}",
        select_metric=select_metric,
        select_direction=str(direction),
        select_among=str(conf.select.among),
    )
