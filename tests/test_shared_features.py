"""Shared feature definitions across projects: discovery, compiled deps, affected projects after a
feature change, and the refusal to change a feature a production model was trained with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from shipyard.core.paths import ProjectPaths
from shipyard.engine.affected import affected_projects

from .conftest import Repo, cli_env, make_repo

DEFS = Path("conf/features/risk/customers.yaml")
USERS = {"risk/fraud", "tabular/customer_activity"}
EPOCH = (
    "trainer.max_epochs=1",
    "trainer.progress_bar=false",
    "gate.baseline.models=[dummy]",
    "gate.baseline.margin=-1",
    "gate.thresholds={test/roc_auc:{min:0.0}}",
)


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


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """One repository where risk/fraud is trained once and registered as v1.0.0, with one epoch:
    the tests below check lineage, caching and serving, not model quality, so its gate keeps the
    dummy baseline only (which it may trail) and no ROC-AUC bound (the service test promotes it)."""
    repo = make_repo(tmp_path_factory.mktemp("trained") / "repo")
    ran, _proc = repo.train("risk/fraud", *EPOCH, gate=True)
    assert ran.index("check") < ran.index("join_features") < ran.index("split"), ran
    return repo


@pytest.mark.slow
def test_a_project_trains_on_shared_features_with_their_hashes_in_its_lineage(trained: Repo) -> None:
    repo, project = trained, "risk/fraud"
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
    # Nothing changed: nothing reruns. A change of a feature it uses makes the join stale, and
    # not the ingest (DVC's own status of the compiled pipeline; no second training needed).
    ran, _proc = repo.train(project, *EPOCH, gate=True)
    assert ran == [], ran
    original = (repo.path / DEFS).read_text()
    _edit(repo, "spend_7d: {agg: sum, column: amount, window: 7d", "spend_7d: {agg: sum, column: amount, window: 6d")
    try:
        repo.run("compile", project)
        dvc = Path(sys.executable).parent / "dvc"
        status = subprocess.run(
            [str(dvc), "status", f"pipelines/{project}/dvc.yaml"],
            cwd=repo.path,
            env=cli_env(repo.path),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        stale = [line.rstrip(":").split(":")[-1] for line in status.splitlines() if not line.startswith(("\t", " "))]
        assert "join_features" in stale and "ingest" not in stale, status
    finally:
        (repo.path / DEFS).write_text(original)
        repo.run("compile", project)


@pytest.mark.slow
def test_service_and_batch_look_features_up_as_training_joined_them(
    trained: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train/serve parity: rows of the test split, sent with only their entity key, event time and
    own columns, through the deployed batch job and a real BentoML server on 127.0.0.1. Both fill
    the same feature vectors from the online store (equal to the training join's for those rows)
    and give the same predictions; an unknown entity is one named 400 and one rejected row."""
    import httpx
    from shipyard.deploy.batch._job import load_job
    from shipyard.deploy.batch._score import Scorer
    from shipyard.deploy.service._app import settings_from
    from shipyard.deploy.service._schema import build_schema
    from shipyard.features import SPEC_FILE, STORE_FILE, open_lookup, store_columns

    from .conftest import served as serving

    repo, project = trained, "risk/fraud"
    repo.run("promote", project, "v1")
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    deployed = repo.run("deploy", project, "--target", "service,batch", "deploy.service.bento.build=false")
    assert "materialised" in deployed.stderr, deployed.stderr
    service_dir, batch_dir = (repo.path / "deploy" / project / t for t in ("service", "batch"))
    for folder in (service_dir, batch_dir):
        assert (folder / SPEC_FILE).is_file() and (folder / STORE_FILE).is_file()

    meta = repo.bundle_meta(project)
    stored = store_columns(meta["features"])  # type: ignore[arg-type]
    test = pd.read_parquet(repo.data(project) / "05_model_input" / "test.parquet")
    rows = test[test[stored].notna().all(axis=1)].head(12).reset_index(drop=True)
    assert len(rows) == 12
    sent = [c for c in meta["preprocessor"]["features"] if c not in stored] + ["customer_id", "ts"]  # type: ignore[index]
    rows["ts"] = pd.to_datetime(rows["ts"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    rows[["payment_id", *sent]].to_csv(tmp_path / "rows.csv", index=False)
    unknown = rows.head(1).assign(payment_id=-1, customer_id="nobody")
    unknown[["payment_id", *sent]].to_csv(tmp_path / "rows.csv", index=False, mode="a", header=False)

    # The feature vectors each path fills, by the code each runs, against the training join's.
    settings = settings_from(json.loads((service_dir / "service.json").read_text())["settings"])
    schema = build_schema(meta, settings, open_lookup(service_dir, meta["features"]))  # type: ignore[arg-type]
    body = {"rows": rows[sent].to_dict(orient="records")}
    request = schema.request.model_validate_json(json.dumps(body))
    served = pd.DataFrame(schema.columns(request.rows))[stored].astype("float64")
    filled, reasons = Scorer(load_job(batch_dir))._fill({c: rows[c].to_numpy() for c in sent})
    batch = pd.DataFrame({c: filled[c] for c in stored}).astype("float64")
    assert reasons == [None] * 12
    pd.testing.assert_frame_equal(served, batch, check_exact=True)
    pd.testing.assert_frame_equal(served, rows[stored].astype("float64"), check_exact=True)

    out = tmp_path / "scored.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard.deploy.batch", "run", str(batch_dir), "--input", str(tmp_path / "rows.csv"),
         "--output", str(out), "--max-reject-fraction", "0.5"],
        cwd=repo.path, env=cli_env(repo.path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    scored = pd.read_csv(out).set_index("payment_id").loc[rows["payment_id"]]
    rejects = pd.read_csv(next(tmp_path.glob("scored*rejects*")))
    assert list(rejects["payment_id"]) == [-1]
    assert list(rejects["reason"]) == ["customer_id 'nobody' is unknown to feature view customer_payments@1"]

    with serving(service_dir, repo) as url:
        answer = httpx.post(f"{url}/predict", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        online = answer.json()
        bad = httpx.post(f"{url}/predict", json={"rows": [{**body["rows"][0], "customer_id": "nobody"}]}, timeout=60)
        assert bad.status_code == 400 and "'nobody' is unknown to feature view customer_payments@1" in bad.text
        sneaky = httpx.post(f"{url}/predict", json={"rows": [{**body["rows"][0], stored[0]: 1.0}]}, timeout=60)
        assert sneaky.status_code == 400 and "comes from the online store" in sneaky.text
    assert [str(r["prediction"]) for r in online] == [str(p) for p in scored["prediction"]]
    assert [r["score"] for r in online] == pytest.approx(list(scored["score"]), abs=1e-6)
