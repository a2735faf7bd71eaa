"""Rollouts through the real CLI, registry (git/GTO), DVC and BentoML server: a version that did
not pass its gate is refused; a shadow rollout is served, logged, compared and aborted; a canary
sticky by a request header is served and promoted; the version's lineage records each of them."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

from .conftest import Repo, served

pytestmark = pytest.mark.slow

BC = "tabular/breast_cancer"
GATED = ("trainer.max_epochs=20", "trainer.progress_bar=false", "gate.baseline.models=[dummy]", "deploy.targets=[]")
NO_BENTO = "deploy.service.bento.build=false"


def _rows(repo: Repo) -> list[dict]:
    test = pd.read_parquet(repo.data(BC) / "05_model_input" / "test.parquet")
    features = json.loads((repo.data(BC) / "06_models" / "bundle" / "bundle.json").read_text())
    names = features["preprocessor"]["features"]
    return [{k: float(v) for k, v in r.items()} for r in test[names].to_dict(orient="records")]


def test_rollouts_are_refused_served_compared_ended_and_in_the_lineage(repo_factory, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    repo: Repo = repo_factory()
    repo.train(BC, *GATED, "seed=1", gate=True)
    repo.run("promote", BC, "v1", *GATED)
    _, failed = repo.train(
        BC, *GATED, "seed=2", "gate.thresholds={test/accuracy: {min: 0.9999}}", gate=True, check=False
    )
    assert failed.returncode == 3
    refused = repo.run("rollout", BC, "v2", "--mode", "shadow", *GATED, NO_BENTO, check=False)
    promote_refused = repo.run("promote", BC, "v2", check=False)
    assert refused.returncode == 2 and "v2.0.0 did not pass its gate" in refused.stderr
    assert refused.stderr.splitlines()[0] == promote_refused.stderr.splitlines()[0], "refused as promotion is"
    assert not (repo.path / "deploy" / BC / "service").exists(), "nothing was built"
    repo.train(BC, *GATED, "seed=3", gate=True)

    # Shadow: production answers, both are logged, compare judges, --abort ends it.
    started = repo.run("rollout", BC, "v3", "--mode", "shadow", *GATED, NO_BENTO)
    assert "shadow rollout of tabular/breast_cancer@v3.0.0" in started.stdout
    spec = json.loads((repo.path / "deploy" / BC / "service" / "service.json").read_text())
    assert spec["model_version"] == f"{BC}@v1.0.0" and spec["rollout"]["candidate"]["model_version"] == f"{BC}@v3.0.0"
    assert (repo.path / "deploy" / BC / "service" / "candidate" / "weights.safetensors").is_file()
    too_few = repo.run("compare", BC, check=False)
    assert too_few.returncode == 5 and "verdict: INSUFFICIENT" in too_few.stdout
    rows = _rows(repo)
    with served(repo.path / "deploy" / BC / "service", repo) as url:
        answers = [httpx.post(f"{url}/predict", json={"rows": rows[i : i + 4]}).json() for i in range(0, len(rows), 4)]
    assert {a["model_version"] for part in answers for a in part} == {f"{BC}@v1.0.0"}
    judged = repo.run("compare", BC, "--json", "deploy.service.rollout.compare.min_rows=10", check=False)
    report = json.loads(judged.stdout)
    assert report["rows"] == {"production": len(rows), "candidate": len(rows)}
    assert report["agreement"]["rows"] == len(rows) and 0.5 < report["agreement"]["rate"] <= 1.0
    assert judged.returncode == (0 if report["verdict"] == "pass" else 4)
    strict = repo.run(
        "compare",
        BC,
        "deploy.service.rollout.compare.min_rows=10",
        "deploy.service.rollout.compare.min_agreement=1.0",
        check=False,
    )
    if report["agreement"]["rate"] < 1.0:
        assert strict.returncode == 4 and "agreement" in strict.stdout
    aborted = repo.run("rollout", BC, "--abort", *GATED, NO_BENTO)
    assert "rollout aborted" in aborted.stdout
    assert "rollout" not in json.loads((repo.path / "deploy" / BC / "service" / "service.json").read_text())
    assert json.loads(repo.run("status", BC, "--json").stdout)["production"] == "v1.0.0"

    # Canary sticky by a header: each caller meets one model; --promote makes v3 production.
    canary = (*GATED, NO_BENTO, "deploy.service.rollout.sticky_header=X-Client-Id")
    repo.run("rollout", BC, "v3", "--mode", "canary", "--share", "0.5", *canary)
    with served(repo.path / "deploy" / BC / "service", repo) as url:
        seen: dict[str, set[str]] = {}
        for i in range(60):
            caller = f"caller-{i % 20}"
            answer = httpx.post(f"{url}/predict", json={"rows": [rows[i]]}, headers={"X-Client-Id": caller}).json()
            seen.setdefault(caller, set()).add(answer[0]["model_version"])
    assert all(len(v) == 1 for v in seen.values()), seen
    assert {v for vs in seen.values() for v in vs} == {f"{BC}@v1.0.0", f"{BC}@v3.0.0"}
    promoted = repo.run("rollout", BC, "--promote", *canary)
    assert "v3.0.0: is now production" in promoted.stdout
    status = json.loads(repo.run("status", BC, "--json").stdout)
    assert status["production"] == "v3.0.0"
    assert status["deployments"]["service"]["version"] == "v3.0.0"

    card = json.loads(repo.run("lineage", BC, "v3", "--json").stdout)
    assert [(e["event"], e["mode"]) for e in card["rollouts"]] == [
        ("started", "shadow"),
        ("aborted", "shadow"),
        ("started", "canary"),
        ("promoted", "canary"),
    ]
    assert card["rollouts"][3]["previous"] == "v1.0.0"
    assert "rollout:" in repo.run("lineage", BC, "v3").stdout
    assert json.loads(repo.run("lineage", BC, "v1", "--json").stdout)["rollouts"] == []
