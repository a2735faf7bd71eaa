"""Workers: claim a trial, train and evaluate it in-process, tell Optuna, repeat.

Each worker is one process that imports torch and Lightning once and runs many trials. The
coordinator (the ``make search`` process) is worker 0; ``workers > 1`` starts the others as
``python -m shipyard.search worker ...`` subprocesses on the same storage.

Exactly ``n_trials``: a worker claims a trial (``study.ask()``) under a lock every worker of the
study shares (:func:`shipyard.search._storage.claim_lock`: a file lock on one host, an advisory
lock in PostgreSQL across hosts), after counting the trials already running or finished, so no
two workers overshoot or take the same trial. With a database storage each running trial beats
a heartbeat; before each claim, trials whose heartbeat stopped (their worker died) are failed and
queued again, and a coordinator that has nothing left to claim waits for the trials still
running elsewhere, so that its report holds every trial.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ShipyardError
from shipyard.core.paths import ProjectPaths
from shipyard.search._errors import TrialFailed
from shipyard.search._spec import SearchSpec
from shipyard.search._storage import StorageChoice, claim_lock

if TYPE_CHECKING:
    import optuna
    from shipyard.search._trial import SearchData

__all__ = [
    "WorkerArgs",
    "heartbeat",
    "run_worker",
    "start_workers",
    "stop_workers",
    "wait_ready",
    "wait_workers",
    "worker_main",
]

Say = Callable[[str], None]
READY = "ready"
RUN = "run"  # the user attribute that records how a trial ran
READY_TIMEOUT_S = 300.0
STOP_GRACE_S = 30.0


@dataclass
class WorkerArgs:
    project: str
    overrides: list[str]  # the search's own overrides (search=..., search.*) included
    trial_base: list[str]  # what every trial composes with before its own keys
    root: str
    folder: str  # the search's output folder (locks live here)
    storage_kind: str
    storage_target: str
    index: int
    threads: int | None
    deadline: float | None  # time.time() after which no trial starts
    budget: int | None  # trials that count towards n_trials, in the whole study
    heartbeat: list[int] | None = None  # database storage: [interval, grace period] in seconds

    def storage(self) -> StorageChoice:
        beat = (self.heartbeat[0], self.heartbeat[1]) if self.heartbeat else None
        return StorageChoice(self.storage_kind, self.storage_target, self.storage_kind != "url", beat)


def _claim(study: optuna.Study, storage: Any, args: WorkerArgs) -> optuna.Trial | None:
    from shipyard.search._study import fail_stale, used_trials

    choice = args.storage()
    with claim_lock(choice, Path(args.folder), study.study_name):
        if choice.heartbeat is not None:
            fail_stale(study)  # a dead worker's trial: failed, and queued again to be claimed here
        if args.deadline is not None and time.time() >= args.deadline:
            return None
        if args.budget is not None and used_trials(study) >= args.budget:
            return None
        trial = study.ask()
        if choice.heartbeat is not None:
            storage.record_heartbeat(trial._trial_id)  # before the lock goes: never a trial without one
        return trial


@contextlib.contextmanager
def heartbeat(storage: Any, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval while it runs (a storage with heartbeats
    only), as ``Study.optimize`` does; a worker that dies stops beating."""
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _running(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _progress(study: optuna.Study, args: WorkerArgs) -> str:
    from shipyard.search._study import retried

    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    done = sum(
        1 for t in trials if t.state.is_finished() and not t.user_attrs.get("interrupted") and t.number not in again
    )
    return f"{done}/{args.budget}" if args.budget is not None else f"{done} done"


def _message(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ShipyardError) else str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:500]


