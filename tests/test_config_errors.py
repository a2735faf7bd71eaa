"""A wrong config exits with code 2 and one message naming where, what, what is allowed and the fix,
at `shipyard config` time: before anything is compiled, ingested or trained."""

from __future__ import annotations

import dataclasses
import enum
import shutil
import typing
from pathlib import Path

import pytest
from shipyard.core.schema import ShipyardConfig
from shipyard.engine.cli import main

from .conftest import ROOT, make_repo

PROJECT = "tabular/breast_cancer"

CASES = [
    # (overrides, words the message must contain)
    (
        ["trainer.max_epoch=3"],
        ["unknown key trainer.max_epoch", 'did you mean "max_epochs"', "override 'trainer.max_epoch=3'"],
    ),
    (["+trainer.max_epoch=3"], ["unknown key trainer.max_epoch", 'did you mean "max_epochs"']),
    (["+foo=1"], ["unknown key foo", "valid keys here: project, seed, data"]),
    (["+search.bogus=1"], ["search.bogus", "search=<option>"]),
    (["search=f1_latency", "+search.bogus=1"], ["unknown key search.bogus", "valid keys here: name, objectives"]),
    (["trainer.max_epochs=abc"], ["trainer.max_epochs", "'abc'", "a whole number"]),
    (["trainer=gpux"], ["unknown option 'gpux' for config group 'trainer'", 'did you mean "gpu"', "cpu, ddp, gpu"]),
    (["trainer.max_epochs=[1"], ["bad override syntax", "key=value"]),
    (["=3"], ["an override has no key", "override '=3'"]),
    (["model.hiden=[8]"], ["model.hiden", 'did you mean "hidden"', "hidden, dropout, activation"]),
    (["model.foo.bar=3"], ["unknown key model.foo", "hidden, dropout, activation"]),
    (["model._target_=os.system"], ["'os.system' is not a registered component", "shipyard.train.models.MLP"]),
    (["project.task=binray"], ["project.task", 'did you mean "binary"', "binary, multiclass, regression"]),
    (["split.kind=stratifed"], ['did you mean "stratified"', "random, stratified, group, time, kfold"]),
    (["preprocess.numeric=zscore"], ["preprocess.numeric", "standard, minmax, none"]),
    (["optim.name=adamx"], ["optim.name", 'did you mean "adam"', "adam, adamw, sgd"]),
    (["model.activation=rellu"], ["model.activation", 'did you mean "relu"', "relu, gelu, tanh, silu"]),
    (["gate.baseline.models=[dumy]"], ["gate.baseline.models", 'did you mean "dummy"', "dummy, linear"]),
    (["deploy.batch.engine=spark"], ["deploy.batch.engine", "local, dask"]),
    (["deploy.targets=[servce]"], ["deploy.targets", 'did you mean "service"', "service, batch, edge"]),
    (["split=kfold", "split.val=0.05"], ["a kfold split takes no val fraction", "key: split.val"]),
    (["split=kfold", "split.folds=1"], ["split.folds must be at least 2"]),
    (["split=kfold", "split.fold=5"], ["split.fold must be below split.folds (5)"]),
    (["split=group"], ["a group split needs split.group_column", "in: conf/split/group.yaml"]),
    (["split.test=0.5"], ["split fractions add up to 1.35", "split.train + split.val + split.test"]),
    (["split=random", "project.task=regression", "split=stratified"], ["a regression task has no classes"]),
    (["data.target=???"], ["required value data.target is not set", "set data.target in the project file"]),
    (["trainer.max_epochs=-1"], ["trainer.max_epochs must be at least 1"]),
    (["trainer.batch_size=0"], ["trainer.batch_size must be at least 1"]),
    (["optim.lr=-0.1"], ["optim.lr must be above 0"]),
    (["trainer.min_epochs=50"], ["trainer.min_epochs (50) is above trainer.max_epochs (40)"]),
    (["gate.metric=test/f2"], ["gate.metric", 'did you mean "test/f1"']),
    (["checks.class_balance=[0.9,0.1]"], ["checks.class_balance must be [low, high] with low <= high"]),
    (["deploy.service.port=70000"], ["deploy.service.port must be at least 1 and at most 65535"]),
    (["deploy.batch.schedule.cron=daily"], ["not a cron schedule", "@daily"]),
    (["deploy.edge.metric=r2"], ["deploy.edge.metric", "not a metric of this task", "accuracy, precision"]),
    (["deploy.service.host=localhost"], ["deploy.service.host must be an IP address"]),
    (["data.source.path=/etc/passwd"], ["data.source.path must be a path inside the repository"]),
    (["data.source.path=../../x.csv"], ["data.source.path must be a path inside the repository"]),
    (["optim.lr=${nothere}"], ["optim.lr", "nothere", "interpolation"]),
    (["search=f1_latency", "search.space.optim.lr.low=-1"], ["search.space.optim.lr.low", "log scale"]),
    (["search=f1_latency", "search.space.model.hiden.type=int"], ["search.space.model.hiden", 'did you mean "hidden"']),
    (["deploy.service.rollout.mode=shadow"], ["rollout.candidate is not set", "shipyard rollout PROJECT VERSION"]),
    (["deploy.service.rollout.candidate=v2"], ["rollout.mode is not set"]),
    (["deploy.service.rollout.mode=canery"], ['did you mean "canary"', "shadow, canary"]),
    (["deploy.service.rollout.mode=canary", "deploy.service.rollout.candidate=v2"], ["a canary needs a key"]),
    (
        ["deploy.service.rollout.mode=shadow", "deploy.service.rollout.candidate=latest"],
        ["rollout.candidate is not a version", "v3"],
    ),
    (["deploy.service.rollout.sticky_header=X Client"], ["sticky_header is not an HTTP header name"]),
    (["deploy.service.rollout.share=1.5"], ["deploy.service.rollout.share must be above 0 and below 1"]),
]


