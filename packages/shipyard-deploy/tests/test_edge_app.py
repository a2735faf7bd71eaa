"""examples/edge_app/predict.py: one row, ai-edge-litert + numpy + metadata.json, no torch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shipyard.deploy.edge import build_edge
from shipyard.train.bundle import ModelBundle

APP = Path(__file__).resolve().parents[3] / "examples" / "edge_app" / "predict.py"
FAST: dict[str, Any] = {"variants": ["fp32", "int8"], "latency": {"warmup": 1, "repeats": 5, "max_seconds": 0.2}}
# What the app must not need on a device (the editable installs' path finders are not imports).
FORBIDDEN = {"torch", "shipyard", "pandas", "lightning", "litert_torch", "jax", "sklearn"}


@pytest.fixture(scope="module")
def edge_dirs(examples: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("edge_app")
    dirs = {}
    for name in ("churn", "digits"):
        ex = examples[name]
        dirs[name] = root / name
        build_edge(
            ex.bundle_dir, dirs[name], FAST, project=f"examples/{name}", version=f"{name}-v7", test_frame=ex.test
        )
    return dirs


def predict(model_dir: Path, row: Any, *extra: str, flag: str = "--row") -> tuple[int, Any, str, set[str]]:
    """Run the app as a device would; returns (exit code, printed JSON, stderr, top-level imports)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(APP), str(model_dir), flag, json.dumps(row), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    imported = set()
    messages = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip().split(".")[0])
        else:
            messages.append(line)
    out = json.loads(proc.stdout) if proc.returncode == 0 else None
    return proc.returncode, out, "\n".join(messages), imported


