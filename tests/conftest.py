"""Fixtures for cross-package tests: throwaway git + DVC repositories and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Overrides that switch the quality gate off, for tests about something else.
NO_GATE = ("gate.enabled=false",)
QUIET = {
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "True",
}


def cli_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ, **QUIET, SHIPYARD_ROOT=str(repo))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SHIPYARD_OVERRIDES", None)
    return env


class Repo:
    """A throwaway Shipyard repository: this repo's conf/, a fresh git and DVC."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "shipyard.engine", *args],
            cwd=self.path,
            env=cli_env(self.path),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"shipyard {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    def train(
        self, project: str, *overrides: str, check: bool = True, gate: bool = False
    ) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        """Train; return the stages that ran (in order) and the process. The quality gate is
        off unless ``gate`` (tests about other things must not depend on model quality)."""
        proc = self.run("train", project, *overrides, *(() if gate else NO_GATE), check=check)
        ran = [line[2:].strip() for line in proc.stderr.splitlines() if line.startswith("▶ ")]
        return ran, proc

    def data(self, project: str) -> Path:
        return self.path / "data" / project

    def metrics(self, project: str) -> dict[str, float]:
        return json.loads((self.data(project) / "08_reporting" / "metrics.json").read_text())

    def bundle_meta(self, project: str) -> dict[str, object]:
        return json.loads((self.data(project) / "06_models" / "bundle" / "bundle.json").read_text())


def make_repo(path: Path) -> Repo:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "conf", path / "conf")
    shutil.copy(ROOT / ".dvcignore", path / ".dvcignore")
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "test@shipyard.invalid"],
        ["git", "config", "user.name", "Shipyard tests"],
        [str(Path(sys.executable).parent / "dvc"), "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "a Shipyard repository"],
    ):
        subprocess.run(cmd, cwd=path, check=True, env=cli_env(path))
    return Repo(path)


@pytest.fixture
def repo_factory(tmp_path: Path) -> Callable[[str], Repo]:
    def factory(name: str = "repo") -> Repo:
        return make_repo(tmp_path / name)

    return factory
