"""End to end in a throwaway git + DVC repository: train, cache, selective reruns, plain DVC."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import Repo, cli_env

pytestmark = pytest.mark.slow

BC = "tabular/breast_cancer"
FAST = ("trainer.max_epochs=4", "trainer.progress_bar=false")
ALL = ["ingest", "check", "split", "fit_preprocessing", "train", "evaluate", "gate", "report"]


def test_train_then_rerun_only_what_changed(repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo: Repo = repo_factory()
    ran, proc = repo.train(BC, *FAST)
    assert ran == ALL
    assert "test/accuracy=" in proc.stdout
    data = repo.data(BC)
    raw = data / "01_raw" / "breast_cancer.csv"
    assert raw.is_file() and (raw.parent / "breast_cancer.csv.dvc").is_file(), "raw data is tracked by DVC"
    lock = yaml.safe_load((repo.path / "pipelines" / BC / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(ALL)
    ingest_deps = {d["path"]: d for d in lock["stages"]["ingest"]["deps"]}
    assert "data/tabular/breast_cancer/01_raw/breast_cancer.csv" in ingest_deps
    assert any(p.endswith("shipyard/data") for p in ingest_deps), "code is a dependency"
    metrics = repo.metrics(BC)
    for key in ("val/accuracy", "test/f1", "test/roc_auc", "latency_p95_ms", "latency_p95_ms_b256", "model_size_bytes"):
        assert key in metrics
    assert metrics["test/accuracy"] > 0.85
    bundle = data / "06_models" / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json", "weights.safetensors"]
    assert not list(data.rglob("*.pkl")) and not list(data.rglob("*.pickle"))
    assert (data / "08_reporting" / "learning_curve.csv").read_text().startswith("epoch")
    assert not (data / "06_models" / ".train").exists(), "checkpoints are removed after a finished run"

    # Nothing changed: no stage runs.
    ran, _ = repo.train(BC, *FAST)
    assert ran == []

    # A training parameter: train and evaluate only.
    ran, _ = repo.train(BC, "trainer.max_epochs=3", "trainer.progress_bar=false")
    assert ran == ["train", "evaluate", "gate", "report"]

    # Only an evaluation parameter: evaluate only, no retraining.
    ran, _ = repo.train(BC, "trainer.max_epochs=3", "trainer.progress_bar=false", "evaluate.latency_repeats=10")
    assert ran == ["evaluate", "gate", "report"]

    # The split: split onward, never ingest.
    ran, _ = repo.train(
        BC,
        "trainer.max_epochs=3",
        "trainer.progress_bar=false",
        "evaluate.latency_repeats=10",
        "split.val=0.2",
        "split.train=0.65",
    )
    assert ran == ["split", "fit_preprocessing", "train", "evaluate", "gate", "report"]

    # One byte of the raw file: everything from ingest.
    raw.write_text(raw.read_text().replace("\n1", "\n2", 1))
    ran, _ = repo.train(
        BC,
        "trainer.max_epochs=3",
        "trainer.progress_bar=false",
        "evaluate.latency_repeats=10",
        "split.val=0.2",
        "split.train=0.65",
    )
    assert ran[0] == "ingest"


def test_plain_dvc_repro_runs_the_compiled_pipeline(repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo: Repo = repo_factory()
    _ran, _ = repo.train(BC, *FAST)
    params_file = repo.path / "pipelines" / BC / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["trainer"]["max_epochs"] = 2
    params_file.write_text(yaml.safe_dump(params))
    dvc = str(Path(sys.executable).parent / "dvc")
    proc = subprocess.run(
        [dvc, "repro", f"pipelines/{BC}/dvc.yaml"],
        cwd=repo.path,
        env=cli_env(repo.path),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout + proc.stderr
    assert "Running stage 'pipelines/tabular/breast_cancer/dvc.yaml:train'" in out
    assert "Running stage 'pipelines/tabular/breast_cancer/dvc.yaml:ingest'" not in out
    report = json.loads((repo.data(BC) / "08_reporting" / "train_report.json").read_text())
    assert report["epochs"] == 2
    status = subprocess.run(
        [dvc, "status", f"pipelines/{BC}/dvc.yaml"],
        cwd=repo.path,
        env=cli_env(repo.path),
        capture_output=True,
        text=True,
    )
    assert "up to date" in status.stdout


def test_data_error_stops_the_pipeline_with_exit_2(repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo: Repo = repo_factory()
    ran, proc = repo.train(BC, "data.target=diagnosis", *FAST, check=False)
    assert proc.returncode == 2
    assert "target column 'diagnosis' is not in the data" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert ran == ["ingest"]
    assert not (repo.data(BC) / "05_model_input").exists()
    lock = repo.path / "pipelines" / BC / "dvc.lock"
    assert not lock.exists() or "split" not in yaml.safe_load(lock.read_text()).get("stages", {})
