"""Gates, registry and lineage through the real CLI, DVC and git."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from .conftest import Repo, cli_env

pytestmark = pytest.mark.slow

BC = "tabular/breast_cancer"
QUICK = ("trainer.max_epochs=3", "trainer.progress_bar=false")


def test_gate_blocks_a_worse_model_and_promote_refuses_it(repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo: Repo = repo_factory()
    _ran, proc = repo.train(BC, *QUICK, "gate.thresholds={test/accuracy: {min: 0.999}}", gate=True, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "gate FAIL: threshold test/accuracy" in proc.stderr and "expected >= 0.999" in proc.stderr
    assert "registered tabular/breast_cancer v1.0.0; gate FAILED" in proc.stdout
    report = json.loads((repo.data(BC) / "08_reporting" / "gate.json").read_text())
    names = [c["name"] for c in report["checks"]]
    assert names[0] == "threshold test/accuracy" and "beats linear baseline on test/f1" in names
    refused = repo.run("promote", BC, "v1", check=False)
    assert refused.returncode == 2
    assert "v1.0.0 did not pass its gate (failed: threshold test/accuracy" in refused.stderr
    status = json.loads(repo.run("status", BC, "--json").stdout)
    assert status["production"] is None and status["versions"][0]["gate_passed"] is False


def _edge_version(repo: Repo) -> str:
    meta = json.loads((repo.path / "deploy" / BC / "edge" / "metadata.json").read_text())
    return str(meta["model_version"])


def test_rollback_drill_and_lineage(repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo: Repo = repo_factory()
    gated = (
        "trainer.max_epochs=20",
        "trainer.progress_bar=false",
        "gate.baseline.models=[dummy]",
        "deploy.targets=[edge]",
    )
    repo.train(BC, *gated, "seed=1", gate=True)
    skipped = repo.run("deploy", BC, *gated, check=False)
    assert skipped.returncode == 2 and "has no production version to deploy" in skipped.stderr
    repo.run("promote", BC, "v1", *gated)
    assert _edge_version(repo) == f"{BC}@v1.0.0", "deployments follow production"
    repo.train(BC, *gated, "seed=2", gate=True)
    promoted = repo.run("promote", BC, "v2", *gated)
    assert "v2.0.0 is now production (was v1.0.0, now archived)" in promoted.stdout
    assert _edge_version(repo) == f"{BC}@v2.0.0"
    status = json.loads(repo.run("status", BC, "--json").stdout)
    assert status["production"] == "v2.0.0"
    assert [v["stage"] for v in status["versions"]] == ["archived", "production"]
    back = repo.run("rollback", BC, *gated)
    assert "production is v1.0.0 again (v2.0.0 archived)" in back.stdout
    status = json.loads(repo.run("status", BC, "--json").stdout)
    assert status["production"] == "v1.0.0"
    assert _edge_version(repo) == f"{BC}@v1.0.0", "v1 serves again"
    assert status["deployments"]["edge"]["report"]["passed"] is True
    assert (repo.path / "deploy" / BC / "edge.dvc").is_file(), "the built target is tracked by DVC"

    card = json.loads(repo.run("lineage", BC, "v1", "--json").stdout)
    for field in (
        "git",
        "data",
        "code",
        "params",
        "params_sha256",
        "environment",
        "seed",
        "hardware",
        "training",
        "metrics",
        "gate",
        "model",
    ):
        assert card.get(field) not in (None, {}, ""), field
    assert card["seed"] == 1 and card["params"]["seed"] == 1
    assert card["git"]["commit"] and isinstance(card["git"]["dirty"], bool)
    assert "data/tabular/breast_cancer/01_raw/breast_cancer.csv" in card["data"]
    assert any(path.endswith("src/shipyard/train") for path in card["code"])
    lock_at_version = subprocess.run(
        ["git", "show", f"{BC}@v1.0.0:pipelines/{BC}/dvc.lock"], cwd=repo.path, capture_output=True, text=True
    ).stdout
    bundle_md5 = next(
        out["md5"]
        for out in yaml.safe_load(lock_at_version)["stages"]["train"]["outs"]
        if out["path"].endswith("bundle")
    )
    assert card["model"]["bundle_md5"] == bundle_md5, "the version names the exact bundle in DVC's cache"
    text = repo.run("lineage", BC, "v1").stdout
    assert "commit:" in text and "data:        data/tabular/breast_cancer/01_raw/breast_cancer.csv md5" in text


def test_second_model_is_compared_with_production(repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo: Repo = repo_factory()
    repo.train(BC, *QUICK, "trainer.max_epochs=20", "seed=1", "gate.baseline.models=[dummy]", gate=True)
    repo.run("promote", BC, "v1")
    _ran, proc = repo.train(BC, *QUICK, "trainer.max_epochs=1", "optim.lr=0.00001", "seed=2", gate=True, check=False)
    assert "no regression vs production on test/f1" in proc.stderr
    assert proc.returncode == 3
    assert json.loads(repo.run("status", BC, "--json").stdout)["production"] == "v1.0.0"


def test_two_projects_train_at_once_and_one_project_once(repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo: Repo = repo_factory()
    args = [sys.executable, "-m", "shipyard.engine", "train"]
    no_gate = ["gate.enabled=false", "trainer.progress_bar=false"]
    procs = [
        subprocess.Popen(
            [*args, BC, "trainer.max_epochs=30", *no_gate],
            cwd=repo.path,
            env=cli_env(repo.path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [*args, "vision/digits", "trainer.max_epochs=2", *no_gate],
            cwd=repo.path,
            env=cli_env(repo.path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    # While breast_cancer trains, a second training of it stops with a clear message.
    lock = repo.data(BC) / ".shipyard.lock"
    for _ in range(600):
        if lock.exists() and lock.read_text().startswith("pid"):
            break
        subprocess.run(["sleep", "0.05"])
    second = repo.run("train", BC, "trainer.max_epochs=30", *no_gate, check=False)
    assert second.returncode == 2
    assert "another training of tabular/breast_cancer is running (pid" in second.stderr
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for project in (BC, "vision/digits"):
        lock_file = yaml.safe_load((repo.path / "pipelines" / project / "dvc.lock").read_text())
        assert "gate" in lock_file["stages"]
    status = subprocess.run(
        [str(sys.executable.rsplit("/", 1)[0]) + "/dvc", "status"],
        cwd=repo.path,
        env=cli_env(repo.path),
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and "up to date" in status.stdout
