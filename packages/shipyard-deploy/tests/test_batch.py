"""The batch job target: build, parity with the bundle, rejects, resume, SQLite, CLI.

Real components only: bundles trained on the example data (conftest ``examples``), real
Parquet/CSV files, a real SQLite database, the CLI in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from shipyard.core.compose import section
from shipyard.core.errors import ConfigError, DataError
from shipyard.core.schema import BatchConf
from shipyard.deploy.batch import build_batch_job, run_batch_job
from shipyard.train.bundle import ModelBundle

REPO = Path(__file__).resolve().parents[3]
ENV = {
    **os.environ,
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "True",
}


def make_job(example: Any, root: Path, version: str = "v1", **batch: Any) -> Path:
    """Build ``example``'s batch job under ``root`` (as `make deploy TARGET=batch` would)."""
    key = None if example.key == "row_id" else example.key
    job_dir = root / "deploy" / "examples" / example.name / "batch"
    build_batch_job(
        example.bundle_dir,
        job_dir,
        batch,
        project=f"examples/{example.name}",
        version=version,
        data_key=key,
        data_source={"kind": "csv", "path": "raw.csv"},
    )
    return job_dir


def expected(example: Any, frame: pd.DataFrame) -> tuple[np.ndarray, list[Any]]:
    bundle = ModelBundle.load(example.bundle_dir)
    scores = bundle.predict_scores(frame)
    return scores, bundle.labels(scores)


def read_parts(folder: Path, key: str) -> pd.DataFrame:
    return pd.read_parquet(folder).sort_values(key).reset_index(drop=True)


