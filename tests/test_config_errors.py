"""A wrong config exits with code 2 and one message naming where, what and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from shipyard.engine.cli import main

from .conftest import ROOT, make_repo

CASES = [
    # (overrides, words the message must contain)
    (
        ["trainer.max_epoch=3"],
        ["unknown key trainer.max_epoch", 'did you mean "max_epochs"', "override 'trainer.max_epoch=3'"],
    ),
    (["trainer.max_epochs=abc"], ["trainer.max_epochs", "'abc'", "override 'trainer.max_epochs=abc'"]),
    (["trainer=gpux"], ["unknown option 'gpux' for config group 'trainer'", 'did you mean "gpu"', "cpu, ddp, gpu"]),
    (["trainer.max_epochs=[1"], ["bad override syntax", "key=value"]),
    (["model.hiden=[8]"], ["model.hiden", 'did you mean "hidden"', "hidden, dropout, activation"]),
    (["model._target_=os.system"], ["'os.system' is not a registered component", "shipyard.train.models.MLP"]),
    (
        ["project.task=binray"],
        ["unknown task 'binray'", 'did you mean "binary"', "conf/project/tabular/breast_cancer.yaml"],
    ),
    (["split.test=0.5"], ["split fractions add up to 1.35", "split.train + split.val + split.test"]),
    (["data.target=???"], ["required value data.target is not set", "conf/project/tabular/breast_cancer.yaml"]),
]


@pytest.mark.parametrize(("overrides", "words"), CASES, ids=[c[0][0] for c in CASES])
def test_config_error_message(
    overrides: list[str], words: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    code = main(["config", "tabular/breast_cancer", *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("config error: ")
    assert "Traceback" not in err
    for word in words:
        assert word in err, f"{word!r} not in:\n{err}"
    assert "fix: " in err


def test_unknown_project(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    assert main(["config", "tabular/breast_cancr"]) == 2
    err = capsys.readouterr().err
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
    assert main(["config", "tabular/breast_cancer"]) == 2
    err = capsys.readouterr().err
    assert "trainer.max_epoks" in err and 'did you mean "max_epochs"' in err
    assert "conf/project/tabular/breast_cancer.yaml" in err


def test_verbose_shows_the_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    assert main(["--verbose", "config", "tabular/breast_cancer", "trainer.max_epoch=3"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_exit_code_from_a_real_process(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    proc = repo.run("train", "tabular/breast_cancer", "trainer=gpux", check=False)
    assert proc.returncode == 2
    assert "unknown option 'gpux'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (repo.path / "pipelines").exists(), "a config error must not write anything"
    shutil.rmtree(repo.path)


def test_bad_cli_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["trian"])
    assert exc.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err
