"""The edge target on real bundles: litert-torch export, ai-edge-litert interpreter, parity gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter
from shipyard.core.errors import ConfigError, DataError
from shipyard.core.features import Preprocessor
from shipyard.deploy.edge import (
    METADATA,
    REPORT,
    EdgeExportError,
    ParityError,
    build_edge,
    build_edge_bundle,
    edge_conf,
    edge_dir,
    edge_metrics,
    edge_status,
    rejected_dir,
    run_edge,
)
from shipyard.deploy.edge._graph import edge_inputs
from shipyard.train.bundle import ModelBundle
from shipyard.train.models import MLP

REPO = Path(__file__).resolve().parents[3]
# Fewer timed calls than the defaults: latency is reported, not asserted, here.
FAST: dict[str, Any] = {"latency": {"warmup": 2, "repeats": 20, "max_seconds": 0.5}}
EXAMPLES = ("breast_cancer", "digits", "churn")


@pytest.fixture(scope="module")
def built(examples: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("edge")
    out = {}
    for name in EXAMPLES:
        ex = examples[name]
        target = root / name / "edge"
        report = build_edge(
            ex.bundle_dir, target, FAST, project=f"examples/{name}", version=f"{name}-v1", test_frame=ex.test
        )
        out[name] = (target, report)
    return out


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    rows = []
    for row in x:
        interpreter.set_tensor(inp, row[None].astype(np.float32))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out)[0].copy())
    return np.array(rows)


def run_tflite_batch(path: Path, x: np.ndarray) -> np.ndarray:
    """All rows of ``x`` in one invoke, as an app scores a batch."""
    interpreter = Interpreter(model_path=str(path))
    inp = interpreter.get_input_details()[0]
    assert list(inp["shape_signature"]) == [-1, x.shape[1]], "the batch dimension is dynamic"
    interpreter.resize_tensor_input(inp["index"], list(x.shape), strict=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


# -- export and parity on the example projects ---------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_exports_and_passes_parity(name: str, built: dict[str, Any], examples: dict[str, Any]) -> None:
    target, report = built[name]
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [METADATA, REPORT, "model_fp32.tflite", "model_int8.tflite", "model_fp16.tflite"]
    )
    assert report["passed"] is True
    assert report["test_rows"] == len(examples[name].test)
    assert json.loads((target / REPORT).read_text()) == json.loads(json.dumps(report))
    fp32 = report["variants"]["fp32"]
    assert fp32["passed"] and fp32["max_abs_diff"] <= 1e-4
    assert fp32["label_agreement"] == 1.0 and fp32["metric_delta"] == 0.0
    assert report["torch"]["folded_max_abs_diff"] <= 1e-4
    for entry in report["variants"].values():
        assert entry["size_bytes"] == (target / entry["file"]).stat().st_size
        assert entry["latency_p50_ms"] > 0 and entry["latency_vs_torch"] > 0
        assert set(entry["metrics"]) >= {"accuracy", "f1", "roc_auc"}
    assert not rejected_dir(target).exists()
    # litert-torch's module-path tensor names are debug weight: compacted by default.
    names = [t["name"] for t in Interpreter(model_path=str(target / "model_fp32.tflite")).get_tensor_details()]
    assert "serving_default_features" in names and not any("EdgeModule" in n for n in names)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_variant_scores_the_whole_test_split_in_one_call(
    name: str, built: dict[str, Any], examples: dict[str, Any]
) -> None:
    """Batch N (the test split) and batch 1 give the same scores, and the torch bundle's."""
    target, report = built[name]
    assert report["batch_sizes"] == [1, len(examples[name].test)]
    bundle = ModelBundle.load(examples[name].bundle_dir)
    x = edge_inputs(bundle.preprocessor, examples[name].test)
    reference = np.asarray(bundle.predict_scores(examples[name].test)).reshape(len(x), -1)
    for variant, entry in report["variants"].items():
        whole = entry["batch"]
        assert whole["rows"] == len(x) and whole["label_agreement"] == entry["label_agreement"], variant
        assert (
            whole["metric"] == pytest.approx(entry["metric"]) and whole["max_abs_diff"] <= 1e-4 + entry["max_abs_diff"]
        )
        batch = run_tflite_batch(target / entry["file"], x)
        assert batch.shape == (len(x), reference.shape[1])
        np.testing.assert_allclose(batch, run_tflite(target / entry["file"], x).reshape(batch.shape), atol=1e-5)
        assert float(np.max(np.abs(batch - reference))) == pytest.approx(entry["batch"]["max_abs_diff"], abs=1e-6)
    assert float(np.max(np.abs(run_tflite_batch(target / "model_fp32.tflite", x) - reference))) <= 1e-4