def files_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# -- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "key", "message"),
    [
        ({"chunk_sise": 10}, "deploy.batch.chunk_sise", 'did you mean "chunk_size"'),
        ({"engine": "spark"}, "deploy.batch.engine", "not allowed"),
        ({"chunk_size": 0}, "deploy.batch.chunk_size", "at least 1"),
        ({"rejects": {"max_fraction": 2}}, "deploy.batch.rejects.max_fraction", "at most 1"),
        ({"rejects": {"unknown_category": "drop"}}, "deploy.batch.rejects.unknown_category", "not allowed"),
        ({"schedule": {"cron": "every day"}}, "deploy.batch.schedule.cron", "not a cron schedule"),
        ({"dask": {"n_worker": 2}}, "deploy.batch.dask.n_worker", 'did you mean "n_workers"'),
    ],
)
def test_config_mistakes_name_the_key(conf: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        section(BatchConf, conf, "deploy.batch")
    assert info.value.key == key
    assert message in info.value.message
    assert info.value.fix


# -- build -------------------------------------------------------------------------------------


def test_build_writes_spec_bundle_pipeline_and_schedules(examples: Any, tmp_path: Path) -> None:
    ex = examples["churn"]
    job_dir = make_job(ex, tmp_path, schedule={"cron": "30 4 * * 1-5"})
    names = sorted(p.relative_to(job_dir).as_posix() for p in job_dir.rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "airflow_dag.py",
        "bundle/bundle.json",
        "bundle/weights.safetensors",
        "job.yaml",
        "pipeline.py",
        "schedule.cron",
    ]
    spec = yaml.safe_load((job_dir / "job.yaml").read_text())
    bundle = ModelBundle.load(ex.bundle_dir)
    assert spec["weights_sha256"] == bundle.weights_sha256
    assert spec["version"] == "v1"
    assert spec["key"] == "customer_id" and spec["key_generated"] is False
    assert spec["chunk_size"] == 10000 and spec["engine"] == "local"
    assert spec["input"] == "raw.csv"  # the project's own data source
    assert spec["output"] == "data/examples/churn/07_model_output/batch/{date}"
    cron = (job_dir / "schedule.cron").read_text().strip().splitlines()[-1]
    assert cron.split()[:5] == ["30", "4", "*", "*", "1-5"]
    assert "-m shipyard.deploy.batch run . --no-progress" in cron  # built outside a repository: the job folder
    dag = (job_dir / "airflow_dag.py").read_text()
    compile(dag, "airflow_dag.py", "exec")  # test_batch_schedule.py runs it
    assert "schedule='30 4 * * 1-5'" in dag and 'ds: str = "{{ ds }}"' in dag


def test_job_folder_pipeline_is_the_runner_pipeline(examples: Any, tmp_path: Path) -> None:
    from shipyard.deploy.batch.pipeline import create_pipeline

    job_dir = make_job(examples["breast_cancer"], tmp_path)
    spec = importlib.util.spec_from_file_location("job_pipeline", job_dir / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def shape(pipeline: Any) -> list[tuple[str, list[str], list[str], Any]]:
        return sorted((n.name, n.inputs, n.outputs, n.func) for n in pipeline.nodes)

    assert shape(module.create_pipeline()) == shape(create_pipeline())


def test_rebuild_is_a_no_op_until_the_model_changes(examples: Any, tmp_path: Path) -> None:
    ex = examples["breast_cancer"]
    conf: dict[str, Any] = {}
    job_dir = tmp_path / "job"
    assert build_batch_job(ex.bundle_dir, job_dir, conf, project="examples/breast_cancer", version="v1")["changed"]
    before = files_state(job_dir)
    assert not build_batch_job(ex.bundle_dir, job_dir, conf, project="examples/breast_cancer", version="v1")["changed"]
    assert files_state(job_dir) == before
    assert build_batch_job(ex.bundle_dir, job_dir, conf, project="examples/breast_cancer", version="v2")["changed"]
    assert yaml.safe_load((job_dir / "job.yaml").read_text())["version"] == "v2"


def test_build_refuses_a_tampered_bundle(examples: Any, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in ("bundle.json", "weights.safetensors"):
        (bundle / name).write_bytes((examples["breast_cancer"].bundle_dir / name).read_bytes())
    with (bundle / "weights.safetensors").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(DataError, match="are damaged or were replaced"):
        build_batch_job(bundle, tmp_path / "job", {}, project="examples/breast_cancer", version="v1")


def test_cron_line_keeps_the_virtual_environments_python(tmp_path: Path) -> None:
    """A repository's .venv/bin/python links to the base interpreter: the job's command must name
    the link (resolved, it is a Python without the virtual environment's packages)."""
    from shipyard.deploy._paths import repo_relative

    link = tmp_path / ".venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    assert repo_relative(link, tmp_path) == ".venv/bin/python"
    assert repo_relative(tmp_path / "deploy" / "t" / "p" / "batch", tmp_path) == "deploy/t/p/batch"
    assert repo_relative(link, tmp_path / "elsewhere") == str(Path(sys.executable).resolve())


# -- parity ------------------------------------------------------------------------------------


def test_parquet_parts_match_the_bundle_binary(examples: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = examples["breast_cancer"]
    job_dir = make_job(ex, tmp_path)
    source = tmp_path / "test.parquet"
    ex.test.to_parquet(source, index=False)
    out = tmp_path / "out"
    monkeypatch.delenv("KEDRO_LOGGING_CONFIG", raising=False)
    summary = run_batch_job(job_dir, str(source), str(out), chunk_size=16, progress=False)
    # Run in-process, the job quiets Kedro's logging for itself only.
    assert "KEDRO_LOGGING_CONFIG" not in os.environ

    assert summary["status"] == "succeeded"
    assert summary["rows_read"] == summary["rows_scored"] == len(ex.test)
    assert summary["parts"] == -(-len(ex.test) // 16)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == [
        f"part-00000-{i:05d}.parquet" for i in range(summary["parts"])
    ]
    got = read_parts(out, "row_id")
    frame = ex.test.sort_values("row_id").reset_index(drop=True)
    scores, labels = expected(ex, frame)
    assert got["row_id"].tolist() == frame["row_id"].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(), scores, rtol=1e-5, atol=1e-6)
    assert got["prediction"].tolist() == labels
    assert set(got["model_version"]) == {"v1"}
    assert got["scored_at"].nunique() == 1
    assert list(got.columns) == ["row_id", "prediction", "score", "model_version", "scored_at"]
    assert (out / "_SUCCESS").is_file()
    assert json.loads((out / "_summary.json").read_text())["rows_read"] == len(ex.test)


def test_csv_in_csv_out_multiclass_probabilities(examples: Any, tmp_path: Path) -> None:
    ex = examples["digits"]
    job_dir = make_job(ex, tmp_path, chunk_size=50)
    source = tmp_path / "digits.csv"
    ex.test.drop(columns=["row_id", ex.target]).to_csv(source, index=False)  # no key: rows are numbered
    out = tmp_path / "scores.csv"
    summary = run_batch_job(job_dir, str(source), str(out), progress=False)

    assert summary["rows_scored"] == len(ex.test)
    got = pd.read_csv(out)
    assert got["row_id"].tolist() == list(range(len(ex.test)))
    scores, labels = expected(ex, ex.test.reset_index(drop=True))
    classes = ModelBundle.load(ex.bundle_dir).preprocessor.classes
    probas = got[[f"proba_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(probas, scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["score"].to_numpy(), scores.max(axis=1), rtol=1e-5, atol=1e-6)
    assert got["prediction"].tolist() == labels
    assert not list(tmp_path.glob("scores.csv.parts/part-*"))  # the CSV holds the parts now


# -- rejects -----------------------------------------------------------------------------------


def churn_with_bad_rows(example: Any) -> pd.DataFrame:
    frame = example.test.copy().reset_index(drop=True)
    frame["monthly_charges"] = frame["monthly_charges"].astype(object)
    frame.loc[0, "monthly_charges"] = "lots"  # not a number
    frame.loc[1, "monthly_charges"] = None  # missing where training had none
    frame.loc[2, "support_calls"] = 1e6  # far beyond the training range
    frame.loc[3, "contract"] = "weekly"  # unknown category: rejected unless unknown_category=accept
    frame.loc[4, "customer_id"] = None  # no key
    return frame


def test_rejects_go_to_a_file_and_the_job_goes_on(examples: Any, tmp_path: Path) -> None:
    ex = examples["churn"]
    job_dir = make_job(ex, tmp_path, chunk_size=40, rejects={"max_fraction": 0.05, "unknown_category": "accept"})
    frame = churn_with_bad_rows(ex)
    source = tmp_path / "customers.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "out"
    summary = run_batch_job(job_dir, str(source), str(out), progress=False)

    assert summary["status"] == "succeeded"
    assert (summary["rows_read"], summary["rows_rejected"]) == (len(frame), 4)
    assert summary["rows_scored"] == len(frame) - 4
    rejects = pd.read_csv(summary["rejects_file"])
    assert sorted(rejects["reason"]) == [
        "customer_id: the row key is missing",
        "monthly_charges: 'lots' is not a number",
        "monthly_charges: missing value (the model was trained without missing values here)",
        "support_calls: 1e+06 is outside the training range [0, 7] by more than 1 range widths",
    ]
    assert rejects["part"].str.startswith("part-").all()
    assert rejects.loc[rejects["reason"].str.contains("lots"), "monthly_charges"].tolist() == ["lots"]

    good = frame.drop(index=[0, 1, 2, 4]).copy()
    good["monthly_charges"] = good["monthly_charges"].astype(float)
    good["customer_id"] = good["customer_id"].astype(type(ex.test["customer_id"].iloc[0]))
    got = read_parts(out, "customer_id")
    good = good.sort_values("customer_id").reset_index(drop=True)
    scores, labels = expected(ex, good)  # the unknown contract scores like training (all zeros)
    assert got["customer_id"].tolist() == good["customer_id"].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(), scores, rtol=1e-5, atol=1e-6)
    assert got["prediction"].tolist() == labels


def test_unknown_categories_are_rejected_by_default_and_too_many_rejects_fail_the_job(
    examples: Any, tmp_path: Path
) -> None:
    """By default an unseen category is a reject, as the service refuses it (422)."""
    ex = examples["churn"]
    job_dir = make_job(ex, tmp_path, chunk_size=40, rejects={"max_fraction": 0.01})
    source = tmp_path / "customers.parquet"
    frame = churn_with_bad_rows(ex)
    frame["monthly_charges"] = pd.to_numeric(frame["monthly_charges"], errors="coerce")
    frame.to_parquet(source, index=False)
    out = tmp_path / "out"
    with pytest.raises(DataError, match="failed the feature schema") as info:
        run_batch_job(job_dir, str(source), str(out), progress=False)
    assert info.value.exit_code == 2 and "max_fraction" in (info.value.fix or "")
    assert not (out / "_SUCCESS").exists()
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["status"] == "failed" and summary["rows_rejected"] == 5  # 4 as before, and the contract
    reasons = pd.read_csv(out / "_rejects.csv")["reason"].tolist()
    assert any(r.startswith("contract: unknown category 'weekly'") for r in reasons)

    # A higher threshold finishes the same parts without rescoring them.
    parts = files_state(out)
    summary = run_batch_job(job_dir, str(source), str(out), max_reject_fraction=0.5, progress=False)
    assert summary["status"] == "succeeded" and summary["parts_scored"] == 0
    assert {k: v for k, v in files_state(out).items() if k.startswith("part-")} == {
        k: v for k, v in parts.items() if k.startswith("part-")
    }


def test_a_missing_column_fails_before_any_part(examples: Any, tmp_path: Path) -> None:
    ex = examples["churn"]
    job_dir = make_job(ex, tmp_path)
    source = tmp_path / "x.parquet"
    ex.test.drop(columns=["tenure_months"]).to_parquet(source, index=False)
    with pytest.raises(DataError, match="tenure_months") as info:
        run_batch_job(job_dir, str(source), str(tmp_path / "out"), progress=False)
    assert info.value.key == "tenure_months"
    assert not list((tmp_path / "out").glob("part-*")) if (tmp_path / "out").exists() else True


# -- resume and idempotence --------------------------------------------------------------------


def test_rerun_of_a_finished_job_changes_nothing(examples: Any, tmp_path: Path) -> None:
    ex = examples["breast_cancer"]
    job_dir = make_job(ex, tmp_path, chunk_size=32)
    source = tmp_path / "test.parquet"
    ex.test.to_parquet(source, index=False)
    out = tmp_path / "out"
    first = run_batch_job(job_dir, str(source), str(out), progress=False)
    before = files_state(out)
    again = run_batch_job(job_dir, str(source), str(out), progress=False)
    assert files_state(out) == before
    assert again["up_to_date"] is True
    assert {k: v for k, v in again.items() if k != "up_to_date"} == first


def test_resume_scores_only_the_missing_parts(examples: Any, tmp_path: Path) -> None:
    ex = examples["digits"]
    job_dir = make_job(ex, tmp_path, chunk_size=25)
    source = tmp_path / "test.parquet"
    ex.test.to_parquet(source, index=False, row_group_size=60)  # chunks straddle row groups
    out = tmp_path / "out"
    clean = run_batch_job(job_dir, str(source), str(out), progress=False)
    complete = read_parts(out, "row_id")
    # What a killed run leaves: some parts, a temporary file, no summary.
    lost = ["part-00000-00003.parquet", "part-00000-00007.parquet"]
    for name in [*lost, "_SUCCESS", "_summary.json"]:
        (out / name).unlink()
    (out / ".tmp-part-00000-00003.parquet.x").write_bytes(b"half")
    kept = {k: v for k, v in files_state(out).items() if k.startswith("part-")}

    summary = run_batch_job(job_dir, str(source), str(out), progress=False)
    assert summary["parts_scored"] == 2 and summary["parts_resumed"] == clean["parts"] - 2
    assert summary["rows_read"] == len(ex.test)
    after = files_state(out)
    assert {k: after[k] for k in kept} == kept  # finished parts untouched
    assert not list(out.glob(".tmp-*"))
    pd.testing.assert_frame_equal(read_parts(out, "row_id"), complete)


def test_a_different_run_is_not_mixed_into_an_output(examples: Any, tmp_path: Path) -> None:
    ex = examples["breast_cancer"]
    job_dir = make_job(ex, tmp_path)
    source = tmp_path / "test.parquet"
    ex.test.to_parquet(source, index=False)
    out = tmp_path / "out"
    run_batch_job(job_dir, str(source), str(out), chunk_size=30, progress=False)
    with pytest.raises(DataError, match="different run") as info:
        run_batch_job(job_dir, str(source), str(out), chunk_size=20, progress=False)
    assert info.value.key == "chunk_size" and "--no-resume" in (info.value.fix or "")
    summary = run_batch_job(job_dir, str(source), str(out), chunk_size=20, resume=False, progress=False)
    assert summary["parts_scored"] == summary["parts"] == len(list(out.glob("part-*.parquet")))

    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not written by a batch job"):
        run_batch_job(job_dir, str(source), str(tmp_path / "foreign"), progress=False)


# -- SQL ---------------------------------------------------------------------------------------


def test_sqlite_in_and_out_is_idempotent(examples: Any, tmp_path: Path) -> None:
    ex = examples["churn"]
    job_dir = make_job(ex, tmp_path, chunk_size=64, rejects={"max_fraction": 0.05, "unknown_category": "accept"})
    frame = churn_with_bad_rows(ex).drop(index=[4])  # SQL inputs need their key to order rows
    frame["monthly_charges"] = pd.to_numeric(frame["monthly_charges"], errors="coerce")
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        frame.sample(frac=1.0, random_state=0).to_sql("customers", conn, index=False)
    out_db = tmp_path / "scores.db"
    source, target = f"sqlite:///{db}?table=customers", f"sqlite:///{out_db}?table=churn_scores"

    summary = run_batch_job(job_dir, source, target, progress=False)
    assert summary["status"] == "succeeded" and summary["rows_rejected"] == 3  # 2 missing charges, huge calls
    with sqlite3.connect(out_db) as conn:
        got = pd.read_sql("SELECT * FROM churn_scores ORDER BY customer_id", conn)
        rejects = pd.read_sql("SELECT * FROM churn_scores__rejects", conn)
    assert len(got) == len(frame) - 3 and got["customer_id"].is_unique
    assert sorted(rejects["reason"].str.split(":").str[0]) == ["monthly_charges", "monthly_charges", "support_calls"]

    # Same rows and scores as the Parquet output of the same input.
    parquet = tmp_path / "p.parquet"
    frame.to_parquet(parquet, index=False)
    run_batch_job(job_dir, str(parquet), str(tmp_path / "out"), progress=False)
    ref = read_parts(tmp_path / "out", "customer_id")
    assert got["customer_id"].tolist() == ref["customer_id"].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(), ref["score"].to_numpy(), rtol=1e-6)
    assert got["prediction"].tolist() == ref["prediction"].tolist()

    # Rerunning, or resuming after a lost part, never duplicates rows.
    assert run_batch_job(job_dir, source, target, progress=False)["up_to_date"] is True
    with sqlite3.connect(db) as conn:  # the keys of part 1: the input's rows 64-127 by key
        part_keys = [k for (k,) in conn.execute("SELECT customer_id FROM customers ORDER BY 1 LIMIT 64 OFFSET 64")]
    with sqlite3.connect(out_db) as conn:  # as if the part's transaction had never committed
        conn.execute("DELETE FROM churn_scores__batch WHERE name IN ('summary', 'part-00000-00001')")
        conn.executemany("DELETE FROM churn_scores WHERE customer_id = ?", [(k,) for k in part_keys])
        conn.executemany("DELETE FROM churn_scores__rejects WHERE customer_id = ?", [(k,) for k in part_keys])
    resumed = run_batch_job(job_dir, source, target, progress=False)
    assert resumed["parts_scored"] == 1
    with sqlite3.connect(out_db) as conn:
        again = pd.read_sql("SELECT * FROM churn_scores ORDER BY customer_id", conn)
        rejected_again = conn.execute("SELECT COUNT(*) FROM churn_scores__rejects").fetchone()[0]
    assert again["customer_id"].tolist() == got["customer_id"].tolist()
    assert rejected_again == 3 and resumed["rows_rejected"] == 3


def test_sql_location_mistakes(examples: Any, tmp_path: Path) -> None:
    job_dir = make_job(examples["churn"], tmp_path)
    with pytest.raises(ConfigError, match=r"\?table=NAME"):
        run_batch_job(job_dir, f"sqlite:///{tmp_path / 'x.db'}", str(tmp_path / "o"), progress=False)
    with pytest.raises(DataError, match="does not exist"):
        run_batch_job(job_dir, f"sqlite:///{tmp_path / 'nope.db'}?table=t", str(tmp_path / "o"), progress=False)
    db = tmp_path / "x.db"
    sqlite3.connect(db).close()
    with pytest.raises(DataError, match="table 't' does not exist"):
        run_batch_job(job_dir, f"sqlite:///{db}?table=t", str(tmp_path / "o"), progress=False)


# -- CLI ---------------------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard.deploy.batch", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_runs_a_job_and_reports_mistakes_with_exit_2(examples: Any, tmp_path: Path) -> None:
    ex = examples["breast_cancer"]
    job_dir = make_job(ex, tmp_path)
    ex.test.to_csv(tmp_path / "in.csv", index=False)

    done = cli("run", str(job_dir), "--input", "in.csv", "--output", "out/{date}", "--date", "2024-05-01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["rows_scored"] == len(ex.test)
    assert (tmp_path / "out" / "2024-05-01" / "_SUCCESS").is_file()

    bad = cli("run", str(job_dir), "--input", "nope.csv", "--output", "o", cwd=tmp_path)
    assert bad.returncode == 2
    assert "data error: input nope.csv does not exist" in bad.stderr and "Traceback" not in bad.stderr
    assert "fix:" in bad.stderr

    missing = cli("run", str(tmp_path / "nowhere"), "--input", "in.csv", "--output", "o", cwd=tmp_path)
    assert missing.returncode == 2 and "is not a batch job folder" in missing.stderr


def test_scoring_never_imports_lightning(examples: Any, tmp_path: Path) -> None:
    ex = examples["breast_cancer"]
    job_dir = make_job(ex, tmp_path)
    ex.test.to_parquet(tmp_path / "in.parquet", index=False)
    code = (
        "import json, sys\n"
        "from shipyard.deploy.batch import run_batch_job\n"
        f"run_batch_job({str(job_dir)!r}, {str(tmp_path / 'in.parquet')!r}, {str(tmp_path / 'out')!r}, progress=False)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_importing_the_package_and_cli_stays_light() -> None:
    code = (
        "import json, sys\n"
        "import shipyard.deploy.batch, shipyard.deploy.batch.__main__\n"
        "heavy = ('torch', 'pandas', 'pyarrow', 'kedro', 'dask', 'distributed', 'sqlalchemy', 'lightning')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_date_that_is_not_iso_8601_is_a_named_reject() -> None:
    from shipyard.deploy.batch._validate import _dates

    raw = np.array(["2024-01-05", "2024-01-05T10:00:00+01:00", None, "05/01/2024", "soon"], dtype=object)
    [(mask, reason)] = _dates("when", raw)
    assert mask.tolist() == [False, False, False, True, True]
    assert reason(3) == "when: '05/01/2024' is not an ISO 8601 date/time"
    assert _dates("when", np.array(["2024-01-05"], dtype=object)) == []
