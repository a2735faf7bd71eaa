"""`shipyard new TEAM/NAME --from FILE --target COLUMN` through the real CLI, git and DVC, on
three shapes of data: binary with categoricals and nulls (CSV), regression (Parquet), a dated
file (SQLite table, time split); and the mistakes it must refuse without writing anything."""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np
import pandas as pd
import pytest
import yaml
from shipyard.core.compose import compose

from .conftest import Repo

N = 400


def _binary(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    plan = rng.choice(["basic", "plus", "pro"], n)
    tenure = rng.integers(0, 60, n).astype(float)
    churned = ((plan == "basic") & (tenure < 20)) ^ (rng.random(n) < 0.1)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "plan": plan,
            "tenure": tenure,
            "region": rng.choice(["north", "south", None], n),
            "note": [
                f"customer called about the {w} bill, ticket {i}"
                for i, w in enumerate(rng.choice(["late", "high", "new"], n))
            ],
            "churned": np.where(churned, "yes", "no"),
        }
    )
    frame.loc[rng.choice(n, 30, replace=False), "tenure"] = np.nan
    frame["promo"] = np.where(rng.random(n) < 0.1, "spring", None)  # mostly empty
    return frame


def _regression(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    area = rng.uniform(30, 200, n).round(1)
    rooms = rng.integers(1, 7, n)
    return pd.DataFrame(
        {"area": area, "rooms": rooms, "price": (area * 3.1 + rooms * 20 + rng.normal(0, 15, n)).round(2)}
    )


def _dated(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    day = pd.date_range("2022-01-01", periods=n, freq="D")
    weekend = day.dayofweek >= 5
    frame = pd.DataFrame(
        {
            "day": day.strftime("%Y-%m-%d"),
            "opened_at": (day + pd.to_timedelta(rng.integers(6, 12, n), unit="h")).strftime("%Y-%m-%dT%H:%M:%S"),
            "temperature": rng.normal(15, 8, n).round(1),
            "busy": np.where(weekend ^ (rng.random(n) < 0.1), "high", "low"),
        }
    )
    frame.loc[[4, 50], "busy"] = None  # rows without a label
    return frame


def _config(repo: Repo, project: str) -> tuple[str, dict]:
    text = (repo.path / "conf" / "project" / f"{project}.yaml").read_text()
    return text, yaml.safe_load(text)


def test_binary_csv_with_categoricals_nulls_and_free_text(repo_factory) -> None:
    repo = repo_factory("bin")
    source = repo.path.parent / "customers.csv"
    _binary().to_csv(source, index=False)
    proc = repo.run("new", "crm/churn", "--from", str(source), "--target", "churned")
    assert "wrote conf/project/crm/churn.yaml and tracked data/crm/churn/01_raw/customers.csv with DVC" in proc.stdout
    assert "make train PROJECT=crm/churn" in proc.stdout
    text, conf = _config(repo, "crm/churn")
    assert conf["project"]["task"] == "binary" and "# the target has two values (no, yes)" in text
    assert conf["data"]["source"] == {"kind": "csv", "path": "data/crm/churn/01_raw/customers.csv"}
    assert conf["data"]["key"] == "customer_id" and "# one distinct value per row" in text
    assert conf["data"]["text"] == ["note"] and "free text" in text
    assert conf["split"]["kind"] == "auto" and "stratified for binary" in text
    assert "drop_unlabeled" not in conf["data"]
    assert conf["data"]["drop"] == ["promo"] and "empty (the data check allows 50%" in text
    raw = repo.path / "data" / "crm" / "churn" / "01_raw"
    assert (raw / "customers.csv").read_bytes() == source.read_bytes()
    assert "md5" in (raw / "customers.csv.dvc").read_text()
    assert "/customers.csv" in (raw / ".gitignore").read_text()
    cfg = compose("crm/churn", root=repo.path)
    assert cfg.data.target == "churned" and str(cfg.project.task) == "binary"

    # Running it again refuses, and changes nothing.
    before = (repo.path / "conf" / "project" / "crm" / "churn.yaml").read_bytes()
    again = repo.run("new", "crm/churn", "--from", str(source), "--target", "churned", check=False)
    assert again.returncode == 2 and "project crm/churn exists already" in again.stderr
    assert "internal error" not in again.stderr
    assert (repo.path / "conf" / "project" / "crm" / "churn.yaml").read_bytes() == before


def test_regression_parquet_gets_a_random_split_and_a_generated_key(repo_factory) -> None:
    repo = repo_factory("reg")
    source = repo.path.parent / "homes.parquet"
    _regression().to_parquet(source, index=False)
    repo.run("new", "estate/prices", "--from", str(source), "--target", "price")
    text, conf = _config(repo, "estate/prices")
    assert conf["project"]["task"] == "regression" and "numbers with" in text
    assert conf["data"]["key"] is None and "Shipyard numbers the rows (row_id)" in text
    assert conf["split"]["kind"] == "auto" and "random for regression" in text
    cfg = compose("estate/prices", root=repo.path)
    assert cfg.data.source.path == "data/estate/prices/01_raw/homes.parquet"


@pytest.mark.slow
def test_dated_sqlite_table_with_a_time_split_trains_and_expands_the_dates(repo_factory) -> None:
    """The whole first hour on a dated file: new (time split asked for), train, and the date
    that is a feature reaches the model as numeric parts, never one-hot strings."""
    repo = repo_factory("dated")
    db = repo.path.parent / "shop.db"
    with sqlite3.connect(db) as con:
        _dated().to_sql("days", con, index=False)
    proc = repo.run("new", "shop/busy", "--from", str(db), "--table", "days", "--target", "busy", "--time-split")
    assert "split: time" in proc.stdout
    text, conf = _config(repo, "shop/busy")
    assert conf["data"]["source"] == {"kind": "sql", "url": "sqlite:///data/shop/busy/01_raw/shop.db", "table": "days"}
    assert conf["split"] == {"kind": "time", "time_column": "day"}
    assert conf["data"]["datetime"] == ["opened_at"]  # the split's column is not a feature
    assert conf["data"]["drop_unlabeled"] is True and "2 row(s) have no label" in text
    ran, train = repo.train("shop/busy")
    assert "ingest" in ran and "evaluate" in ran
    pre = json.loads((repo.data("shop/busy") / "06_models" / "preprocessor.json").read_text())
    assert pre["datetime"]["parts"]["opened_at"][:3] == ["year", "month", "dayofweek"]
    assert "opened_at" not in pre["categorical"]["vocabulary"]
    manifest = json.loads((repo.data("shop/busy") / "05_model_input" / "split_manifest.json").read_text())
    assert manifest["kind"] == "time" and set(manifest["labels"]["train"]) == {"high", "low"}
    checks = (repo.data("shop/busy") / "08_reporting" / "data_checks.txt").read_text()
    assert f"{N} read, {N - 2} kept (2 without a label dropped" in checks
    assert "split (time):" in train.stderr
    # The run's report is a stage output; `shipyard report` adds the registered version's lineage.
    page = (repo.data("shop/busy") / "08_reporting" / "report.html").read_text()
    assert "<h2>Split</h2>" in page and "opened_at" in page and "parsed as dates/times" in page
    shown = repo.run("report", "shop/busy").stdout.strip()
    assert re.fullmatch(r"reports/shop/busy/v1(\.0\.0)?\.html", shown), shown
    assert "shop.db md5" in (repo.path / shown).read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "churnd"], "--target 'churnd' is not a column of the data (did you mean \"churned\"?)"),
        (["--target", "churned", "--time-split"], "a time split needs a date/time column, and the data has none"),
        (["--target", "customer_id", "--table", "t"], "--table is for a SQLite database only"),
    ],
)
def test_mistakes_are_refused_and_nothing_is_written(repo_factory, args: list[str], message: str) -> None:
    repo = repo_factory("bad")
    source = repo.path.parent / "customers.csv"
    _binary().to_csv(source, index=False)
    proc = repo.run("new", "crm/churn", "--from", str(source), *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "internal error" not in proc.stderr
    assert not (repo.path / "conf" / "project" / "crm").exists()
    assert not (repo.path / "data" / "crm").exists()


def test_a_different_file_at_the_destination_is_not_overwritten(repo_factory) -> None:
    repo = repo_factory("dest")
    raw = repo.path / "data" / "crm" / "churn" / "01_raw"
    raw.mkdir(parents=True)
    (raw / "customers.csv").write_text("theirs\n")
    source = repo.path.parent / "customers.csv"
    _binary().to_csv(source, index=False)
    proc = repo.run("new", "crm/churn", "--from", str(source), "--target", "churned", check=False)
    assert proc.returncode == 2 and "data/crm/churn/01_raw/customers.csv exists already" in proc.stderr
    assert (raw / "customers.csv").read_text() == "theirs\n"
    assert not (repo.path / "conf" / "project" / "crm").exists()