def test_quantized_variants_are_really_quantized_and_within_tolerance(built: dict[str, Any]) -> None:
    target, report = built["digits"]
    int8, fp16 = report["variants"]["int8"], report["variants"]["fp16"]
    for entry, limit in ((int8, 0.02), (fp16, 0.01)):
        assert entry["passed"] and abs(entry["metric_delta"]) <= limit
        # A quantized variant computes something (slightly) different: not a copy of fp32.
        assert entry["max_abs_diff"] > report["variants"]["fp32"]["max_abs_diff"]
    assert int8["size_bytes"] < 0.7 * report["variants"]["fp32"]["size_bytes"]
    interpreter = Interpreter(model_path=str(target / "model_int8.tflite"))
    assert any(t["dtype"] == np.int8 for t in interpreter.get_tensor_details())


def test_metadata_lets_a_device_encode_raw_rows(built: dict[str, Any], examples: dict[str, Any]) -> None:
    """Missing numbers, unseen and missing categories: the graph does what the bundle does."""
    target, _ = built["churn"]
    meta = json.loads((target / METADATA).read_text())
    bundle = ModelBundle.load(examples["churn"].bundle_dir)
    pre = bundle.preprocessor
    assert meta["input"]["features"] == [*pre.numeric_features, *pre.categorical]
    assert meta["input"]["dtype"] == "float32" and meta["input"]["shape"] == [-1, len(pre.features)]
    assert {c["name"]: c["vocabulary"] for c in meta["input"]["categorical"]} == pre.categorical
    assert meta["output"]["labels"] == pre.classes and meta["output"]["kind"] == "probability"
    assert meta["model_version"] == "churn-v1" and meta["weights_sha256"] == bundle.weights_sha256
    for variant, entry in meta["variants"].items():
        assert (target / entry["file"]).stat().st_size == entry["size_bytes"], variant

    rows = examples["churn"].test.head(4).copy()
    rows.loc[rows.index[0], "tenure_months"] = np.nan
    rows.loc[rows.index[1], "contract"] = "lifetime"  # never seen in training
    rows.loc[rows.index[2], "payment_method"] = None
    x = np.zeros((len(rows), len(meta["input"]["features"])), dtype=np.float32)
    for f in meta["input"]["numeric"]:
        x[:, f["position"]] = rows[f["name"]].astype(float)
    for f in meta["input"]["categorical"]:
        index = {v: i for i, v in enumerate(f["vocabulary"])}
        x[:, f["position"]] = [index.get(v, f["missing_code"]) for v in rows[f["name"]]]
    lite = run_tflite(target / "model_fp32.tflite", x)[:, 0]
    np.testing.assert_allclose(lite, bundle.predict_scores(rows), atol=1e-5)
    np.testing.assert_allclose(run_tflite_batch(target / "model_fp32.tflite", x)[:, 0], lite, atol=1e-6)


