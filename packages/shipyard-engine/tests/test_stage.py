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


def test_a_pipeline_command_ends_its_process_with_its_code_after_exit_handlers(tmp_path: Path) -> None:
    """`shipyard train` / `shipyard stage` end the process as soon as the command returns (no
    module teardown): with the command's exit code, after the atexit handlers ran and with
    buffered output flushed to a pipe. Called with explicit arguments (tests, the Python API),
    main returns instead."""
    import os
    import subprocess
    import sys

    marker = tmp_path / "atexit-ran"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "print('buffered before the command')\n"
        "sys.argv = ['shipyard', 'stage', 'tabular/breast_cancer', 'trian']\n"
        "from shipyard.engine.cli import main\n"
        "main()\n"
        "print('main returned')\n"
    )
    env = dict(os.environ, SHIPYARD_ROOT=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "unknown stage 'trian'" in proc.stderr
    assert proc.stdout == "buffered before the command\n"
    assert marker.read_text() == "yes"

    explicit = code.replace("main()\n", "rc = main(sys.argv[1:])\n") + "sys.exit(10 + rc)\n"
    proc = subprocess.run([sys.executable, "-c", explicit], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 12 and proc.stdout.endswith("main returned\n")


def test_an_in_process_stage_leaves_the_callers_environment_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage run in-process (a notebook, a search worker) quiets Kedro's logging for itself
    without leaving KEDRO_LOGGING_CONFIG behind: a `kedro run` the caller starts later logs as
    Kedro does."""
    import logging
    import os

    from shipyard.engine.pipeline import NODES
    from shipyard.engine.stage import run_stage

    monkeypatch.delenv("KEDRO_LOGGING_CONFIG", raising=False)
    from shipyard.core.compose import section
    from shipyard.core.schema import SourceConf
    from shipyard.data.sources import fetch_raw

    paths = ProjectPaths.of(tmp_path, BC)
    config = compose(BC, root=ROOT)
    compile_project(config, paths)
    fetch_raw(section(SourceConf, yaml.safe_load(paths.params_yaml.read_text())["data"]["source"]), tmp_path)
    run_stage(tmp_path, BC, NODES[0].name)
    assert any(paths.data_dir.rglob("*.parquet")), "the stage ran"
    assert "KEDRO_LOGGING_CONFIG" not in os.environ
    assert logging.getLogger("kedro").level == logging.CRITICAL
