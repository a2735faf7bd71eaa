"""Scaling out, on the real engines: each test starts the servers or processes it needs and
stops them whatever happens (fixtures in conftest.py).

- search: `shipyard search` processes in separate checkouts (as on separate hosts) share one
  study in a PostgreSQL database; a killed host's trial is failed by the heartbeat and run again;
- batch: input, scores, rejects and bookkeeping in PostgreSQL, killed and resumed;
- batch: a `dask scheduler` and two `dask worker` processes, one worker killed mid-job;
- training: `trainer=ddp` with two nodes (two launches, NODE_RANK 0 and 1) on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from .conftest import QUIET, DaskCluster, Postgres, Repo, cli_env, free_port, make_repo, stop_process

pytestmark = pytest.mark.slow

BC = "tabular/breast_cancer"
# Cheap evaluation: the latency repeats are the slowest part of a short training's evaluation.
EVAL = ("evaluate.latency_repeats=3", "evaluate.latency_warmup=1")
TRAIN = ("trainer.max_epochs=10", "trainer.early_stopping.enabled=false", "trainer.progress_bar=false", *EVAL)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A repository where breast_cancer was trained once, single process (gate off)."""
    repo = make_repo(tmp_path_factory.mktemp("scale") / "trained")
    repo.train(BC, *TRAIN, "trainer.batch_size=64")  # the two-node test's reference: 64 rows a step
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


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    """Wait for a process; return its exit code, stdout and stderr (stopping it if it overruns)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise
    return proc.returncode, out, err


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
fixed: {trainer.max_epochs: 4, trainer.early_stopping.enabled: false, trainer.progress_bar: false}
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
    try:
        return optuna.load_study(study_name=f"{BC}/grid_scale", storage=url).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


@pytest.mark.drill
def test_search_hosts_share_a_postgresql_study_and_a_killed_host_loses_nothing(
    trained: Repo, postgres: Postgres, tmp_path: Path
) -> None:
    """Fault: one of two search hosts is killed (SIGKILL) in the middle of a trial.
    Must: the other host's heartbeat check fails that trial and runs its parameters again, so
    the study ends with exactly one complete trial per grid point (none lost, none run twice),
    the same Pareto front and selection as a one-worker search on a journal file, and the
    surviving host's search folder holds no study of its own (the database held it)."""
    from shipyard.search import run_search

    journal = checkout(trained, tmp_path / "journal")  # the reference: one worker, the default journal file
    run_search(BC, ["search=grid_scale", *EVAL], root=journal.path, final=False, say=lambda _: None)
    ref = journal.data(BC) / "08_reporting" / "search"
    assert (ref / "journal.log").is_file()

    url = postgres.database("search_hosts")
    hosts = [checkout(trained, tmp_path / name) for name in ("host_a", "host_b")]
    # Short heartbeats, so that the dead host's trial is found within seconds.
    storage = (f"search.storage={url}", "search.heartbeat.interval=1", "search.heartbeat.grace_period=5")
    procs: list[subprocess.Popen[str]] = []
    try:
        # The hosts' own claim lock is the starting line: the test holds it until both hosts
        # wait for it, so both then open the study and claim trials at the same moment.
        with _study_lock(url) as waiting:
            procs += [spawn(host, *_search_args(*storage, "--workers", "1")) for host in hosts]
            _until(lambda: waiting() == 2, procs, "both hosts wait for the claim lock")
        # Two trials running: one per host (one worker each). Kill host B in the middle of its.
        # A trial is RUNNING from its creation, before its parameters are drawn: wait for both
        # hosts' trials to hold their parameters, so that the kill lands in the middle of one.
        training = lambda: sum(t.state.name == "RUNNING" and bool(t.params) for t in _pg_trials(url))  # noqa: E731
        _until(lambda: training() == 2, procs, "both hosts train a trial")
        os.killpg(procs[1].pid, signal.SIGKILL)
        code, _, err = finish(procs[0], 600)
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


@contextlib.contextmanager
def _study_lock(url: str) -> Iterator[Callable[[], int]]:
    """Hold the study's claim lock (a PostgreSQL advisory lock); yield a function counting the
    sessions waiting for it."""
    from shipyard.search._storage import study_lock_key
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    key = study_lock_key(f"{BC}/grid_scale")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            with engine.connect() as probe:
                yield lambda: int(probe.execute(text(waiting)).scalar_one())
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