def test_regression_and_ordinal_output_target_units(tmp_path: Path) -> None:
    """Regression values come out in target units; ordinal codes pass through the graph."""
    torch.manual_seed(0)
    pre = Preprocessor(
        task="regression",
        features=["a", "b", "colour"],
        target="y",
        mean=[10.0, -3.0],
        scale=[2.0, 0.5],
        fill=[9.0, -3.5],
        target_mean=1000.0,
        target_scale=250.0,
        categorical={"colour": ["red", "blue"]},
        encoding="ordinal",
    )
    net = MLP(n_features=pre.n_features, n_outputs=1, hidden=[8], dropout=0.0).eval()
    bundle = ModelBundle(meta={"model": {"_target_": "shipyard.train.models.MLP"}}, preprocessor=pre, net=net)
    rng = np.random.default_rng(0)
    test = pd.DataFrame(
        {"a": rng.normal(10, 2, 60), "b": rng.normal(-3, 0.5, 60), "colour": rng.choice(["red", "blue", "green"], 60)}
    )
    test.loc[:4, "a"] = np.nan
    test["y"] = bundle.predict_scores(test) + rng.normal(0, 5, 60)
    conf = {**FAST, "variants": ["fp32"], "keep_tensor_names": True}
    report = build_edge_bundle(bundle, tmp_path / "edge", conf, project="t/reg", version="r1", test_frame=test)
    fp32 = report["variants"]["fp32"]
    assert report["metric"] == "r2" and fp32["passed"]
    assert fp32["max_abs_diff_scaled"] == pytest.approx(fp32["max_abs_diff"] / 250.0)
    meta = json.loads((tmp_path / "edge" / METADATA).read_text())
    assert meta["output"]["kind"] == "value" and meta["input"]["categorical"][0]["vocabulary"] == ["red", "blue"]
    names = [
        t["name"] for t in Interpreter(model_path=str(tmp_path / "edge" / "model_fp32.tflite")).get_tensor_details()
    ]
    assert any("EdgeModule" in n for n in names)
    x = np.array([[11.0, -2.0, 1.0]], dtype=np.float32)  # colour "blue"
    expected = bundle.predict_scores({"a": [11.0], "b": [-2.0], "colour": ["blue"]})
    assert run_tflite(tmp_path / "edge" / "model_fp32.tflite", x)[0, 0] == pytest.approx(expected[0], rel=1e-5)


# -- the gate ------------------------------------------------------------------------------------


