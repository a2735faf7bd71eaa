"""Scaling out, on the real engines: each test starts the servers or processes it needs and
stops them whatever happens (fixtures in conftest.py).

- search: `shipyard search` processes in separate checkouts (as on separate hosts) share one
  study in a PostgreSQL database; a killed host's trial is failed by the heartbeat and run again;
- batch: input, scores, rejects and bookkeeping in PostgreSQL, killed and resumed;
- batch: a `dask scheduler` and two `dask worker` processes, one worker killed mid-job;
- training: `trainer=ddp` with two nodes (two launches, NODE_RANK 0 and 1) on this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from .conftest import DaskCluster, Postgres, Repo, cli_env, free_port, make_repo, stop_process

pytestmark = pytest.mark.slow

BC = "tabular/breast_cancer"
# Cheap evaluation: the latency repeats are the slowest part of a short training's evaluation.
EVAL = ("evaluate.latency_repeats=3", "evaluate.latency_warmup=1")
TRAIN = ("trainer.max_epochs=12", "trainer.early_stopping.enabled=false", "trainer.progress_bar=false", *EVAL)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A repository where breast_cancer was trained once, single process (gate off)."""
    repo = make_repo(tmp_path_factory.mktemp("scale") / "trained")
    repo.train(BC, *TRAIN)
    return repo


def checkout(template: Repo, path: Path) -> Repo:
    """Another host's checkout: a copy of the repository, data and DVC cache included (and the
    search these tests run)."""
    shutil.copytree(template.path, path, symlinks=True)
    (path / "conf" / "search" / "grid_scale.yaml").write_text(GRID)
    return Repo(path)


def spawn(repo: Repo, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shipyard.engine", *args],
        cwd=repo.path,
        env={**cli_env(repo.path), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    """Wait for a process; return its exit code and stderr (stopping it if it overruns)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise
    return proc.returncode, err


# -- search across hosts ------------------------------------------------------------------------

# A grid of six points queued in a seeded order (enqueued trials): which trial has which
# parameters does not depend on who runs it, and each trial's result depends only on its
# parameters (seeded, deterministic training). So a study run by any number of workers on any
# storage must give the same trials, the same Pareto front and the same selection. Objectives
# are quality and size: latency would differ from run to run.
GRID = """
name: grid_scale
objectives:
  - {metric: val/f1, direction: maximize}
  - {metric: params, direction: minimize}
constraints: ["val/recall >= 0.9"]
space:
  model.hidden: {type: categorical, choices: [[4], [16], [32, 16]]}
  optim.lr: {type: categorical, choices: [0.003, 0.02]}
fixed: {trainer.max_epochs: 5, trainer.early_stopping.enabled: false, trainer.progress_bar: false}
sampler: {name: grid}
n_trials: 6
"""
GRID_SIZE = 6


def _search_args(*extra: str) -> list[str]:
    return ["search", BC, "search=grid_scale", *EVAL, *extra, "--no-final"]


def _front(folder: Path) -> list[tuple[str, dict[str, float]]]:
    pareto = json.loads((folder / "pareto.json").read_text())
    return sorted((json.dumps(t["params"], sort_keys=True), t["values"]) for t in pareto["trials"])


def _selected(folder: Path) -> tuple[Any, ...]:
    chosen = json.loads((folder / "report.json").read_text())["selected"]
    return chosen["params"], chosen["values"], chosen["metrics"]["val/recall"]


def _pg_trials(url: str) -> list[Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=f"{BC}/grid_scale", storage=url).get_trials(deepcopy=False)


@pytest.mark.drill
def test_search_hosts_share_a_postgresql_study_and_a_killed_host_loses_nothing(
    trained: Repo, postgres: Postgres, tmp_path: Path
) -> None:
    """Fault: one of two search hosts is killed (SIGKILL) in the middle of a trial.
    Must: the other host's heartbeat check fails that trial and runs its parameters again, so
    the study ends with exactly one complete trial per grid point (none lost, none run twice),
    the same Pareto front and selection as a one-host journal-file search; the journal host's
    own study and files are untouched by the database search."""
    journal = checkout(trained, tmp_path / "journal")
    code, err = finish(spawn(journal, *_search_args("--workers", "2")), 600)
    assert code == 0, err[-3000:]
    ref = journal.data(BC) / "08_reporting" / "search"

    url = postgres.database("search_hosts")
    hosts = [checkout(trained, tmp_path / name) for name in ("host_a", "host_b")]
    storage = (f"search.storage={url}", "search.heartbeat.interval=1", "search.heartbeat.grace_period=3")
    procs = [spawn(host, *_search_args(*storage, "--workers", "1")) for host in hosts]
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # both hosts mid-trial, at least one trial done
            states = [t.state.name for t in _pg_trials(url)] if _study_exists(postgres) else []
            if states.count("RUNNING") == 2 and "COMPLETE" in states:
                break
            assert all(p.poll() is None for p in procs), "a search host ended early"
            time.sleep(0.2)
        else:
            pytest.fail("the two hosts never ran trials at the same time")
        os.killpg(procs[1].pid, signal.SIGKILL)
        code, err = finish(procs[0], 600)
        assert code == 0, err[-3000:]
    finally:
        for proc in procs:
            stop_process(proc)

    trials = _pg_trials(url)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(complete) == GRID_SIZE and len(trials) == GRID_SIZE + 1
    assert len({json.dumps(t.params, sort_keys=True) for t in complete}) == GRID_SIZE  # each point once
    assert len(failed) == 1  # the killed host's trial, failed by the heartbeat check ...
    retry = next(t for t in complete if t.system_attrs.get("failed_trial") == failed[0].number)
    assert retry.params == failed[0].params  # ... and run again with its parameters

    folder = hosts[0].data(BC) / "08_reporting" / "search"
    rows = pd.read_csv(folder / "trials.csv")
    assert (rows["state"] == "COMPLETE").sum() == GRID_SIZE and (rows["state"] == "FAIL").sum() == 1
    assert _front(folder) == _front(ref)
    assert _selected(folder) == _selected(ref)
    assert not (hosts[1].data(BC) / "08_reporting" / "search" / "report.json").exists()
    assert "journal.log" not in {p.name for p in folder.iterdir()}  # the database held the study


def _study_exists(postgres: Postgres) -> bool:
    rows = postgres.query("search_hosts", "SELECT count(*) FROM pg_tables WHERE tablename = 'studies'")
    return bool(rows[0][0]) and bool(postgres.query("search_hosts", "SELECT count(*) FROM studies")[0][0])
