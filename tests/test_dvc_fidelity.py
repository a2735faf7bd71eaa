"""The compiled pipeline under DVC's own commands, without the Shipyard CLI: `dvc repro` from
an unactivated environment, and the README's `dvc metrics show` / `dvc plots show`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from shipyard.core.compose import load
from shipyard.data.sources import fetch_raw

from .conftest import ROOT, Repo, cli_env, make_repo

pytestmark = pytest.mark.slow

BC = "tabular/breast_cancer"
DVC = Path(sys.executable).parent / "dvc"
REPORTING = f"data/{BC}/08_reporting"


def _path_without_venv() -> str:
    """The PATH of a shell where the virtualenv is not activated."""
    venv_bin = Path(sys.executable).parent
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != venv_bin)


def _dvc(repo: Repo, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = cli_env(repo.path)
    env.pop("SHIPYARD_ROOT")  # plain DVC: nothing from Shipyard's CLI
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(DVC), *args], cwd=repo.path, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Repo, subprocess.CompletedProcess[str]]:
    """A project compiled by Shipyard, then run by `.venv/bin/dvc repro` alone, with a PATH
    that holds neither the virtualenv nor any Shipyard."""
    repo = make_repo(tmp_path_factory.mktemp("fidelity") / "repo")
    repo.run("compile", BC, "trainer.max_epochs=2", "trainer.progress_bar=false", "gate.enabled=false")
    params = load(yaml.safe_load((repo.path / "pipelines" / BC / "params.yaml").read_text()), repo.path)
    assert fetch_raw(params.data.source, repo.path) is not None
    path = _path_without_venv()
    assert shutil.which("shipyard", path=path) is None, "the test needs a PATH without Shipyard"
    python = shutil.which("python", path=path)
    if python:
        probe = subprocess.run([python, "-c", "import shipyard.engine"], capture_output=True)
        assert probe.returncode != 0, "the PATH's python must not have Shipyard"
    return repo, _dvc(repo, "repro", f"pipelines/{BC}/dvc.yaml", path=path)


def test_plain_dvc_repro_runs_without_activating_the_venv(
    trained: tuple[Repo, subprocess.CompletedProcess[str]],
) -> None:
    repo, proc = trained
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = re.findall(rf"^Running stage 'pipelines/{BC}/dvc.yaml:(\w+)':$", proc.stdout, re.MULTILINE)
    assert ran == ["ingest", "check", "split", "fit_preprocessing", "train", "evaluate", "gate", "report"]
    assert "test/f1" in repo.metrics(BC)
    lock = (repo.path / "pipelines" / BC / "dvc.lock").read_text()
    assert str(Path(sys.executable).parent) not in lock, "no machine path in the lineage record"
    status = _dvc(repo, "status", f"pipelines/{BC}/dvc.yaml", path=_path_without_venv())
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr


def _readme_command(tool: str) -> list[str]:
    """The README's `dvc <tool> show ...` line for the default project, as a command."""
    text = (ROOT / "README.md").read_text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f".venv/bin/dvc {tool} show")]
    args = shlex.split(line, comments=True)
    assert args[0] == ".venv/bin/dvc"
    return args[1:]


def test_readme_metrics_command_shows_exactly_the_project_metrics(
    trained: tuple[Repo, subprocess.CompletedProcess[str]],
) -> None:
    repo, _ = trained
    proc = _dvc(repo, *_readme_command("metrics"), "--json")
    assert proc.returncode == 0, proc.stderr
    (revision,) = json.loads(proc.stdout).values()  # the workspace, however DVC names it
    shown = revision["data"]
    assert list(shown) == [f"{REPORTING}/metrics.json"]
    assert shown[f"{REPORTING}/metrics.json"]["data"] == pytest.approx(repo.metrics(BC))


def test_readme_plots_command_shows_exactly_the_project_plots(
    trained: tuple[Repo, subprocess.CompletedProcess[str]],
) -> None:
    repo, _ = trained
    proc = _dvc(repo, *_readme_command("plots"), "--json")
    assert proc.returncode == 0, proc.stderr
    plots = json.loads(proc.stdout)["data"]
    assert sorted(plots) == [f"{REPORTING}/confusion.csv", f"{REPORTING}/learning_curve.csv"]
    curve = plots[f"{REPORTING}/learning_curve.csv"][0]["content"]
    assert curve["encoding"]["x"]["field"] == "epoch" and curve["layer"][0]["encoding"]["y"]["field"] == "val/loss"
    epochs = (repo.path / REPORTING / "learning_curve.csv").read_text().strip().count("\n")
    assert len(curve["data"]["values"]) == epochs >= 1, "one point per epoch"
    confusion = plots[f"{REPORTING}/confusion.csv"][0]["content"]
    assert confusion["spec"]["encoding"]["x"]["field"] == "actual"
    assert confusion["spec"]["encoding"]["y"]["field"] == "predicted"