def test_variant_out_of_tolerance_fails_and_keeps_the_deployed_model(
    built: dict[str, Any], examples: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "edge"
    shutil.copytree(built["breast_cancer"][0], target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    strict = {**FAST, "variants": ["int8"], "tolerance": {"int8": {"max_abs_diff": 1e-9}}}
    ex = examples["breast_cancer"]
    with pytest.raises(ParityError) as caught:
        build_edge(ex.bundle_dir, target, strict, project="examples/breast_cancer", version="v2", test_frame=ex.test)
    text = caught.value.render()
    assert "int8" in text and "max |LiteRT - torch|" in text and "> 1e-09" in text
    assert "deploy.edge.tolerance.int8" in text and "Traceback" not in text
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    rejected = json.loads((rejected_dir(target) / REPORT).read_text())
    assert rejected["passed"] is False and rejected["model_version"] == "v2"
    assert rejected["variants"]["int8"]["failures"] and rejected["variants"]["fp32"]["passed"]
    assert "REJECTED" in (edge_status(target) or "")
    # The next candidate that passes replaces the deployment and clears the rejected one.
    build_edge(ex.bundle_dir, target, FAST, project="examples/breast_cancer", version="v3", test_frame=ex.test)
    assert json.loads((target / METADATA).read_text())["model_version"] == "v3"
    assert not rejected_dir(target).exists()
    # Same bundle, same files: the export is deterministic.
    for name in ("model_fp32.tflite", "model_int8.tflite", "model_fp16.tflite"):
        assert (target / name).read_bytes() == before[name], name


class DetNet(torch.nn.Module):
    """A test-only network with an op litert-torch cannot lower (a determinant)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(n_features, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.det(self.linear(x).reshape(-1, 2, 2)).unsqueeze(1)


def test_unsupported_op_names_the_op_and_the_fix(examples: dict[str, Any], tmp_path: Path) -> None:
    real = ModelBundle.load(examples["breast_cancer"].bundle_dir)
    meta = dict(real.meta, model={"_target_": "team_x.models.DetNet"})
    bundle = ModelBundle(meta=meta, preprocessor=real.preprocessor, net=DetNet(real.preprocessor.n_features).eval())
    with pytest.raises(EdgeExportError) as caught:
        build_edge_bundle(
            bundle, tmp_path / "edge", FAST, project="x/y", version="v", test_frame=examples["breast_cancer"].test
        )
    err = caught.value
    assert "no lowering for the op aten._linalg_det" in err.message
    assert err.key == "model._target_" and err.value == "team_x.models.DetNet"
    assert err.where and "test_edge.py" in err.where and "torch.linalg.det" in err.where
    assert err.fix and "replace aten._linalg_det" in err.fix and "deploy.targets" in err.fix
    assert err.exit_code == 2 and "Traceback" not in err.render()
    assert not (tmp_path / "edge").exists() and not rejected_dir(tmp_path / "edge").exists()


# -- config, status, metrics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"variant": ["int8"]}, 'unknown key deploy.edge.variant (did you mean "variants"?)'),
        ({"variants": ["int4"]}, "deploy.edge.variants[0]: 'int4' is not allowed"),
        ({"variants": ["fp61"]}, 'did you mean "fp16"?'),
        (
            {"tolerance": {"int8": {"max_metric_delta": -1}}},
            "deploy.edge.tolerance.int8.max_metric_delta must be at least 0",
        ),
        ({"tolerance": {"int8": {"max_diff": 0.1}}}, "unknown key deploy.edge.tolerance.int8.max_diff"),
        ({"tolerance": {"int4": {}}}, "unknown edge variant 'int4'"),
        ({"latency": {"repeats": 0}}, "deploy.edge.latency.repeats must be at least 1"),
    ],
)
def test_config_mistakes_name_the_key(section: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        edge_conf(section)
    assert expected in caught.value.render() and "fix:" in caught.value.render()


def test_metric_must_fit_the_task(examples: dict[str, Any], tmp_path: Path) -> None:
    ex = examples["digits"]
    with pytest.raises(ConfigError, match="metric 'r2' is not computed for a multiclass task"):
        build_edge(ex.bundle_dir, tmp_path / "e", {"metric": "r2"}, project="v/d", version="v", test_frame=ex.test)
    assert not (tmp_path / "e").exists()


def test_status_and_flat_metrics(built: dict[str, Any], tmp_path: Path) -> None:
    target, report = built["digits"]
    status = edge_status(target) or ""
    lines = status.splitlines()
    assert f"parity passed on {report['test_rows']} test rows" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == ["torch", "fp32", "int8", "fp16"]
    flat = edge_metrics(report)
    assert flat["int8/passed"] == 1.0 and flat["fp32/size_bytes"] == report["variants"]["fp32"]["size_bytes"]
    assert all(isinstance(v, float) for v in flat.values())
    assert edge_status(tmp_path / "nothing") is None


def test_run_edge_builds_a_trained_project(examples: dict[str, Any], tmp_path: Path) -> None:
    """The project-level entry point: paths from the repository layout, metrics for DVC."""
    ex = examples["churn"]
    data = tmp_path / "data" / "tabular" / "churn"
    with pytest.raises(DataError, match="test.parquet does not exist") as caught:
        run_edge(tmp_path, "tabular/churn", FAST)
    assert "make train PROJECT=tabular/churn" in caught.value.render()
    shutil.copytree(ex.bundle_dir, data / "06_models" / "bundle")
    (data / "05_model_input").mkdir(parents=True)
    ex.test.to_parquet(data / "05_model_input" / "test.parquet")
    report = run_edge(tmp_path, "tabular/churn", {**FAST, "variants": ["fp32"]})
    target = edge_dir(tmp_path, "tabular/churn")
    assert target == tmp_path / "deploy" / "tabular" / "churn" / "edge"
    assert (
        json.loads((target / METADATA).read_text())["model_version"] == ModelBundle.load(ex.bundle_dir).weights_sha256
    )
    metrics = json.loads((data / "08_reporting" / "edge_metrics.json").read_text())
    assert metrics == edge_metrics(report) and metrics["fp32/passed"] == 1.0


def test_importing_the_edge_target_is_cheap() -> None:
    """shipyard --help and config errors stay fast: no torch, litert or numpy at import."""
    import subprocess
    import sys

    code = "import sys, shipyard.deploy.edge; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'litert_torch', 'ai_edge_litert', 'pandas'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
