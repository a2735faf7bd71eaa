"""Reliability drills of the model as deployed: a damaged weights file is refused wherever a
bundle is loaded (service start, the built Bento, the batch job, every build), and a Bento with
auth on refuses to start with a key that is too short, instead of answering 500 on every path.

Real components: ``python -m shipyard.deploy.service serve`` and BentoML's own ``bentoml serve``
of the built Bento on 127.0.0.1, the batch job's CLI, BentoML's model store and its CLI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from shipyard.core.errors import DataError
from shipyard.deploy.batch import build_batch_job
from shipyard.deploy.edge import build_edge
from shipyard.deploy.service import build_service

pytestmark = pytest.mark.drill

GOOD_KEY = "drill-key-0123456789abcdef"
BIN = Path(sys.executable).parent
NO_BENTO = {"bento": {"build": False}}


def _env(**extra: str) -> dict[str, str]:
    # BENTOML_HOME: the tests' own store (conftest), the one build_service wrote the model to.
    env = {k: v for k, v in os.environ.items() if k != "SHIPYARD_API_KEY"}
    return {**env, "BENTOML_DO_NOT_TRACK": "True", "OMP_NUM_THREADS": "1", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def refused(cmd: list[str], port: int, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a server command that must refuse to start: it has to exit by itself (a restart loop
    never does), with code 2 and one message, and nothing may ever listen on its port."""
    done = subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=120, start_new_session=True)
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr and done.stderr.count(" error: ") == 1, done.stderr[-3000:]
    assert "\n  fix: " in done.stderr
    assert not _listening(port)
    return done


def _serve_cmd(out: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "shipyard.deploy.service", "serve", str(out), "--port", str(port)]


