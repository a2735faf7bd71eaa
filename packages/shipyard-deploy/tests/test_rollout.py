"""Shadow and canary rollouts on the real BentoML server (loopback), and ``compare`` on logs.

The production model is the churn example; candidates are real bundles: another churn model
(other width and seed: it disagrees on some rows), the breast-cancer model (it cannot score a
churn row: every call raises) and a wide churn model (each batch takes far longer than
production's). One server per rollout, started once per module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from shipyard.core.errors import DataError
from shipyard.core.schema import RolloutRulesConf
from shipyard.deploy.service import build_service, compare_rollout
from shipyard.deploy.service._rollout import ANSWERED, LATENCY_MS, REQUEST, ROLE
from shipyard.predlog import KEY, MODEL_VERSION, PREDICTION, SCORE, LogLocation, open_log, read_frame
from shipyard.train.bundle import ModelBundle

from .test_service_server import Server
from .test_service_server import _serve as _serve_server

PROD, CAND = "examples/churn@v1.0.0", "examples/churn@v2.0.0"


def _serve(out: Path, home: Path, predictions: Path) -> Iterator[Server]:
    yield from _serve_server(out, home, SHIPYARD_PREDICTION_LOG=str(predictions))


def _predictions(server: Server) -> Path:
    """The prediction log folder _build named for the server's service folder."""
    return server.out.parent / f"{server.out.name}-predictions"


def _train_churn(root: Path, name: str, hidden: list[int], seed: int, epochs: int) -> Path:
    """A churn model trained by the pipeline's own functions (as conftest's examples are)."""
    from shipyard.core.compose import section
    from shipyard.core.registry import component_schema
    from shipyard.core.schema import (
        DataConf,
        EarlyStoppingConf,
        ModelConf,
        OptimConf,
        PreprocessConf,
        ProjectConf,
        SplitConf,
        Task,
        TrainerConf,
    )
    from shipyard.data import fetch_raw, fit_preprocessor, ingest, split_frame
    from shipyard.train.fit import train_model

    data = section(
        DataConf,
        {
            "source": {"kind": "csv", "path": "churn.csv", "fetch": "synthetic:churn"},
            "target": "churned",
            "key": "customer_id",
        },
        "data",
    )
    fetch_raw(data.source, root)
    frame = ingest(data, root)
    train, val, _test, _ = split_frame(frame, SplitConf(), data.target, "binary", 42)
    state = fit_preprocessor(train, data.target, data.shape, PreprocessConf(), "binary")
    target = "shipyard.train.models.MLP"
    params = section(component_schema(target), {"hidden": hidden, "dropout": 0.0, "activation": "relu"}, "model")
    result = train_model(
        train,
        val,
        state,
        model=ModelConf(target, params),
        optim=OptimConf(lr=0.01),
        trainer=TrainerConf(max_epochs=epochs, progress_bar=False, early_stopping=EarlyStoppingConf(enabled=False)),
        seed=seed,
        project=ProjectConf(name="churn", team="examples", task=Task.binary),
        workdir=root / f"{name}-work",
    )
    bundle_dir = root / f"{name}-bundle"
    result.bundle.save(bundle_dir)
    return bundle_dir


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bentoml")


_CANDIDATES = {"other": ([4], 7, 1), "slow": ([3072, 3072, 3072], 7, 1)}


