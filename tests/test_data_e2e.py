"""Bad sources and failed data checks through the real CLI and DVC: exit code 2, one message,
nothing downstream runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from shipyard.engine.cli import main

from .conftest import Repo, make_repo

BC = "tabular/breast_cancer"
NO_FETCH = "data.source.fetch=null"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = make_repo(tmp_path_factory.mktemp("data") / "repo")
    data = repo.path / "data" / "raw"
    data.mkdir(parents=True)
    (data / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with sqlite3.connect(data / "shop.db") as con:
        pd.DataFrame({"amount": [1.0, 2.0], "target": [0, 1]}).to_sql("orders", con)
    for label in ("a", "b"):
        (data / "img" / label).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(data / "img" / label / "ok.png")
    (data / "img" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n broken")
    return repo


CASES = {
    "missing file": (["data.source.path=data/raw/none.csv", NO_FETCH], "raw data file data/raw/none.csv is missing"),
    "unreadable file": (
        ["data.source.kind=parquet", "data.source.path=data/raw/bad.parquet", NO_FETCH],
        "cannot read parquet file data/raw/bad.parquet",
    ),
    "bad SQL": (
        [
            "data.source.kind=sql",
            "data.source.path=null",
            "data.source.url=sqlite:///data/raw/shop.db",
            "data.source.query='SELECT * FROM nope'",
            NO_FETCH,
        ],
        "no such table: nope",
    ),
    "unreachable database": (
        [
            "data.source.kind=sql",
            "data.source.path=null",
            "data.source.url=sqlite:////nonexistent/dir/x.db",
            "data.source.table=orders",
            NO_FETCH,
        ],
        "cannot reach the database",
    ),
    "undecodable image": (
        [
            "data.source.kind=images",
            "data.source.path=data/raw/img",
            "data.target=label",
            "data.key=path",
            "data.shape=[1,8,8]",
            NO_FETCH,
        ],
        "image data/raw/img/b/broken.png cannot be decoded",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_source_exits_2_with_its_message(
    case: str, repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides, message = CASES[case]
    monkeypatch.setenv("SHIPYARD_ROOT", str(repo.path))
    code = main(["train", BC, *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("▶ ingest\ndata error: ") or err.startswith("data error: "), err
    assert message in err, err
    assert "Traceback" not in err
    assert not (repo.path / "data" / BC / "05_model_input").exists()


@pytest.mark.slow
def test_failed_check_stops_the_pipeline_with_a_report(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ran, proc = repo.train(BC, "checks.class_balance=[0.45,0.55]", check=False)
    assert proc.returncode == 2
    assert ran == ["ingest", "check"]
    assert "data check(s) failed; first: class balance on target" in proc.stderr
    assert "failed: class balance [target]: observed class 0: 37.26%, expected in [45.00%, 55.00%]" in proc.stderr
    report = json.loads((repo.data(BC) / "08_reporting" / "data_checks.json").read_text())
    assert report["passed"] is False and {f["check"] for f in report["failures"]} == {"class balance"}
    assert (repo.data(BC) / "08_reporting" / "data_checks.txt").read_text().startswith(f"data checks for {BC}: FAILED")
    assert not (repo.data(BC) / "05_model_input").exists(), "nothing downstream runs"
    # Loosen the rule: the pipeline goes on from the check, ingest is cached.
    ran, _ = repo.train(BC, "checks.class_balance=[0.3,0.7]", "trainer.max_epochs=2", "trainer.progress_bar=false")
    assert ran == ["check", "split", "fit_preprocessing", "train", "evaluate", "gate", "report"]


@pytest.mark.slow
@pytest.mark.parametrize("project", ["tabular/churn", "timeseries/energy_demand"])
def test_example_projects_train(tmp_path: Path, project: str) -> None:
    repo = make_repo(tmp_path / "repo")
    ran, _ = repo.train(project, "trainer.max_epochs=3", "trainer.progress_bar=false")
    assert ran == ["ingest", "check", "split", "fit_preprocessing", "train", "evaluate", "gate", "report"]
    manifest = json.loads((repo.data(project) / "05_model_input" / "split_manifest.json").read_text())
    if project.startswith("timeseries"):
        ranges = manifest["time_ranges"]
        assert ranges["train"][1] < ranges["val"][0] <= ranges["val"][1] < ranges["test"][0]
        assert "test/rmse" in repo.metrics(project)
    else:
        meta = repo.bundle_meta(project)
        kinds = {f["name"]: f["dtype"] for f in meta["feature_schema"]}  # type: ignore[index]
        assert kinds["contract"] == "category" and kinds["tenure_months"] == "float"