def _damage(path: Path, *, truncate: bool) -> None:
    """Same-size garbage in the tensor data, or the file cut in half (a copy that was interrupted)."""
    data = bytearray(path.read_bytes())
    if truncate:
        path.write_bytes(bytes(data[: len(data) // 2]))
        return
    data[-64:] = bytes(64)  # the last tensor's bytes: a file that still parses, and predicts wrong
    path.write_bytes(bytes(data))


def _store_path(tag: str) -> Path:
    name, version = tag.split(":")
    return Path(os.environ["BENTOML_HOME"]) / "models" / name / version


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- make serve --------------------------------------------------------------------------------


@pytest.mark.slow  # starts servers (each must refuse)
@pytest.mark.parametrize("truncate", [False, True], ids=["same-size", "truncated"])
def test_make_serve_refuses_damaged_weights(examples: Any, tmp_path: Path, truncate: bool) -> None:
    """Fault: the deployed service folder's weights are damaged (same-size garbage was served with
    200s, all predicting 1; a truncated file sent the worker into a restart loop). Must: refuse to
    start, exit 2, one message naming the file and `make deploy` as the fix, nothing served; the
    model in BentoML's store is left as it was."""
    out = tmp_path / "svc"
    report = build_service(examples["breast_cancer"].bundle_dir, out, NO_BENTO, project="examples/breast_cancer")
    store = _snapshot(_store_path(report["model_tag"]))
    weights = out / "bundle" / "weights.safetensors"
    _damage(weights, truncate=truncate)
    before = _snapshot(out)
    port = _free_port()
    done = refused(_serve_cmd(out, port), port)
    assert done.stderr.startswith(f"data error: the model weights {weights} are damaged or were replaced")
    assert "fix: rebuild it from the registry: make deploy PROJECT=examples/breast_cancer TARGET=service" in done.stderr
    assert _snapshot(out) == before and _snapshot(_store_path(report["model_tag"])) == store


@pytest.mark.slow  # starts servers
def test_damaged_model_in_the_store_is_refused_and_a_rebuild_fixes_it(examples: Any, tmp_path: Path) -> None:
    """Fault: the copy in BentoML's model store (what the server loads) is truncated while the
    folder is whole. Must: the server's preflight refuses (exit 2, naming the store's file); the
    fix it names, a rebuild, stores the model afresh and the service then starts and answers."""
    ex = examples["churn"]
    out = tmp_path / "svc"
    report = build_service(ex.bundle_dir, out, NO_BENTO, project="examples/churn", example=ex.test)
    stored = _store_path(report["model_tag"]) / "weights.safetensors"
    _damage(stored, truncate=True)
    port = _free_port()
    done = refused(_serve_cmd(out, port), port)
    assert f"the model weights {stored} are damaged" in done.stderr
    assert "make deploy PROJECT=examples/churn TARGET=service" in done.stderr

    build_service(ex.bundle_dir, out, NO_BENTO, project="examples/churn", example=ex.test)  # the fix
    proc = subprocess.Popen(
        _serve_cmd(out, port), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        answer = _wait_and_post(f"http://127.0.0.1:{port}", out / "request.json", {}, proc)
        assert answer.status_code == 200, answer.text
    finally:
        _stop(proc)


def _wait_and_post(url: str, request: Path, headers: dict[str, str], proc: subprocess.Popen[Any]) -> httpx.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited {proc.returncode}"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    body = request.read_bytes()
    return httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json", **headers})


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# -- the built Bento, served by BentoML's own CLI ----------------------------------------------


@pytest.mark.slow  # builds a Bento, starts servers
def test_bentoml_serve_of_the_bento_refuses_a_short_key_and_damaged_weights(examples: Any, tmp_path: Path) -> None:
    """Faults: `bentoml serve <bento>` with auth on and a key shorter than the minimum answered
    500 on every path, health checks included; with damaged weights it would serve them. Must:
    refuse to start (exit 2, one message) as `make serve` does. With a good key the same Bento,
    which carries the bundle as a BentoML model, answers the folder's request.json."""
    ex = examples["churn"]
    out = tmp_path / "svc"
    report = build_service(
        ex.bundle_dir, out, {"auth": {"enabled": True}}, project="examples/churn", version="v3.0.0", example=ex.test
    )
    tag = report["bento_tag"]
    assert tag == report["model_tag"] == "examples-churn:v3.0.0"
    bentoml = str(BIN / "bentoml")
    port = _free_port()
    serve = [bentoml, "serve", tag, "--host", "127.0.0.1", "--port", str(port)]

    short = refused(serve, port, SHIPYARD_API_KEY="too-short")
    assert short.stderr.startswith("config error: API-key auth is on but $SHIPYARD_API_KEY is shorter than 16")

    proc = subprocess.Popen(
        serve,
        env=_env(SHIPYARD_API_KEY=GOOD_KEY),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        answer = _wait_and_post(url, out / "request.json", {"authorization": f"Bearer {GOOD_KEY}"}, proc)
        assert answer.status_code == 200, answer.text
        assert answer.json()[0]["model_version"] == "v3.0.0"
        assert httpx.get(f"{url}/livez").status_code == 200
    finally:
        _stop(proc)

    weights = _store_path(tag) / "weights.safetensors"
    kept = weights.read_bytes()
    _damage(weights, truncate=False)
    try:
        damaged = refused(serve, port, SHIPYARD_API_KEY=GOOD_KEY)
    finally:
        weights.write_bytes(kept)
    assert f"the model weights {weights} are damaged" in damaged.stderr
    assert "make deploy PROJECT=examples/churn TARGET=service" in damaged.stderr


# -- the batch job and every build -------------------------------------------------------------


@pytest.mark.parametrize("truncate", [False, True], ids=["same-size", "truncated"])
def test_batch_job_refuses_damaged_weights(examples: Any, tmp_path: Path, truncate: bool) -> None:
    """Fault: the batch job's bundle copy is damaged (same-size garbage was scored and labelled
    @v1.0.0). Must: exit 2 naming the file and `make deploy ... TARGET=batch`, no output written."""
    ex = examples["breast_cancer"]
    job = tmp_path / "job"
    build_batch_job(ex.bundle_dir, job, {}, project="examples/breast_cancer", version="examples/breast_cancer@v1.0.0")
    weights = job / "bundle" / "weights.safetensors"
    _damage(weights, truncate=truncate)
    ex.test.to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "scores"
    cmd = [
        sys.executable,
        "-m",
        "shipyard.deploy.batch",
        "run",
        str(job),
        "--input",
        str(tmp_path / "in.parquet"),
        "--output",
        str(out),
        "--no-progress",
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"data error: the model weights {weights} are damaged or were replaced")
    assert "fix: rebuild it from the registry: make deploy PROJECT=examples/breast_cancer TARGET=batch" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists(), "the weights are checked before the output (or its bookkeeping) is touched"


def test_every_build_refuses_a_damaged_source_bundle(examples: Any, tmp_path: Path) -> None:
    """Fault: the bundle `make deploy` builds from is damaged. Must: the service, batch and edge
    builds each refuse it naming the file, and write nothing."""
    ex = examples["breast_cancer"]
    bundle = tmp_path / "bundle"
    shutil.copytree(ex.bundle_dir, bundle)
    _damage(bundle / "weights.safetensors", truncate=False)
    deploy = tmp_path / "deploy"
    builds = {
        "service": lambda: build_service(bundle, deploy / "service", NO_BENTO, project="examples/breast_cancer"),
        "batch": lambda: build_batch_job(bundle, deploy / "batch", {}, project="examples/breast_cancer", version="v1"),
        "edge": lambda: build_edge(
            bundle, deploy / "edge", None, project="examples/breast_cancer", version="v1", test_frame=ex.test
        ),
    }
    for target, build in builds.items():
        with pytest.raises(DataError, match="are damaged or were replaced") as info:
            build()
        assert info.value.where == str(bundle / "weights.safetensors"), target
        assert info.value.exit_code == 2
    assert not deploy.exists()
