from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shipyard.core.errors import ConfigError
from shipyard.core.paths import ProjectPaths
from shipyard.registry import Registry, RegistryError
from shipyard.registry._registry import normalise_version, project_lock


@pytest.fixture
def repo(tmp_path: Path) -> ProjectPaths:
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@x.invalid"],
        ["git", "config", "user.name", "t"],
    ):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "init"], cwd=tmp_path, check=True)
    paths = ProjectPaths.of(tmp_path, "team/model")
    paths.pipeline_dir.mkdir(parents=True)
    return paths


def _register(registry: Registry, md5: str, passed: bool = True) -> str:
    (registry.paths.pipeline_dir / "dvc.lock").write_text(md5)
    version, created = registry.register({"model": {"bundle_md5": md5}, "gate": {"passed": passed, "checks": []}})
    assert created
    return version.version


def test_versions_stages_promote_and_rollback(repo: ProjectPaths) -> None:
    registry = Registry(repo)
    assert _register(registry, "a") == "v1.0.0"
    assert _register(registry, "b") == "v2.0.0"
    assert registry.register({"model": {"bundle_md5": "b"}, "gate": {"passed": True}})[1] is False, "same model twice"
    assert [v.stages for v in registry.versions()] == [["candidate"], ["candidate"]]
    registry.promote("v1")
    registry.promote("2")
    assert registry.stage_of() == {"v1.0.0": "archived", "v2.0.0": "production"}
    restored, replaced = registry.rollback()
    assert (restored.version, replaced.version) == ("v1.0.0", "v2.0.0")
    assert registry.production().version == "v1.0.0"  # type: ignore[union-attr]
    tags = subprocess.run(["git", "tag"], cwd=repo.root, capture_output=True, text=True).stdout.split()
    assert "team/model@v1.0.0" in tags and any(t.startswith("team/model#production#") for t in tags)


def test_promote_refuses_a_version_that_failed_its_gate(repo: ProjectPaths) -> None:
    registry = Registry(repo)
    _register(registry, "a", passed=False)
    assert registry.versions()[0].stages == [], "a failed model is no candidate"
    with pytest.raises(RegistryError, match="did not pass its gate"):
        registry.promote("v1")
    with pytest.raises(RegistryError, match="no version v9.0.0"):
        registry.promote("v9")
    with pytest.raises(RegistryError, match="no production version"):
        registry.rollback()


def test_version_names() -> None:
    assert normalise_version("3") == normalise_version("v3") == normalise_version("v3.0.0") == "v3.0.0"
    with pytest.raises(ConfigError):
        normalise_version("latest")


def test_card_is_committed_with_the_version(repo: ProjectPaths) -> None:
    registry = Registry(repo)
    _register(registry, "a")
    shown = subprocess.run(
        ["git", "show", "team/model@v1.0.0:pipelines/team/model/model_card.json"],
        cwd=repo.root,
        capture_output=True,
        text=True,
    )
    assert json.loads(shown.stdout)["version"] == "v1.0.0"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo.root, capture_output=True, text=True).stdout == ""


def test_killed_registrations_never_leave_a_version_without_its_card(repo: ProjectPaths) -> None:
    code = (
        "import sys; from pathlib import Path; from shipyard.core.paths import ProjectPaths; "
        "from shipyard.registry import Registry; p = ProjectPaths.of(Path(sys.argv[1]), 'team/model'); "
        "(p.pipeline_dir / 'dvc.lock').write_text(sys.argv[2]); "
        "Registry(p).register({'model': {'bundle_md5': sys.argv[2]}, 'gate': {'passed': True}})"
    )
    for i, delay in enumerate((0.2, 0.5, 0.8, 1.1, 5.0)):
        proc = subprocess.Popen([sys.executable, "-c", code, str(repo.root), f"m{i}"])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    registry = Registry(repo)
    for version in registry.versions():
        assert version.card.get("version") == version.version, version
    # And the registry still works after the kills.
    (repo.pipeline_dir / "dvc.lock").write_text("final")
    version, _ = registry.register({"model": {"bundle_md5": "final"}, "gate": {"passed": True}})
    assert version.card["version"] == version.version


def test_project_lock_stops_a_second_training(repo: ProjectPaths) -> None:
    code = (
        "import sys, time; from pathlib import Path; from shipyard.core.paths import ProjectPaths; "
        "from shipyard.registry._registry import project_lock; "
        "p = ProjectPaths.of(Path(sys.argv[1]), 'team/model'); "
        "cm = project_lock(p, wait=False); cm.__enter__(); print('locked', flush=True); time.sleep(30)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(repo.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(RegistryError, match=r"another training of team/model is running \(pid"),
            project_lock(repo, wait=False),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with project_lock(repo, wait=False):
        pass


def test_the_saved_gto_state_follows_the_tags(repo: ProjectPaths) -> None:
    """GTO's parse of the tags is kept in the git folder for the next process; any tag change,
    GTO's own CLI included, makes it read again, and a damaged file is just read again."""
    from shipyard.registry import _registry

    registry = Registry(repo)
    _register(registry, "a")
    _register(registry, "b")
    assert [v.version for v in registry.versions()] == ["v1.0.0", "v2.0.0"]
    saved = (
        Path(
            subprocess.run(
                ["git", "rev-parse", "--absolute-git-dir"], cwd=repo.root, capture_output=True, text=True
            ).stdout.strip()
        )
        / "shipyard-registry-events.json"
    )
    assert saved.is_file()
    gto = str(Path(sys.executable).parent / "gto")
    subprocess.run([gto, "deprecate", "team/model", "v2.0.0"], cwd=repo.root, check=True, capture_output=True)
    _registry._CACHE.clear()  # as in a new process
    assert [v.version for v in registry.versions()] == ["v1.0.0"]
    saved.write_text("{not json")
    _registry._CACHE.clear()
    assert [v.version for v in registry.versions()] == ["v1.0.0"]
    assert json.loads(saved.read_text())["events"]["team/model"][-1]["kind"] == "deregistration"
