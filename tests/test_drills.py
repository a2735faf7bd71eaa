"""Reliability drills: determinism, kill-and-resume, CPU DDP with two processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import Repo, cli_env

pytestmark = pytest.mark.slow

BC = "tabular/breast_cancer"
QUALITY = ("val/", "test/")


def _quality(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith(QUALITY)}


def test_two_runs_give_identical_metrics_and_weights(repo_factory) -> None:  # type: ignore[no-untyped-def]
    a: Repo = repo_factory("a")
    a.train(BC, "trainer.max_epochs=6", "trainer.progress_bar=false")
    first = (_quality(a.metrics(BC)), a.bundle_meta(BC)["weights_sha256"])
    a.run("train", BC, "trainer.max_epochs=6", "trainer.progress_bar=false", "--force")
    second = (_quality(a.metrics(BC)), a.bundle_meta(BC)["weights_sha256"])
    assert first == second
    b: Repo = repo_factory("b")
    b.train(BC, "trainer.max_epochs=6", "trainer.progress_bar=false", "seed=7")
    assert b.bundle_meta(BC)["weights_sha256"] != first[1], "the seed must matter"


def test_killed_training_resumes_and_matches_an_uninterrupted_run(repo_factory) -> None:  # type: ignore[no-untyped-def]
    overrides = ("trainer.max_epochs=40", "trainer.early_stopping.enabled=false", "trainer.progress_bar=false")
    ref: Repo = repo_factory("ref")
    ref.train(BC, *overrides)
    expected = (_quality(ref.metrics(BC)), ref.bundle_meta(BC)["weights_sha256"])

    repo: Repo = repo_factory("killed")
    workdir = repo.data(BC) / "06_models" / ".train"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipyard.engine", "train", BC, *overrides],
        cwd=repo.path,
        env=cli_env(repo.path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (workdir / "last.ckpt").exists():
        time.sleep(0.05)
    time.sleep(0.3)  # a few more epochs
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (workdir / "last.ckpt").exists(), "training was killed before its first checkpoint"
    assert not (repo.data(BC) / "06_models" / "bundle").exists(), "a killed run leaves nothing that looks finished"

    ran, _ = repo.train(BC, *overrides)
    assert ran == ["train", "evaluate", "gate", "report"]
    report = repo.data(BC) / "08_reporting" / "train_report.json"
    assert '"resumed": true' in report.read_text()
    assert (_quality(repo.metrics(BC)), repo.bundle_meta(BC)["weights_sha256"]) == expected


def test_ddp_on_cpu_with_two_processes(repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo: Repo = repo_factory()
    ran, _proc = repo.train(BC, "trainer=ddp", "trainer.max_epochs=2", "trainer.progress_bar=false")
    assert ran[-4:] == ["train", "evaluate", "gate", "report"]
    report = (repo.data(BC) / "08_reporting" / "train_report.json").read_text()
    assert '"strategy": "ddp"' in report and '"devices": 2' in report
    assert repo.metrics(BC)["test/accuracy"] > 0.5
