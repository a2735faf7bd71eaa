from __future__ import annotations

import os
from pathlib import Path

import yaml
from shipyard.core.paths import ProjectPaths
from shipyard.engine.fastpath import compute_stamp, read_stamp, write_stamp


def _project(tmp_path: Path) -> ProjectPaths:
    paths = ProjectPaths.of(tmp_path, "t/p")
    paths.pipeline_dir.mkdir(parents=True)
    (tmp_path / "raw.csv").write_text("a\n1\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "m.py").write_text("x = 1\n")
    (tmp_path / "out.json").write_text("{}")
    stage = {"cmd": "run", "wdir": "../../..", "deps": ["raw.csv", "code"], "outs": ["out.json"]}
    paths.dvc_yaml.write_text(yaml.safe_dump({"stages": {"s": stage}}))
    paths.params_yaml.write_text("a: 1\n")
    lock = {"stages": {"s": {"deps": [{"path": "raw.csv"}, {"path": "code"}], "outs": [{"path": "out.json"}]}}}
    paths.dvc_yaml.with_name("dvc.lock").write_text(yaml.safe_dump(lock))
    return paths


def test_stamp_changes_with_any_input_or_output(tmp_path: Path) -> None:
    paths = _project(tmp_path)
    first = compute_stamp(paths)
    assert first is not None and compute_stamp(paths) == first
    (tmp_path / "code" / "__pycache__").mkdir()
    (tmp_path / "code" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"x")
    assert compute_stamp(paths) == first, "caches do not count, as in .dvcignore"
    for change in (
        lambda: (tmp_path / "raw.csv").write_text("a\n2\n"),
        lambda: (tmp_path / "code" / "new.py").write_text(""),
        lambda: os.utime(tmp_path / "out.json", ns=(1, 1)),
        lambda: paths.params_yaml.write_text("a: 2\n"),
    ):
        before = compute_stamp(paths)
        change()
        assert compute_stamp(paths) != before


def test_no_stamp_without_a_lock_or_with_missing_outputs(tmp_path: Path) -> None:
    paths = _project(tmp_path)
    (tmp_path / "out.json").unlink()
    assert compute_stamp(paths) is None
    paths.dvc_yaml.with_name("dvc.lock").unlink()
    assert compute_stamp(paths) is None


def test_always_changed_stages_never_take_the_fast_path(tmp_path: Path) -> None:
    paths = _project(tmp_path)
    spec = yaml.safe_load(paths.dvc_yaml.read_text())
    spec["stages"]["s"]["always_changed"] = True
    paths.dvc_yaml.write_text(yaml.safe_dump(spec))
    assert compute_stamp(paths) is None


def test_stamp_round_trip(tmp_path: Path) -> None:
    paths = _project(tmp_path)
    write_stamp(paths, {"summary": "ok"})
    saved = read_stamp(paths)
    assert saved is not None and saved["summary"] == "ok" and saved["stamp"] == compute_stamp(paths)
