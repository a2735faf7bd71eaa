"""The DVC adapter: the one place Shipyard uses DVC internals. These fail loudly, naming the DVC
version, when a DVC upgrade moves what the adapter wraps."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _params_repo(path: Path) -> Path:
    """Three chained stages reading params of several YAML types, so dvc.lock is updated three
    times a run and records floats, quoted-looking strings, lists and nested keys."""
    path.mkdir()
    env = dict(os.environ, **QUIET)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=path, check=True, env=env)
    (path / "in.txt").write_text("hello\n")
    params = {"lr": 1e-05, "version": "2.0", "hidden": [64, 32], "model": {"name": "mlp", "on": True}, "n": 3}
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = {
        "a": {"cmd": "cp in.txt a.txt", "deps": ["in.txt"], "params": ["lr", "version"], "outs": ["a.txt"]},
        "b": {"cmd": "cp a.txt b.txt", "deps": ["a.txt"], "params": ["hidden", "model.name"], "outs": ["b.txt"]},
        "c": {"cmd": "cp b.txt c.txt", "deps": ["b.txt"], "params": ["model", "n"], "metrics": ["c.txt"]},
    }
    (path / "dvc.yaml").write_text("# written by hand: this comment stays\n" + yaml.safe_dump({"stages": stages}))
    return path


def test_lock_updates_in_the_runner_write_the_bytes_dvc_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dvc.lock updated inside stage_runner (plain loader) is byte for byte what DVC alone writes
    (round-trip loader), on creation and on an update after a param changes; dvc.yaml is untouched."""
    from dvc.repo import Repo
    from dvc.utils.serialize import _yaml

    plain, ours = _params_repo(tmp_path / "plain"), _params_repo(tmp_path / "ours")
    dvc_yaml = (ours / "dvc.yaml").read_text()

    def spawn(cmd: str, cwd: str, spawn: Callable[[], None]) -> None:
        assert _yaml.parse_yaml_for_update.__module__ == dvc_adapter.__name__, (
            f"DVC {dvc.__version__} no longer reads dvc.lock through _yaml.parse_yaml_for_update"
        )
        spawn()

    for edit in (None, {"lr": 0.5, "hidden": [8]}):
        for repo in (plain, ours):
            if edit:
                params = yaml.safe_load((repo / "params.yaml").read_text())
                (repo / "params.yaml").write_text(yaml.safe_dump({**params, **edit}, sort_keys=False))
            monkeypatch.chdir(repo)
            runner = dvc_adapter.stage_runner(spawn) if repo == ours else contextlib.nullcontext()
            with runner, Repo(str(repo)) as dvc_repo:
                dvc_repo.reproduce(str(repo / "dvc.yaml"))
        assert (ours / "dvc.lock").read_bytes() == (plain / "dvc.lock").read_bytes()
    assert (ours / "dvc.yaml").read_text() == dvc_yaml
    assert _yaml.parse_yaml_for_update.__module__ == _yaml.__name__, "restored after the block"


def test_the_runner_parses_each_yaml_text_once_and_hands_out_copies(tmp_path: Path) -> None:
    """Inside stage_runner DVC's safe parse of a text runs once (DVC reads params.yaml three times
    a stage); each caller gets its own copy, a changed file is parsed again, round-trip parses
    are never kept, and the original parser is back after the block."""
    from dvc.utils import strictyaml
    from dvc.utils.serialize import _yaml

    calls: list[str] = []
    original = _yaml.parse_yaml

    def counting(text: str, path: str, typ: str = "safe") -> object:
        calls.append(typ)
        return original(text, path, typ=typ)

    _yaml.parse_yaml = strictyaml.parse_yaml = counting
    try:
        params = tmp_path / "params.yaml"
        params.write_text("lr: 1.0e-05\nhidden: [64, 32]\non: yes\n")
        with dvc_adapter.stage_runner(lambda cmd, cwd, spawn: spawn()):
            first = _yaml.load_yaml(str(params))
            first["hidden"].append(0)  # DVC edits what it loads; the next caller must not see it
            second = _yaml.load_yaml(str(params))
            via_strict = strictyaml.parse_yaml(params.read_text(), str(params))
            assert calls == ["safe"], "one parse for one text"
            assert second == via_strict == {"lr": 1e-05, "hidden": [64, 32], "on": "yes"}
            params.write_text("lr: 0.5\n")
            assert _yaml.load_yaml(str(params)) == {"lr": 0.5}
            _yaml.parse_yaml(params.read_text(), str(params), typ="rt")
            _yaml.parse_yaml(params.read_text(), str(params), typ="rt")
            assert calls == ["safe", "safe", "rt", "rt"], "a new text is parsed; round-trip parses are not kept"
        assert _yaml.parse_yaml is counting and strictyaml.parse_yaml is counting, "restored after the block"
    finally:
        _yaml.parse_yaml = strictyaml.parse_yaml = original


