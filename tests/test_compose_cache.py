"""The composed-config cache: a hit gives the config composing gives, and anything composing
reads (a conf file, an override, an environment variable, the code) makes it compose again."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from shipyard.core import compose as compose_module
from shipyard.core import compose_cache
from shipyard.core.compose_cache import cache_dir, cached_compose

from .conftest import ROOT

PROJECT = "tabular/breast_cancer"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (tmp_path / ".dvc").mkdir()
    return tmp_path


@pytest.fixture
def composes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    """Every real composition, recorded."""
    calls: list[tuple[str, tuple[str, ...]]] = []
    real = compose_module.compose

    def counting(project: str, overrides: Any = (), *, root: Path) -> Any:
        calls.append((project, tuple(overrides)))
        return real(project, overrides, root=root)

    monkeypatch.setattr(compose_module, "compose", counting)
    return calls


def _project_file(root: Path) -> Path:
    return root / "conf" / "project" / "tabular" / "breast_cancer.yaml"


def test_a_hit_gives_what_composing_gives_without_composing(root: Path, composes: list[Any]) -> None:
    first = cached_compose(PROJECT, ["trainer.max_epochs=3"], root=root)
    second = cached_compose(PROJECT, ["trainer.max_epochs=3"], root=root)
    assert len(composes) == 1, "the second command reads the kept config"
    assert second == first == compose_module.compose(PROJECT, ["trainer.max_epochs=3"], root=root)
    assert second.trainer.max_epochs == 3
    other = cached_compose(PROJECT, ["trainer.max_epochs=4"], root=root)
    assert other.trainer.max_epochs == 4 and len(composes) == 3, "other overrides compose"
    assert cached_compose(PROJECT, ["trainer.max_epochs=3"], root=root).trainer.max_epochs == 3
    assert len(composes) == 3, "switching back to the first overrides hits"
    for epochs in range(5, 10):
        cached_compose(PROJECT, [f"trainer.max_epochs={epochs}"], root=root)
    assert len(list(cache_dir(root).glob("tabular__breast_cancer__*.pickle"))) == compose_cache._KEPT_PER_PROJECT
    cached_compose(PROJECT, ["trainer.max_epochs=3"], root=root)
    assert len(composes) == 9, "the least recently used entries were dropped"


def test_an_edited_conf_file_composes_again(root: Path, composes: list[Any]) -> None:
    assert cached_compose(PROJECT, root=root).trainer.max_epochs == 40
    project = _project_file(root)
    project.write_text(project.read_text() + "\ntrainer:\n  max_epochs: 7\n")
    assert cached_compose(PROJECT, root=root).trainer.max_epochs == 7
    team = root / "conf" / "team" / "tabular.yaml"
    team.write_text(team.read_text().replace("max_epochs: 40", "max_epochs: 41"))
    cached_compose(PROJECT, root=root)
    assert len(composes) == 3, "a team layer is read too"


def test_an_environment_variable_the_config_reads_is_part_of_the_key(
    root: Path, composes: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project_file(root)
    project.write_text(project.read_text() + "\ntrainer:\n  max_epochs: ${oc.env:SHIPYARD_TEST_EPOCHS,5}\n")
    monkeypatch.setenv("SHIPYARD_TEST_EPOCHS", "6")
    assert cached_compose(PROJECT, root=root).trainer.max_epochs == 6
    monkeypatch.setenv("SHIPYARD_TEST_EPOCHS", "9")
    assert cached_compose(PROJECT, root=root).trainer.max_epochs == 9
    assert cached_compose(PROJECT, root=root).trainer.max_epochs == 9
    assert len(composes) == 2


def test_a_config_with_another_resolver_is_never_kept(root: Path, composes: list[Any]) -> None:
    project = _project_file(root)
    project.write_text(project.read_text() + "\ntrainer:\n  max_epochs: ${oc.select:trainer.min_epochs,5}\n")
    cached_compose(PROJECT, root=root)
    cached_compose(PROJECT, root=root)
    assert len(composes) == 2
    assert not list(cache_dir(root).glob("*.pickle"))


def test_changed_code_composes_again(root: Path, composes: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    package = root / "team_pkg"
    package.mkdir()
    (package / "schemas.py").write_text("X = 1\n")
    real = compose_cache._code_dirs
    monkeypatch.setattr(compose_cache, "_code_dirs", lambda registered: [*real(registered), str(package)])
    cached_compose(PROJECT, root=root)
    cached_compose(PROJECT, root=root)
    (package / "schemas.py").write_text("X = 22\n")  # a registered package's schema changed
    cached_compose(PROJECT, root=root)
    assert len(composes) == 2


def test_the_code_fingerprint_covers_the_schema_and_every_registered_package() -> None:
    """Found through editable installs too: the folders hold compose.py and the component's schema."""
    registered = compose_cache._registered()
    assert any(target.startswith("shipyard.train.") for _, _, target in registered)
    files = {Path(path).name for path, _, _ in compose_cache._code_stamps(compose_cache._code_dirs(registered))}
    assert {"compose.py", "schema.py", "rules.py", "schemas.py"} <= files


def test_a_damaged_entry_is_a_miss(root: Path, composes: list[Any]) -> None:
    expected = cached_compose(PROJECT, root=root)
    [entry] = cache_dir(root).glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    assert cached_compose(PROJECT, root=root) == expected
    assert len(composes) == 2
    assert entry.read_bytes() != b"not a pickle", "written again"


def test_warnings_are_said_again_on_a_hit(root: Path) -> None:
    (root / "conf" / "project" / "tabular" / "Bad Name.yaml").write_text("{}\n")
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cached_compose(PROJECT, root=root)
        assert any("Bad Name.yaml" in str(w.message) for w in caught)


def test_outside_a_dvc_repository_nothing_is_written(root: Path, composes: list[Any]) -> None:
    (root / ".dvc").rmdir()
    cached_compose(PROJECT, root=root)
    cached_compose(PROJECT, root=root)
    assert len(composes) == 2
    assert not (root / ".dvc").exists()


def test_a_bad_override_is_the_one_message_composing_gives(root: Path) -> None:
    from shipyard.core.errors import ConfigError

    with pytest.raises(ConfigError) as cached:
        cached_compose(PROJECT, ["trainer.max_epochs=lots"], root=root)
    with pytest.raises(ConfigError) as plain:
        compose_module.compose(PROJECT, ["trainer.max_epochs=lots"], root=root)
    assert cached.value.render() == plain.value.render()
    assert not list(cache_dir(root).glob("*.pickle")), "a failed composition is not kept"
