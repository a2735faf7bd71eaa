"""Optuna objects from a :class:`SearchSpec`: study, sampler (with constraints), pruner."""

from __future__ import annotations

import inspect
import warnings
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError
from shipyard.search._space import grid_points
from shipyard.search._spec import SearchSpec

if TYPE_CHECKING:
    import optuna

__all__ = [
    "budget",
    "enqueue_grid",
    "fail_stale",
    "make_pruner",
    "make_sampler",
    "open_study",
    "quiet_optuna",
    "recover_interrupted",
    "retried",
    "used_trials",
]

# Worker i of a search seeds its sampler with seed + i * _WORKER_SEED_STRIDE + (trials already in
# the study): workers never draw the same sequence, and a resumed search does not replay the
# random start-up trials it already ran.
_WORKER_SEED_STRIDE = 1_000_003
META = "shipyard"


def quiet_optuna() -> None:
    """Shipyard prints one line per trial; Optuna's own INFO lines and experimental-feature
    warnings (constraints, metric names) would repeat or distract from them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Workers claim trials with ask() under a shared lock and beat the heartbeat themselves
    # (shipyard.search._runner.heartbeat), which Optuna only expects of Study.optimize.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def _kwargs(cls: type, params: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    # constraints_func is deprecated in Optuna 5: constraints are recorded on each trial instead.
    accepted = set(inspect.signature(cls).parameters) - {"seed", "constraints_func"}
    for name in params:
        if name not in accepted:
            from shipyard.core.errors import did_you_mean

            raise ConfigError(
                f"{cls.__name__} takes no parameter {name!r}{did_you_mean(name, accepted)}",
                where=where,
                key=f"{key}.{name}",
                value=params[name],
                fix=f"{cls.__name__} takes: " + ", ".join(sorted(accepted)),
            )
    return dict(params)


def make_sampler(spec: SearchSpec, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    key = "search.sampler.params"
    if spec.sampler in ("random", "grid"):
        # Optuna's GridSampler stops the study from inside tell(), which only works under
        # study.optimize; a grid here is enqueued trials (exact and parallel-safe) drawn in order.
        if spec.sampler_params:
            raise ConfigError(
                f"the {spec.sampler} sampler takes no parameters",
                where=spec.where,
                key=key,
                fix="remove search.sampler.params",
            )
        return optuna.samplers.RandomSampler(seed=seed)
    cls = {
        "tpe": optuna.samplers.TPESampler,
        "nsgaii": optuna.samplers.NSGAIISampler,
        "gp": optuna.samplers.GPSampler,
    }[spec.sampler]
    kwargs = _kwargs(cls, spec.sampler_params, key, spec.where)
    try:
        return cls(seed=seed, **kwargs)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad sampler parameters: {exc}", where=spec.where, key=key, fix="check the values") from exc


def make_pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    cls = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner}[spec.pruner]
    kwargs = _kwargs(cls, spec.pruner_params, "search.pruner.params", spec.where)
    try:
        return cls(**kwargs)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"bad pruner parameters: {exc}", where=spec.where, key="search.pruner.params", fix="check the values"
        ) from exc


def worker_seed(spec: SearchSpec, worker: int, existing: int) -> int:
    return (spec.seed + worker * _WORKER_SEED_STRIDE + existing) % (2**31 - 1)


def open_study(spec: SearchSpec, storage: Any, fingerprint: dict[str, Any] | None, worker: int = 0) -> optuna.Study:
    """Create or continue the study. ``fingerprint`` (the coordinator only) is what makes
    earlier trials comparable; a study made under another one is refused."""
    import optuna

    quiet_optuna()
    directions = [o.direction for o in spec.objectives]
    study = optuna.create_study(
        storage=storage,
        study_name=spec.study_name,
        directions=directions,
        pruner=make_pruner(spec),
        load_if_exists=True,
    )
    existing = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, worker_seed(spec, worker, existing))
    if fingerprint is None:
        return study
    recorded = study.user_attrs.get(META)
    if recorded is None:
        study.set_user_attr(META, fingerprint)
        study.set_metric_names([o.metric for o in spec.objectives])
        return study
    changed = sorted(k for k in fingerprint if recorded.get(k) != fingerprint[k])
    if changed:
        raise ConfigError(
            f"the study {spec.study_name!r} was run with other {', '.join(changed)}: its trials are not comparable",
            where=spec.where,
            key="search.study_name",
            value=spec.study_name,
            fix="start a new study with search.study_name=<new name>, or delete the study's storage to start over",
        )
    return study


def retried(trials: list[optuna.trial.FrozenTrial]) -> dict[int, int]:
    """{number of a trial whose worker died: number of the trial that runs it again} (Optuna's
    heartbeat retry callback records each retry's history on the new trial)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    out: dict[int, int] = {}
    for t in trials:
        for number in RetryHeartbeatStaleTrialCallback.retry_history(t):
            out[number] = t.number
    return out


def used_trials(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: running or finished, except interrupted ones and
    those whose worker died (both are run again)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    return sum(
        1
        for t in trials
        if t.state == TrialState.RUNNING
        or (t.state.is_finished() and not t.user_attrs.get("interrupted") and t.number not in again)
    )


def fail_stale(study: optuna.Study) -> None:
    """Fail the running trials whose heartbeat stopped (their worker died; a database storage
    only) and queue them again through the storage's retry callback."""
    import optuna

    optuna.storages.fail_stale_trials(study)


def mark_interrupted(study: optuna.Study, storage: Any, number: int, params: dict[str, Any]) -> None:
    """Fail a trial that was cut off (kill, Ctrl-C) and queue its parameters to run again."""
    from optuna.trial import TrialState

    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    storage.set_trial_user_attr(trial_id, "interrupted", True)
    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    if params:
        study.enqueue_trial(params)


def recover_interrupted(study: optuna.Study, storage: Any) -> int:
    """Trials left RUNNING by a killed search (no search runs now on this host): fail and
    requeue them. Returns how many."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        mark_interrupted(study, storage, trial.number, dict(trial.params))
    return len(stale)


def enqueue_grid(study: optuna.Study, spec: SearchSpec) -> int:
    """Queue every grid point not yet in the study, shuffled by the seed; return the grid size."""
    import random

    points = grid_points(spec.params, spec.where)
    random.Random(spec.seed).shuffle(points)
    for point in points:
        study.enqueue_trial(point, skip_if_exists=True)
    return len(points)


def budget(spec: SearchSpec, grid_size: int | None) -> int | None:
    if grid_size is None:
        return spec.n_trials
    return grid_size if spec.n_trials is None else min(spec.n_trials, grid_size)