_TRICKY = ["yes", "off", "null", "~", "1e3", "0x1F", "012", ":", "#x", "a: b", "- a", " lead", "trail ", "", "'q'",
           '"d"', "multi\nline", "ünï", "日本", "x" * 90, "word " * 25, "2024-01-01", "12:30", "!bang", "&a", "*s", "|",
           "[l]", "{d}", ".inf", "1_000", "data/a b/c.csv"]  # fmt: skip


def _value(rng: Any, depth: int = 0) -> Any:
    pick = rng.random()
    if depth > 3 or pick < 0.45:
        return rng.choice(
            [*_TRICKY, rng.randint(-(10**12), 10**12), 1e-05, 0.1 + 0.2, float("inf"), -0.0, True, False, None]
        )
    if pick < 0.75:
        return {rng.choice(["md5", "path", "size", *_TRICKY[:8]]) + str(i): _value(rng, depth + 1) for i in range(4)}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def test_a_lock_dumped_stage_by_stage_is_the_text_dvc_dumps(tmp_path: Path) -> None:
    """Inside the runner DVC's dump of dvc.lock emits only new or changed stages; the text is
    byte for byte DVC's whole dump: every committed lock, and lock-shaped data full of values
    YAML quotes, folds or nulls, as one stage after another changes."""
    import io
    import random

    from dvc.utils.serialize import _yaml

    original, parse = _yaml._dump, _yaml.parse_yaml

    def dumped(data: Any, dump: Any) -> str:
        stream = io.StringIO()
        dump(data, stream)
        return stream.getvalue()

    rng = random.Random(7)
    root = Path(__file__).resolve().parents[3]
    locks = [_yaml.parse_yaml(p.read_text(), str(p)) for p in sorted(root.glob("pipelines/*/*/dvc.lock"))]
    assert locks, "the example projects' locks"
    with dvc_adapter.stage_runner(lambda cmd, cwd, spawn: spawn()):
        assert _yaml._dump is not original
        for lock in locks:
            assert dumped(lock, _yaml._dump) == dumped(lock, original)
        for _ in range(150):
            stages = {f"stage_{i}": _value(rng) for i in range(rng.randint(1, 4))}
            data = {"schema": "2.0", "stages": stages}
            for _ in range(3):
                text = dumped(data, _yaml._dump)
                assert text == dumped(data, original), data
                # DVC reads what it wrote back from the runner's store, not by parsing: the same data.
                assert dvc_adapter._KEPT is not None and text in dvc_adapter._KEPT
                assert _yaml.parse_yaml(text, "dvc.lock") == parse(text, "dvc.lock")
                stages[rng.choice(list(stages))] = _value(rng)
        # ruamel's own scalar types (a round-trip parse) carry formatting their repr hides: DVC dumps those.
        from ruamel.yaml import YAML

        rt = YAML().load("schema: '2.0'\nstages:\n  a:\n    lr: 1.0e-05\n")
        assert dumped(rt, _yaml._dump) == dumped(rt, original) == "schema: '2.0'\nstages:\n  a:\n    lr: 1.0e-05\n"
    assert _yaml._dump is original, "restored after the block"