# A team's own steps, on the project that declares one (tabular/breast_cancer_residual).
STEP_CASES = [
    (["+steps.r.function=os.system"], ["a new step cannot be added by a command-line override", "under steps:"]),
    (["steps.add_ratios.function=os.system"], ["'os.system' is not a registered step function", "shipyard.steps"]),
    (["steps.add_ratios.inputs=[metrics]"], ["a data step cannot read 'metrics'", "dataset, check_report"]),
    (["steps.add_ratios.params.ratio={}"], ["unknown key steps.add_ratios.params.ratio", 'did you mean "ratios"']),
    (["steps.add_ratios.outputs={dataset: parquet}"], ["step output 'dataset' is not a new dataset name"]),
    (["steps.add_ratios.placement=middle"], ["steps.add_ratios.placement", "data, report"]),
]


@pytest.mark.parametrize(("overrides", "words"), STEP_CASES, ids=[" ".join(c[0]) for c in STEP_CASES])
def test_step_config_error_message(
    overrides: list[str], words: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    code, err = _config(capsys, *overrides, project="tabular/breast_cancer_residual")
    assert code == 2 and err.startswith("config error: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in:\n{err}"
    assert "fix: " in err


def _config(capsys: pytest.CaptureFixture[str], *overrides: str, project: str = PROJECT) -> tuple[int, str]:
    code = main(["config", project, *overrides])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("overrides", "words"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_config_error_message(
    overrides: list[str], words: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    code, err = _config(capsys, *overrides)
    assert code == 2, err
    assert err.startswith("config error: ")
    assert "Traceback" not in err and "internal error" not in err
    for word in words:
        assert word in err, f"{word!r} not in:\n{err}"
    assert "fix: " in err


# -- one case per Enum field of the schema: found by walking it, so a new Enum is covered too ------


def _optional(hint: typing.Any) -> typing.Any:
    """``X | None`` as X."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if type(None) in typing.get_args(hint) and len(args) == 1 else hint


def _enum_fields(schema: type, prefix: str = "") -> list[tuple[str, list[str]]]:
    found = []
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        inner = _optional(hints[field.name])
        item = typing.get_args(inner)[0] if typing.get_origin(inner) is list else inner
        key = f"{prefix}{field.name}"
        if isinstance(item, type) and issubclass(item, enum.Enum):
            found.append((key, [m.name for m in item]))
        elif isinstance(item, type) and dataclasses.is_dataclass(item) and typing.get_origin(inner) is not list:
            found += _enum_fields(item, f"{key}.")
    return found


ENUM_FIELDS = _enum_fields(ShipyardConfig)


def _override(key: str) -> list[str]:
    """The overrides that set ``key`` to a bogus value (a list field gets a one-item list)."""
    value = "[bogus]" if _is_list(key) else "bogus"
    if key.startswith("search."):
        return ["search=accuracy", f"{key}={value}"]
    return [f"{key}={value}"]


def _is_list(key: str) -> bool:
    node: typing.Any = ShipyardConfig
    for part in key.split("."):
        node = _optional(typing.get_type_hints(node)[part])
    return typing.get_origin(node) is list


def test_the_schema_has_enums_everywhere_a_set_is_closed() -> None:
    keys = {k for k, _ in ENUM_FIELDS}
    assert {"project.task", "split.kind", "trainer.precision", "deploy.targets", "search.sampler.name"} <= keys
    assert len(keys) >= 20


@pytest.mark.parametrize(("key", "allowed"), ENUM_FIELDS, ids=[k for k, _ in ENUM_FIELDS])
def test_every_enum_field_names_its_allowed_values(
    key: str, allowed: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    code, err = _config(capsys, *_override(key))
    assert code == 2, err
    assert err.startswith("config error: ") and "Traceback" not in err
    assert key in err and "'bogus'" in err
    assert ", ".join(allowed) in err, err


# -- files -----------------------------------------------------------------------------------------


def test_unusual_split_fractions_warn_once(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    code, err = _config(capsys, "split.val=0.3", "split.train=0.55")
    assert code == 0, err
    assert err.count("warning: split.val=0.3 is outside the usual 3%-20%") == 1, err


def test_unknown_project(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    code, err = _config(capsys, project="tabular/breast_cancr")
    assert code == 2
    assert "unknown project 'tabular/breast_cancr'" in err and 'did you mean "tabular/breast_cancer"' in err


def test_bad_project_name(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    assert main(["config", "Breast Cancer"]) == 2
    assert "<team>/<name>" in capsys.readouterr().err


def test_unknown_key_in_a_yaml_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    project = repo.path / "conf" / "project" / "tabular" / "breast_cancer.yaml"
    project.write_text(project.read_text() + "\ntrainer:\n  max_epoks: 3\n")
    monkeypatch.setenv("SHIPYARD_ROOT", str(repo.path))
    code, err = _config(capsys)
    assert code == 2
    assert "trainer.max_epoks" in err and 'did you mean "max_epochs"' in err
    assert "conf/project/tabular/breast_cancer.yaml" in err


def test_bad_value_in_a_group_file_names_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo.path / "conf" / "trainer" / "cpu.yaml").write_text("log_every_n_steps: 0\n")
    monkeypatch.setenv("SHIPYARD_ROOT", str(repo.path))
    code, err = _config(capsys, "trainer.batch_size=8", project="vision/digits")
    assert code == 2, err
    assert "trainer.log_every_n_steps must be at least 1" in err and "in: conf/trainer/cpu.yaml" in err


def test_yaml_syntax_error_names_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    project = repo.path / "conf" / "project" / "tabular" / "breast_cancer.yaml"
    project.write_text(project.read_text() + "\nmodel:\n  hidden: [64, 32\n")
    monkeypatch.setenv("SHIPYARD_ROOT", str(repo.path))
    code, err = _config(capsys)
    assert code == 2, err
    assert err.startswith("config error: YAML syntax error")
    assert "conf/project/tabular/breast_cancer.yaml line" in err and "internal error" not in err


def test_a_badly_named_project_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    tabular = repo.path / "conf" / "project" / "tabular"
    shutil.copy(tabular / "churn.yaml", tabular / "Upper Case.yaml")
    for command in (["projects"], ["list"], ["affected", "--base", "HEAD"]):
        proc = repo.run(*command)
        assert "Upper Case" not in proc.stdout, proc.stdout
        assert (
            "warning: skipped conf/project/tabular/Upper Case.yaml" in proc.stderr and "rename the file" in proc.stderr
        )
    assert "tabular/breast_cancer" in repo.run("projects").stdout


def test_verbose_shows_the_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    assert main(["--verbose", "config", PROJECT, "trainer.max_epoch=3"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_exit_code_from_a_real_process(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    proc = repo.run("train", PROJECT, "trainer=gpux", check=False)
    assert proc.returncode == 2
    assert "unknown option 'gpux'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (repo.path / "pipelines").exists(), "a config error must not write anything"
    shutil.rmtree(repo.path)


def test_bad_cli_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["trian"])
    assert exc.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err
