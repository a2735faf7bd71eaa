"""The DVC adapter: the one place Shipyard uses DVC internals. These fail loudly, naming the DVC
version, when a DVC upgrade moves what the adapter wraps."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dvc
import pytest
import yaml
from shipyard.core.errors import StageError
from shipyard.engine import dvc_adapter

QUIET = {"DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}


def _repo(path: Path) -> Path:
    path.mkdir()
    env = dict(os.environ, **QUIET)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=path, check=True, env=env)
    (path / "in.txt").write_text("hello\n")
    stages = {
        "ours": {"cmd": "echo from-a-subprocess > ours.txt", "deps": ["in.txt"], "outs": ["ours.txt"]},
        "theirs": {"cmd": "echo theirs > theirs.txt", "deps": ["ours.txt"], "outs": ["theirs.txt"]},
    }
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return path


def test_the_wrapped_dvc_function_has_the_expected_shape() -> None:
    dvc_adapter.check()  # raises StageError naming the DVC version otherwise


def test_stage_commands_go_through_the_hook_and_dvc_still_records_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvc.repo import Repo

    repo = _repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    seen: list[str] = []

    def hook(cmd: str, cwd: str, spawn: Callable[[], None]) -> None:
        seen.append(cmd)
        if "ours.txt" in cmd:
            Path(cwd, "ours.txt").write_text("from-this-process\n")  # run in-process
        else:
            spawn()  # left to DVC

    with dvc_adapter.stage_runner(hook), Repo(str(repo)) as dvc_repo:
        dvc_repo.reproduce(str(repo / "dvc.yaml"))
    assert seen == ["echo from-a-subprocess > ours.txt", "echo theirs > theirs.txt"]
    assert (repo / "ours.txt").read_text() == "from-this-process\n"
    assert (repo / "theirs.txt").read_text().strip() == "theirs"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"ours", "theirs"}, "DVC recorded both stages"
    import dvc.stage.run as dvc_run

    assert dvc_run._run.__name__ == "_run" and dvc_run._run.__module__ == "dvc.stage.run", "restored after the block"


def test_a_moved_internal_is_named_with_the_dvc_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import dvc.stage.run as dvc_run

    monkeypatch.setattr(dvc_run, "_run", lambda cmd: None)
    with pytest.raises(StageError, match=rf"DVC {dvc.__version__} changed dvc.stage.run._run"):
        dvc_adapter.check()


def test_a_cmd_run_that_no_longer_calls_the_wrapped_function_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import dvc.stage.run as dvc_run

    def cmd_run(stage: object, dry: bool = False, run_env: object = None) -> None:
        return None  # a DVC whose cmd_run spawns through something else

    monkeypatch.setattr(dvc_run, "cmd_run", cmd_run)
    with pytest.raises(StageError, match=rf"DVC {dvc.__version__} changed dvc.stage.run._run"):
        dvc_adapter.check()
