"""Each check fails on a crafted bad data set and passes on the good one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from shipyard.core.compose import section
from shipyard.core.schema import ChecksConf
from shipyard.data.checks import format_summary, run_checks

NO_EXTRAS: dict[str, Any] = {"correlation": {"threshold": None}, "leakage": {"threshold": None}}


def good() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "price": rng.uniform(10, 20, n).round(2),
            "size": rng.normal(50, 5, n),
            "colour": rng.choice(["red", "red", "red", "blue", "green"], n),
            "label": rng.integers(0, 2, n),
        }
    )


# (checks config, how to break the good frame, the check that must fail, its column)
CASES: list[tuple[dict[str, Any], Any, str, str | None]] = [
    ({"columns": {"price": {"required": True}}}, lambda f: f.drop(columns="price"), "required column", "price"),
    ({"columns": {"size": {"dtype": "float"}}}, lambda f: f.assign(size=f["size"].astype(int)), "dtype", "size"),
    (
        {"columns": {"colour": {"allowed": ["red", "blue", "green"]}}},
        lambda f: f.assign(colour="purple"),
        "allowed values",
        "colour",
    ),
    ({"columns": {"price": {"min": 0}}}, lambda f: f.assign(price=-f["price"]), "min", "price"),
    ({"columns": {"price": {"max": 100}}}, lambda f: f.assign(price=f["price"] * 10), "max", "price"),
    ({"columns": {"id": {"unique": True}}}, lambda f: f.assign(id="same"), "unique", "id"),
    (
        {"columns": {"size": {"max_null_fraction": 0.1}}},
        lambda f: f.assign(size=np.where(f.index % 4 == 0, np.nan, f["size"])),
        "nulls",
        "size",
    ),
    ({"max_null_fraction": 0.2}, lambda f: f.assign(price=np.nan), "nulls", "price"),
    (
        {"max_duplicate_fraction": 0.0},
        lambda f: pd.concat([f, f.iloc[:5].assign(id=lambda d: d["id"] + "x")]),
        "duplicates",
        None,
    ),
    ({"columns": {"size": {"mean": [45, 55]}}}, lambda f: f.assign(size=f["size"] + 20), "mean", "size"),
    (
        {"columns": {"size": {"quantiles": {"0.5": [45, 55]}}}},
        lambda f: f.assign(size=f["size"] * 2),
        "quantile 0.5",
        "size",
    ),
    (
        {"columns": {"colour": {"most_frequent": "red"}}},
        lambda f: f.assign(colour="blue"),
        "most frequent value",
        "colour",
    ),
    ({"class_balance": [0.2, 0.8]}, lambda f: f.assign(label=(f.index < 10).astype(int)), "class balance", "label"),
]


@pytest.mark.parametrize(("checks", "breaks", "check", "column"), CASES, ids=[c[2] for c in CASES])
def test_check_passes_good_and_fails_bad(checks: dict[str, Any], breaks: Any, check: str, column: str | None) -> None:
    conf = {**NO_EXTRAS, **checks}
    assert run_checks(good(), section(ChecksConf, conf), "label", "binary", [])["passed"]
    report = run_checks(breaks(good()), section(ChecksConf, conf), "label", "binary", [])
    assert not report["passed"]
    assert any(f["check"] == check and f["column"] == column for f in report["failures"]), report["failures"]
    failure = next(f for f in report["failures"] if f["check"] == check)
    assert failure["observed"] is not None and failure["expected"]
    assert check in format_summary(report, "t/p")


def test_correlated_features_warn_or_fail_as_configured() -> None:
    frame = good().assign(price_with_tax=lambda f: f["price"] * 1.2)

    def checks(**correlation: Any) -> ChecksConf:
        return section(ChecksConf, {"correlation": correlation, "leakage": {"threshold": None}})

    warn = run_checks(frame, checks(threshold=0.98, action="warn"), "label", "binary", [])
    assert warn["passed"] and warn["warnings"][0]["column"] == "price ~ price_with_tax"
    fail = run_checks(frame, checks(threshold=0.98, action="fail"), "label", "binary", [])
    assert not fail["passed"] and fail["failures"][0]["check"] == "correlated features"
    assert run_checks(good(), checks(threshold=0.98), "label", "binary", [])["passed"]


def test_aux_columns_are_not_features() -> None:
    frame = good().assign(day=lambda f: f["label"])  # would leak if it were a feature
    conf = {"correlation": {"threshold": None}, "leakage": {"threshold": 0.99, "action": "fail"}}
    assert run_checks(frame, section(ChecksConf, conf), "label", "binary", ["day"])["passed"]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_leakage_scores_are_scikit_learns_cross_validated_scores(task: str) -> None:
    """The single-feature leakage score is cross_val_score's (3 folds, depth-3 tree), feature by
    feature, numeric and categorical, so a leak is scored the same however it is computed."""
    from shipyard.data.checks import _leakage
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    rng = np.random.default_rng(1)
    frame = good()
    label = {
        "binary": frame["label"],
        "multiclass": pd.Series(rng.integers(0, 3, len(frame))),
        "regression": pd.Series(rng.normal(0, 1, len(frame))),
    }[task]
    frame = frame.assign(label=label, leak=label + rng.normal(0, 0.1, len(frame)))
    features = ["price", "size", "colour", "leak"]
    found = dict(_leakage(frame, features, "label", task))

    regression = task == "regression"
    model = (DecisionTreeRegressor if regression else DecisionTreeClassifier)(max_depth=3, random_state=0)
    for name in features:
        column = frame[name].astype("category").cat.codes if name == "colour" else frame[name]
        x = column.to_numpy(dtype=np.float64).reshape(-1, 1)
        scoring = "r2" if regression else "balanced_accuracy"
        expected = float(np.mean(cross_val_score(model, x, frame["label"], cv=3, scoring=scoring)))
        if regression:  # every column here is complete
            expected = max(expected, float(np.corrcoef(x[:, 0], frame["label"])[0, 1] ** 2))
        assert found[name] == round(expected, 4), name
    assert max(found, key=found.__getitem__) == "leak"


def test_leakage_scores_match_scikit_learns_metrics_at_their_edges() -> None:
    """The leakage check scores folds itself (sklearn's scorers re-validate on every call): the
    same numbers as sklearn on string labels, a predicted class absent from the fold, a
    constant target."""
    import warnings

    from shipyard.data.checks import _balanced_accuracy, _r2
    from sklearn.metrics import balanced_accuracy_score, r2_score

    rng = np.random.default_rng(3)
    cases = [
        (rng.choice(["a", "b", "c"], 50), rng.choice(["a", "b", "c"], 50)),
        (np.array(["a", "a", "b", "b"]), np.array(["a", "c", "b", "c"])),  # "c" never true
        (rng.integers(0, 2, 40), np.zeros(40, dtype=int)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the absent class
        for truth, pred in cases:
            assert _balanced_accuracy(truth, pred) == pytest.approx(balanced_accuracy_score(truth, pred))
    for truth, pred in [
        (rng.normal(size=30), rng.normal(size=30)),
        (np.full(5, 2.0), np.full(5, 2.0)),
        (np.full(5, 2.0), np.arange(5.0)),
    ]:
        assert _r2(truth, pred) == pytest.approx(r2_score(truth, pred))
