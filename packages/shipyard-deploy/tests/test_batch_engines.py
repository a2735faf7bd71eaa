"""The batch job under stress: killed with SIGKILL and resumed, and run by Dask.

Real processes: the CLI in a subprocess killed mid-run, a Dask ``LocalCluster`` of worker
processes on loopback (started by the job, or by the test and reached by its address).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from shipyard.deploy.batch import build_batch_job, run_batch_job

ENV = {
    **os.environ,
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "True",
}


def make_job(example: Any, root: Path, **batch: Any) -> Path:
    key = None if example.key == "row_id" else example.key
    job_dir = root / "job"
    build_batch_job(example.bundle_dir, job_dir, batch, project=f"examples/{example.name}", version="v7", data_key=key)
    return job_dir


def repeat_rows(frame: pd.DataFrame, key: str, times: int) -> pd.DataFrame:
    big = pd.concat([frame] * times, ignore_index=True)
    big[key] = np.arange(len(big)) if key == "row_id" else [f"K{i:07d}" for i in range(len(big))]
    return big


def parts_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.glob("part-*.parquet"))}


def without_time(folder: Path, key: str) -> pd.DataFrame:
    return pd.read_parquet(folder).drop(columns="scored_at").sort_values(key).reset_index(drop=True)


@pytest.mark.slow
def test_killed_job_resumes_without_rescoring_finished_parts(examples: Any, tmp_path: Path) -> None:
    ex = examples["digits"]
    job_dir = make_job(ex, tmp_path, chunk_size=200)
    source = tmp_path / "big.parquet"
    repeat_rows(ex.test, "row_id", 60).to_parquet(source, index=False, row_group_size=4096)
    total = -(-len(ex.test) * 60 // 200)
    out = tmp_path / "out"

    cmd = [sys.executable, "-m", "shipyard.deploy.batch", "run", str(job_dir), "--input", str(source)]
    proc = subprocess.Popen(
        [*cmd, "--output", str(out), "--no-progress"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 180
        while len(list(out.glob("part-*.parquet"))) < 5 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the job ended before it could be killed: give it a bigger input"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close() if proc.stdout else None
        proc.stderr.close() if proc.stderr else None
    assert proc.returncode == -signal.SIGKILL
    kept = parts_state(out)
    assert 5 <= len(kept) < total
    assert not (out / "_SUCCESS").exists() and not (out / "_summary.json").exists()
    scored_at = json.loads((out / "_manifest.json").read_text())["scored_at"]

    summary = run_batch_job(job_dir, str(source), str(out), progress=False)
    assert summary["status"] == "succeeded"
    assert (summary["parts_resumed"], summary["parts_scored"], summary["parts"]) == (
        len(kept),
        total - len(kept),
        total,
    )
    after = parts_state(out)
    assert {name: after[name] for name in kept} == kept  # not one finished part rewritten
    assert not list(out.glob(".tmp-*"))
    resumed = pd.read_parquet(out)
    assert resumed["scored_at"].nunique() == 1
    assert resumed["scored_at"].iloc[0] == pd.Timestamp(scored_at)  # the killed run's time, kept

    clean = tmp_path / "clean"
    run_batch_job(job_dir, str(source), str(clean), progress=False)
    pd.testing.assert_frame_equal(without_time(out, "row_id"), without_time(clean, "row_id"))
    assert sorted(after) == sorted(parts_state(clean))


@pytest.mark.slow
def test_dask_local_cluster_writes_what_the_local_engine_writes(examples: Any, tmp_path: Path) -> None:
    ex = examples["churn"]
    job_dir = make_job(ex, tmp_path, chunk_size=120, dask={"n_workers": 2, "parts_per_task": 2})
    frame = repeat_rows(ex.test, "customer_id", 8)
    frame.loc[[5, 700], "monthly_charges"] = np.nan  # rejects, in two different parts
    folder = tmp_path / "in"
    folder.mkdir()
    frame.iloc[:1000].to_parquet(folder / "a.parquet", index=False, row_group_size=300)
    frame.iloc[1000:].to_parquet(folder / "b.parquet", index=False)

    local = run_batch_job(job_dir, str(folder), str(tmp_path / "local"), progress=False)
    dask = run_batch_job(job_dir, str(folder), str(tmp_path / "dask"), engine="dask", progress=False)

    assert dask["engine"] == "dask" and local["engine"] == "local"
    for key in ("rows_read", "rows_scored", "rows_rejected", "parts"):
        assert dask[key] == local[key]
    assert local["rows_rejected"] == 2
    assert sorted(parts_state(tmp_path / "dask")) == sorted(parts_state(tmp_path / "local"))
    pd.testing.assert_frame_equal(
        without_time(tmp_path / "dask", "customer_id"), without_time(tmp_path / "local", "customer_id")
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "dask" / "_rejects.csv"), pd.read_csv(tmp_path / "local" / "_rejects.csv")
    )


@pytest.mark.slow
def test_dask_scheduler_address_writes_sqlite_from_many_workers(examples: Any, tmp_path: Path) -> None:
    from distributed import LocalCluster

    ex = examples["breast_cancer"]
    job_dir = make_job(ex, tmp_path, chunk_size=50, dask={"parts_per_task": 1})
    source = tmp_path / "in.parquet"
    repeat_rows(ex.test, "row_id", 6).to_parquet(source, index=False)
    target = f"sqlite:///{tmp_path / 'scores.db'}?table=scores"

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as cluster:
        summary = run_batch_job(job_dir, str(source), target, scheduler=cluster.scheduler_address, progress=False)
        assert len(cluster.scheduler.workers) == 2  # the job used the cluster it was given
    assert summary["engine"] == "dask" and summary["parts_scored"] == summary["parts"] > 2

    run_batch_job(job_dir, str(source), str(tmp_path / "local"), progress=False)
    with sqlite3.connect(tmp_path / "scores.db") as conn:
        got = pd.read_sql("SELECT * FROM scores ORDER BY row_id", conn)
    ref = without_time(tmp_path / "local", "row_id")
    assert got["row_id"].tolist() == ref["row_id"].tolist()  # every row once: no part written twice
    np.testing.assert_allclose(got["score"].to_numpy(), ref["score"].to_numpy(), rtol=1e-6)
    assert got["prediction"].tolist() == ref["prediction"].tolist()
