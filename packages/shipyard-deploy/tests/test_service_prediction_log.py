"""The service's prediction log, on a real BentoML server on loopback: under concurrent load every
answered row is logged or counted as dropped on /metrics; a clean shutdown flushes; a SIGKILLed
server leaves only whole, readable Parquet files; sampling follows the config."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest
from shipyard.deploy._predlog import log_spec
from shipyard.deploy.service import build_service
from shipyard.predlog import KEY, MODEL_VERSION, PREDICTION, SCORE, SOURCE
from shipyard.train.bundle import ModelBundle

from .test_service_server import _rows, _serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bentoml")


def _build(examples, out: Path, key_field: str | None = None, **log: object) -> ModelBundle:
    """A service that logs; where is $SHIPYARD_PREDICTION_LOG's (set by each test's server)."""
    ex = examples["breast_cancer"]
    spec = log_spec(log, "data/examples/breast_cancer/09_monitoring/predictions")
    build_service(
        ex.bundle_dir,
        out,
        {"bento": {"build": False}, "max_rows_per_request": 200},
        project="examples/breast_cancer",
        version="bc-log",
        example=ex.test,
        key_field=key_field,
        prediction_log=spec,
    )
    return ModelBundle.load(ex.bundle_dir)


async def _load(url: str, bodies: list[list[dict]], clients: int = 32) -> list[int]:
    queue: asyncio.Queue[list[dict]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    answered: list[int] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while not queue.empty():
                rows = queue.get_nowait()
                response = await http.post("/predict", json={"rows": rows})
                assert response.status_code == 200, response.text
                answered.append(len(response.json()))

    await asyncio.gather(*(client() for _ in range(clients)))
    return answered


def _counter(metrics: str, name: str) -> float:
    values = [float(m) for m in re.findall(rf"^{name}_total(?:{{[^}}]*}})? ([0-9.e+]+)$", metrics, re.M)]
    return sum(values)


def _logged(folder: Path) -> int:
    files = sorted(folder.glob("*.parquet"))
    return sum(pq.read_metadata(f).num_rows for f in files)


def test_concurrent_load_logs_every_row_or_counts_it_and_shutdown_flushes(
    examples, tmp_path: Path, bentoml_home
) -> None:
    log_dir = tmp_path / "log"
    bundle = _build(examples, tmp_path / "svc", flush_rows=50, flush_seconds=30, queue_rows=300)
    rows = _rows(bundle, examples["breast_cancer"].test)
    bodies = [rows[i % len(rows) : i % len(rows) + 3] or rows[:3] for i in range(0, 1200, 3)]
    for server in _serve(tmp_path / "svc", bentoml_home, SHIPYARD_PREDICTION_LOG=str(log_dir)):
        try:
            answered = sum(asyncio.run(_load(server.url, bodies)))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{server.log_text()[-4000:]}") from exc
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        dropped = _counter(metrics, "shipyard_prediction_log_dropped_rows")
        assert "shipyard_prediction_log_dropped_rows" in metrics
        # SIGTERM: BentoML shuts the worker down cleanly and the log writes what it still holds.
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout=30)
    logged = _logged(log_dir)
    assert answered == sum(len(b) for b in bodies)
    assert logged + dropped == answered, (logged, dropped, answered)
    assert logged > 0
    table = pq.read_table(sorted(log_dir.glob("*.parquet"))[0])
    assert set(table.column(SOURCE).to_pylist()) == {"service"}
    assert set(table.column(MODEL_VERSION).to_pylist()) == {"bc-log"}
    assert set(table.column(PREDICTION).to_pylist()) <= {"0", "1"}
    assert all(0.0 <= s <= 1.0 for s in table.column(SCORE).to_pylist())
    assert set(bundle.preprocessor.features) <= set(table.column_names) and KEY in table.column_names


def test_a_sigkilled_server_leaves_only_whole_files(examples, tmp_path: Path, bentoml_home) -> None:
    log_dir = tmp_path / "log"
    bundle = _build(examples, tmp_path / "svc", flush_rows=20, flush_seconds=0.2)
    rows = _rows(bundle, examples["breast_cancer"].test)
    bodies = [rows[:4]] * 300
    for server in _serve(tmp_path / "svc", bentoml_home, SHIPYARD_PREDICTION_LOG=str(log_dir)):
        asyncio.run(_load(server.url, bodies, clients=16))
        # BentoML's workers run in process groups of their own: kill each, not just the server's group.
        workers = psutil.Process(server.proc.pid).children(recursive=True)
        os.killpg(server.proc.pid, signal.SIGKILL)
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
        server.proc.wait(timeout=30)
    files = sorted(log_dir.iterdir())
    assert files, "the log flushed while serving"
    assert all(f.suffix == ".parquet" and not f.name.startswith(".") for f in files), [f.name for f in files]
    assert 0 < sum(pq.read_table(f).num_rows for f in files) <= 1200


def test_sampling_records_a_share_of_rows_with_the_keys_requests_carry(examples, tmp_path: Path, bentoml_home) -> None:
    """A 25 % sample; each logged row keeps the row key its request sent (the project's data.key,
    an optional field that is not a feature), so labels that arrive later join by it."""
    log_dir = tmp_path / "log"
    bundle = _build(
        examples, tmp_path / "svc", key_field="row_id", sample_rate=0.25, flush_rows=100_000, flush_seconds=60
    )
    rows = _rows(bundle, examples["breast_cancer"].test)
    bodies = [[{**row, "row_id": f"r{b}-{i}"} for i, row in enumerate(rows[:10])] for b in range(200)]
    for server in _serve(tmp_path / "svc", bentoml_home, SHIPYARD_PREDICTION_LOG=str(log_dir)):
        asyncio.run(_load(server.url, bodies, clients=8))
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout=30)
    assert 350 < _logged(log_dir) < 650  # 25 % of 2000, with room for chance
    table = pq.read_table(sorted(log_dir.glob("*.parquet")))
    keys = table.column(KEY).to_pylist()
    sent = {f"r{b}-{i}" for b in range(200) for i in range(10)}
    assert set(keys) <= sent and len(set(keys)) == len(keys), keys[:5]
