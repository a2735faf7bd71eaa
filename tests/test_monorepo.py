"""Many teams in one repository: ownership, affected projects, team packages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from shipyard.engine.affected import affected_projects

from .conftest import ROOT, Repo, make_repo

TEAMS = sorted(p.name for p in (ROOT / "conf" / "project").iterdir() if p.is_dir())


@pytest.mark.parametrize("team", TEAMS)
def test_every_team_folder_has_owners(team: str) -> None:
    owners = (ROOT / ".github" / "CODEOWNERS").read_text()
    for folder in (f"/conf/project/{team}/", f"/pipelines/{team}/", f"/data/{team}/", f"/deploy/{team}/"):
        assert any(line.startswith(folder) and f"@shipyard/{team}" in line for line in owners.splitlines()), folder


def _commit(repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, check=True)


@pytest.fixture
def mono(tmp_path: Path) -> Repo:
    """A repository with this repo's conf/ and a (fake-content, real-layout) packages/ tree."""
    repo = make_repo(tmp_path / "repo")
    for name in ("shipyard-core", "shipyard-train", "shipyard-deploy", "tabular-models"):
        src = ROOT / "packages" / name / "pyproject.toml"
        (repo.path / "packages" / name / "src").mkdir(parents=True)
        (repo.path / "packages" / name / "pyproject.toml").write_text(src.read_text())
        (repo.path / "packages" / name / "src" / "code.py").write_text("x = 1\n")
    _commit(repo.path, "packages")
    return repo


def _affected(repo: Repo) -> set[str]:
    from shipyard.engine.affected import local_packages

    local_packages.cache_clear()
    return {item["project"] for item in affected_projects(repo.path, "HEAD")}


def test_affected_by_a_project_config_change(mono: Repo) -> None:
    assert _affected(mono) == set()
    path = mono.path / "conf" / "project" / "vision" / "digits.yaml"
    path.write_text(path.read_text() + "\n# tweak\n")
    assert _affected(mono) == {"vision/digits"}


def test_affected_by_a_shared_config_group_option(mono: Repo) -> None:
    path = mono.path / "conf" / "model" / "cnn.yaml"
    path.write_text(path.read_text() + "hidden: 32\n")
    assert _affected(mono) == {"vision/digits"}, "only the project that chose model=cnn"


def test_affected_by_a_framework_package_change(mono: Repo) -> None:
    (mono.path / "packages" / "shipyard-train" / "src" / "code.py").write_text("x = 2\n")
    assert _affected(mono) == {p.parent.name + "/" + p.stem for p in (mono.path / "conf" / "project").glob("*/*.yaml")}


def test_affected_by_a_team_package_change(mono: Repo) -> None:
    (mono.path / "packages" / "tabular-models" / "src" / "code.py").write_text("x = 2\n")
    assert _affected(mono) == {"tabular/breast_cancer_residual"}


def test_affected_by_a_data_change(mono: Repo) -> None:
    pointer = mono.path / "data" / "vision" / "digits" / "01_raw" / "digits.csv.dvc"
    pointer.parent.mkdir(parents=True)
    pointer.write_text("outs:\n- md5: 0123\n  path: digits.csv\n")
    assert _affected(mono) == {"vision/digits"}


def test_affected_cli_errors_on_a_bad_ref(mono: Repo) -> None:
    proc = mono.run("affected", "--base", "no-such-ref", check=False)
    assert proc.returncode == 2 and "cannot compare with 'no-such-ref'" in proc.stderr


@pytest.mark.slow
def test_team_package_model_trains_through_the_standard_pipeline(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ran, _proc = repo.train("tabular/breast_cancer_residual", "trainer.max_epochs=3", "trainer.progress_bar=false")
    assert ran[-4:] == ["train", "evaluate", "gate", "report"]
    meta = repo.bundle_meta("tabular/breast_cancer_residual")
    assert meta["model"]["_target_"] == "tabular_models.ResidualMLP"  # type: ignore[index]
    dvc_yaml = (repo.path / "pipelines" / "tabular" / "breast_cancer_residual" / "dvc.yaml").read_text()
    assert "tabular_models" in dvc_yaml, "the team package's code is a dependency of training"
