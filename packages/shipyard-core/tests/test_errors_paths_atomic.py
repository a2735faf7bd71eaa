from __future__ import annotations

from pathlib import Path

import pytest
from shipyard.core.atomic import atomic_dir, write_json
from shipyard.core.errors import ConfigError, did_you_mean
from shipyard.core.paths import ProjectPaths, find_root, parse_project


def test_error_renders_where_what_and_fix() -> None:
    err = ConfigError("bad", where="conf/x.yaml", key="a.b", value=3, fix="do y")
    assert err.render() == "config error: bad\n  in: conf/x.yaml\n  key: a.b\n  value: 3\n  fix: do y"
    assert err.exit_code == 2


def test_did_you_mean() -> None:
    assert did_you_mean("max_epoch", ["max_epochs", "batch_size"]) == ' (did you mean "max_epochs"?)'
    assert did_you_mean("zzz", ["max_epochs"]) == ""


@pytest.mark.parametrize("name", ["tabular", "Tabular/x", "a/b/c", "a b/c", "../x", ""])
def test_bad_project_names(name: str) -> None:
    with pytest.raises(ConfigError):
        parse_project(name)


def test_project_paths(tmp_path: Path) -> None:
    paths = ProjectPaths.of(tmp_path, "team-a/my_project")
    assert paths.dvc_yaml == tmp_path / "pipelines" / "team-a" / "my_project" / "dvc.yaml"
    assert paths.rel(paths.layer("06_models")) == "data/team-a/my_project/06_models"
    with pytest.raises(ValueError):
        paths.layer("99_nope")


def test_find_root_walks_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_ROOT", raising=False)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("defaults: []\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(deep) == tmp_path.resolve()
    with pytest.raises(ConfigError, match="no Shipyard repository"):
        find_root(Path("/"))


def test_atomic_dir_keeps_the_old_version_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"], "no temporary left behind"


def test_write_json_is_sorted_and_complete(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"b": 1, "a": 2})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
