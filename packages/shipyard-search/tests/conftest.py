"""Fixtures for search tests: a throwaway repository with this repo's conf/ and the real
breast-cancer splits and fitted preprocessing, made by the same functions the pipeline runs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "tabular/breast_cancer"
# Every trial in these tests: two epochs, few latency repeats (fast, still the real code path).
QUICK = [
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "evaluate.latency_repeats=3",
    "evaluate.latency_warmup=1",
]
QUIET = {
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "True",
}


def _write_inputs(root: Path, project: str) -> None:
    """What `make train`'s split and fit_preprocessing stages leave behind."""
    from shipyard.core.compose import compose
    from shipyard.core.paths import ProjectPaths
    from shipyard.data import prepare

    prepared = prepare(compose(project, root=root), root)
    train, val, test, state = prepared.train, prepared.val, prepared.test, prepared.state
    paths = ProjectPaths.of(root, project)
    folder = paths.layer("05_model_input")
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("val", val), ("test", test)):
        part.to_parquet(folder / f"{name}.parquet", index=False)
    paths.layer("06_models").mkdir(parents=True, exist_ok=True)
    (paths.layer("06_models") / "preprocessor.json").write_text(json.dumps(state))


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search-template")
    shutil.copytree(ROOT / "conf", root / "conf")
    shutil.rmtree(root / "conf" / "experiment" / "search", ignore_errors=True)
    _write_inputs(root, PROJECT)
    return root


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template repository for one test."""
    root = tmp_path / "repo"
    shutil.copytree(template_repo, root)
    return root


@pytest.fixture
def write_search() -> Callable[[Path, str, str], None]:
    def write(root: Path, name: str, text: str) -> None:
        (root / "conf" / "search" / f"{name}.yaml").write_text(text)

    return write


@pytest.fixture
def cli_env() -> Callable[[Path], dict[str, str]]:
    """The environment for a ``python -m shipyard.search`` subprocess on ``root``."""

    def make(root: Path) -> dict[str, str]:
        env = dict(os.environ, **QUIET, SHIPYARD_ROOT=str(root))
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.pop("SHIPYARD_OVERRIDES", None)
        return env

    return make