class _Candidates(dict):
    """Candidate bundles, each trained the first time a test asks for it."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, name: str) -> Path:
        hidden, seed, epochs = _CANDIDATES[name]
        self[name] = _train_churn(self.root, name, hidden, seed=seed, epochs=epochs)
        return self[name]


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _Candidates(tmp_path_factory.mktemp("candidates"))


def _rows(frame: pd.DataFrame, features: list[str], key: str | None = None) -> list[dict]:
    records = frame[features].to_dict(orient="records")
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in records]
    if key is not None:
        for row, value in zip(rows, frame[key].astype(str), strict=True):
            row[key] = value
    return rows


async def _send(url: str, rows: list[dict], per_request: int = 1, headers: dict | None = None) -> tuple[list, list]:
    """The rows in requests of ``per_request`` rows, 32 at a time; answers and seconds each."""
    limit = asyncio.Semaphore(32)

    async def one(client: httpx.AsyncClient, part: list[dict]) -> tuple[list, float]:
        async with limit:
            started = time.perf_counter()
            answer = await client.post("/predict", json={"rows": part})
            assert answer.status_code == 200, answer.text
            return answer.json(), time.perf_counter() - started

    async with httpx.AsyncClient(base_url=url, headers=headers or {}, timeout=60) as client:
        parts = [rows[i : i + per_request] for i in range(0, len(rows), per_request)]
        done = await asyncio.gather(*(one(client, p) for p in parts))
    return [a for answers, _ in done for a in answers], [s for _, s in done]


def _build(examples, tmp, home: Path, rollout: dict, candidate: Path, name: str) -> tuple[Path, Path]:
    churn = examples["churn"]
    out = tmp / name
    log = tmp / f"{name}-predictions"
    conf = {"bento": {"build": False}, "rollout": {"candidate": "v2", **rollout}}
    build_service(
        churn.bundle_dir,
        out,
        conf,
        project="examples/churn",
        version=PROD,
        example=churn.test,
        candidate=(candidate, CAND),
        key_field="customer_id",
        prediction_log={"enabled": True, "path": str(log), "flush_rows": 200, "flush_seconds": 0.5},
    )
    return out, log


def _expected(bundle_dir: Path, frame: pd.DataFrame) -> list:
    bundle = ModelBundle.load(bundle_dir)
    return bundle.labels(bundle.predict_scores(frame))


def _metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=10).text


def _metric_value(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.startswith(name) and (not want or want in head) and not line.startswith("#"):
            return float(value)
    return 0.0


# -- canary --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def canary(examples, candidates, tmp_path_factory, home) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("canary")
    out, log = _build(examples, tmp, home, {"mode": "canary", "share": 0.3}, candidates["other"], "canary")
    yield from _serve(out, home, log)


@pytest.mark.slow
def test_canary_share_is_within_a_binomial_bound_and_each_key_sticks(examples, candidates, canary) -> None:
    churn = examples["churn"]
    features = ModelBundle.load(churn.bundle_dir).preprocessor.features
    frame = pd.concat([churn.train, churn.val, churn.test]).head(1200)
    frame = frame.assign(customer_id=[f"caller-{i}" for i in range(len(frame))])
    rows = _rows(frame, features, "customer_id")
    answers, _ = asyncio.run(_send(canary.url, rows, per_request=4))
    versions = np.array([a["model_version"] for a in answers])
    assert set(versions) == {PROD, CAND}
    share = float(np.mean(versions == CAND))
    bound = 4 * np.sqrt(0.3 * 0.7 / len(rows))  # four standard deviations of a binomial share
    assert abs(share - 0.3) < bound, (share, bound)
    # Each answer is the model its version names.
    prod, cand = _expected(churn.bundle_dir, frame), _expected(candidates["other"], frame)
    for answer, version, p, c in zip(answers, versions, prod, cand, strict=True):
        assert answer["prediction"] == (c if version == CAND else p)
    # Sticky: the same callers again, with other rows and in another order, meet the same model.
    again = frame.assign(customer_id=frame["customer_id"].to_numpy()[::-1])
    answers2, _ = asyncio.run(_send(canary.url, _rows(again, features, "customer_id"), per_request=7))
    first = dict(zip(frame["customer_id"], versions, strict=True))
    assert [a["model_version"] for a in answers2] == [first[k] for k in again["customer_id"]]
    # A row without a key is answered by production.
    plain, _ = asyncio.run(_send(canary.url, _rows(frame.head(50), features), per_request=50))
    assert {a["model_version"] for a in plain} == {PROD}


# -- shadow --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shadow(examples, candidates, tmp_path_factory, home) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("shadow")
    out, log = _build(examples, tmp, home, {"mode": "shadow", "shadow_queue": 1024}, candidates["other"], "shadow")
    yield from _serve(out, home, log)


@pytest.mark.slow
def test_shadow_answers_are_production_alone_and_both_are_logged_and_compared(examples, candidates, shadow) -> None:
    churn = examples["churn"]
    features = ModelBundle.load(churn.bundle_dir).preprocessor.features
    frame = pd.concat([churn.val, churn.test])
    answers, _ = asyncio.run(_send(shadow.url, _rows(frame, features, "customer_id"), per_request=5))
    assert [a["prediction"] for a in answers] == _expected(churn.bundle_dir, frame)
    assert {a["model_version"] for a in answers} == {PROD}
    location = LogLocation(path=_predictions(shadow))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # Every row is logged by production; by the candidate unless its queue was full (counted).
        dropped = _metric_value(_metrics(shadow.url), "shipyard_rollout_shadow_dropped_rows_total")
        logged = read_frame(location)
        roles = logged[ROLE].value_counts().to_dict() if len(logged) else {}
        if roles.get("production") == len(frame) and roles.get("candidate", 0) + dropped == len(frame):
            break
        time.sleep(0.5)
    assert (logged.groupby(ROLE)[MODEL_VERSION].unique().map(list).to_dict()) == {
        "production": [PROD],
        "candidate": [CAND],
    }
    cand_rows = logged[logged[ROLE] == "candidate"]
    assert (logged[ROLE] == "production").sum() == len(frame)
    assert len(cand_rows) + dropped == len(frame) and len(cand_rows) > 0
    assert cand_rows[ANSWERED].eq(False).all()
    # compare's agreement is the agreement of the two bundles on the rows both scored.
    both = frame.set_index(frame["customer_id"].astype(str)).loc[cand_rows[KEY]]
    truth = np.mean(np.array(_expected(churn.bundle_dir, both)) == np.array(_expected(candidates["other"], both)))
    labels = pd.DataFrame({"key": frame["customer_id"].astype(str), "label": frame["churned"]})
    report = compare_rollout(
        location,
        production=PROD,
        candidate=CAND,
        task="binary",
        rules=RolloutRulesConf(min_agreement=0.0, min_rows=10),
        max_metric_drop=1.0,
        labels=labels,
    )
    assert report["agreement"]["rows"] == len(cand_rows)
    assert report["agreement"]["rate"] == pytest.approx(truth)
    assert report["live"]["production"]["rows"] == len(frame)
    assert report["verdict"] == "pass"


# -- faulty candidates ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raising(examples, tmp_path_factory, home) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("raising")
    # The breast-cancer model lacks every churn feature: each call to it raises.
    bc = examples["breast_cancer"].bundle_dir
    out, log = _build(examples, tmp, home, {"mode": "shadow"}, bc, "raising")
    yield from _serve(out, home, log)


@pytest.mark.slow
@pytest.mark.drill
def test_drill_a_raising_shadow_candidate_changes_no_answer(examples, raising) -> None:
    """Fault: the shadow candidate raises on every batch. Every request is still answered by
    production, with production's predictions; the failures are counted in /metrics; the log
    holds production's records only."""
    churn = examples["churn"]
    features = ModelBundle.load(churn.bundle_dir).preprocessor.features
    answers, _ = asyncio.run(_send(raising.url, _rows(churn.test, features, "customer_id"), per_request=3))
    assert [a["prediction"] for a in answers] == _expected(churn.bundle_dir, churn.test)
    deadline = time.monotonic() + 20
    while _metric_value(_metrics(raising.url), "shipyard_rollout_candidate_failed_rows_total", mode="shadow") < len(
        churn.test
    ):
        assert time.monotonic() < deadline, _metrics(raising.url)[-2000:]
        time.sleep(0.5)
    assert "rollout: shadow candidate" in raising.log.read_text()


