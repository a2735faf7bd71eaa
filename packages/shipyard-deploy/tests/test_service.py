"""The service target without a running server: config validation, the generated request
schema, the service folder and the Bento (``test_service_server.py`` runs the real server)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from packaging.version import Version
from pydantic import ValidationError
from shipyard.core.errors import ConfigError, DataError
from shipyard.deploy.service import build_service
from shipyard.deploy.service._app import settings_from as validate_settings
from shipyard.deploy.service._schema import build_schema
from shipyard.train.bundle import ModelBundle

REPO = Path(__file__).resolve().parents[3]
NO_BENTO = {"bento": {"build": False}}


def meta(example) -> dict:
    return json.loads((example.bundle_dir / "bundle.json").read_text())


def rows_of(example, frame) -> list[dict]:
    """Feature rows as a client sends them (JSON null for a missing value)."""
    features = ModelBundle.load(example.bundle_dir).preprocessor.features
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in frame[features].to_dict(orient="records")
    ]


# -- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "needle"),
    [
        ({"max_batch_sise": 8}, "deploy.service.max_batch_sise", "unknown key"),
        ({"batching": {"max_batch_size": 1}}, "deploy.service.batching.max_batch_size", "at least 2"),
        ({"batching": {"max_latency_ms": "fast"}}, "deploy.service.batching.max_latency_ms", "could not be converted"),
        ({"workers": "many"}, "deploy.service.workers", "a number >= 1 or cpu_count"),
        ({"port": 70000}, "deploy.service.port", "at most 65535"),
        ({"range_check": {"margin": -1}}, "deploy.service.range_check.margin", "at least 0 and at most 100"),
        ({"auth": {"env_var": "my key"}}, "deploy.service.auth.env_var", "environment variable"),
        ({"extra_fields": "allow"}, "deploy.service.extra_fields", "not allowed"),
        ({"host": "localhost:80"}, "deploy.service.host", "IP address"),
        ({"auth": True}, "deploy.service.auth", "auth"),
        ({"name": "Tabular/BC"}, "deploy.service.name", "Bento name"),
    ],
)
def test_config_mistakes_name_the_key(section: dict, key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_settings(section)
    assert err.value.key == key
    assert needle in err.value.message
    assert err.value.fix


def test_partial_section_keeps_other_defaults() -> None:
    settings = validate_settings({"batching": {"max_batch_size": 8}, "workers": "cpu_count"})
    assert (settings.batching.max_batch_size, settings.batching.max_latency_ms, settings.workers) == (
        8,
        1000,
        "cpu_count",
    )


# -- request schema -----------------------------------------------------------------------------


def test_schema_accepts_the_test_split_and_names_bad_fields(examples) -> None:
    ex = examples["breast_cancer"]
    schema = build_schema(meta(ex), validate_settings(None))
    rows = rows_of(ex, ex.test)
    request = schema.request.model_validate_json(json.dumps({"rows": rows}))
    bundle = ModelBundle.load(ex.bundle_dir)
    # The validated rows feed the one preprocessing path and give the bundle's own model input.
    np.testing.assert_array_equal(
        bundle.preprocessor.transform(schema.columns(request.rows)), bundle.preprocessor.transform(ex.test)
    )
    good = rows[0]
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "mean radius"}, "missing"),
        "string": ({**good, "mean radius": "12.5"}, "float_type"),
        "bool": ({**good, "mean radius": True}, "float_type"),
        "out of range": ({**good, "mean radius": 1e6}, "less_than_equal"),
        "extra": ({**good, "colour": 1}, "extra_forbidden"),
    }
    for name, (row, kind) in cases.items():
        with pytest.raises(ValidationError) as err:
            schema.request.model_validate_json(json.dumps({"rows": [row]}))
        first = err.value.errors()[0]
        assert first["type"] == kind, name
        assert first["loc"][0] == "rows" and first["loc"][-1] in ("mean radius", "colour"), name
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = json.dumps({"rows": [good]}).replace(json.dumps(good["mean radius"]), literal, 1)
        with pytest.raises(ValidationError) as err:
            schema.request.model_validate_json(body)
        assert err.value.errors()[0]["type"] == "finite_number"
    with pytest.raises(ValidationError) as err:
        schema.request.model_validate_json(json.dumps({"rows": [good] * 1001}))
    assert err.value.errors()[0]["loc"] == ("rows",)


def test_range_check_widens_the_training_range_or_is_off(examples) -> None:
    m = meta(examples["breast_cancer"])
    spec = next(s for s in m["feature_schema"] if s["name"] == "mean radius")
    span = spec["max"] - spec["min"]
    props = build_schema(m, validate_settings(None)).row.model_json_schema()["properties"]["mean radius"]
    assert props["maximum"] >= spec["max"] + span > props["maximum"] - 1e-3 * span
    assert props["minimum"] <= spec["min"] - span < props["minimum"] + 1e-3 * span
    narrow = build_schema(m, validate_settings({"range_check": {"margin": 0.1}})).row.model_json_schema()
    assert narrow["properties"]["mean radius"]["maximum"] == pytest.approx(spec["max"] + 0.1 * span, rel=1e-5)
    off = build_schema(m, validate_settings({"range_check": {"enabled": False}})).row.model_json_schema()
    assert "maximum" not in off["properties"]["mean radius"]


def test_categories_nulls_and_unknowns(examples) -> None:
    ex = examples["churn"]
    strict = build_schema(meta(ex), validate_settings(None))
    rows = rows_of(ex, ex.test)
    assert any(v is None for r in rows for v in r.values()), "the churn split has missing values"
    strict.request.model_validate({"rows": rows})
    unseen = {**rows[0], "contract": "lifetime"}
    with pytest.raises(ValidationError) as err:
        strict.request.model_validate({"rows": [unseen]})
    assert err.value.errors()[0]["loc"] == ("rows", 0, "contract")
    lenient = build_schema(meta(ex), validate_settings({"unknown_categories": True}))
    accepted = lenient.request.model_validate({"rows": [unseen]})
    # An unseen category encodes like a missing one: all zeros in its one-hot block.
    bundle = ModelBundle.load(ex.bundle_dir)
    missing = {**rows[0], "contract": None}
    np.testing.assert_array_equal(
        bundle.preprocessor.transform(lenient.columns(accepted.rows)),
        bundle.preprocessor.transform(lenient.columns(lenient.request.model_validate({"rows": [missing]}).rows)),
    )


def test_image_models_take_an_array_of_the_bundle_shape(examples) -> None:
    ex = examples["digits"]
    schema = build_schema(meta(ex), validate_settings(None))
    bundle = ModelBundle.load(ex.bundle_dir)
    pixels = ex.test[bundle.preprocessor.features].to_numpy()
    images = pixels.reshape(len(pixels), 1, 8, 8).tolist()
    request = schema.request.model_validate({"rows": [{"image": im} for im in images]})
    np.testing.assert_array_equal(
        bundle.preprocessor.transform(schema.columns(request.rows)), bundle.preprocessor.transform(ex.test)
    )
    for bad, where in [
        (np.zeros((1, 8, 7)).tolist(), ("rows", 0, "image", 0, 0)),
        (np.zeros((8, 8)).tolist(), ("rows", 0, "image")),
        (np.full((1, 8, 8), 99.0).tolist(), ("rows", 0, "image", 0, 0, 0)),
    ]:
        with pytest.raises(ValidationError) as err:
            schema.request.model_validate({"rows": [{"image": bad}]})
        assert err.value.errors()[0]["loc"] == where


# -- the service folder and the Bento ------------------------------------------------------------


def test_build_writes_a_complete_folder_atomically(examples, tmp_path: Path) -> None:
    ex = examples["churn"]
    out = tmp_path / "deploy" / "examples" / "churn" / "service"
    report = build_service(ex.bundle_dir, out, {**NO_BENTO, "auth": {"enabled": True}}, project="examples/churn_model")
    bundle = ModelBundle.load(ex.bundle_dir)
    spec = json.loads((out / "service.json").read_text())
    assert spec["model_version"] == report["model_version"] == bundle.weights_sha256[:12]
    assert spec["settings"]["auth"] == {"enabled": True, "env_var": "SHIPYARD_API_KEY", "min_length": 16}
    assert report["bento_tag"] is None and report["endpoints"]["predict"] == "POST /predict"
    for name in (
        "service.py",
        "bundle/weights.safetensors",
        "bundle/bundle.json",
        "bentofile.yaml",
        "requirements.txt",
        "kubernetes.yaml",
        "README.md",
        "build.json",
        "request.json",
        "schemathesis.toml",
    ):
        assert (out / name).is_file(), name
    # The example request is a real test row the schema accepts (no example frame: training minimums).
    schema = build_schema(meta(ex), validate_settings({"auth": {"enabled": True}}))
    schema.request.model_validate_json((out / "request.json").read_text())
    assert "Bearer ${SHIPYARD_API_KEY}" in (out / "schemathesis.toml").read_text()
    requirements = (out / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("torch==") for r in requirements) and any(r.startswith("bentoml==") for r in requirements)
    assert not [r for r in requirements if r.startswith(("lightning", "pytorch-lightning", "torchmetrics", "shipyard"))]
    k8s = list(yaml.safe_load_all((out / "kubernetes.yaml").read_text()))
    deployment = next(d for d in k8s if d and d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The key never sits in a file: the pod reads it from a Secret; names are DNS-1123 (no "_").
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "examples-churn-model-api-key",
        "key": "api-key",
    }
    assert deployment["metadata"]["name"] == "examples-churn-model"
    assert not list(out.parent.glob(".tmp-*"))
    again = build_service(ex.bundle_dir, out, NO_BENTO, project="examples/churn_model", version="v7")
    assert again["model_version"] == "v7" and json.loads((out / "service.json").read_text())["model_version"] == "v7"


def test_build_json_is_repository_relative_and_request_json_a_test_row(
    examples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build.json names the folder and the serve command relative to the repository (the folder
    is DVC-tracked: the same on every machine); request.json holds the first test row."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHIPYARD_ROOT", raising=False)
    ex = examples["churn"]
    out = tmp_path / "deploy" / "examples" / "churn" / "service"
    report = build_service(ex.bundle_dir, out, NO_BENTO, project="examples/churn", example=ex.test)
    written = json.loads((out / "build.json").read_text())
    assert written == report
    assert written["out_dir"] == "deploy/examples/churn/service"
    assert written["serve"] == "python -m shipyard.deploy.service serve deploy/examples/churn/service --port 3000"
    assert str(tmp_path) not in (out / "build.json").read_text()
    request = json.loads((out / "request.json").read_text())
    assert request == {"rows": rows_of(ex, ex.test.head(1))}
    assert list(request["rows"][0]) == ModelBundle.load(ex.bundle_dir).preprocessor.features


def test_build_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build_service(tmp_path, tmp_path / "out", NO_BENTO, project="t/p")
    assert "not a model bundle" in err.value.message
    with pytest.raises(ConfigError):
        build_service(tmp_path, tmp_path / "out", {"workers": 0}, project="t/p")
    assert not (tmp_path / "out").exists()


def test_build_refuses_a_version_that_is_not_a_tag(examples, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_service(examples["churn"].bundle_dir, tmp_path / "out", NO_BENTO, project="t/p", version='v1"; rm -rf')
    assert err.value.key == "version"
    assert not (tmp_path / "out").exists()


def test_service_loads_without_lightning_or_pickle(examples, tmp_path: Path) -> None:
    """In a fresh interpreter: import the generated entry point, create the service instance the
    way a BentoML worker does, and score; unpickling is made to fail, Lightning must not load."""
    ex = examples["breast_cancer"]
    out = tmp_path / "svc"
    build_service(ex.bundle_dir, out, NO_BENTO, project="examples/breast_cancer")
    probe = """
