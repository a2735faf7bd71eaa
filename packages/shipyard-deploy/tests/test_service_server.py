"""The real BentoML server, started as a subprocess on loopback (``python -m
shipyard.deploy.service serve``) and called over HTTP: predictions against the bundle's on whole
test splits, every kind of bad input, auth on and off, health, metrics, the folder's
``request.json``, and schemathesis's default checks (its own CLI too) against the service's
OpenAPI description."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from shipyard.deploy.service import build_service
from shipyard.train.bundle import ModelBundle

API_KEY = "test-key-0123456789abcdef"
READY_TIMEOUT = 90.0


@dataclass
class Server:
    url: str
    out: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SHIPYARD_API_KEY"}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True", OMP_NUM_THREADS="1", **extra)
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and every worker it forked (its own process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _serve(out: Path, home: Path, **extra_env: str) -> Iterator[Server]:
    port = _free_port()
    log = out.parent / f"{out.name}-server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard.deploy.service", "serve", str(out), "--port", str(port)],
            env=_env(home, **extra_env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", out, proc, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}:\n{server.log_text()[-3000:]}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {READY_TIMEOUT:.0f} s:\n{server.log_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        _stop(proc)


def _rows(bundle: ModelBundle, frame) -> list[dict]:
    """Raw rows as a client sends them: features only, JSON null for missing values, images as
    [C, H, W] arrays."""
    pre = bundle.preprocessor
    if pre.shape:
        pixels = frame[pre.features].to_numpy(dtype=float)
        return [{"image": im} for im in pixels.reshape(len(pixels), *pre.shape).tolist()]
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in frame[pre.features].to_dict(orient="records")
    ]


def _assert_same_predictions(bundle: ModelBundle, frame, answers: list[dict], version: str) -> None:
    scores = bundle.predict_scores(frame)
    labels = bundle.labels(scores)
    assert len(answers) == len(frame)
    assert [a["prediction"] for a in answers] == labels
    assert {a["model_version"] for a in answers} == {version}
    if bundle.task == "binary":
        np.testing.assert_allclose([a["score"] for a in answers], scores, rtol=0, atol=1e-5)
    else:
        classes = [str(c) for c in bundle.preprocessor.classes]
        got = [[a["probabilities"][c] for c in classes] for a in answers]
        np.testing.assert_allclose(got, scores, rtol=0, atol=1e-5)


async def _one_row_each(url: str, rows: list[dict], headers: dict[str, str] | None = None) -> list[dict]:
    """Every row as its own request, all at once: the adaptive batcher sees concurrent traffic."""
    async with httpx.AsyncClient(base_url=url, headers=headers or {}, timeout=60) as client:
        answers = await asyncio.gather(*(client.post("/predict", json={"rows": [r]}) for r in rows))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers if a.status_code != 200][:3]
    return [a.json()[0] for a in answers]


# -- servers (one per module and example) -------------------------------------------------------


@pytest.fixture(scope="module")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bentoml")


@pytest.fixture(scope="module")
def bc_server(examples, tmp_path_factory, bentoml_home) -> Iterator[Server]:
    out = tmp_path_factory.mktemp("svc") / "breast_cancer"
    conf = {"bento": {"build": False}, "max_rows_per_request": 200, "max_request_bytes": 200_000}
    ex = examples["breast_cancer"]
    build_service(ex.bundle_dir, out, conf, project="examples/breast_cancer", version="bc-1", example=ex.test)
    yield from _serve(out, bentoml_home)


@pytest.fixture(scope="module")
def churn_auth_server(examples, tmp_path_factory, bentoml_home) -> Iterator[Server]:
    out = tmp_path_factory.mktemp("svc") / "churn"
    build_service(
        examples["churn"].bundle_dir,
        out,
        {"bento": {"build": False}, "auth": {"enabled": True}},
        project="examples/churn",
        example=examples["churn"].test,
    )
    yield from _serve(out, bentoml_home, SHIPYARD_API_KEY=API_KEY)


# -- breast_cancer: predictions, bad input, health, metrics, OpenAPI -----------------------------


def test_predictions_equal_the_bundle_on_the_test_split(examples, bc_server: Server) -> None:
    ex = examples["breast_cancer"]
    bundle = ModelBundle.load(ex.bundle_dir)
    rows = _rows(bundle, ex.test)
    with bc_server.client() as client:
        answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-version"] == "bc-1"
    _assert_same_predictions(bundle, ex.test, answer.json(), "bc-1")
    # The same split as one-row requests arriving together: batched by the server, same answers.
    _assert_same_predictions(bundle, ex.test, asyncio.run(_one_row_each(bc_server.url, rows)), "bc-1")
    first = answer.json()[0]
    assert first["probabilities"]["1"] == pytest.approx(first["score"])


def _bad_cases(good: dict) -> dict[str, tuple[bytes, int, str]]:
    """name -> (body, expected status, text the answer must contain)."""

    def body(rows: list[dict]) -> bytes:
        return json.dumps({"rows": rows}).encode()

    value = json.dumps(good["mean radius"])
    with_literal = lambda lit: body([good]).replace(value.encode(), lit.encode(), 1)  # noqa: E731
    return {
        "missing field": (body([{k: v for k, v in good.items() if k != "mean texture"}]), 400, "mean texture"),
        "wrong type": (body([{**good, "mean radius": "twelve"}]), 400, "mean radius"),
        "NaN": (with_literal("NaN"), 400, "finite"),
        "infinity": (with_literal("Infinity"), 400, "finite"),
        "out of range": (body([{**good, "mean radius": 1e9}]), 400, "less than or equal"),
        "unknown field": (body([{**good, "colour": "red"}]), 400, "colour"),
        "no rows": (body([]), 400, "rows"),
        "too many rows": (body([good] * 201), 400, "rows"),
        "not JSON": (b"{rows: [", 400, "json"),
        "not an object": (b"[1, 2]", 400, "object"),
        "oversized payload": (body([good] * 190) + b" " * 200_000, 413, "larger than"),
    }


def test_bad_input_gets_4xx_naming_the_field_and_the_server_goes_on(examples, bc_server: Server) -> None:
    ex = examples["breast_cancer"]
    good = _rows(ModelBundle.load(ex.bundle_dir), ex.test.head(1))[0]
    with bc_server.client() as client:
        for name, (payload, status, needle) in _bad_cases(good).items():
            answer = client.post("/predict", content=payload, headers={"content-type": "application/json"})
            assert answer.status_code == status, (name, answer.status_code, answer.text[:300])
            assert needle.lower() in answer.text.lower(), (name, answer.text[:300])
            # Still serving after each one.
            assert client.post("/predict", json={"rows": [good]}).status_code == 200, name
        form = client.post("/predict", content=b"rows=1", headers={"content-type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415
    # A body with no declared length (chunked upload) is cut off at the limit too.
    chunks = (b"x" * 50_000 for _ in range(10))
    with httpx.Client(base_url=bc_server.url, timeout=30) as client:
        assert client.post("/predict", content=chunks, headers={"content-type": "application/json"}).status_code == 413
    log = bc_server.log_text()
    assert "Traceback" not in log, log[-2000:]  # rejections are one INFO line each, not server errors
    assert "rejected a bad request" in log


def test_health_metrics_and_openapi(bc_server: Server) -> None:
    with bc_server.client() as client:
        for path in ("/livez", "/readyz", "/healthz"):
            assert client.get(path).status_code == 200, path
        client.post("/predict", json={"rows": []})
        metrics = client.get("/metrics")
        spec = client.get("/docs.json").json()
        assert client.get("/").status_code == 200
    assert metrics.status_code == 200
    assert "bentoml_service_request_total" in metrics.text
    assert 'endpoint="/predict"' in metrics.text and 'http_response_code="400"' in metrics.text
    assert "bentoml_service_adaptive_batch_size" in metrics.text
    request = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert request["properties"]["rows"]["maxItems"] == 200
    row = spec["components"]["schemas"]["BreastCancerRow"]
    assert row["properties"]["mean radius"]["type"] == "number"
    assert {"minimum", "maximum"} <= set(row["properties"]["mean radius"])
    assert len(row["required"]) == 30 and row["additionalProperties"] is False


def _schemathesis_config(server: Server) -> SchemathesisConfig:
    """The settings the service folder ships for schemathesis (``schemathesis.toml``)."""
    return SchemathesisConfig.from_path(server.out / "schemathesis.toml")


@pytest.mark.parametrize("mode", ["positive", pytest.param("negative", marks=pytest.mark.slow)])
def test_openapi_fuzzing_passes_schemathesis_default_checks(bc_server: Server, mode: str) -> None:
    """Schemathesis generates requests from the service's own OpenAPI description (valid ones,
    then ones that break it) for every operation, and runs all its default checks on each answer:
    no 5xx, every status, header and body as the document declares it (a 400's ``detail`` is the
    list of problems), valid data accepted and invalid data rejected. Driven through its Python
    API with the folder's schemathesis.toml: its pytest loader does not run under pytest 9."""
    from hypothesis import given

    schema = schemathesis.openapi.from_url(f"{bc_server.url}/docs.json", config=_schemathesis_config(bc_server))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/predict" for op in operations)
    if mode == "negative":  # a GET without parameters has nothing to break
        operations = [op for op in operations if op.method.upper() == "POST"]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @settings(
            max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        def fuzz(case) -> None:
            case.call_and_validate()  # checks=None: every default check

        fuzz()
    assert "Traceback" not in bc_server.log_text()


def _schemathesis_cli(server: Server, **env: str) -> subprocess.CompletedProcess[str]:
    """``schemathesis run <url>/docs.json`` as a user runs it: from the service folder (which
    holds its schemathesis.toml), default checks, every phase."""
    cli = Path(sys.executable).with_name("schemathesis")
    return subprocess.run(
        [str(cli), "run", f"{server.url}/docs.json", "--max-examples", "25", "--seed", "7", "--no-color"],
        cwd=server.out,
        env={**{k: v for k, v in os.environ.items() if k != "SHIPYARD_API_KEY"}, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_schemathesis_cli_finds_no_issue(bc_server: Server) -> None:
    done = _schemathesis_cli(bc_server)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "No issues found" in done.stdout and "schemathesis.toml" in done.stdout


def test_openapi_document_matches_the_answers(bc_server: Server) -> None:
    """The document says what the service answers: a 400's detail is pydantic's list, the body
    is required, the front door's 413 and 415 are declared with their body."""
    with bc_server.client() as client:
        spec = client.get("/docs.json").json()
        bad = client.post("/predict", json={"rows": []})
        empty = client.post("/predict", headers={"content-type": "application/json"})
    operation = spec["paths"]["/predict"]["post"]
    assert operation["requestBody"]["required"] is True
    assert set(operation["responses"]) >= {"200", "400", "413", "415"} and "401" not in operation["responses"]
    detail = spec["components"]["schemas"]["InvalidArgument"]["properties"]["detail"]
    assert detail["type"] == "array"
    item = spec["components"]["schemas"]["ValidationErrorItem"]
    assert bad.status_code == empty.status_code == 400
    for answer in (bad, empty):
        assert isinstance(answer.json()["detail"], list)
        assert set(item["required"]) <= set(answer.json()["detail"][0])
    assert operation["responses"]["200"]["headers"]["x-model-version"]["schema"] == {"type": "string"}


def test_the_folders_request_json_is_accepted(examples, bc_server: Server) -> None:
    """request.json (the README's curl example) is a real row of the test split, and the
    service answers it 200 with that row's prediction."""
    body = json.loads((bc_server.out / "request.json").read_text())
    ex = examples["breast_cancer"]
    bundle = ModelBundle.load(ex.bundle_dir)
    assert body["rows"] == _rows(bundle, ex.test.head(1))
    with bc_server.client() as client:
        answer = client.post(
            "/predict",
            content=(bc_server.out / "request.json").read_bytes(),
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 200, answer.text
    _assert_same_predictions(bundle, ex.test.head(1), answer.json(), "bc-1")


# -- digits: image rows ------------------------------------------------------------------------


@pytest.mark.slow  # a server of its own
def test_image_service_predictions_and_wrong_shape(examples, tmp_path: Path, bentoml_home: Path) -> None:
    ex = examples["digits"]
    out = tmp_path / "digits"
    build_service(ex.bundle_dir, out, {"bento": {"build": False}}, project="examples/digits")
    bundle = ModelBundle.load(ex.bundle_dir)
    version = bundle.weights_sha256[:12]
    rows = _rows(bundle, ex.test)
    for server in _serve(out, bentoml_home):
        with server.client() as client:
            answer = client.post("/predict", json={"rows": rows})
            assert answer.status_code == 200, answer.text[:500]
            _assert_same_predictions(bundle, ex.test, answer.json(), version)
            flat = client.post("/predict", json={"rows": [{"image": np.zeros(64).tolist()}]})
            narrow = client.post("/predict", json={"rows": [{"image": np.zeros((1, 8, 7)).tolist()}]})
        assert flat.status_code == 400 and narrow.status_code == 400
        assert flat.json()["detail"][0]["loc"] == ["rows", 0, "image"]
        assert narrow.json()["detail"][0]["loc"][:4] == ["rows", 0, "image", 0]


# -- churn with auth: keys, categories, missing values -------------------------------------------


def test_auth_on_needs_the_key_from_the_environment(examples, churn_auth_server: Server) -> None:
    ex = examples["churn"]
    bundle = ModelBundle.load(ex.bundle_dir)
    rows = _rows(bundle, ex.test)
    body = {"rows": rows[:3]}
    with churn_auth_server.client() as anonymous:
        assert anonymous.post("/predict", json=body).status_code == 401
        for open_path in ("/livez", "/readyz", "/metrics", "/docs.json"):
            assert anonymous.get(open_path).status_code == 200, open_path
    with churn_auth_server.client(authorization="Bearer wrong-key-0123456789") as wrong:
        denied = wrong.post("/predict", json=body)
    assert denied.status_code == 401 and "API key" in denied.json()["error"]
    with churn_auth_server.client(**{"x-api-key": API_KEY}) as keyed:
        assert keyed.post("/predict", json=body).status_code == 200
    headers = {"authorization": f"Bearer {API_KEY}"}
    with churn_auth_server.client(**headers) as client:
        answer = client.post("/predict", json={"rows": rows})
        unseen = client.post("/predict", json={"rows": [{**rows[0], "contract": "lifetime"}]})
    assert answer.status_code == 200
    _assert_same_predictions(bundle, ex.test, answer.json(), bundle.weights_sha256[:12])
    assert unseen.status_code == 400 and unseen.json()["detail"][0]["loc"] == ["rows", 0, "contract"]
    _assert_same_predictions(
        bundle,
        ex.test.head(40),
        asyncio.run(_one_row_each(churn_auth_server.url, rows[:40], headers)),
        bundle.weights_sha256[:12],
    )


def test_auth_service_request_json_and_schemathesis_with_the_key(examples, churn_auth_server: Server) -> None:
    """With auth on, the document declares the key schemes and the 401; schemathesis's CLI (the
    key from the environment, as the folder's schemathesis.toml says) finds no issue, its
    ignored-auth check included; request.json with the key gets 200."""
    with churn_auth_server.client() as anonymous:
        spec = anonymous.get("/docs.json").json()
    operation = spec["paths"]["/predict"]["post"]
    assert "401" in operation["responses"] and operation["security"] == [{"bearer": []}, {"apiKey": []}]
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    done = _schemathesis_cli(churn_auth_server, SHIPYARD_API_KEY=API_KEY)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "No issues found" in done.stdout
    request = (churn_auth_server.out / "request.json").read_bytes()
    headers = {"content-type": "application/json", "authorization": f"Bearer {API_KEY}"}
    with churn_auth_server.client() as client:
        assert client.post("/predict", content=request, headers={"content-type": "application/json"}).status_code == 401
        answer = client.post("/predict", content=request, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["model_version"] == ModelBundle.load(examples["churn"].bundle_dir).weights_sha256[:12]


def test_serve_refuses_to_start_without_the_key(churn_auth_server: Server, bentoml_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shipyard.deploy.service", "serve", str(churn_auth_server.out), "--port", "1"],
        env=_env(bentoml_home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SHIPYARD_API_KEY is not set" in done.stderr and "Traceback" not in done.stderr
