"""Every project under conf/project composes, validates and compiles."""

from __future__ import annotations

import pytest
import yaml
from shipyard.core.compose import compose, list_projects, load, to_dict
from shipyard.core.paths import ProjectPaths
from shipyard.engine.compiler import render
from shipyard.engine.pipeline import project_nodes
from shipyard.train.schemas import MLPConf

from .conftest import ROOT

PROJECTS = list_projects(ROOT)
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


def test_there_are_example_projects() -> None:
    assert {"tabular/breast_cancer", "vision/digits"} <= set(PROJECTS)


@pytest.mark.parametrize("project", PROJECTS)
def test_project_composes_and_compiles(project: str) -> None:
    typed = compose(project, root=ROOT)
    config = to_dict(typed)
    team, name = project.split("/")
    assert config["project"]["team"] == team and config["project"]["name"] == name
    dvc_yaml, params = render(typed, ProjectPaths.of(ROOT, project))
    stages = yaml.safe_load(dvc_yaml)["stages"]
    assert list(stages) == [n.name for n in project_nodes(typed)]
    assert yaml.safe_load(params) == config
    assert to_dict(load(yaml.safe_load(params), ROOT)) == config, "params.yaml reads back through the schema"
    # `shipyard train` hands its composed config to the in-process stages (stage.remember_params)
    # instead of validating params.yaml again: that is only right while the two are equal.
    assert load(yaml.safe_load(params), ROOT) == typed


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose_on_the_default_project(experiment: str) -> None:
    config = to_dict(compose("tabular/breast_cancer", [f"experiment={experiment}"], root=ROOT))
    assert config["project"]["name"] == "breast_cancer"


def test_layers_apply_in_order() -> None:
    """framework < team < project < CLI."""
    base = to_dict(compose("tabular/breast_cancer", root=ROOT))
    assert base["trainer"]["max_epochs"] == 40  # team tabular overrides the trainer default (30)
    assert base["model"]["hidden"] == [64, 32] and base["optim"]["lr"] == 0.01  # the project overrides
    cli = to_dict(compose("tabular/breast_cancer", ["trainer.max_epochs=3", "model.hidden=[8]"], root=ROOT))
    assert cli["trainer"]["max_epochs"] == 3 and cli["model"]["hidden"] == [8]
    digits = to_dict(compose("vision/digits", root=ROOT))
    assert digits["trainer"]["batch_size"] == 128 and digits["model"]["_target_"].endswith("CNN")


def test_override_grammar() -> None:
    cfg = to_dict(
        compose(
            "tabular/breast_cancer",
            ["trainer=ddp", "experiment=wide_mlp", "~model.dropout", "optim.lr=${trainer.max_epochs}"],
            root=ROOT,
        )
    )
    assert cfg["trainer"]["strategy"] == "ddp" and cfg["trainer"]["devices"] == 2
    assert cfg["model"]["hidden"] == [128, 64]
    # Deleting a model parameter brings back the component's own default (wide_mlp sets 0.2).
    assert cfg["model"]["dropout"] == MLPConf().dropout
    assert cfg["optim"]["lr"] == cfg["trainer"]["max_epochs"]
