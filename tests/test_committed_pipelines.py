"""The committed compiled pipelines (`pipelines/<team>/<name>/dvc.yaml`, `params.yaml` and the
shared `pipelines/stage.sh`) are exactly what `shipyard compile` writes from conf/ today.

A committed file that differs means `dvc repro` and `dvc status` at the repository root run a
pipeline nobody can reproduce from the configs (and `make train` would rewrite it, then retrain).
The fix is to compile and retrain the project, then commit its pipeline folder with `dvc.lock`.
"""

from __future__ import annotations

import difflib

import pytest
from shipyard.core.compose import compose, list_projects
from shipyard.core.paths import ProjectPaths
from shipyard.engine.compiler import LAUNCHER, launcher_text, render

from .conftest import ROOT

COMMITTED = sorted(
    "/".join(p.parent.relative_to(ROOT / "pipelines").parts) for p in ROOT.glob("pipelines/*/*/dvc.yaml")
)


def test_there_are_committed_example_pipelines() -> None:
    assert {"tabular/breast_cancer", "vision/digits"} <= set(COMMITTED)


def test_every_committed_pipeline_belongs_to_a_project() -> None:
    orphans = sorted(set(COMMITTED) - set(list_projects(ROOT)))
    assert not orphans, f"pipelines without conf/project/<team>/<name>.yaml: {orphans}; remove their folders"


@pytest.mark.parametrize("project", COMMITTED)
def test_committed_pipeline_is_what_compile_writes(project: str) -> None:
    paths = ProjectPaths.of(ROOT, project)
    for target, expected in zip(
        (paths.dvc_yaml, paths.params_yaml), render(compose(project, root=ROOT), paths), strict=True
    ):
        committed = target.read_text()
        if committed != expected:
            diff = "".join(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    expected.splitlines(keepends=True),
                    f"{paths.rel(target)} (committed)",
                    "shipyard compile (from conf/)",
                )
            )
            pytest.fail(
                f"{paths.rel(target)} is not what `shipyard compile {project}` writes from conf/; retrain it with "
                f"`make train PROJECT={project}` (no ARGS) and commit {paths.rel(paths.pipeline_dir)}/ with its "
                f"dvc.lock\n{diff}",
                pytrace=False,
            )


def test_committed_stage_launcher_is_what_compile_writes() -> None:
    launcher = ROOT / LAUNCHER
    assert launcher.is_file() and launcher.read_text() == launcher_text(), f"run `make compile`, commit {LAUNCHER}"
