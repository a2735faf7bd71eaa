"""The batch job's schedules (`schedule.cron`, `airflow_dag.py`) run the job with the project's
environment on another machine: no path of the building machine, the checkout from
`$SHIPYARD_ROOT` (or the DAG's own location), the repository's `.venv` unless `$SHIPYARD_PYTHON`.

Airflow cannot be installed beside the locked stack (it needs a newer typing-extensions), so
Airflow lives in its own environment, as in production: the last test runs the DAG with Airflow's
own DagBag and `airflow dags test` when `SHIPYARD_AIRFLOW_PYTHON` names that environment's
interpreter (the README's drill says how to make one).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from shipyard.deploy.batch import build_batch_job

from .test_batch import ENV

NAME = "breast_cancer"
PROJECT = f"examples/{NAME}"
JOB = f"deploy/{PROJECT}/batch"
OUTPUT = f"data/{PROJECT}/07_model_output/batch"
# A shell where neither the project's environment nor the building checkout is visible.
BARE = {k: v for k, v in ENV.items() if k not in ("VIRTUAL_ENV", "SHIPYARD_ROOT", "PYTHONPATH")}
BARE["PATH"] = "/usr/bin:/bin"


def _checkout(examples: Any, tmp_path: Path) -> Path:
    """A repository with the job built in it, its `.venv` the project's environment and the
    example's rows as the job's default input; then moved, as if cloned on another machine."""
    ex = examples[NAME]
    built = tmp_path / "build-machine"
    (built / "conf").mkdir(parents=True)
    (built / "conf" / "config.yaml").write_text("# a Shipyard repository\n")
    (built / ".venv").symlink_to(Path(sys.prefix))
    source = {"kind": "csv", "path": "rows.csv"}
    build_batch_job(ex.bundle_dir, built / JOB, {}, project=PROJECT, version="v1", data_source=source)
    ex.test.drop(columns=[ex.target]).to_csv(built / "rows.csv", index=False)
    for name in ("schedule.cron", "airflow_dag.py", "README.md", "job.yaml"):
        text = (built / JOB / name).read_text()
        for path in {str(tmp_path), sys.prefix, str(Path(sys.executable).resolve()), str(Path.cwd())}:
            assert path not in text, f"{name} holds the building machine's path {path}"
    moved = tmp_path / "another machine" / "checkout"
    moved.parent.mkdir()
    shutil.move(built, moved)
    return moved


def _rows(folder: Path) -> int:
    return len(pd.read_parquet(folder)) if folder.is_dir() else 0


def test_cron_line_runs_the_job_from_the_checkout_it_is_given(examples: Any, tmp_path: Path) -> None:
    root = _checkout(examples, tmp_path)
    lines = (root / JOB / "schedule.cron").read_text().splitlines()
    assert "SHIPYARD_ROOT=/path/to/repository" in lines
    command = lines[-1].split(maxsplit=5)[5]  # what cron hands to /bin/sh after the five fields
    unset = subprocess.run(["sh", "-c", command], cwd="/", env=BARE, capture_output=True, text=True, timeout=300)
    assert unset.returncode != 0 and "set SHIPYARD_ROOT in the crontab" in unset.stderr
    proc = subprocess.run(
        ["sh", "-c", command],
        cwd="/",
        env={**BARE, "SHIPYARD_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert _rows(root / OUTPUT / today) == len(examples[NAME].test)


def test_dag_runs_the_job_with_the_projects_environment_wherever_it_is_linked(examples: Any, tmp_path: Path) -> None:
    root = _checkout(examples, tmp_path)
    dags = tmp_path / "airflow" / "dags"
    dags.mkdir(parents=True)
    (dags / "shipyard_examples.py").symlink_to(root / JOB / "airflow_dag.py")
    compile((dags / "shipyard_examples.py").read_text(), "airflow_dag.py", "exec")
    # Not under Airflow, the DAG file prints its task's command: run it as the task would.
    printed = subprocess.run(
        [str(root / ".venv" / "bin" / "python"), str(dags / "shipyard_examples.py"), "2024-03-05"],
        cwd="/",
        env=BARE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    venv = shlex.quote(str(root.resolve() / ".venv" / "bin" / "python"))
    assert (
        printed
        == f"cd {shlex.quote(str(root.resolve()))} && {venv} -m shipyard.deploy.batch run {JOB} --no-progress --date 2024-03-05"
    )
    proc = subprocess.run(["sh", "-c", printed], cwd="/", env=BARE, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _rows(root / OUTPUT / "2024-03-05") == len(examples[NAME].test)
    # $SHIPYARD_ROOT and $SHIPYARD_PYTHON win over the file's location and the default venv.
    other = subprocess.run(
        [sys.executable, str(dags / "shipyard_examples.py"), "2024-03-06"],
        env={**BARE, "SHIPYARD_ROOT": "/srv/shipyard", "SHIPYARD_PYTHON": "/opt/env/bin/python"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert other.startswith("cd /srv/shipyard && /opt/env/bin/python -m shipyard.deploy.batch run ")


AIRFLOW_PYTHON = os.environ.get("SHIPYARD_AIRFLOW_PYTHON")


@pytest.mark.slow
@pytest.mark.drill
@pytest.mark.skipif(not AIRFLOW_PYTHON, reason="set SHIPYARD_AIRFLOW_PYTHON to an Airflow 3 environment's python")
def test_airflow_loads_the_dag_and_its_task_scores_with_the_projects_environment(examples: Any, tmp_path: Path) -> None:
    """Fault: the DAG ran Airflow's own interpreter and failed with "No module named
    'shipyard'". Must happen: Airflow's DagBag loads the DAG linked into its dags folder with no
    import error, and `airflow dags test` runs its task, which scores the day's rows with the
    checkout's .venv; nothing but the day's output folder is written in the checkout."""
    root = _checkout(examples, tmp_path)
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "shipyard_examples.py").symlink_to(root / JOB / "airflow_dag.py")
    env = {
        **BARE,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    python = str(AIRFLOW_PYTHON)
    loaded = subprocess.run(
        [
            python,
            "-c",
            "import sys; from airflow.dag_processing.dagbag import DagBag; b = DagBag(dag_folder=sys.argv[1]); "
            "print(sorted(b.dags), b.import_errors, [t.task_id for d in b.dags.values() for t in d.tasks])",
            str(home / "dags"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip().splitlines()[-1] == "['shipyard_batch_examples_breast_cancer'] {} ['score']"
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    airflow = str(Path(python).parent / "airflow")
    migrated = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    run = subprocess.run(
        [airflow, "dags", "test", "shipyard_batch_examples_breast_cancer", "2024-03-07"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "state=success" in run.stdout + run.stderr
    assert _rows(root / OUTPUT / "2024-03-07") == len(examples[NAME].test)
    new = sorted(set(p.relative_to(root) for p in root.rglob("*")) - set(before))
    output = root / OUTPUT / "2024-03-07"
    assert new and all(output.is_relative_to(root / p) or (root / p).is_relative_to(output) for p in new), new