def _run_one(
    study: optuna.Study, storage: Any, trial: optuna.Trial, spec: SearchSpec, data: SearchData, args: WorkerArgs
) -> tuple[str, str]:
    """:func:`_attempt`, for a trial that another worker may have failed meanwhile: a worker
    stalled past the grace period (not dead, only slow) finds its trial failed and queued again,
    and goes on with the next one."""
    try:
        return _attempt(study, storage, trial, spec, data, args)
    except (RuntimeError, ValueError):
        # Optuna refuses to update a finished trial (UpdateFinishedTrialError, or ValueError from tell).
        if not storage.get_trial(trial._trial_id).state.is_finished():
            raise
        return "LOST", "another worker failed it (no heartbeat within the grace period): it runs again"


def _attempt(
    study: optuna.Study, storage: Any, trial: optuna.Trial, spec: SearchSpec, data: SearchData, args: WorkerArgs
) -> tuple[str, str]:
    """Run one claimed trial to a final state; return (state, detail) for the progress line.

    What the trial did is written as two user attributes, ``metrics`` and ``run`` (worker,
    overrides, seconds, feasibility or error): each write is a storage transaction, so few of
    them keep a trial's overhead small."""
    import optuna
    from optuna.trial import TrialState
    from shipyard.search._check import compose_trial
    from shipyard.search._space import overrides_for, sample
    from shipyard.search._trial import train_and_evaluate

    started = time.perf_counter()
    info: dict[str, Any] = {"worker": args.index, "overrides": [], "seconds": {}}
    try:
        values = sample(trial, spec.params)
        info["overrides"] = overrides_for(values, spec.params, spec.fixed)
        config = compose_trial(args.project, [*args.trial_base, *info["overrides"]], Path(args.root))
        info["seconds"]["compose"] = time.perf_counter() - started
        callbacks = []
        if spec.pruner != "none":
            from shipyard.search._pruning import PruningCallback

            callbacks.append(PruningCallback(trial, spec.objectives[0].metric))
        with tempfile.TemporaryDirectory(prefix="shipyard-trial-") as work:
            run = train_and_evaluate(config, data, Path(work), callbacks=callbacks)
        info["seconds"].update(run.seconds)
        bad = next((m for m in spec.metrics if not math.isfinite(run.metrics.get(m, math.nan))), None)
        if bad is not None:
            raise TrialFailed(f"{bad} is {run.metrics.get(bad)}")
    except optuna.TrialPruned as exc:
        _finish(trial, info, started, pruned=str(exc))
        study.tell(trial, state=TrialState.PRUNED)
        return "PRUNED", str(exc)
    except KeyboardInterrupt:
        from shipyard.search._study import mark_interrupted

        _finish(trial, info, started, error="interrupted")
        mark_interrupted(study, storage, trial.number, dict(trial.params))
        raise
    except Exception as exc:  # noqa: BLE001 - a crashing trial is recorded as failed; the search goes on
        _finish(trial, info, started, error=_message(exc))
        study.tell(trial, state=TrialState.FAIL)
        return "FAIL", _message(exc)
    metrics = run.metrics
    feasible = spec.feasible(metrics)
    trial.set_user_attr("metrics", metrics)
    for constraint in spec.constraints:
        # Optuna 5 reads constraints from the trial: samplers steer away from infeasible regions.
        trial.set_constraint(constraint.text, constraint.violation(metrics))
    if spec.constraints:
        # optuna-dashboard reads the pre-5 constraint list, not set_constraint's keys: user attrs
        # are what its trial table and trial page show, so feasibility is written there too.
        trial.set_user_attr("feasible", feasible)
        trial.set_user_attr("constraints", {c.text: c.violation(metrics) for c in spec.constraints})
    _finish(trial, info, started, feasible=feasible)
    study.tell(trial, [metrics[o.metric] for o in spec.objectives])
    shown = "  ".join(f"{m}={_fmt(metrics[m])}" for m in spec.metrics)
    return "COMPLETE", f"{shown}  {'feasible' if feasible else 'INFEASIBLE'}"


def _finish(trial: optuna.Trial, info: dict[str, Any], started: float, **extra: Any) -> None:
    info["seconds"]["total"] = time.perf_counter() - started
    trial.set_user_attr(RUN, {**info, **extra})


