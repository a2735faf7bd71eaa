from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from shipyard.core.compose import compose
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
from shipyard.engine.cli import main
from shipyard.engine.compiler import compile_project, render
from shipyard.engine.pipeline import build_pipeline

ROOT = Path(__file__).resolve().parents[3]


def _config() -> ShipyardConfig:
    return compose("tabular/breast_cancer", root=ROOT)


def test_stages_declare_inputs_params_outputs() -> None:
    config = _config()
    stages = yaml.safe_load(render(config, ProjectPaths.of(ROOT, "tabular/breast_cancer"))[0])["stages"]
    train = stages["train"]
    assert train["cmd"] == "sh pipelines/stage.sh tabular/breast_cancer train"
    assert train["wdir"] == "../../.."
    assert "data/tabular/breast_cancer/05_model_input/train.parquet" in train["deps"]
    assert "packages/shipyard-train/src/shipyard/train" in train["deps"]
    assert "packages/shipyard-data/src/shipyard/data" not in train["deps"], "train does not run data code"
    (params,) = train["params"]
    assert params["pipelines/tabular/breast_cancer/params.yaml"] == [
        "model",
        "optim",
        "trainer",
        "seed",
        "project.name",
        "project.team",
        "project.task",
    ]
    assert stages["ingest"]["deps"][0] == "data/tabular/breast_cancer/01_raw/breast_cancer.csv"
    assert stages["evaluate"]["metrics"] == ["data/tabular/breast_cancer/08_reporting/metrics.json"]
    assert {
        "data/tabular/breast_cancer/08_reporting/confusion.csv": {
            "template": "confusion",
            "x": "actual",
            "y": "predicted",
        }
    } in stages["evaluate"]["plots"]


def test_every_stage_reads_only_declared_params() -> None:
    """The Kedro node inputs and the DVC params are the same list."""
    stages = yaml.safe_load(render(_config(), ProjectPaths.of(ROOT, "tabular/breast_cancer"))[0])["stages"]
    for node in build_pipeline().nodes:
        declared = stages[node.name].get("params", [{}])[0].get("pipelines/tabular/breast_cancer/params.yaml", [])
        for name in node.inputs:
            if name.startswith("params:"):
                key = name.removeprefix("params:")
                assert key in declared or any(d.startswith(key + ".") for d in declared), (node.name, key)


def test_compile_writes_only_on_change(tmp_path: Path) -> None:
    paths = ProjectPaths.of(tmp_path, "tabular/breast_cancer")
    config = _config()
    assert compile_project(config, paths) is True
    mtime = paths.dvc_yaml.stat().st_mtime_ns
    assert compile_project(config, paths) is False
    assert paths.dvc_yaml.stat().st_mtime_ns == mtime


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys; from shipyard.engine.cli import main\n"
        "try: main(['--help'])\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'lightning', 'kedro', 'dvc', 'pandas', 'hydra', 'sklearn')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "config" in proc.stdout


def test_stage_command_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from shipyard.engine.stage import main as stage_main

    monkeypatch.setenv("SHIPYARD_ROOT", str(ROOT))
    assert stage_main(["tabular/breast_cancer", "trian"]) == 2
    assert "unknown stage 'trian'" in capsys.readouterr().err
    assert stage_main([]) == 2
    monkeypatch.setenv("SHIPYARD_ROOT", str(tmp_path))
    assert main(["stage", "tabular/breast_cancer", "ingest"]) == 2
    assert "params.yaml does not exist" in capsys.readouterr().err


def test_compile_writes_the_stage_launcher(tmp_path: Path) -> None:
    from shipyard.engine.compiler import LAUNCHER, launcher_text

    compile_project(_config(), ProjectPaths.of(tmp_path, "tabular/breast_cancer"))
    assert (tmp_path / LAUNCHER).read_text() == launcher_text()
    (tmp_path / LAUNCHER).write_text("#!/bin/sh\nexit 1\n")
    compile_project(_config(), ProjectPaths.of(tmp_path, "vision/digits"))
    assert (tmp_path / LAUNCHER).read_text() == launcher_text(), "a stale launcher is rewritten"


def test_stage_launcher_runs_the_python_that_started_it(tmp_path: Path) -> None:
    """`sh pipelines/stage.sh` started by a Python (as DVC is) runs `shipyard stage` from that
    Python's environment even when PATH holds neither it nor any other Shipyard."""
    import os
    import shutil

    from shipyard.engine.compiler import LAUNCHER, stage_command

    compile_project(_config(), ProjectPaths.of(tmp_path, "tabular/breast_cancer"))
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != Path(venv_bin))
    assert shutil.which("shipyard", path=path) is None, "this test needs a PATH without Shipyard"
    assert stage_command("tabular/breast_cancer", "trian") == f"sh {LAUNCHER} tabular/breast_cancer trian"
    proc = subprocess.run(
        ["sh", LAUNCHER, "tabular/breast_cancer", "trian"],
        cwd=tmp_path,
        env=dict(os.environ, PATH=path, SHIPYARD_ROOT=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("config error: unknown stage 'trian'"), proc.stderr


def test_the_split_stage_warns_on_a_missing_class_and_fails_under_strict(capsys: pytest.CaptureFixture[str]) -> None:
    """checks.split: a class absent from the test split is printed as a warning, or stops the
    stage with a DataError naming checks.split when its action is fail (checks=strict)."""
    import pandas as pd
    from shipyard.core.errors import DataError
    from shipyard.core.schema import Action, SplitConf, SplitKind, ThresholdCheckConf
    from shipyard.engine import nodes

    frame = pd.DataFrame({"k": range(100), "t": range(100), "y": ["rare"] * 4 + ["a"] * 96})
    split = SplitConf(kind=SplitKind.time, time_column="t")
    nodes.split(frame, {}, split, "y", None, "multiclass", 0, ThresholdCheckConf(0.15, Action.warn))
    err = capsys.readouterr().err
    assert "split (time): 70 train, 15 val, 15 test" in err and "warning: class missing from a split [test]" in err
    with pytest.raises(DataError) as info:
        nodes.split(frame, {}, split, "y", None, "multiclass", 0, ThresholdCheckConf(0.15, Action.fail))
    assert info.value.key == "checks.split" and "class missing from a split" in info.value.message
