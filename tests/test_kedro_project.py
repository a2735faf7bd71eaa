"""The repository is a Kedro project: Kedro's own CLI (`kedro registry`, `kedro run`) and
kedro-viz's export know every compiled project, its nodes, datasets and parameters."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from shipyard.core.compose import section
from shipyard.core.schema import SourceConf
from shipyard.data.sources import fetch_raw
from shipyard.engine.kedro_project import pipeline_name, project_of
from shipyard.engine.pipeline import DATASETS, NODES

from .conftest import ROOT, Repo, cli_env

BC = "tabular/breast_cancer"
NS = "tabular.breast_cancer"
BIN = Path(sys.executable).parent


def _tool(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # Kedro's own logging (its rich log, whose columns fold at the console's width: 80, or
    # COLUMNS); a width no line reaches keeps every message on one line, whatever runs the tests.
    env = dict(cli_env(cwd), COLUMNS="1000")
    env.pop("KEDRO_LOGGING_CONFIG", None)
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _listed(stdout: str) -> list[str]:
    """The YAML list `kedro registry list` prints (Kedro's log lines may come first)."""
    return [line[2:].strip() for line in stdout.splitlines() if line.startswith("- ")]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_pipeline_names_map_projects_one_to_one() -> None:
    assert pipeline_name(BC) == NS
    assert project_of(NS) == BC
    assert project_of(pipeline_name("ads/click-rate_2")) == "ads/click-rate_2"


def test_kedro_registry_lists_every_compiled_project_of_this_repository() -> None:
    compiled = sorted(f"{p.parent.parent.name}.{p.parent.name}" for p in (ROOT / "pipelines").glob("*/*/params.yaml"))
    assert NS in compiled
    proc = _tool(ROOT, "kedro", "registry", "list")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _listed(proc.stdout) == sorted(["__default__", *compiled])
    proc = _tool(ROOT, "kedro", "registry", "describe", NS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    described = yaml.safe_load(proc.stdout[proc.stdout.index("Nodes:") :])["Nodes"]
    assert described == [f"{NS}.{s.name} ({s.name})" for s in NODES]
    # A project with a team's own step: its pipeline is the built-in nodes plus that step.
    proc = _tool(ROOT, "kedro", "registry", "describe", "tabular.breast_cancer_residual")
    assert proc.returncode == 0, proc.stderr[-3000:]
    nodes = yaml.safe_load(proc.stdout[proc.stdout.index("Nodes:") :])["Nodes"]
    assert "tabular.breast_cancer_residual.add_ratios (step_add_ratios)" in nodes, nodes


@pytest.fixture(scope="module")
def kedro_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A throwaway repository made a Kedro project like this one, compiled, whose stages up to
    fit_preprocessing DVC has run and recorded in dvc.lock."""
    from .conftest import make_repo

    repo = make_repo(tmp_path_factory.mktemp("kedro") / "repo")
    shutil.copy(ROOT / "pyproject.toml", repo.path / "pyproject.toml")
    # Kedro wants [tool.kedro] source_dir to exist; the packages themselves are installed.
    (repo.path / "packages" / "shipyard-engine" / "src").mkdir(parents=True)
    repo.run("compile", BC, "trainer.max_epochs=2")
    params = yaml.safe_load((repo.path / "pipelines" / BC / "params.yaml").read_text())
    assert fetch_raw(section(SourceConf, params["data"]["source"]), repo.path) is not None
    proc = _tool(repo.path, "dvc", "repro", f"pipelines/{BC}/dvc.yaml:fit_preprocessing")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return repo


@pytest.mark.slow
def test_kedro_run_runs_a_node_of_a_project_as_its_dvc_stage_does(kedro_repo: Repo) -> None:
    repo = kedro_repo
    out = repo.data(BC) / "06_models" / "preprocessor.json"
    recorded = _md5(out)
    out.unlink()
    proc = _tool(repo.path, "kedro", "run", "--pipelines", NS, "--nodes", f"{NS}.fit_preprocessing")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _md5(out) == recorded, "kedro run must write what the DVC stage wrote"
    # Only the node asked for ran, and the run says that DVC has not recorded it.
    logged = " ".join((proc.stdout + proc.stderr).split())
    assert "Running node: fit_preprocessing" in logged and "Running node: split" not in logged
    assert "dvc.lock is unchanged" in logged and f"make train PROJECT={BC}" in logged
    status = _tool(repo.path, "dvc", "status", "--with-deps", f"pipelines/{BC}/dvc.yaml:fit_preprocessing")
    assert "up to date" in status.stdout, status.stdout


@pytest.mark.slow
def test_kedro_run_params_are_validated_and_dvc_sees_what_they_changed(kedro_repo: Repo) -> None:
    repo = kedro_repo
    out = repo.data(BC) / "06_models" / "preprocessor.json"
    before = out.read_bytes()
    node = ("--nodes", f"{NS}.fit_preprocessing")
    bad = _tool(repo.path, "kedro", "run", "--pipelines", NS, *node, "--params", f"{NS}.preprocess.numeric=sideways")
    assert bad.returncode != 0
    assert "preprocess.numeric" in bad.stdout + bad.stderr
    assert out.read_bytes() == before, "a refused run writes nothing"
    try:
        changed = _tool(
            repo.path, "kedro", "run", "--pipelines", NS, *node, "--params", f"{NS}.preprocess.numeric=minmax"
        )
        assert changed.returncode == 0, changed.stderr[-3000:]
        assert json.loads(out.read_text())["numeric"] != json.loads(before)["numeric"]
        status = _tool(repo.path, "dvc", "status", "--with-deps", f"pipelines/{BC}/dvc.yaml:fit_preprocessing")
        assert "fit_preprocessing" in status.stdout and "modified" in status.stdout, status.stdout
    finally:
        out.write_bytes(before)


@pytest.mark.slow
def test_kedro_viz_build_shows_the_projects_nodes_datasets_and_parameters(kedro_repo: Repo) -> None:
    repo = kedro_repo
    proc = _tool(repo.path, "kedro", "viz", "build")
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = repo.path / "build" / "api"
    main = json.loads((api / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == {"__default__", NS}
    by_type: dict[str, dict[str, str]] = {}
    for n in main["nodes"]:
        by_type.setdefault(n["type"], {})[n["name"]] = n["id"]
    assert set(by_type["task"]) == {s.name for s in NODES}
    assert {f"{NS}.{d}" for d in DATASETS} <= set(by_type["data"])
    params = yaml.safe_load((repo.path / "pipelines" / BC / "params.yaml").read_text())
    trainer = json.loads((api / "nodes" / by_type["parameters"][f"params:{NS}.trainer"]).read_text())
    assert trainer["parameters"][f"{NS}.trainer"]["max_epochs"] == params["trainer"]["max_epochs"] == 2
    task = json.loads((api / "nodes" / by_type["parameters"][f"params:{NS}.project.task"]).read_text())
    assert task["parameters"] == {f"{NS}.project.task": params["project"]["task"]}
    bundle = json.loads((api / "nodes" / by_type["data"][f"{NS}.model_bundle"]).read_text())
    assert bundle["filepath"] == str(repo.data(BC) / "06_models" / "bundle")