def run_worker(
    study: optuna.Study, storage: Any, spec: SearchSpec, data: SearchData, args: WorkerArgs, say: Say
) -> int:
    """Claim and run trials until the budget or the deadline; return how many ran here.

    With a database storage the coordinator (worker 0) then waits while trials run elsewhere
    (other hosts), claiming any that come back because their worker died."""
    ran = 0
    waiting = False
    while True:
        trial = _claim(study, storage, args)
        if trial is None:
            others = _running(study) if args.index == 0 and args.heartbeat else 0
            if not others:
                return ran
            if not waiting:
                say(f"waiting for {others} trial(s) running on other workers")
            waiting = True
            time.sleep(min(5.0, float(args.heartbeat[0]) if args.heartbeat else 5.0))
            continue
        waiting = False
        started = time.perf_counter()
        with heartbeat(storage, trial._trial_id):
            state, detail = _run_one(study, storage, trial, spec, data, args)
        ran += 1
        who = f" [w{args.index}]" if args.threads else ""  # threads are capped only when workers share the CPU
        took = time.perf_counter() - started
        say(f"trial {trial.number}{who} {state} in {took:.1f}s: {detail}  ({_progress(study, args)})")


# -- worker processes ------------------------------------------------------------------------


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def worker_main(raw: str) -> int:
    """Entry point of a worker subprocess: set up, say ``ready`` on stdout, run trials."""
    from shipyard.search._check import compose_trial
    from shipyard.search._spec import search_spec
    from shipyard.search._study import open_study
    from shipyard.search._trial import load_search_data

    args = WorkerArgs(**json.loads(raw))
    root = Path(args.root)
    config = compose_trial(args.project, args.overrides, root)
    from shipyard.search._api import search_choice

    spec = search_spec(config, root, choice=search_choice(args.overrides))
    data = load_search_data(ProjectPaths.of(root, args.project))
    _set_threads(args.threads)
    storage = args.storage().open()
    study = open_study(spec, storage, None, worker=args.index)
    import shipyard.train.evaluate
    import shipyard.train.fit  # noqa: F401 - the training stack, loaded before saying ready

    print(READY, flush=True)
    # Anything a library prints from here on goes to stderr: nobody reads our stdout any more.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        run_worker(study, storage, spec, data, args, lambda line: print(line, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        return 130
    return 0


def start_workers(args: WorkerArgs, count: int, procs: list[subprocess.Popen[str]]) -> None:
    """Start workers 1..count-1, appended to ``procs`` as they start (so an interrupt can stop them)."""
    for index in range(1, count):
        payload = json.dumps(asdict(WorkerArgs(**{**asdict(args), "index": index})))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "shipyard.search", "worker", payload],
                stdout=subprocess.PIPE,
                text=True,
            )
        )


def wait_ready(procs: list[subprocess.Popen[str]], say: Say) -> None:
    """Wait, bounded, until each worker has loaded its data and study, so that all workers
    start trials together; drop (and stop) those that did not get there."""
    ready = []
    limit = time.monotonic() + READY_TIMEOUT_S
    for index, proc in enumerate(list(procs), start=1):
        line = ""
        while proc.poll() is None and time.monotonic() < limit:
            readable, _, _ = select.select([proc.stdout], [], [], 0.5)
            if readable:
                line = proc.stdout.readline().strip() if proc.stdout else ""
                break
        if line == READY:
            ready.append(proc)
        else:
            say(f"worker {index} did not start (exit code {proc.poll()}); going on without it")
            _stop(proc)
    procs[:] = ready


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # the worker fails and requeues its running trial
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_workers(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        _stop(proc)


def wait_workers(procs: list[subprocess.Popen[str]]) -> list[int]:
    """Wait for workers that are finishing their last trial (each stops at the budget or deadline)."""
    codes = []
    for proc in procs:
        codes.append(proc.wait())
        if proc.stdout:
            proc.stdout.close()
    return codes
