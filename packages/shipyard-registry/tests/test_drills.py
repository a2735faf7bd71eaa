"""Reliability drills of the registry: real git, real GTO (its own CLI for the hand edits)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from shipyard.core.paths import ProjectPaths
from shipyard.registry import Registry, RegistryError

pytestmark = pytest.mark.drill

GTO = str(Path(sys.executable).parent / "gto")
NAME = "team/model"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def _gto(root: Path, *args: str) -> None:
    """GTO's own command line, as a user would run it by hand."""
    subprocess.run([GTO, *args], cwd=root, capture_output=True, text=True, check=True)


def _tags(root: Path) -> set[str]:
    return set(_git(root, "tag").split())


@pytest.fixture
def repo(tmp_path: Path) -> ProjectPaths:
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "t@x.invalid"],
        ["git", "config", "user.name", "t"],
    ):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    (tmp_path / "README.md").write_text("a user's file\n")
    _git(tmp_path, "add", "README.md")
    _git(tmp_path, "commit", "-q", "-m", "init")
    paths = ProjectPaths.of(tmp_path, NAME)
    paths.pipeline_dir.mkdir(parents=True)
    return paths


def _card(model: str, passed: bool = True) -> dict[str, object]:
    return {
        "model": {"bundle_md5": f"{model}.dir", "weights_sha256": model * 8},
        "gate": {"passed": passed, "checks": []},
    }


def _register(registry: Registry, model: str, passed: bool = True) -> tuple[str, bool]:
    (registry.paths.pipeline_dir / "dvc.lock").write_text(model)  # what a training changes
    version, created = registry.register(_card(model, passed))
    return version.version, created


def _gto_production(root: Path) -> str:
    """What GTO itself says is in production."""
    out = subprocess.run([GTO, "show", f"{NAME}#production", "--version"], cwd=root, capture_output=True, text=True)
    return out.stdout.strip()


def test_rollback_walks_back_through_production_history_and_never_reinstates_a_failed_gate(
    repo: ProjectPaths,
) -> None:
    """Fault: after a hand `gto assign` of a gate-failed v4, two rollbacks put v4 back into
    production, and successive rollbacks flipped between the last two versions. Rollback must
    walk back through production's history and skip versions that did not pass their gate."""
    registry = Registry(repo)
    for model in "abc":
        _register(registry, model)
    assert _register(registry, "d", passed=False) == ("v4.0.0", True)
    for version in ("v1", "v2", "v3"):
        registry.promote(version)
    _gto(repo.root, "assign", NAME, "--version", "v4.0.0", "--stage", "production")  # by hand, no gate
    assert registry.production().version == "v4.0.0"  # type: ignore[union-attr]
    assert list(registry.stage_of().values()).count("production") == 1, "one production version"

    walked = []
    for _ in range(3):
        restored, replaced = registry.rollback()
        walked.append((replaced.version, restored.version))
        assert _gto_production(repo.root) == restored.version, "GTO's own view agrees"
    assert walked == [("v4.0.0", "v3.0.0"), ("v3.0.0", "v2.0.0"), ("v2.0.0", "v1.0.0")]
    with pytest.raises(RegistryError, match="no earlier production version that passed its gate") as refused:
        registry.rollback()
    assert refused.value.exit_code == 2
    assert registry.stage_of() == {
        "v1.0.0": "production",
        "v2.0.0": "archived",
        "v3.0.0": "archived",
        "v4.0.0": "archived",
    }
    # Nothing else touched: same versions, the failed one still failed, no commit or file changed.
    assert [(v.version, v.gate_passed) for v in registry.versions()] == [
        ("v1.0.0", True),
        ("v2.0.0", True),
        ("v3.0.0", True),
        ("v4.0.0", False),
    ]
    assert _git(repo.root, "status", "--porcelain") == ""


def test_rollback_after_a_rollback_and_a_new_promotion(repo: ProjectPaths) -> None:
    """Fault: rollbacks flipped between the last two versions. A promotion after rollbacks
    starts a new step in the history; the next rollback returns to where production was."""
    registry = Registry(repo)
    for model in "abc":
        _register(registry, model)
    for version in ("v1", "v2", "v3"):
        registry.promote(version)
    assert registry.rollback()[0].version == "v2.0.0"
    registry.promote("v3")
    assert registry.rollback()[0].version == "v2.0.0"
    assert registry.rollback()[0].version == "v1.0.0"


def test_gto_cli_edits_are_honoured(repo: ProjectPaths) -> None:
    """Fault: after `gto deprecate` the registry showed a version `v2.0.0!` in a stage
    `production!`, promoted the deregistered version, and a hand `gto assign` left two
    production versions. GTO's state is read through GTO, so its edits are honoured."""
    registry = Registry(repo)
    for model in "abc":
        _register(registry, model)
    registry.promote("v2")
    _gto(repo.root, "deprecate", NAME, "v2.0.0")  # deregisters v2
    assert [v.version for v in registry.versions()] == ["v1.0.0", "v3.0.0"]
    assert registry.stage_of() == {"v1.0.0": "candidate", "v3.0.0": "candidate"}
    assert registry.production() is None, "the deregistered production version is not production"
    with pytest.raises(RegistryError, match="v2.0.0 was deregistered") as refused:
        registry.promote("v2")
    assert refused.value.exit_code == 2

    _gto(repo.root, "assign", NAME, "--version", "v3.0.0", "--stage", "production")
    _gto(repo.root, "assign", NAME, "--version", "v1.0.0", "--stage", "production")
    stages = registry.stage_of()
    assert [v for v, s in stages.items() if s == "production"] == ["v1.0.0"] == [_gto_production(repo.root)]
    _gto(repo.root, "deprecate", NAME, "v1.0.0", "production")  # unassigns v1's production
    assert registry.production().version == "v3.0.0" == _gto_production(repo.root)  # type: ignore[union-attr]

    _gto(repo.root, "deprecate", NAME)  # the whole artifact
    assert registry.versions() == [] and registry.production() is None
    assert _register(registry, "e") == ("v4.0.0", True), "numbers are never reused"