@pytest.fixture(scope="module")
def slow(examples, candidates, tmp_path_factory, home) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("slow")
    out, log = _build(examples, tmp, home, {"mode": "shadow", "shadow_queue": 4}, candidates["slow"], "slow")
    yield from _serve(out, home, log)


@pytest.mark.slow
@pytest.mark.drill
def test_drill_a_slow_shadow_candidate_does_not_delay_answers(examples, candidates, slow) -> None:
    """Fault: the shadow candidate is far slower than production, and 32 clients send at once.
    Answers are production's; the candidate's bounded queue fills, and what it could not hold is
    dropped and counted in /metrics rather than waited for (a candidate on the answer path would
    have scored every row); every row is either scored by the candidate or counted as dropped."""
    churn = examples["churn"]
    frame = pd.concat([churn.test] * 4)
    features = ModelBundle.load(candidates["slow"]).preprocessor.features
    answers, _ = asyncio.run(_send(slow.url, _rows(frame, features, "customer_id"), per_request=20))
    assert [a["prediction"] for a in answers] == _expected(churn.bundle_dir, frame)
    metrics = _metrics(slow.url)
    dropped = _metric_value(metrics, "shipyard_rollout_shadow_dropped_rows_total")
    assert dropped > 0, metrics[-2000:]
    assert _metric_value(metrics, "shipyard_rollout_rows_total", role="production") == len(frame)
    deadline = time.monotonic() + 60  # the queue drains: at most shadow_queue batches were in it
    while _metric_value(_metrics(slow.url), "shipyard_rollout_rows_total", role="candidate") + dropped < len(frame):
        assert time.monotonic() < deadline, _metrics(slow.url)[-2000:]
        time.sleep(0.5)
    scored = _metric_value(_metrics(slow.url), "shipyard_rollout_rows_total", role="candidate")
    assert scored + dropped == len(frame) and scored > 0


# -- compare on a synthetic log ------------------------------------------------------------------