def _until(check: Callable[[], bool], procs: list[subprocess.Popen[str]], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        ended = [p for p in procs if p.poll() is not None]
        if ended:
            pytest.fail(f"a process ended before {what}:\n{ended[0].stderr.read()[-3000:] if ended[0].stderr else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.05)


# -- training across nodes ----------------------------------------------------------------------

# Two nodes of one process each (gloo on CPU) against one process: each step averages the
# gradients of two ranks' 32 rows, the single process takes 64 rows a step, so both take the
# same number of steps of the same size; only which rows share a step differs. Measured here
# (10 epochs): identical accuracy, F1 and ROC-AUC on the 85 test rows; 0.03 is two or three rows.
DDP_TOLERANCE = 0.03
TWO_NODES = ("trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2", "trainer.batch_size=32")


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (the .git folder included)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


@pytest.mark.drill
def test_ddp_on_two_nodes_matches_one_process_and_only_rank_zero_writes(trained: Repo, tmp_path: Path) -> None:
    """Fault guarded against: a node other than rank 0 writing (or deleting) project files, and
    two launches that do not form one training. Node 0 runs `shipyard train` with NODE_RANK=0;
    node 1 runs the compiled train stage (`shipyard stage`, what dvc.yaml runs) with NODE_RANK=1
    in its own checkout, as on another machine. Must: one training of world size 2 whose metrics
    match a single-process training within DDP_TOLERANCE; node 1's checkout is left exactly as
    it was."""
    overrides = (*TWO_NODES, *TRAIN, "gate.enabled=false")
    node0 = checkout(trained, tmp_path / "node0")
    node0.run("compile", BC, *overrides)  # the pipeline both nodes run (a committed one, in real life)
    node1 = checkout(node0, tmp_path / "node1")
    before = _tree(node1.path)
    rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    second = spawn(node1, "stage", BC, "train", env={**rendezvous, "NODE_RANK": "1"})
    try:
        first = spawn(node0, "train", BC, *overrides, env={**rendezvous, "NODE_RANK": "0"})
        try:
            code, _, err = finish(first, 600)
        finally:
            stop_process(first)
        assert code == 0, err[-3000:]
        code1, _, err1 = finish(second, 120)
        assert code1 == 0, err1[-3000:]
    finally:
        stop_process(second)
    assert [line[2:] for line in err.splitlines() if line.startswith("▶ ")] == ["train", "evaluate", "gate", "report"]

    report = json.loads((node0.data(BC) / "08_reporting" / "train_report.json").read_text())
    assert report["hardware"]["world_size"] == 2 and report["hardware"]["num_nodes"] == 2
    assert _tree(node1.path) == before  # node 1 trained and wrote nothing, removed nothing

    single, two = trained.metrics(BC), node0.metrics(BC)
    assert node0.bundle_meta(BC)["weights_sha256"] != trained.bundle_meta(BC)["weights_sha256"]
    for name in ("test/accuracy", "test/f1", "test/roc_auc", "val/accuracy", "val/roc_auc"):
        assert abs(two[name] - single[name]) <= DDP_TOLERANCE, (name, two[name], single[name])


# -- batch scoring: PostgreSQL, and a Dask cluster ------------------------------------------------


def _job(trained: Repo, folder: Path, **batch: Any) -> Path:
    from shipyard.deploy.batch import build_batch_job

    bundle = trained.data(BC) / "06_models" / "bundle"
    build_batch_job(bundle, folder, batch, project=BC, version="v1")
    return folder


def _rows(trained: Repo, times: int) -> pd.DataFrame:
    """The breast-cancer rows ``times`` over, numbered by ``row_id``, two of them unscorable."""
    raw = pd.read_csv(trained.path / "data" / BC / "01_raw" / "breast_cancer.csv").drop(columns="target")
    frame = pd.concat([raw] * times, ignore_index=True)
    frame.insert(0, "row_id", range(len(frame)))
    frame.loc[[7, len(frame) - 3], "mean radius"] = float("nan")  # rejected: no value where training had one
    return frame


def _scores(url: str, table: str) -> pd.DataFrame:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        frame = pd.read_sql(f'SELECT * FROM "{table}" ORDER BY row_id', engine)
    finally:
        engine.dispose()
    return frame.drop(columns="scored_at").reset_index(drop=True)


def _parts(folder: Path) -> pd.DataFrame:
    frame = pd.read_parquet(folder).drop(columns="scored_at")
    return frame.sort_values("row_id").reset_index(drop=True)


def _batch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shipyard.deploy.batch", "run", *args, "--no-progress"],
        env={**os.environ, **QUIET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _count(postgres: Postgres, database: str, sql: str) -> int:
    try:
        return int(postgres.query(database, sql)[0][0])  # type: ignore[call-overload]
    except Exception:  # noqa: BLE001 - the table does not exist yet
        return 0


@pytest.mark.drill
def test_batch_on_postgresql_resumes_like_sqlite(trained: Repo, postgres: Postgres, tmp_path: Path) -> None:
    """Fault: the batch job (CLI) is killed with SIGKILL while it reads a PostgreSQL table and
    writes scores, rejects and bookkeeping to PostgreSQL. Must: the next run keeps every
    committed part and scores only the rest; the result equals a clean run on Parquet files row
    for row; a finished job rerun changes nothing; a table the job did not write is refused and
    left as it was."""
    from shipyard.core.errors import DataError
    from shipyard.deploy.batch import run_batch_job
    from sqlalchemy import create_engine

    url = postgres.database("batch_pg")
    frame = _rows(trained, 20)
    engine = create_engine(url)
    frame.sample(frac=1.0, random_state=0).to_sql("patients", engine, index=False, chunksize=5000)
    pd.DataFrame({"row_id": [1], "note": ["a table somebody else owns"]}).to_sql("reports", engine, index=False)
    engine.dispose()
    job = _job(trained, tmp_path / "job", chunk_size=100)
    source, target = f"{url}?table=patients", f"{url}?table=scores"
    total = -(-len(frame) // 100)
    digest = 'SELECT count(*), sum(row_id), sum("mean radius") FROM patients'
    input_before = postgres.query("batch_pg", digest)

    proc = _batch(str(job), "--input", source, "--output", target)
    try:
        parts = "SELECT count(*) FROM scores__batch WHERE name LIKE 'part-%'"
        _until(lambda: _count(postgres, "batch_pg", parts) >= 5, [proc], "five parts were committed")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_process(proc)
    kept = _count(postgres, "batch_pg", parts)
    assert 5 <= kept < total
    assert _count(postgres, "batch_pg", "SELECT count(*) FROM scores__batch WHERE name = 'summary'") == 0

    summary = run_batch_job(job, source, target, progress=False)
    assert summary["status"] == "succeeded" and summary["parts"] == total
    assert (summary["parts_resumed"], summary["parts_scored"]) == (kept, total - kept)
    assert summary["rows_read"] == len(frame) and summary["rows_rejected"] == 2
    got = _scores(url, "scores")
    assert len(got) == len(frame) - 2 and got["row_id"].is_unique
    rejects = postgres.query("batch_pg", "SELECT row_id FROM scores__rejects")  # raw values, as text
    assert sorted(int(str(r[0])) for r in rejects) == [7, len(frame) - 3]

    parquet = tmp_path / "patients.parquet"
    frame.to_parquet(parquet, index=False)
    run_batch_job(job, str(parquet), str(tmp_path / "clean"), progress=False)
    pd.testing.assert_frame_equal(got, _parts(tmp_path / "clean"), check_dtype=False)

    assert run_batch_job(job, source, target, progress=False)["up_to_date"] is True
    assert _scores(url, "scores").equals(got)
    with pytest.raises(DataError):
        run_batch_job(job, source, f"{url}?table=reports", progress=False)
    assert postgres.query("batch_pg", "SELECT row_id, note FROM reports") == [(1, "a table somebody else owns")]
    assert postgres.query("batch_pg", digest) == input_before


@pytest.mark.drill
def test_batch_on_a_dask_cluster_survives_a_killed_worker(
    trained: Repo, postgres: Postgres, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    """Fault: one of the two `dask worker` processes is killed (SIGKILL) while the job, submitted
    to the scheduler's address, writes its parts into PostgreSQL from both workers at once.
    Must: the job finishes on the other worker with every row scored exactly once, the table
    equals what local scoring of the same input writes, and the input file is untouched."""
    from shipyard.deploy.batch import run_batch_job

    frame = _rows(trained, 20)
    source = tmp_path / "patients.parquet"
    frame.to_parquet(source, index=False, row_group_size=2000)
    job = _job(trained, tmp_path / "job", chunk_size=100, dask={"parts_per_task": 2})
    local = run_batch_job(job, str(source), str(tmp_path / "local"), progress=False)
    total = local["parts"]
    input_before = source.read_bytes()

    url = postgres.database("batch_dask")
    proc = _batch(
        str(job), "--input", str(source), "--output", f"{url}?table=scores", "--scheduler", dask_cluster.scheduler
    )
    try:
        parts = "SELECT count(*) FROM scores__batch WHERE name LIKE 'part-%'"
        _until(lambda: _count(postgres, "batch_dask", parts) >= 10, [proc], "ten parts were committed")
        os.killpg(dask_cluster.workers[0].pid, signal.SIGKILL)
        at_kill = _count(postgres, "batch_dask", parts)
        code, out, err = finish(proc, 300)
    finally:
        stop_process(proc)
    assert dask_cluster.workers[0].wait(timeout=30) == -signal.SIGKILL
    assert code == 0, err[-3000:]
    assert at_kill < total, "the job had finished before the worker was killed: give it a bigger input"
    summary = json.loads(out)
    assert summary["engine"] == "dask" and summary["parts"] == total and summary["rows_rejected"] == 2
    got = _scores(url, "scores")
    assert len(got) == len(frame) - 2 and got["row_id"].is_unique
    pd.testing.assert_frame_equal(got, _parts(tmp_path / "local"), check_dtype=False)
    assert _count(postgres, "batch_dask", parts) == total
    assert _count(postgres, "batch_dask", "SELECT count(*) FROM scores__rejects") == 2
    assert source.read_bytes() == input_before
