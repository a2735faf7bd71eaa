"""Many teams in one repository: ownership, affected projects, team packages."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
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


def test_affected_by_a_team_package_that_provides_only_a_step(mono: Repo) -> None:
    """A project with the framework's own model but the tabular team's step depends on that package."""
    project = mono.path / "conf" / "project" / "vision" / "digits_ratios.yaml"
    project.write_text(
        (mono.path / "conf" / "project" / "vision" / "digits.yaml").read_text()
        + "\nsteps:\n  ratios:\n    function: tabular_models.steps.add_ratios\n    inputs: [dataset]\n"
        "    outputs: {with_ratios: parquet}\n    params: {ratios: {r: [pixel_0_1, pixel_0_2]}}\n"
    )
    _commit(mono.path, "a project with a team step")
    (mono.path / "packages" / "tabular-models" / "src" / "code.py").write_text("x = 2\n")
    assert _affected(mono) == {"tabular/breast_cancer_residual", "vision/digits_ratios"}


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
    # The team's own data step (steps.add_ratios) ran as its own stage before the split, and the
    # split read its output: the new columns are in the training rows.
    assert ran.index("check") < ran.index("add_ratios") < ran.index("split")
    data = repo.data("tabular/breast_cancer_residual")
    table = pd.read_parquet(data / "02_intermediate" / "steps" / "dataset_ratios.parquet")
    expected = table["mean radius"] / table["mean texture"]
    assert np.allclose(table["radius_to_texture"], expected)
    assert "radius_to_texture" in pd.read_parquet(data / "05_model_input" / "train.parquet").columns
    # Lineage: the version's card holds the team package's source hash among the code deps.
    card = json.loads(repo.run("lineage", "tabular/breast_cancer_residual", "v1.0.0", "--json").stdout)
    assert any("tabular_models" in path for path in card["code"]), card["code"]
    # A change of the step's parameters reruns the step and what follows it, not ingest or check.
    project = repo.path / "conf" / "project" / "tabular" / "breast_cancer_residual.yaml"
    project.write_text(project.read_text().replace("[mean radius, mean texture]", "[mean radius, mean area]"))
    ran, _proc = repo.train("tabular/breast_cancer_residual", "trainer.max_epochs=3", "trainer.progress_bar=false")
    assert ran[0] == "add_ratios" and "ingest" not in ran and "check" not in ran, ran


def test_a_report_step_compiles_after_evaluate_with_its_own_outputs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    project = repo.path / "conf" / "project" / "tabular" / "breast_cancer_residual.yaml"
    project.write_text(
        project.read_text() + "  test_ratios:\n    function: tabular_models.steps.add_ratios\n    placement: report\n"
        "    inputs: [test_split]\n    outputs: {test_with_ratios: parquet}\n"
        "    params: {ratios: {r: [mean radius, mean area]}}\n"
    )
    repo.run("compile", "tabular/breast_cancer_residual")
    stages = yaml.safe_load((repo.path / "pipelines" / "tabular" / "breast_cancer_residual" / "dvc.yaml").read_text())[
        "stages"
    ]
    names = list(stages)
    assert names.index("add_ratios") < names.index("split") and names.index("evaluate") + 1 == names.index(
        "test_ratios"
    )
    step = stages["test_ratios"]
    assert step["outs"] == ["data/tabular/breast_cancer_residual/08_reporting/steps/test_with_ratios.parquet"]
    assert "data/tabular/breast_cancer_residual/05_model_input/test.parquet" in step["deps"]
    assert any(d.endswith("tabular_models") for d in step["deps"]), step["deps"]
    assert step["params"] == [{"pipelines/tabular/breast_cancer_residual/params.yaml": ["steps.test_ratios"]}]
