"""Running one compiled stage: the params.yaml it reads back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import shipyard.core.compose
import yaml
from shipyard.core.compose import compose
from shipyard.core.paths import ProjectPaths
from shipyard.engine.compiler import compile_project
from shipyard.engine.stage import _load

ROOT = Path(__file__).resolve().parents[3]
BC = "tabular/breast_cancer"


def test_stages_of_one_run_share_one_validation_and_see_every_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`shipyard train` validates params.yaml once for all its in-process stages; an edited
    params.yaml is read again, and a stage that changes its config does not change the next."""
    validated: list[int] = []
    real_load = shipyard.core.compose.load

    def counted(data: dict[str, Any], root: Path) -> Any:
        validated.append(1)
        return real_load(data, root)

    monkeypatch.setattr(shipyard.core.compose, "load", counted)
    paths = ProjectPaths.of(tmp_path, BC)
    compile_project(compose(BC, root=ROOT), paths)
    first = _load(paths, tmp_path)
    second = _load(paths, tmp_path)
    assert first == second and first is not second
    first.seed = 1234
    assert _load(paths, tmp_path).seed == second.seed != 1234
    assert len(validated) == 1

    params = yaml.safe_load(paths.params_yaml.read_text())
    params["seed"] = second.seed + 1
    paths.params_yaml.write_text(yaml.safe_dump(params, sort_keys=False))
    assert _load(paths, tmp_path).seed == second.seed + 1
    assert len(validated) == 2
