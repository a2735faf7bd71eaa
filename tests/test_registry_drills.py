"""Reliability drills of registering, promoting and recovering: the real CLI, DVC, git and GTO.

Most drills start from a copy of one trained repository (two versions of breast_cancer that
passed their gate), so that each trains only what its fault needs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import Repo, cli_env, make_repo

pytestmark = [pytest.mark.drill, pytest.mark.slow]

BC = "tabular/breast_cancer"
GTO = str(Path(sys.executable).parent / "gto")
# Quick, and sure to pass the gate: the drills are about what happens around a version.
SETTINGS = {
    "trainer": {"max_epochs": 5, "progress_bar": False},
    "gate": {"baseline": {"models": ["dummy"]}, "regression_tolerance": 1.0},
    "deploy": {"targets": ["batch"]},
}


def _git(repo: Repo, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo.path, capture_output=True, text=True, check=True).stdout


def _gto(repo: Repo, *args: str) -> None:
    """GTO's own command line, as a user would run it by hand."""
    subprocess.run([GTO, *args], cwd=repo.path, capture_output=True, text=True, check=True)


def _tags(repo: Repo) -> list[str]:
    return sorted(_git(repo, "tag").split())


def _merge(base: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        out[key] = _merge(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """breast_cancer v1, and v2 (another learning rate) trained with README.md edited and not
    committed; both passed their gate, none promoted."""
    repo = make_repo(tmp_path_factory.mktemp("trained") / "repo")
    project = repo.path / "conf" / "project" / f"{BC}.yaml"
    merged = _merge(yaml.safe_load(project.read_text()), SETTINGS)
    project.write_text("# @package _global_\n" + yaml.safe_dump(merged, sort_keys=False))
    (repo.path / "README.md").write_text("the team's readme\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "drill settings")
    repo.train(BC, gate=True)
    (repo.path / "README.md").write_text("edited, not committed\n")
    repo.train(BC, "optim.lr=0.02", gate=True)
    return repo


@pytest.fixture
def repo(trained: Repo, tmp_path: Path) -> Repo:
    """A copy of the trained repository, to change at will."""
    shutil.copytree(trained.path, tmp_path / "repo", symlinks=True)
    return Repo(tmp_path / "repo")


def _status(repo: Repo) -> dict[str, object]:
    return json.loads(repo.run("status", BC, "--json").stdout)  # type: ignore[no-any-return]


def _one_message(proc: subprocess.CompletedProcess[str], kind: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count(f"{kind}:") == 1 and "  fix: " in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_lineage_names_only_the_files_that_really_differ(trained: Repo) -> None:
    """Fault: lineage's dirty_paths dropped the first character of the first path ("EADME.md"),
    and the project's own dvc.lock, which registration itself writes, marked nearly every
    version as built from a dirty tree."""
    v1 = json.loads(trained.run("lineage", BC, "v1", "--json").stdout)["git"]
    v2 = json.loads(trained.run("lineage", BC, "v2", "--json").stdout)["git"]
    assert (v1["dirty"], v1["dirty_paths"]) == (False, [])
    assert (v2["dirty"], v2["dirty_paths"]) == (True, ["README.md"]), "dvc.lock had changed too, and is not listed"
    shown = trained.run("lineage", BC, "v1").stdout
    assert "(tree was dirty)" not in shown


def test_promote_builds_first_and_switches_after(repo: Repo) -> None:
    """Fault: promote switched production before building the deployments; with the version's
    model missing from DVC's cache, the registry said v2 while the batch job still ran v1, and
    `status` could not show the difference. Now a build that fails leaves production, the built
    folders and their DVC pointers as they were, and `status` shows what each deployment holds."""
    repo.run("promote", BC, "v1")
    job = repo.path / "deploy" / BC / "batch" / "job.yaml"
    pointer = repo.path / "deploy" / BC / "batch.dvc"
    before = (job.read_text(), pointer.read_text(), _tags(repo))
    assert yaml.safe_load(before[0])["version"] == f"{BC}@v1.0.0"

    # A build failing half-way: the batch job is rebuilt for v2, then the service's settings fail.
    half = repo.run("promote", BC, "v2", "deploy.targets=[batch,service]", "deploy.service.port=-1", check=False)
    _one_message(half, "config error")
    assert (job.read_text(), pointer.read_text(), _tags(repo)) == before, "the batch job is v1's again"
    assert not (repo.path / "deploy" / BC / "service").exists()
    assert not (repo.path / "deploy" / BC / "service.dvc").exists()

    # v2's model is not in DVC's cache (a fresh clone that did not `dvc pull`).
    card = json.loads(_git(repo, "show", f"{BC}@v2.0.0:pipelines/{BC}/model_card.json"))
    listing = repo.path / ".dvc" / "cache" / "files" / "md5" / card["model"]["bundle_md5"][:2]
    listing = listing / card["model"]["bundle_md5"][2:]
    for entry in json.loads(listing.read_text()):
        (listing.parent.parent / entry["md5"][:2] / entry["md5"][2:]).unlink()
    missing = repo.run("promote", BC, "v2", check=False)
    _one_message(missing, "data error")
    assert "is not in DVC's cache" in missing.stderr and "dvc pull" in missing.stderr
    assert (job.read_text(), pointer.read_text(), _tags(repo)) == before
    status = _status(repo)
    assert status["production"] == "v1.0.0"
    assert status["deployments"]["batch"]["version"] == "v1.0.0"  # type: ignore[index]

    # Production switched by hand, without building: status shows the deployment is behind.
    _gto(repo, "assign", BC, "--version", "v2.0.0", "--stage", "production")
    status = _status(repo)
    batch = status["deployments"]["batch"]  # type: ignore[index]
    assert (status["production"], batch["version"], batch["is_production"]) == ("v2.0.0", "v1.0.0", False)
    text = repo.run("status", BC).stdout
    assert "deployed batch: deploy/tabular/breast_cancer/batch (v1.0.0)  NOT the production version (v2.0.0)" in text


def test_gto_cli_edits_read_by_status_list_and_promote(repo: Repo) -> None:
    """Fault: after `gto deprecate` (deregistering v2) `shipyard status` showed a version
    `v2.0.0!` in a stage `production!`, promote still promoted v2, and `status` and `list` exited
    2 ("bad version 'v2.0.0!'"); after a hand `gto assign`, two versions showed as production."""
    repo.run("promote", BC, "v2")
    _gto(repo, "deprecate", BC, "v2.0.0")
    status = _status(repo)
    assert [(v["version"], v["stage"]) for v in status["versions"]] == [("v1.0.0", "candidate")]  # type: ignore[attr-defined]
    assert status["production"] is None
    listed = json.loads(repo.run("list", "--json").stdout)
    assert next(p for p in listed if p["project"] == BC)["production"] == "-"
    refused = repo.run("promote", BC, "v2", check=False)
    _one_message(refused, "registry error")
    assert "v2.0.0 was deregistered" in refused.stderr

    _gto(repo, "assign", BC, "--version", "v1.0.0", "--stage", "production")
    status = _status(repo)
    assert status["production"] == "v1.0.0"
    assert [v["stage"] for v in status["versions"]] == ["production"]  # type: ignore[attr-defined]
    rows = [line.split() for line in repo.run("status", BC).stdout.splitlines() if line.startswith("  v")]
    assert [row[:2] for row in rows] == [["v1.0.0", "production"]]


def test_detached_head_is_refused_and_the_version_commit_holds_its_config(repo: Repo) -> None:
    """Faults: on a detached HEAD a version was registered, silently, on a commit no branch
    contains; and a version's commit lacked the project's YAML and the deployment pointers it
    created. Now: one exit-2 message with the fix, nothing written; then, on a branch, the
    version's commit holds the project's pipeline, YAML and deploy pointers, nothing else."""
    repo.run("promote", BC, "v1")  # creates deploy/.../batch.dvc, not committed yet
    _git(repo, "checkout", "-q", "--detach")
    head, tags = _git(repo, "rev-parse", "HEAD"), _tags(repo)
    _ran, refused = repo.train(BC, "optim.lr=0.03", gate=True, check=False)
    _one_message(refused, "registry error")
    assert "HEAD is detached" in refused.stderr and "git switch -c" in refused.stderr
    assert (_git(repo, "rev-parse", "HEAD"), _tags(repo)) == (head, tags), "no commit, no tag"

    _git(repo, "switch", "-q", "-c", "work")
    ran, _proc = repo.train(BC, "optim.lr=0.03", gate=True)
    assert ran == [], "the trained model was kept: registering is all that was left"
    committed = _git(repo, "show", "--name-only", "--format=", f"{BC}@v3.0.0^{{commit}}").split()
    assert sorted(committed) == [
        "deploy/tabular/breast_cancer/.gitignore",
        "deploy/tabular/breast_cancer/batch.dvc",
        f"pipelines/{BC}/dvc.lock",
        f"pipelines/{BC}/model_card.json",
        f"pipelines/{BC}/params.yaml",
        f"pipelines/{BC}/reference_contract.json",
    ]
    assert _git(repo, "branch", "--contains", f"{BC}@v3.0.0").strip() == "* work"
    assert _git(repo, "status", "--porcelain", "--untracked-files=no") == " M README.md\n", "the user's edit stays"


def test_a_failed_first_run_keeps_outputs_out_of_git(repo_factory) -> None:  # type: ignore[no-untyped-def]
    """Fault: after a failed first run, 02_intermediate/.gitignore was missing, so the
    intermediate Parquet showed up in `git status`, ready to be committed."""
    repo: Repo = repo_factory()
    head = _git(repo, "rev-parse", "HEAD")
    ran, failed = repo.train(BC, "checks.correlation.action=fail", check=False)
    assert ran == ["ingest", "check"] and failed.returncode != 0, failed.stderr
    assert (repo.data(BC) / "02_intermediate" / "dataset.parquet").is_file()
    untracked = _git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    listed = [line[3:] for line in untracked]
    # Outputs stay ignored; pipelines/ holds what a version commits (params, reference contract).
    outputs = [
        p for p in listed if p.endswith((".parquet", ".csv", ".json", ".txt")) and not p.startswith("pipelines/")
    ]
    assert not outputs, listed
    assert "/dataset.parquet" in (repo.data(BC) / "02_intermediate" / ".gitignore").read_text().split()
    assert (_git(repo, "rev-parse", "HEAD"), _tags(repo)) == (head, []), "nothing committed or tagged"


def _wait_for(path: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.05)


def _rwlock(repo: Repo) -> dict[str, object]:
    path = repo.path / ".dvc" / "tmp" / "rwlock"
    return json.loads(path.read_text()) if path.is_file() else {}


def test_a_killed_runs_dvc_lock_is_cleared_when_its_process_is_dead(repo: Repo) -> None:
    """Fault: right after a SIGKILL the rerun failed with DVC's lock error naming the dead
    process (its parent had not reaped it yet). A lock of a process that is certainly dead on
    this host is cleared, and the run resumes."""
    overrides = ("optim.lr=0.05", "trainer.max_epochs=60", "trainer.early_stopping.enabled=false")
    workdir = repo.data(BC) / "06_models" / ".train"
    killed = subprocess.Popen(
        [sys.executable, "-m", "shipyard.engine", "train", BC, *overrides, "--no-register"],
        cwd=repo.path,
        env=cli_env(repo.path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(workdir / "last.ckpt")
        os.killpg(killed.pid, signal.SIGKILL)
        time.sleep(0.5)  # dead, but not reaped: this test is its parent and waits later
        assert (workdir / "last.ckpt").exists(), "killed before its first checkpoint"
        assert str(killed.pid) in json.dumps(_rwlock(repo)), "the fault's setting: DVC's lock names the dead process"
        ran, rerun = repo.train(BC, *overrides, "--no-register")
        assert ran == ["train", "evaluate", "gate", "report"]
        assert f"cleared DVC's lock entries of process {killed.pid}" in rerun.stderr
        assert '"resumed": true' in (repo.data(BC) / "08_reporting" / "train_report.json").read_text()
        assert str(killed.pid) not in json.dumps(_rwlock(repo))
    finally:
        killed.wait()


def test_a_dvc_lock_of_a_live_process_is_left_alone_and_named(repo: Repo) -> None:
    """The other side of the fault above: a lock whose process is alive is not cleared; the run
    stops with one message naming the process and saying what to do."""
    alive = subprocess.Popen(["sleep", "300"])
    try:
        bundle = str(repo.data(BC) / "06_models" / "bundle")
        lock = {"write": {bundle: {"pid": alive.pid, "cmd": "dvc repro (another terminal)"}}}
        (repo.path / ".dvc" / "tmp" / "rwlock").write_text(json.dumps(lock))
        dvc_lock = (repo.path / "pipelines" / BC / "dvc.lock").read_text()
        _ran, stopped = repo.train(BC, "optim.lr=0.07", check=False)
        _one_message(stopped, "lock error")
        assert f"process {alive.pid} (dvc repro (another terminal))" in stopped.stderr
        assert _rwlock(repo) == lock, "a live process's lock is not touched"
        assert (repo.path / "pipelines" / BC / "dvc.lock").read_text() == dvc_lock
    finally:
        alive.kill()
        alive.wait()