import pickle, sys, time
def refuse(*a, **k):
    raise AssertionError("pickle used")
pickle.load = pickle.loads = refuse
pickle.Unpickler = refuse
started = time.perf_counter()
import service
instance = service.ShipyardService.inner()
print(round(time.perf_counter() - started, 3), "lightning" in sys.modules, instance.bundle.task)
# BentoML looks the API up on the instance twice a request: bound once, not per lookup.
assert instance.predict is instance.predict and callable(instance.predict.local)
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(tmp_path / "bml")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, lightning, task = done.stdout.split()
    assert (lightning, task) == ("False", "binary")
    print(f"service import + model load: {seconds} s")


@pytest.mark.slow
def test_bento_is_built_into_the_store_with_pinned_no_deps_environment(
    examples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    ex = examples["breast_cancer"]
    report = build_service(ex.bundle_dir, tmp_path / "svc", None, project="examples/breast_cancer", version="v1")
    assert report["bento_tag"] == "examples-breast_cancer:v1"
    assert report["containerize"] == "bentoml containerize examples-breast_cancer:v1"
    bento = tmp_path / "bentoml" / "bentos" / "examples-breast_cancer" / "v1"
    # The Bento carries the bundle as the BentoML model of the same tag, not as source files.
    assert not (bento / "src" / "bundle").exists()
    spec = yaml.safe_load((bento / "bento.yaml").read_text())
    assert [m["tag"] for m in spec["services"][0]["models"]] == ["examples-breast_cancer:v1"]
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("bentoml")), "list", "-o", "json"],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (entry,) = json.loads(listed.stdout)
    assert entry["tag"] == "examples-breast_cancer:v1" and entry["model_size"] != "0 B"
    assert sorted(p.name.split("-")[0] for p in (bento / "env" / "python" / "wheels").glob("*.whl")) == [
        "shipyard_core",
        "shipyard_deploy",
        "shipyard_features",
        "shipyard_predlog",
        "shipyard_train",
    ]
    install = (bento / "env" / "python" / "install.sh").read_text()
    assert "--no-deps" in install
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "torch==" in requirements and "lightning" not in requirements
    assert "+cpu" not in requirements  # a local version label no public index serves
    assert (bento / "env" / "docker" / "Dockerfile").is_file()
    # A rebuild of the same version replaces the Bento instead of failing.
    again = build_service(ex.bundle_dir, tmp_path / "svc", None, project="examples/breast_cancer", version="v1")
    assert again["bento_tag"] == report["bento_tag"]