def test_a_registration_killed_between_tag_and_stage_is_repaired(repo: ProjectPaths) -> None:
    """Fault: a kill between the version tag and the candidate assignment left a version with
    no stage that the next run did not repair. The next registration completes it."""
    code = (
        "import os, signal, sys; from pathlib import Path; import gto.api; "
        "from shipyard.core.paths import ProjectPaths; from shipyard.registry import Registry; "
        "tag = gto.api.register\n"
        "def killed_after_tag(*a, **k):\n"
        "    tag(*a, **k); os.kill(os.getpid(), signal.SIGKILL)\n"
        "gto.api.register = killed_after_tag\n"
        "p = ProjectPaths.of(Path(sys.argv[1]), 'team/model'); (p.pipeline_dir / 'dvc.lock').write_text('a')\n"
        "Registry(p).register(json.loads(sys.argv[2]))"
    )
    killed = subprocess.run(
        [sys.executable, "-c", "import json\n" + code, str(repo.root), json.dumps(_card("a"))], capture_output=True
    )
    assert killed.returncode == -9, killed.stderr
    registry = Registry(repo)
    assert [(v.version, v.stages) for v in registry.versions()] == [("v1.0.0", [])], "the fault: no stage"

    assert _register(registry, "a") == ("v1.0.0", False), "the same model is not registered again"
    assert registry.stage_of() == {"v1.0.0": "candidate"}, "and its registration is completed"
    # A stage removed on purpose (GTO's unassignment) is not put back.
    _gto(repo.root, "deprecate", NAME, "v1.0.0", "candidate")
    assert _register(registry, "b") == ("v2.0.0", True)
    assert registry.stage_of() == {"v2.0.0": "candidate"}


def test_an_identical_model_is_found_among_all_versions(repo: ProjectPaths) -> None:
    """Fault: duplicates were only checked against the latest version, so an identical model
    was registered again and again. It is checked against every version."""
    registry = Registry(repo)
    _register(registry, "a")
    _register(registry, "b")
    tags, head = _tags(repo.root), _git(repo.root, "rev-parse", "HEAD")
    assert _register(registry, "a") == ("v1.0.0", False)
    assert (_tags(repo.root), _git(repo.root, "rev-parse", "HEAD")) == (tags, head), "nothing written"
    weights_only = {"model": {"weights_sha256": "b" * 8}, "gate": {"passed": True}}
    assert registry.register(weights_only)[0].version == "v2.0.0", "the same weights are the same model"


def test_detached_head_is_refused(repo: ProjectPaths) -> None:
    """Fault: on a detached HEAD a version was registered, silently, on a commit no branch
    contains. It is refused with one message and the fix, and nothing is written."""
    registry = Registry(repo)
    _register(registry, "a")
    _git(repo.root, "checkout", "-q", "--detach")
    head, tags = _git(repo.root, "rev-parse", "HEAD"), _tags(repo.root)
    card = (repo.pipeline_dir / "model_card.json").read_text()
    with pytest.raises(RegistryError) as refused:
        _register(registry, "b")
    assert refused.value.exit_code == 2
    assert "HEAD is detached" in refused.value.message and "git switch -c" in str(refused.value.fix)
    assert (_git(repo.root, "rev-parse", "HEAD"), _tags(repo.root)) == (head, tags)
    assert (repo.pipeline_dir / "model_card.json").read_text() == card
    _git(repo.root, "switch", "-q", "-c", "work")
    assert _register(registry, "b") == ("v2.0.0", True)
    assert _git(repo.root, "branch", "--contains", f"{NAME}@v2.0.0") == "* work"


def test_registration_commits_the_project_yaml_and_deploy_pointers_and_nothing_else(repo: ProjectPaths) -> None:
    """Fault: a version's commit lacked the project's own YAML and its deployment pointers, so
    it could not rebuild that version from conf/. They are committed; nothing else of the user's."""
    root = repo.root
    project_yaml, team_yaml = root / "conf/project/team/model.yaml", root / "conf/team/team.yaml"
    deploy = root / "deploy/team/model"
    for path, text in (
        (project_yaml, "model: {hidden: [8]}\n"),
        (team_yaml, "trainer: {max_epochs: 3}\n"),
        (deploy / "batch.dvc", "outs:\n- path: batch\n"),
        (deploy / ".gitignore", "/batch\n"),
        (root / "conf/project/team/other.yaml", "another project\n"),
        (root / "notes.txt", "staged by the user\n"),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _git(root, "add", "notes.txt")
    (root / "README.md").write_text("edited by the user\n")
    _register(Registry(repo), "a")
    committed = set(_git(root, "show", "--name-only", "--format=", f"{NAME}@v1.0.0^{{commit}}").splitlines())
    assert committed == {
        "conf/project/team/model.yaml",
        "conf/team/team.yaml",
        "deploy/team/model/batch.dvc",
        "deploy/team/model/.gitignore",
        "pipelines/team/model/dvc.lock",
        "pipelines/team/model/model_card.json",
    }
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    assert sorted(status.splitlines()) == [" M README.md", "?? conf/project/team/other.yaml", "A  notes.txt"]
