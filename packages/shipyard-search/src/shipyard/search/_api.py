"""``run_search``: validate, optimise (one or more workers), report, choose, test once."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.atomic import write_json
from shipyard.core.errors import ConfigError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
from shipyard.search._errors import SearchError
from shipyard.search._results import TrialRecord, format_table
from shipyard.search._spec import SearchSpec
from shipyard.search._storage import StorageChoice

__all__ = ["SearchResult", "prepare", "run_search", "search_folder", "split_overrides"]

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class SearchResult:
    spec: SearchSpec
    storage: StorageChoice
    trials: list[TrialRecord]
    pareto: list[TrialRecord]
    selected: TrialRecord | None
    experiment: str | None  # the experiment= name of the written layer
    report: dict[str, Any]
    folder: Path


def search_folder(paths: ProjectPaths) -> Path:
    return paths.artifact("search")


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the search's own overrides: ``search=...``, ``search.*``; everything else)."""
    own, rest = [], []
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        (own if key == "search" or key.startswith("search.") else rest).append(item)
    return own, rest


def search_choice(overrides: Sequence[str]) -> str | None:
    """The last ``search=<name>`` override, if any."""
    found = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").split("=", 1)[0] == "search" and "=" in o]
    return found[-1] if found else None


@dataclass
class Prepared:
    paths: ProjectPaths
    spec: SearchSpec
    trial_base: list[str]
    reference: ShipyardConfig


def prepare(
    project: str,
    overrides: Sequence[str],
    *,
    root: Path,
    n_trials: int | None = None,
    timeout: float | None = None,
) -> Prepared:
    """Compose and validate everything a search needs (composing checks the space's keys and
    values against the schema): every config mistake fails here, before any trial."""
    from shipyard.search._check import check_base_overrides, check_in_process, compose_trial
    from shipyard.search._space import grid_points
    from shipyard.search._spec import search_spec
    from shipyard.search._study import make_pruner, make_sampler

    paths = ProjectPaths.of(root, project)
    config = compose_trial(project, list(overrides), root)
    spec = search_spec(config, root, choice=search_choice(overrides))
    if n_trials is not None or timeout is not None:
        spec = dataclasses.replace(
            spec, n_trials=n_trials if n_trials is not None else spec.n_trials, timeout=timeout or spec.timeout
        )
    _, trial_base = split_overrides(overrides)
    check_base_overrides(trial_base, spec)
    reference = compose_trial(project, trial_base, root)
    check_in_process(reference, spec, trial_base)
    make_sampler(spec, spec.seed)  # unknown or bad sampler and pruner parameters fail here too
    make_pruner(spec)
    if spec.sampler == "grid":
        grid_points(spec.params, spec.where)
    return Prepared(paths, spec, trial_base, reference)


def _fingerprint(prepared: Prepared, data_hash: str) -> dict[str, Any]:
    """What makes two runs' trials comparable (the space may change between runs; this may not)."""
    from shipyard.core.compose import to_dict
    from shipyard.core.hashing import json_sha256
    from shipyard.search._check import compose_trial
    from shipyard.search._space import overrides_for

    spec = prepared.spec
    fixed = overrides_for({}, spec.params, spec.fixed)
    base = to_dict(compose_trial(prepared.paths.project, [*prepared.trial_base, *fixed], prepared.paths.root))
    sections = {
        k: base.get(k) for k in ("data", "split", "preprocess", "model", "optim", "trainer", "seed", "evaluate")
    }
    sections["task"] = base["project"]["task"]
    return {
        "objectives": [f"{o.direction} {o.metric}" for o in spec.objectives],
        "config": json_sha256(sections),
        "data": data_hash,
    }


def run_search(
    project: str,
    overrides: Sequence[str] = (),
    *,
    root: Path,
    workers: int = 1,
    n_trials: int | None = None,
    timeout: float | None = None,
    final: bool = True,
    say: Say = _say,
) -> SearchResult:
    """Run (or continue) the search a project's config declares (``search=<name>``).

    Trials train and evaluate in this process (and in ``workers - 1`` worker processes) on the
    training and validation splits only. Then the results are written, one trial is chosen by
    the selection rule, written as ``conf/experiment/search/<team>/<name>.yaml``, and (``final``)
    trained again with that layer and evaluated once on the test split.
    """
    from shipyard.search._storage import file_lock, resolve_storage
    from shipyard.search._trial import load_search_data

    if workers < 1:
        raise ConfigError("workers must be at least 1", key="workers", value=workers, fix="pass WORKERS=1 or more")
    prepared = prepare(project, overrides, root=root, n_trials=n_trials, timeout=timeout)
    spec, paths = prepared.spec, prepared.paths
    folder = search_folder(paths)
    choice = resolve_storage(spec.storage, folder, workers, root, spec.where, spec.heartbeat)
    data = load_search_data(paths)
    # A database that cannot be reached fails here, before anything is written.
    storage = choice.open() if choice.kind == "url" else None
    with file_lock(folder / ".run.lock", wait=False) as held:
        if not held:
            raise SearchError(
                f"a search of {project} is already running on this host",
                where=str(folder),
                fix="wait for it to finish (watch it with `make dashboard`), or stop it",
            )
        study, storage, grid = _open(prepared, choice, storage, _fingerprint(prepared, data.fingerprint), say)
        _optimise(prepared, study, storage, choice, data, list(overrides), workers, grid, say)
        return _finish(prepared, study, choice, data, final, say)