def _synthetic_log(folder: Path, rows: int, agree: float, seed: int = 0) -> float:
    """A shadow log of ``rows`` rows where the candidate agrees with production on a known
    share; returns that share."""
    rng = np.random.default_rng(seed)
    prod_pred = rng.integers(0, 2, rows)
    flip = rng.random(rows) >= agree
    cand_pred = np.where(flip, 1 - prod_pred, prod_pred)
    requests = [f"r{i}" for i in range(rows)]
    keys = [f"k{i}" for i in range(rows)]
    features = [("x", "number")]
    x = rng.normal(size=rows)
    location = LogLocation(path=folder)
    for role, version, pred, ms in (("production", PROD, prod_pred, 2.0), ("candidate", CAND, cand_pred, 5.0)):
        sink = open_log(location, features, task="binary", source="service", model_version=version, block=True)
        extra = {
            REQUEST: requests,
            ROLE: [role] * rows,
            LATENCY_MS: [ms] * rows,
            ANSWERED: [role == "production"] * rows,
        }
        sink.log({"x": x}, [str(p) for p in pred], pred * 0.8 + 0.1, keys=keys, extra=extra)
        sink.close()
    return float(np.mean(~flip))


def test_compare_reports_the_known_agreement_and_its_verdict(tmp_path: Path) -> None:
    known = _synthetic_log(tmp_path / "log", 2000, agree=0.9)
    location = LogLocation(path=tmp_path / "log")
    options = {"production": PROD, "candidate": CAND, "task": "binary", "max_metric_drop": 0.01}
    report = compare_rollout(location, rules=RolloutRulesConf(min_agreement=0.85), **options)
    assert report["mode"] == "shadow"
    assert report["agreement"] == {"rows": 2000, "rate": pytest.approx(known), "coverage": 1.0}
    assert report["latency_ms"]["production"]["p50"] == 2.0
    assert report["latency_ms"]["candidate"]["p50"] == 5.0
    assert set(report["predictions"]["candidate"]["classes"]) == {"0", "1"}
    assert report["verdict"] == "pass"
    failing = compare_rollout(location, rules=RolloutRulesConf(min_agreement=0.95), **options)
    assert failing["verdict"] == "fail" and "agreement" in failing["reasons"][0]
    few = compare_rollout(location, rules=RolloutRulesConf(min_rows=5000), **options)
    assert few["verdict"] == "insufficient"
    # Labels joined by key: production is always right, so the candidate's accuracy drops by
    # exactly its disagreement rate, more than the tolerance.
    frame = read_frame(location)
    prod = frame[frame[ROLE] == "production"]
    labels = pd.DataFrame({"key": prod[KEY], "label": prod[PREDICTION]})
    live = compare_rollout(location, rules=RolloutRulesConf(min_agreement=0.0), labels=labels, **options)
    assert live["live"]["production"]["value"] == 1.0
    assert live["live"]["drop"] == pytest.approx(1 - known)
    assert live["verdict"] == "fail" and "live accuracy" in live["reasons"][0]
    assert SCORE in frame


# -- batch shadow scoring ------------------------------------------------------------------------


def test_batch_job_scores_a_shadow_candidate_beside_production(examples, candidates, tmp_path: Path) -> None:
    from shipyard.deploy.batch import build_batch_job, run_batch_job

    churn = examples["churn"]
    job_dir = tmp_path / "batch"
    common = {"project": "examples/churn", "version": PROD, "data_key": "customer_id"}
    build_batch_job(churn.bundle_dir, job_dir, {}, candidate=(candidates["other"], CAND), **common)
    assert (job_dir / "candidate" / "weights.safetensors").is_file()
    source = tmp_path / "test.parquet"
    churn.test.to_parquet(source, index=False)
    summary = run_batch_job(job_dir, str(source), str(tmp_path / "out"), chunk_size=40, progress=False)
    assert summary["status"] == "succeeded"
    got = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "out").glob("part-*.parquet")))
    frame = churn.test.set_index("customer_id").loc[got["customer_id"]]
    assert got["prediction"].tolist() == _expected(churn.bundle_dir, frame)
    assert got["candidate_prediction"].tolist() == _expected(candidates["other"], frame)
    other = ModelBundle.load(candidates["other"])
    np.testing.assert_allclose(got["candidate_score"], other.predict_scores(frame), atol=1e-6)
    assert set(got["model_version"]) == {PROD} and set(got["candidate_model_version"]) == {CAND}
    # Without a candidate the job writes production's columns only, as before.
    build_batch_job(churn.bundle_dir, job_dir, {}, **common)
    assert not (job_dir / "candidate").exists()
    # A candidate of another task is refused at build time, and the job folder is left as it was.
    with pytest.raises(DataError, match="is a multiclass model"):
        build_batch_job(churn.bundle_dir, job_dir, {}, candidate=(examples["digits"].bundle_dir, CAND), **common)
