"""The data contract through the real CLI, DVC and registry: a version carries its contract and
reference profile; the next training's check stage holds new data to the production version's
contract before anything trains; a schema change is called out at registration and promotion."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from .conftest import make_repo

BC = "tabular/breast_cancer"
# The gate runs (only a passing version is promoted) but asks little of a two-epoch model.
FAST = (
    "trainer.max_epochs=2",
    "trainer.progress_bar=false",
    "gate.thresholds={}",
    "gate.baseline.models=[dummy]",
    "gate.regression_tolerance=1.0",
)


@pytest.mark.slow
def test_contract_stops_a_broken_source_and_a_schema_change_is_called_out(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ran, first = repo.train(BC, *FAST, gate=True)
    assert "data contract: none to compare with (the first training of this project" in first.stderr
    card = json.loads((repo.path / "pipelines" / BC / "model_card.json").read_text())
    contract, profile = card["contract"], card["reference_profile"]
    assert contract["columns"]["mean radius"]["role"] == "feature" and len(contract["columns"]) == 32
    assert len(profile["features"]) == 30 and set(profile["prediction"]["counts"]) == {"0", "1"}
    assert "val/accuracy" in profile["metrics"]
    repo.run("promote", BC, "v1")

    raw = repo.data(BC) / "01_raw" / "breast_cancer.csv"
    pristine = raw.read_bytes()
    pd.read_csv(raw).drop(columns="mean radius").to_csv(raw, index=False)
    ran, proc = repo.train(BC, *FAST, check=False, gate=True)
    assert proc.returncode == 2, proc.stderr
    assert ran == ["ingest", "check"], "nothing trains on data that breaks the contract"
    assert "contract: missing column on mean radius" in proc.stderr
    assert "restore 'mean radius' in the source" in proc.stderr
    assert f"data contract of {BC} v1.0.0 (production): broken" in proc.stderr
    assert "Traceback" not in proc.stderr

    # A per-column override lets the change through on purpose: the new version is registered,
    # and its schema change is called out there and again at promotion.
    _, proc = repo.train(BC, *FAST, "+checks.contract_columns={mean radius: warn}", gate=True)
    assert (
        "schema change: tabular/breast_cancer v2.0.0 changes the feature schema of v1.0.0: removed 'mean radius'"
        in (proc.stderr)
    )
    promoted = repo.run("promote", BC, "v2")
    assert "removed 'mean radius'" in promoted.stderr + promoted.stdout

    # Restored data against v2's contract (production now): 'mean radius' is a new column, a warning.
    raw.write_bytes(pristine)
    ran, proc = repo.train(BC, *FAST, "+checks.contract_columns={mean radius: warn}", gate=True)
    assert "warning: contract: new column [mean radius]" in proc.stderr
    assert f"data contract of {BC} v2.0.0 (production): kept, with warnings" in proc.stderr