def _open(
    prepared: Prepared, choice: StorageChoice, storage: Any, fingerprint: dict[str, Any], say: Say
) -> tuple[Any, Any, int | None]:
    from shipyard.search._storage import claim_lock
    from shipyard.search._study import enqueue_grid, open_study, recover_interrupted

    spec = prepared.spec
    storage = storage or choice.open()
    # Under the claim lock: searches on other hosts may open the same study and queue the same
    # grid at this moment; one of them creates the study and queues the grid, the rest find them.
    with claim_lock(choice, search_folder(prepared.paths), spec.study_name):
        study = open_study(spec, storage, fingerprint)
        if choice.local:
            recovered = recover_interrupted(study, storage)
            if recovered:
                say(f"{recovered} trial(s) interrupted last time: run again with the same parameters")
        grid = enqueue_grid(study, spec) if spec.sampler == "grid" else None
    return study, storage, grid


def _optimise(
    prepared: Prepared,
    study: Any,
    storage: Any,
    choice: StorageChoice,
    data: Any,
    overrides: list[str],
    workers: int,
    grid: int | None,
    say: Say,
) -> None:
    from shipyard.search._runner import WorkerArgs, run_worker, start_workers, stop_workers, wait_ready, wait_workers
    from shipyard.search._study import budget, used_trials

    spec, paths = prepared.spec, prepared.paths
    target = budget(spec, grid)
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    args = WorkerArgs(
        project=paths.project,
        overrides=overrides,
        trial_base=prepared.trial_base,
        root=str(paths.root),
        folder=str(search_folder(paths)),
        storage_kind=choice.kind,
        storage_target=choice.target,
        index=0,
        threads=threads,
        deadline=time.time() + spec.timeout if spec.timeout else None,
        budget=target,
        heartbeat=list(choice.heartbeat) if choice.heartbeat else None,
    )
    already = used_trials(study)
    plan = f"{max(0, target - already)} more trial(s)" if target is not None else "trials"
    limit = f" for at most {spec.timeout:g} s" if spec.timeout else ""
    say(
        f"search {spec.name!r} of {paths.project}: {plan}{limit} on {workers} worker(s); "
        f"study {spec.study_name!r} ({already} counted so far), storage: {choice.describe()}"
    )
    if target is not None and already >= target:
        return
    procs: list[Any] = []
    previous = _threads(threads)
    try:
        start_workers(args, workers, procs)
        _warm_up()  # while the workers start: they and this process then begin trials together
        wait_ready(procs, say)
        run_worker(study, storage, spec, data, args, say)
        wait_workers(procs)
    except BaseException:
        stop_workers(procs)
        raise
    finally:
        _threads(previous)


def _warm_up() -> None:
    """Import the training stack (torch, Lightning), as each worker does before saying ready."""
    import shipyard.train.evaluate
    import shipyard.train.fit  # noqa: F401


def _threads(threads: int | None) -> int | None:
    """Cap torch's threads (workers share the cores); return the previous setting."""
    if threads is None:
        return None
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


def _rule(spec: SearchSpec) -> str:
    among = (
        "trials on the Pareto front meeting all constraints"
        if spec.select_among == "pareto"
        else "trials meeting all constraints"
    )
    constraints = f" ({', '.join(c.text for c in spec.constraints)})" if spec.constraints else ""
    return f"{spec.select_direction} {spec.select_metric} among {among}{constraints}"


