"""The monitoring loop through the real CLI, DVC, registry and batch job: the batch job logs what
it scores; `shipyard monitor` judges windows of that log (exit 0 on a replay, 4 on an injected
shift), writes monitor.json and the HTML report, joins labels; the trigger retrains into a gated
candidate on a new DVC raw version, records why in its lineage, and never promotes without the
rule's say."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
import yaml

from .conftest import Repo, make_repo

pytestmark = pytest.mark.slow

BC = "tabular/breast_cancer"
SETTINGS = {
    "trainer": {"max_epochs": 5, "progress_bar": False},
    "gate": {"baseline": {"models": ["dummy"]}, "regression_tolerance": 1.0},
    "deploy": {"targets": ["batch"]},
    # The retraining data is the shifted data: wider than training's ranges on purpose.
    "checks": {"contract_limits": {"range_margin": 3.0}},
    "monitor": {
        "log": {"flush_rows": 200},
        "drift": {"min_rows": 50},
        "trigger": {"drift_share": 0.2, "windows": 2, "cooldown": "2d", "action": "retrain"},
        "retrain": {"refresh": "cp data/incoming.csv data/tabular/breast_cancer/01_raw/breast_cancer.csv"},
    },
}


def _git(repo: Repo, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo.path, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = make_repo(tmp_path_factory.mktemp("monitor") / "repo")
    project = repo.path / "conf" / "project" / f"{BC}.yaml"
    conf = yaml.safe_load(project.read_text())
    for key, value in SETTINGS.items():
        conf[key] = {**conf.get(key, {}), **value} if isinstance(value, dict) else value
    project.write_text("# @package _global_\n" + yaml.safe_dump(conf, sort_keys=False))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "monitoring settings")
    repo.train(BC, gate=True)
    repo.run("promote", BC, "v1")
    return repo


def _score(repo: Repo, frame: pd.DataFrame, name: str) -> None:
    path = repo.path / "data" / f"{name}.csv"
    frame.to_csv(path, index=False)
    repo.run("batch", BC, "--input", str(path), "--output", str(repo.path / "data" / f"{name}-out"))


def _monitor(repo: Repo, *args: str) -> tuple[int, dict]:
    proc = repo.run("monitor", BC, "--json", *args, check=False)
    assert proc.returncode in (0, 4, 5), proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_monitoring_windows_of_the_batch_log_and_the_retraining_trigger(repo: Repo) -> None:
    raw = pd.read_csv(repo.data(BC) / "01_raw" / "breast_cancer.csv")
    features = raw.drop(columns=["target"])
    log = repo.data(BC) / "09_monitoring" / "predictions"

    # A replay of the training data: logged by the batch job, judged healthy.
    _score(repo, features, "replay")
    files = sorted(log.glob("*.parquet"))
    assert files and sum(len(pd.read_parquet(f)) for f in files) == len(features)
    logged = pd.read_parquet(files[0])
    assert {"_source", "_model_version", "_key", "_prediction", "mean radius"} <= set(logged.columns)
    assert set(logged["_source"]) == {"batch"} and set(logged["_model_version"]) == {f"{BC}@v1.0.0"}
    stamp = pd.Timestamp(logged["_logged_at"].iloc[0])
    day = lambda d: (stamp + pd.Timedelta(days=d)).isoformat()  # noqa: E731
    code, result = _monitor(repo, "--since", day(-1), "--until", day(1), "--now", day(1))
    assert (code, result["status"], result["drifted"]) == (0, "healthy", []), result["drifted"]
    assert result["rows"] == len(features) and result["version"] == "v1.0.0"
    page = repo.path / result["reports"]["html"]
    assert page.is_file() and "<svg" in page.read_text()

    # Labels that arrive later join by key: live metrics beside validation's.
    labels = repo.path / "data" / "labels.csv"
    pd.DataFrame({"row_id": range(len(raw)), "target": raw["target"]}).to_csv(labels, index=False)
    code, result = _monitor(
        repo, "--since", day(-1), "--until", day(1), "--now", day(1), "--labels", str(labels), "--no-action"
    )
    assert result["labels"]["joined"] == len(raw) and result["labels"]["metrics"]["accuracy"] > 0.8

    # Shifted inputs: nine features scaled up (still inside the contract's ranges). Drift, exit 4, the drifted features named.
    shifted = features.copy()
    moved = list(features.columns[:9])
    shifted[moved] = shifted[moved] * 1.5
    (repo.path / "data" / "incoming.csv").write_text(raw.assign(**{c: raw[c] * 1.5 for c in moved}).to_csv(index=False))
    _score(repo, shifted, "shifted")
    newest = max(pd.Timestamp(pd.read_parquet(f)["_logged_at"].max()) for f in log.glob("*.parquet"))
    since = (newest - pd.Timedelta(seconds=60)).isoformat()
    until = (newest + pd.Timedelta(seconds=1)).isoformat()
    later = lambda d: (newest + pd.Timedelta(days=d)).isoformat()  # noqa: E731
    code, result = _monitor(repo, "--since", since, "--until", until, "--now", later(3))
    assert code == 4 and result["status"] == "drift"
    # A 1.5x scale is caught on nearly every moved feature; one with many zeros (mean concavity)
    # can stay under the effect floor on this small window.
    assert len(set(moved) & set(result["drifted"])) >= 8 and result["drift_share"] >= 0.25, result["drifted"]
    assert not result["trigger"]["fired"] and result["trigger"]["consecutive"] == 1

    # The second drifted window in a row fires the trigger: retrain on the refreshed raw data.
    pointer = (repo.data(BC) / "01_raw" / "breast_cancer.csv.dvc").read_text()
    code, result = _monitor(repo, "--input", str(repo.path / "data" / "shifted.csv"), "--now", later(4))
    assert code == 4 and result["trigger"]["fired"], result["trigger"]
    retrain = result["retrain"]
    assert retrain["data"]["new_version"] is True
    assert (repo.data(BC) / "01_raw" / "breast_cancer.csv.dvc").read_text() != pointer
    assert retrain["version"] == "v2.0.0" and retrain["gate_passed"] and retrain["promoted"] is False
    status = json.loads(repo.run("status", BC, "--json").stdout)
    assert status["production"] == "v1.0.0", "no auto_promote: production stays"
    lineage = json.loads(repo.run("lineage", BC, "v2", "--json").stdout)
    assert "consecutive window(s)" in lineage["trigger"]["reasons"][0]
    assert lineage["trigger"]["data"]["new_version"] is True

    # Within the cooldown, drift is reported but the trigger holds.
    code, result = _monitor(repo, "--input", str(repo.path / "data" / "shifted.csv"), "--now", later(5))
    assert code == 4 and not result["trigger"]["fired"]
    state = json.loads((repo.data(BC) / "09_monitoring" / "trigger.json").read_text())
    assert len(state["firings"]) == 1 and state["firings"][0]["retrain"]["version"] == "v2.0.0"


def test_bad_input_is_one_message_exit_2(repo: Repo) -> None:
    for args, words in (
        (["--since", "yesterday"], "--since is not a date or time"),
        (["--input", "data/none.parquet"], "does not exist"),
        (["--labels", "data/none.csv", "--no-action"], "labels file data/none.csv does not exist"),
    ):
        proc = repo.run("monitor", BC, *args, check=False)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_schedule_runs_as_written(repo: Repo) -> None:
    """The cron line and the DAG's command name the repository through $SHIPYARD_ROOT and the
    project's interpreter, never the building machine's paths; both really run the monitor."""
    import os
    import sys

    proc = repo.run("monitor", BC, "--schedule")
    folder = repo.path / "deploy" / BC / "monitor"
    cron, dag = (folder / "schedule.cron").read_text(), folder / "airflow_dag.py"
    assert str(repo.path) not in cron and str(repo.path) not in dag.read_text()
    assert "wrote deploy/tabular/breast_cancer/monitor/airflow_dag.py" in proc.stdout
    env = dict(os.environ, SHIPYARD_ROOT=str(repo.path), SHIPYARD_PYTHON=sys.executable)
    line = cron.strip().splitlines()[-1].split(" ", 5)[5]  # the command after the five cron fields
    ran = subprocess.run(["sh", "-c", line + " --no-action"], env=env, capture_output=True, text=True, cwd="/")
    assert ran.returncode in (0, 4, 5) and "report: data/tabular/breast_cancer/09_monitoring/reports/" in ran.stdout, (
        ran.stderr
    )
    command = subprocess.run(
        [sys.executable, str(dag), "2026-01-01T03:00:00+00:00"], env=env, capture_output=True, text=True
    )
    ran = subprocess.run(["sh", "-c", command.stdout.strip() + " --no-action"], env=env, capture_output=True, text=True)
    assert ran.returncode in (0, 4, 5) and "0 rows" in ran.stdout, ran.stdout + ran.stderr