def test_bentoml_tooling_sees_the_model(examples, tmp_path: Path) -> None:
    """The bundle is a BentoML model (not files hidden in the service): `bentoml models get`
    knows it, with the project, version and weights hash; the requirements pin public versions."""
    ex = examples["churn"]
    report = build_service(ex.bundle_dir, tmp_path / "svc", NO_BENTO, project="examples/churn", version="v4")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("bentoml")), "models", "get", report["model_tag"], "-o", "json"],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    meta = json.loads((ex.bundle_dir / "bundle.json").read_text())
    assert info["labels"]["project"] == "examples/churn" and info["labels"]["model_version"] == "v4"
    assert info["metadata"]["weights_sha256"] == meta["weights_sha256"]
    requirements = (tmp_path / "svc" / "requirements.txt").read_text().splitlines()
    assert f"torch=={Version(torch.__version__).public}" in requirements
    assert not [r for r in requirements if "+" in r]


def test_a_date_feature_takes_iso_dates_and_times_and_names_a_bad_one() -> None:
    """A date/time feature: an ISO 8601 date or date-time (an offset converts to UTC) feeds the
    same model input as training's parsed column; another spelling is a 422 naming the field."""
    import pandas as pd
    from shipyard.core.features import Preprocessor

    pre = Preprocessor(
        task="binary",
        features=["x", "when"],
        target="y",
        mean=[0.0, 2020.0, 3.0],
        scale=[1.0, 2.0, 2.0],
        fill=[0.0, 2020.0, 3.0],
        classes=["a", "b"],
        datetime={"when": ["year", "dayofweek"]},
    )
    schema_rows = [
        {"name": "x", "dtype": "float", "min": -3.0, "max": 3.0, "nullable": False},
        {
            "name": "when",
            "dtype": "datetime",
            "min": "2019-01-01T00:00:00",
            "max": "2024-01-01T00:00:00",
            "parts": ["year", "dayofweek"],
            "nullable": True,
        },
    ]
    meta = {"project": {"name": "dates"}, "preprocessor": pre.state(), "feature_schema": schema_rows}
    schema = build_schema(meta, validate_settings(None))
    body = {
        "rows": [
            {"x": 1.0, "when": "2021-03-05"},
            {"x": 0.5, "when": "2021-03-05T23:30:00-02:00"},
            {"x": 0.0, "when": None},
        ]
    }
    request = schema.request.model_validate_json(json.dumps(body))
    expected = pre.transform(
        {
            "x": [1.0, 0.5, 0.0],
            "when": pd.to_datetime(["2021-03-05", "2021-03-06T01:30:00", None], format="ISO8601").to_numpy(),
        }
    )
    np.testing.assert_array_equal(pre.transform(schema.columns(request.rows)), expected)
    with pytest.raises(ValidationError) as err:
        schema.request.model_validate_json(json.dumps({"rows": [{"x": 1.0, "when": "05/03/2021"}]}))
    assert err.value.errors()[0]["loc"][:3] == ("rows", 0, "when")