def _finish(prepared: Prepared, study: Any, choice: StorageChoice, data: Any, final: bool, say: Say) -> SearchResult:
    from shipyard.search._layer import layer_path, write_layer
    from shipyard.search._outputs import write_plots, write_tables
    from shipyard.search._results import records, select_trial

    spec, paths = prepared.spec, prepared.paths
    folder = search_folder(paths)
    rows = records(study, spec)
    front = write_tables(folder, rows, spec)
    plots = write_plots(folder, study, spec)
    states = {s: sum(r.state == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    say(
        f"\nPareto front ({len(front)} of {states['COMPLETE']} complete trials; "
        f"{states['FAIL']} failed, {states['PRUNED']} pruned):"
    )
    say(_front_table(front, spec))
    chosen = select_trial(rows, spec)
    rule = _rule(spec)
    experiment, _ = write_layer(paths, spec, chosen, prepared.trial_base, rule)
    report: dict[str, Any] = {
        "study": spec.study_name,
        "storage": choice.describe(),
        "states": states,
        "objectives": [{"metric": o.metric, "direction": o.direction} for o in spec.objectives],
        "constraints": [c.text for c in spec.constraints],
        "rule": rule,
        "selected": chosen.to_json(spec),
        "experiment": experiment,
        "layer": str(layer_path(paths).relative_to(paths.root)),
        "train_command": f'make train PROJECT={paths.project} ARGS="experiment={experiment}"',
        "plots": plots,
    }
    if final:
        report["final"] = _final(prepared, chosen, experiment, data, folder, say)
    write_json(folder / "report.json", report)
    say(f"\nchosen: trial {chosen.number} ({rule})")
    say(f"  layer: {report['layer']}   train it: {report['train_command']}")
    if final:
        say(_final_table(report["final"], spec))
    return SearchResult(spec, choice, rows, front, chosen, experiment, report, folder)


def _front_table(front: list[TrialRecord], spec: SearchSpec) -> str:
    keys = [p.key for p in spec.params]
    rows = [
        {"trial": r.number, **{m: r.value(m) for m in spec.metrics}, **{k: r.params.get(k) for k in keys}}
        for r in front
    ]
    return (
        format_table(rows, ["trial", *spec.metrics, *keys]) if rows else "  (no complete trial meets every constraint)"
    )


def _final(
    prepared: Prepared, chosen: TrialRecord, experiment: str, data: Any, folder: Path, say: Say
) -> dict[str, Any]:
    """Train the chosen layer once more and evaluate it on validation and, once, on test.

    A rerun that chose the same trial of the same study reuses the earlier test result instead
    of looking at the test split again."""
    from shipyard.search._check import compose_trial
    from shipyard.search._trial import load_test_split, train_and_evaluate

    previous = folder / "report.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        if (
            old.get("study") == prepared.spec.study_name
            and (old.get("selected") or {}).get("overrides") == chosen.overrides
            and old.get("final")
        ):
            return dict(old["final"])
    say(f"evaluating trial {chosen.number} once on the test split (trained again with experiment={experiment})")
    config = compose_trial(prepared.paths.project, [f"experiment={experiment}"], prepared.paths.root)
    test = load_test_split(prepared.paths)
    with tempfile.TemporaryDirectory(prefix="shipyard-final-") as work:
        run = train_and_evaluate(config, data, Path(work), test=test)
    val = {k: v for k, v in run.metrics.items() if k.startswith("val/")}
    reproduced = all(abs(v - chosen.metrics.get(k, float("nan"))) <= 1e-6 for k, v in val.items())
    return {
        "metrics": run.metrics,
        "search_val": {k: v for k, v in chosen.metrics.items() if k.startswith("val/")},
        "reproduced": reproduced,
        "weights_sha256": _weights_hash(run.bundle),
    }


def _weights_hash(bundle: Any) -> str:
    import hashlib

    from safetensors.torch import save
    from shipyard.train.bundle import BUNDLE_FORMAT

    tensors = {k: v.detach().cpu().contiguous() for k, v in bundle.net.state_dict().items()}
    return hashlib.sha256(save(tensors, metadata={"format": BUNDLE_FORMAT})).hexdigest()


def _final_table(final: dict[str, Any], spec: SearchSpec) -> str:
    metrics = final["metrics"]
    names = sorted({k.split("/", 1)[1] for k in metrics if k.startswith(("val/", "test/"))})
    rows = [
        {
            "metric": n,
            "search (val)": final["search_val"].get(f"val/{n}"),
            "val": metrics.get(f"val/{n}"),
            "test": metrics.get(f"test/{n}"),
        }
        for n in names
    ]
    note = (
        ""
        if final.get("reproduced")
        else "\n  note: retraining did not reproduce the trial's validation metrics exactly"
    )
    return format_table(rows, ["metric", "search (val)", "val", "test"]) + note