def plain(value: Any) -> Any:
    """A JSON value for a parquet cell (NaN and None are both null)."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def test_app_predicts_what_the_bundle_predicts(edge_dirs: dict[str, Path], examples: dict[str, Any]) -> None:
    ex = examples["churn"]
    bundle = ModelBundle.load(ex.bundle_dir)
    frame = ex.test
    # A row with a missing number and one with a missing category, as a device would see them.
    chosen = [
        int(np.flatnonzero(frame["tenure_months"].isna())[0]),
        int(np.flatnonzero(frame["payment_method"].isna())[0]),
    ]
    for i in chosen:
        row = {name: plain(frame[name].iloc[i]) for name in bundle.preprocessor.features}
        code, out, err, imported = predict(edge_dirs["churn"], row)
        assert code == 0, err
        assert imported.isdisjoint(FORBIDDEN), imported & FORBIDDEN
        assert "ai_edge_litert" in imported and "numpy" in imported
        score = float(bundle.predict_scores(frame.iloc[[i]])[0])
        assert out is not None and out["probability"] == pytest.approx(score, abs=1e-5)
        assert out["label"] == bundle.labels(np.array([score]))[0]
        assert out["model_version"] == "churn-v7" and out["variant"] == "fp32"


def test_app_takes_an_image_row_as_a_list_and_a_quantized_variant(
    edge_dirs: dict[str, Path], examples: dict[str, Any]
) -> None:
    ex = examples["digits"]
    bundle = ModelBundle.load(ex.bundle_dir)
    row = ex.test.iloc[[3]]
    values = [float(v) for v in row[bundle.preprocessor.features].to_numpy()[0]]
    probabilities = bundle.predict_scores(row)[0]
    code, out, err, _ = predict(edge_dirs["digits"], values)
    assert code == 0, err
    assert out is not None and out["label"] == bundle.labels(probabilities[None])[0]
    assert [out["probabilities"][str(c)] for c in bundle.preprocessor.classes] == pytest.approx(probabilities, abs=1e-5)
    code, out, err, _ = predict(edge_dirs["digits"], values, "--variant", "int8")
    assert code == 0 and out is not None and out["variant"] == "int8", err
    assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_app_scores_many_rows_in_one_call(edge_dirs: dict[str, Path], examples: dict[str, Any]) -> None:
    ex = examples["churn"]
    bundle = ModelBundle.load(ex.bundle_dir)
    frame = ex.test.head(25)
    rows = [{name: plain(frame[name].iloc[i]) for name in bundle.preprocessor.features} for i in range(len(frame))]
    code, out, err, imported = predict(edge_dirs["churn"], rows, "--variant", "int8", flag="--rows")
    assert code == 0, err
    assert imported.isdisjoint(FORBIDDEN), imported & FORBIDDEN
    assert isinstance(out, list) and len(out) == len(rows)
    scores = bundle.predict_scores(frame)
    assert [r["probability"] for r in out] == pytest.approx(list(scores), abs=0.03)
    assert all(r["variant"] == "int8" and r["model_version"] == "churn-v7" for r in out)
    code, out, err, _ = predict(edge_dirs["churn"], rows[:1], flag="--rows")
    assert code == 0 and out is not None and out[0]["probability"] == pytest.approx(float(scores[0]), abs=1e-5), err
    code, _, err, _ = predict(edge_dirs["churn"], [rows[0], {"tenure_months": 3}], flag="--rows")
    assert code == 2 and "error: row 1: the row lacks feature(s) 'monthly_charges'" in err and "Traceback" not in err


def test_app_explains_a_bad_row(edge_dirs: dict[str, Path]) -> None:
    code, _, err, _ = predict(edge_dirs["churn"], {"tenure_months": 3})
    assert code == 2 and "lacks feature(s) 'monthly_charges'" in err and "Traceback" not in err
    row = {"tenure_months": "long", "monthly_charges": 1, "support_calls": 0, "contract": None, "payment_method": None}
    code, _, err, _ = predict(edge_dirs["churn"], row)
    assert code == 2 and "'tenure_months' must be a number or null" in err
    code, _, err, _ = predict(edge_dirs["churn"], [1, 2], "--variant", "fp16")
    assert code == 2 and "no 'fp16' variant" in err


def test_a_date_feature_gives_the_same_answer_on_the_device(tmp_path: Path) -> None:
    """Parity for a date/time feature: the device sends the ISO 8601 string, the app computes the
    parts (no pandas), the graph imputes and scales them, and the answer is the bundle's own.
    A missing date, an offset converted to UTC and a bad date are covered."""
    import pandas as pd
    import torch
    from shipyard.core.features import Preprocessor
    from shipyard.core.schema import PreprocessConf
    from shipyard.data import fit_preprocessor
    from shipyard.deploy.edge import build_edge_bundle
    from shipyard.train.models import MLP

    rng = np.random.default_rng(0)
    n = 80
    when = pd.Series(pd.date_range("2023-01-01", periods=n, freq="53h"))
    frame = pd.DataFrame({"row_id": range(n), "x": rng.normal(size=n), "when": when, "y": rng.choice(["a", "b"], n)})
    parts = ["year", "month", "dayofweek", "hour", "timestamp", "month_sin", "dayofyear_cos", "hour_cos"]
    pre = Preprocessor.from_state(fit_preprocessor(frame, "y", None, PreprocessConf(), "binary", None, parts))
    torch.manual_seed(0)
    net = MLP(n_features=pre.n_features, n_outputs=1, hidden=[8], dropout=0.0).eval()
    bundle = ModelBundle(meta={"model": {"_target_": "shipyard.train.models.MLP"}}, preprocessor=pre, net=net)
    build_edge_bundle(
        bundle, tmp_path / "edge", {**FAST, "variants": ["fp32"]}, project="t/dates", version="d1", test_frame=frame
    )
    meta = json.loads((tmp_path / "edge" / "metadata.json").read_text())
    assert [f["datetime"]["part"] for f in meta["input"]["numeric"] if f.get("datetime")] == parts
    rows = [
        {"x": 0.3, "when": "2024-02-29T13:45:00"},
        {"x": -1.0, "when": "2023-06-01T23:30:00-03:00"},  # 2023-06-02T02:30 UTC
        {"x": 0.0, "when": None},
    ]
    code, out, err, imported = predict(tmp_path / "edge", rows, flag="--rows")
    assert code == 0, err
    assert imported.isdisjoint(FORBIDDEN), imported & FORBIDDEN
    expected = bundle.predict_scores(pd.DataFrame(rows))
    assert [r["probability"] for r in out] == pytest.approx(list(expected), abs=1e-5)
    code, _, err, _ = predict(tmp_path / "edge", {"x": 1.0, "when": "29/02/2024"})
    assert code == 2 and "feature 'when': '29/02/2024' is not an ISO 8601 date/time" in err
