"""Shared feature definitions across projects: discovery, compiled deps, affected projects after a
feature change, and the refusal to change a feature a production model was trained with."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from shipyard.core.paths import ProjectPaths
from shipyard.engine.affected import affected_projects

from .conftest import Repo

DEFS = Path("conf/features/risk/customers.yaml")
USERS = {"risk/fraud", "tabular/customer_activity"}


def _commit(repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, check=True)


def _edit(repo: Repo, old: str, new: str) -> None:
    path = repo.path / DEFS
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def _affected(repo: Repo) -> dict[str, dict[str, list[str]]]:
    return {item["project"]: item["because"] for item in affected_projects(repo.path, "HEAD")}


@pytest.fixture
def repo(repo_factory: object) -> Repo:
    return repo_factory("repo")  # type: ignore[operator,no-any-return]


def test_features_list_and_show(repo: Repo) -> None:
    listed = json.loads(repo.run("features", "list", "--json").stdout)
    assert [(v["view"], v["version"], v["team"]) for v in listed] == [("customer_payments", 1, "risk")]
    shown = json.loads(repo.run("features", "show", "customer_payments@1", "--json").stdout)
    assert set(shown["used_by"]) == USERS and shown["production_models"] == []
    assert shown["features"]["spend_30d"]["hash"]
    proc = repo.run("features", "show", "customer_paymants", check=False)
    assert proc.returncode == 2 and 'did you mean "customer_payments"' in proc.stderr, proc.stderr


def test_compile_writes_the_used_definitions_with_hashes_as_a_dependency(repo: Repo) -> None:
    project = "tabular/customer_activity"
    repo.run("compile", project)
    paths = ProjectPaths.of(repo.path, project)
    views = yaml.safe_load(paths.feature_defs.read_text())["views"]
    # The four features it selected, plus the two the ratio divides; not the rest of the view.
    assert set(views[0]["features"]) == {"payments_30d", "spend_30d", "spend_share_7d", "last_channel", "spend_7d"}
    stages = yaml.safe_load(paths.dvc_yaml.read_text())["stages"]
    assert list(stages).index("join_features") == list(stages).index("check") + 1
    deps = stages["join_features"]["deps"]
    assert paths.rel(paths.feature_defs) in deps and "data/features/payments.csv" in deps
    assert stages["split"]["deps"][0].endswith("04_feature/training_frame.parquet")


def test_a_feature_change_affects_exactly_the_projects_using_it(repo: Repo) -> None:
    assert _affected(repo) == {}
    _edit(repo, "description: typical payment in 30 days", "description: the mean payment")
    assert _affected(repo) == {}, "a description changes no value"
    _edit(
        repo,
        "mean_amount_30d: {agg: mean, column: amount, window: 30d",
        "mean_amount_30d: {agg: mean, column: amount, window: 14d",
    )
    affected = _affected(repo)
    assert set(affected) == {"risk/fraud"}, "customer_activity does not select mean_amount_30d"
    assert affected["risk/fraud"]["features"] == ["customer_payments@1.mean_amount_30d"]
    _edit(
        repo, "spend_30d: {agg: sum, column: amount, window: 30d", "spend_30d: {agg: sum, column: amount, window: 28d"
    )
    affected = _affected(repo)
    assert set(affected) == USERS
    assert "customer_payments@1.spend_share_7d" in affected["tabular/customer_activity"]["features"], "the ratio on it"


@pytest.mark.drill
def test_changing_a_feature_of_a_production_model_is_refused(repo: Repo) -> None:
    """The fault: someone edits a feature in place that a production model was trained with.
    Compiling any project that uses shared features must refuse, naming the model; a new version
    of the view is accepted, and nothing under pipelines/ was rewritten by the refused compile."""
    from shipyard.engine.release import _feature_hashes
    from shipyard.registry import Registry

    project = "tabular/customer_activity"
    repo.run("compile", project)
    paths = ProjectPaths.of(repo.path, project)
    (paths.pipeline_dir / "dvc.lock").write_text("stages: {}\n")
    _commit(repo.path, "compiled")
    registry = Registry(paths)
    card = {"model": {"bundle_md5": "x"}, "gate": {"passed": True, "checks": []}, "features": _feature_hashes(paths)}
    version, _ = registry.register(card)
    registry.promote(version.version)
    shown = json.loads(repo.run("features", "show", "customer_payments", "--json").stdout)
    assert shown["production_models"] == [f"{project}@v1.0.0"]

    before = {p: p.read_bytes() for p in (repo.path / "pipelines").rglob("*") if p.is_file()}
    text = (repo.path / DEFS).read_text()
    _edit(
        repo, "spend_30d: {agg: sum, column: amount, window: 30d", "spend_30d: {agg: sum, column: amount, window: 28d"
    )
    proc = repo.run("compile", "risk/fraud", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "customer_payments@1 feature 'spend_30d' (changed)" in proc.stderr
    assert f"{project}@v1.0.0" in proc.stderr and "new version" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in (repo.path / "pipelines").rglob("*") if p.is_file()} == before

    # Removing the view is refused the same way.
    (repo.path / DEFS).write_text(text[: text.index("views:")] + "views: []\n")
    proc = repo.run("compile", "risk/fraud", check=False)
    assert proc.returncode == 2 and "(removed)" in proc.stderr, proc.stderr

    # The way to change it: version 1 as it was, the change as version 2.
    original = yaml.safe_load(text)
    changed = yaml.safe_load(text)["views"][0]
    changed["version"] = 2
    changed["features"]["spend_30d"]["window"] = "28d"
    original["views"].append(changed)
    (repo.path / DEFS).write_text(yaml.safe_dump(original, sort_keys=False))
    repo.run("compile", "risk/fraud", "features.views=[{view: customer_payments, version: 2}]")


@pytest.mark.slow
def test_a_project_trains_on_shared_features_with_their_hashes_in_its_lineage(repo: Repo) -> None:
    project = "risk/fraud"
    ran, _proc = repo.train(project, "trainer.max_epochs=3", "trainer.progress_bar=false")
    assert ran.index("check") < ran.index("join_features") < ran.index("split")
    frame = pd.read_parquet(repo.data(project) / "04_feature" / "training_frame.parquet")
    assert frame["customer_payments__spend_30d"].notna().mean() > 0.5, "most payments have a customer history"
    times = pd.to_datetime(frame["ts"])
    events = pd.read_csv(repo.path / "data" / "features" / "payments.csv", parse_dates=["ts"])
    row = frame[frame["customer_payments__payments_30d"] > 0].iloc[0]
    seen = events[(events.customer_id == row["customer_id"]) & (events.ts <= times[row.name])]
    last = seen.ts.max()
    assert row["customer_payments__payments_30d"] == (seen.ts >= last - pd.Timedelta(days=30)).sum()
    meta = repo.bundle_meta(project)
    assert [v["view"] for v in meta["features"]["views"]] == ["customer_payments"]  # type: ignore[index]
    card = json.loads(repo.run("lineage", project, "v1.0.0", "--json").stdout)
    defs = yaml.safe_load((repo.path / "pipelines" / project / "features.yaml").read_text())
    assert card["features"]["customer_payments@1"] == {f: s["hash"] for f, s in defs["views"][0]["features"].items()}
    # Nothing changed: nothing reruns. A change of a feature it uses reruns the join and after.
    ran, _proc = repo.train(project, "trainer.max_epochs=3", "trainer.progress_bar=false")
    assert ran == [], ran
    _edit(repo, "spend_7d: {agg: sum, column: amount, window: 7d", "spend_7d: {agg: sum, column: amount, window: 6d")
    ran, _proc = repo.train(project, "trainer.max_epochs=3", "trainer.progress_bar=false")
    assert ran[0] == "join_features" and "ingest" not in ran, ran
