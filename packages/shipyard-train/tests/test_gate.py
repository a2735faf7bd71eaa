"""The gate's baselines on inputs scikit-learn refuses: a named DataError, not a traceback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from shipyard.core.errors import DataError
from shipyard.core.features import Preprocessor
from shipyard.core.schema import Baseline, BaselineConf, GateConf
from shipyard.train.gate import evaluate_gate

GATE = GateConf(baseline=BaselineConf(models=[Baseline.linear]))


def _split(big: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame, Preprocessor]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"row_id": range(80), "a": rng.normal(size=80), "b": rng.normal(size=80)})
    frame["y"] = (frame["a"] > 0).astype(int)
    if big is not None:
        frame.loc[3, "b"] = big
    pre = Preprocessor(
        task="binary",
        features=["a", "b"],
        target="y",
        mean=[0.0, 0.0],
        scale=[1.0, 1.0],
        fill=[0.0, 0.0],
        classes=[0, 1],
    )
    return frame[:60], frame[60:], pre


def test_baseline_runs_on_finite_inputs() -> None:
    train, test, pre = _split()
    report = evaluate_gate({"test/f1": 1.0}, train, test, pre, GATE)
    assert report["checks"][0]["name"] == "beats linear baseline on test/f1"


@pytest.mark.parametrize("value", [np.inf, 1e39], ids=["infinite", "beyond float32"])
def test_non_finite_model_input_names_the_feature(value: float) -> None:
    train, test, pre = _split(big=value)
    with pytest.raises(DataError) as info:
        evaluate_gate({"test/f1": 1.0}, train, test, pre, GATE)
    assert info.value.message.startswith("feature(s) 'b' of the training split are not finite numbers")
    assert info.value.key == "b" and info.value.exit_code == 2


def test_auto_metric_is_balanced_when_the_smallest_class_is_rare() -> None:
    """Balanced: f1 (binary). One class at 5 % of the training split (below half an even share
    of 50 %): balanced accuracy, with the reason in words; the baselines are judged on it too."""
    train, test, pre = _split()
    assert evaluate_gate({"test/f1": 1.0}, train, test, pre, GATE)["metric"] == "test/f1"
    train = train.assign(y=[1] * 3 + [0] * 57)
    report = evaluate_gate({"test/balanced_accuracy": 1.0}, train, test, pre, GATE)
    assert report["metric"] == "test/balanced_accuracy"
    assert report["checks"][0]["name"] == "beats linear baseline on test/balanced_accuracy"
    assert report["metric_reason"].startswith("the smallest class ('1') is 5.0% of the training split")
    # An explicit metric is kept as set.
    explicit = GateConf(metric="test/accuracy", baseline=BaselineConf(models=[Baseline.linear]))
    assert evaluate_gate({"test/accuracy": 1.0}, train, test, pre, explicit)["metric"] == "test/accuracy"
